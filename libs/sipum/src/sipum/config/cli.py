"""The old sipum command line on every service: ``-D -f -d -X -h -v``, and clean config errors.

``load_settings`` merges three sources, strongest first: command-line flags, the
``cinema_db.conf`` lookup (database URL only), then the environment (``SIPUM_*``) and defaults.
Bad configuration ends the process with one line on stderr, ``prog: error: setting: problem``,
and exit status 2 — never a traceback (``exit_on_config_error`` / ``run_cli``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from pydantic import ValidationError

from sipum import __version__
from sipum.config.database_url import normalize_database_url
from sipum.config.debug import DEBUG_CATEGORIES, apply_debug_categories
from sipum.config.settings import ServiceSettings
from sipum.errors import ConfigError

S = TypeVar("S", bound=ServiceSettings)

#: Where CINEMA sipum looked for its database URL when neither -D nor -f was given.
CINEMA_DB_CONF_PATHS: tuple[Path, ...] = (Path("cinema_db.conf"), Path("/etc/cinema_db.conf"))

CONFIG_ERROR_EXIT_STATUS = 2


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one ``prog: error: …`` line (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(CONFIG_ERROR_EXIT_STATUS, f"{self.prog}: error: {message} (see -h)\n")


def build_parser(
    *,
    prog: str,
    description: str,
    version: str = __version__,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "-D",
        dest="database_url",
        metavar="URL",
        help="database URL: postgresql://user:password@host:port/db or the old "
        "sql://user:password@host:port/db (env SIPUM_DATABASE_URL)",
    )
    parser.add_argument(
        "-f",
        dest="database_url_file",
        metavar="FILE",
        help="file holding the database URL (default: ./cinema_db.conf, then "
        "/etc/cinema_db.conf, then SIPUM_DATABASE_URL)",
    )
    parser.add_argument(
        "-d",
        dest="debug",
        metavar="CATEGORY",
        action="append",
        choices=DEBUG_CATEGORIES,
        help=f"debug logging for a category, repeatable: {', '.join(DEBUG_CATEGORIES)}",
    )
    parser.add_argument(
        "-X",
        dest="foreground",
        action="store_true",
        default=None,
        help="foreground (the default; sipum never forks): overrides SIPUM_FOREGROUND=false",
    )
    parser.add_argument(
        "-v", action="version", version=f"{prog} {version}", help="print the version and exit"
    )
    if add_arguments is not None:
        add_arguments(parser)
    return parser


def read_database_url_file(path: Path, *, flag: str = "-f") -> str:
    """The URL held by a ``cinema_db.conf``-style file: its first line that is not blank or ``#``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(flag, f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(flag, f"cannot read {path}: not UTF-8 text") from None
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line
    raise ConfigError(flag, f"{path} holds no database URL")


def find_cinema_db_conf(paths: Sequence[Path] | None = None) -> Path | None:
    """The first ``cinema_db.conf`` that exists, in the old lookup order."""
    for path in CINEMA_DB_CONF_PATHS if paths is None else paths:
        if path.is_file():
            return path
    return None


def database_url_override(args: argparse.Namespace) -> tuple[str | None, str]:
    """(URL or None to use the environment, where it came from) from -D, -f or cinema_db.conf."""
    if args.database_url is not None:
        return args.database_url, "-D"
    if args.database_url_file is not None:
        path = Path(args.database_url_file)
        return read_database_url_file(path), str(path)
    found = find_cinema_db_conf()
    if found is not None:
        return read_database_url_file(found, flag="database_url"), str(found)
    return None, "environment"


def config_error_from_validation(error: ValidationError) -> ConfigError:
    """One ConfigError naming each bad setting; input values are never included."""
    problems: list[tuple[str, str]] = []
    for item in error.errors(include_input=False, include_url=False):
        setting = ".".join(str(part) for part in item["loc"]) or "settings"
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append((setting, message))
    if not problems:
        return ConfigError("settings", "invalid")
    setting, problem = problems[0]
    extra = "; ".join(f"{s}: {p}" for s, p in problems[1:])
    return ConfigError(setting, f"{problem}; {extra}" if extra else problem)


def load_settings(
    settings_cls: type[S],
    argv: Sequence[str] | None = None,
    *,
    prog: str,
    description: str,
    version: str = __version__,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    apply_arguments: Callable[[argparse.Namespace, dict[str, Any]], None] | None = None,
) -> S:
    """Parse the old sipum flags (plus a service's own) and build ``settings_cls``.

    ``apply_arguments(namespace, overrides)`` lets a service turn its own flags into setting
    overrides (e.g. ``-e`` → ``overrides["send_email"] = False``).  Raises ``ConfigError`` on bad
    configuration; ``-h``/``-v`` exit 0 as usual.  Applies the ``-d`` debug logger levels.
    """
    parser = build_parser(
        prog=prog, description=description, version=version, add_arguments=add_arguments
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    overrides: dict[str, Any] = {}
    url, source = database_url_override(args)
    if url is not None:
        try:
            overrides["database_url"] = normalize_database_url(url)
        except ValueError as exc:
            where = "" if source == "-D" else f" (in {source})"
            raise ConfigError("database_url", f"{exc}{where}") from None
    if args.debug:
        overrides["debug"] = args.debug
    if args.foreground:
        overrides["foreground"] = True
    if apply_arguments is not None:
        apply_arguments(args, overrides)
    try:
        settings = settings_cls(**overrides)
    except ValidationError as exc:
        raise config_error_from_validation(exc) from None
    apply_debug_categories(settings.debug)
    return settings


def config_error_line(prog: str, error: ConfigError | ValidationError) -> str:
    if isinstance(error, ValidationError):
        error = config_error_from_validation(error)
    text = " ".join(str(error).split())  # one line, whatever the problem text held
    return f"{prog}: error: {text}"


@contextlib.contextmanager
def exit_on_config_error(prog: str) -> Iterator[None]:
    """Turn ``ConfigError``/``ValidationError`` into one stderr line and exit status 2."""
    try:
        yield
    except (ConfigError, ValidationError) as exc:
        print(config_error_line(prog, exc), file=sys.stderr, flush=True)
        raise SystemExit(CONFIG_ERROR_EXIT_STATUS) from None


def run_cli(
    main: Callable[[], Awaitable[int | None]],
    *,
    prog: str,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> NoReturn:
    """Run a service's async main and exit with its status.

    ``main`` is called inside the error guard, so settings may be loaded in it:
    ``run_cli(lambda: serve(load_settings(...)), prog="sipum-notifier")``.
    Config errors exit 2 with one line; Ctrl-C exits 130 quietly.
    """
    with exit_on_config_error(prog):
        try:
            awaitable = main()  # its synchronous part (loading settings) runs before the loop
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                status = runner.run(_awaited(awaitable))
        except KeyboardInterrupt:
            raise SystemExit(130) from None
    raise SystemExit(status or 0)


async def _awaited(awaitable: Awaitable[int | None]) -> int | None:
    return await awaitable
