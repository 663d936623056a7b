"""Configuration for every sipum service: pydantic-settings + the old sipum flags.

See ``docs/configuration.md`` for every setting, its environment variable and default.
"""

from sipum.config.cli import (
    CINEMA_DB_CONF_PATHS,
    CONFIG_ERROR_EXIT_STATUS,
    build_parser,
    config_error_from_validation,
    config_error_line,
    exit_on_config_error,
    load_settings,
    run_cli,
)
from sipum.config.database_url import (
    convert_sql_url,
    host_and_port,
    normalize_database_url,
    redact_url,
)
from sipum.config.debug import (
    DEBUG_CATEGORIES,
    DEBUG_LOGGERS,
    apply_debug_categories,
    debug_logger_names,
)
from sipum.config.settings import DEFAULT_DATABASE_URL, ServiceSettings

__all__ = [
    "CINEMA_DB_CONF_PATHS",
    "CONFIG_ERROR_EXIT_STATUS",
    "DEBUG_CATEGORIES",
    "DEBUG_LOGGERS",
    "DEFAULT_DATABASE_URL",
    "ServiceSettings",
    "apply_debug_categories",
    "build_parser",
    "config_error_from_validation",
    "config_error_line",
    "convert_sql_url",
    "debug_logger_names",
    "exit_on_config_error",
    "host_and_port",
    "load_settings",
    "normalize_database_url",
    "redact_url",
    "run_cli",
]
