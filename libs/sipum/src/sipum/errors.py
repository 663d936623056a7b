"""Errors shared by every service."""


class ConfigError(Exception):
    """Configuration that cannot work: the message names the setting and the problem.

    Services print ``str(error)`` as one line and exit with status 2 (no traceback).
    """

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem
