"""The asyncpg connection pool, with connection failures turned into one-line ``ConfigError``s."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any, TypeAlias

import asyncpg

from sipum.config.database_url import host_and_port, normalize_database_url
from sipum.errors import ConfigError

log = logging.getLogger("sipum.sql.pool")

DEFAULT_CONNECT_TIMEOUT = 5.0


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    command_timeout: float | None = 30.0,
    application_name: str = "sipum",
    **kwargs: Any,
) -> asyncpg.Pool:
    """Open a pool on ``dsn`` (``postgresql://``, ``postgres://`` or old ``sql://`` form).

    Opening waits at most ``connect_timeout`` seconds per connection.  Any failure to reach or
    log in to the database raises ``ConfigError("database_url", …)`` naming host and port but
    never the password, e.g. ``database_url: cannot connect to 127.0.0.1:5999: Connection refused``.
    """
    try:
        url = normalize_database_url(dsn)
    except ValueError as exc:
        raise ConfigError("database_url", str(exc)) from None
    where = host_and_port(url)
    server_settings = {"application_name": application_name, **kwargs.pop("server_settings", {})}
    try:
        pool = await asyncio.wait_for(
            asyncpg.create_pool(
                url,
                min_size=min_size,
                max_size=max_size,
                timeout=connect_timeout,
                command_timeout=command_timeout,
                server_settings=server_settings,
                **kwargs,
            ),
            # The pool opens min_size connections; bound the whole thing, not only each one.
            timeout=connect_timeout * max(1, min_size) + 1.0,
        )
    except BaseException as exc:
        error = connection_error(exc, where)
        if error is None:
            raise
        raise error from None
    log.debug("pool open on %s (min %d, max %d)", where, min_size, max_size)
    return pool


async def connect(
    dsn: str, *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
) -> asyncpg.Connection:
    """One connection (for commands and tests), with the same error reporting as ``create_pool``."""
    try:
        url = normalize_database_url(dsn)
    except ValueError as exc:
        raise ConfigError("database_url", str(exc)) from None
    where = host_and_port(url)
    try:
        return await asyncpg.connect(url, timeout=connect_timeout)
    except BaseException as exc:
        error = connection_error(exc, where)
        if error is None:
            raise
        raise error from None


def connection_error(exc: BaseException, where: str) -> ConfigError | None:
    """The ``ConfigError`` a failure to open a connection means, or None if it is not one."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return ConfigError("database_url", f"cannot connect to {where}: timed out")
    if isinstance(exc, socket.gaierror):
        host = where.rpartition(":")[0]
        return ConfigError("database_url", f"cannot resolve host {host}: {exc.strerror}")
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return ConfigError("database_url", f"{where}: {exc}")
    if isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return ConfigError("database_url", f"{where}: login failed: {exc}")
    if isinstance(exc, asyncpg.PostgresError):
        return ConfigError("database_url", f"{where}: {exc}")
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.ClientConfigurationError):
        return ConfigError("database_url", f"{where}: {exc}")
    if isinstance(exc, OSError):
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return ConfigError("database_url", f"cannot connect to {where}: {reason}")
    return None


#: What the repository functions run queries on: the pool, or one connection (e.g. inside a
#: transaction the caller holds).  Both have execute/fetch/fetchrow/fetchval.
Executor: TypeAlias = asyncpg.Pool | asyncpg.Connection
