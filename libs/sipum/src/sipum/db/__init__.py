"""PostgreSQL access: the asyncpg pool, migrations and one module per aggregate.

- ``create_pool`` / ``open_database`` — pool with one-line ``ConfigError`` on failure;
- ``sipum.db.migrate`` — ``apply_migrations`` under an advisory lock, ``sipum-migrate``;
- ``sipum.db.domains``, ``users``, ``messages``, ``greetings`` — parameterised queries returning
  typed records.

Queries log under ``sipum.sql`` (``-d sql``).  The schema is described in ``docs/database.md``.
"""

from __future__ import annotations

import asyncpg

from sipum.db.pool import (
    DEFAULT_CONNECT_TIMEOUT,
    Executor,
    connect,
    connection_error,
    create_pool,
)

Pool = asyncpg.Pool


async def open_database(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    application_name: str = "sipum",
) -> asyncpg.Pool:
    """``create_pool`` then ``apply_migrations``: what a service does at start-up."""
    from sipum.db.migrate import apply_migrations

    pool = await create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        connect_timeout=connect_timeout,
        application_name=application_name,
    )
    try:
        await apply_migrations(pool)
    except BaseException:
        await pool.close()
        raise
    return pool


__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "Executor",
    "Pool",
    "connect",
    "connection_error",
    "create_pool",
    "open_database",
]
