"""pytest fixtures on a real PostgreSQL (127.0.0.1:5432, user postgres, trust auth).

- ``pg_admin_dsn`` — URL of the server's ``postgres`` database (env ``SIPUM_TEST_POSTGRES_URL``
  overrides it);
- ``pg_empty_dsn`` — a new, empty, uniquely named database (for migration tests);
- ``pg_dsn`` — a new uniquely named database with every migration applied, cloned from a
  per-session template so each test gets a fresh schema in a few milliseconds;
- ``pg_pool`` — an asyncpg pool on ``pg_dsn``.

Every database is dropped ``WITH (FORCE)`` when its fixture ends; databases left behind by a
test process that was killed are dropped at the start of the next session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE_PREFIX = "sipum_test_"
_OUR_NAME = re.compile(rf"^{DATABASE_PREFIX}(\d+)_[0-9a-f]{{8}}$")

T = TypeVar("T")


def _run_isolated(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on its own loop in a worker thread (leaves pytest-asyncio's loop alone)."""

    async def runner() -> T:
        return await factory()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, runner()).result(timeout=60)


def unique_database_name() -> str:
    return f"{DATABASE_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"


def dsn_for(admin_dsn: str, database: str) -> str:
    """``admin_dsn`` pointing at another database on the same server."""
    return urlunsplit(urlsplit(admin_dsn)._replace(path=f"/{database}"))


async def create_database(admin_dsn: str, name: str, *, template: str | None = None) -> None:
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        # Identifiers cannot be bind parameters; names come from unique_database_name().
        clause = f' TEMPLATE "{template}"' if template else ""
        for attempt in range(20):
            try:
                await conn.execute(f'CREATE DATABASE "{name}"{clause}')
                return
            except asyncpg.ObjectInUseError:
                # "source database is being accessed by other users": an autovacuum worker
                # may visit the template for a moment.  Bounded retry.
                if attempt == 19:
                    raise
                await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def drop_orphaned_databases(admin_dsn: str) -> list[str]:
    """Drop test databases whose creating process no longer exists (it was killed)."""
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        names = [
            row["datname"]
            for row in await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1", DATABASE_PREFIX + "%"
            )
        ]
        dropped = []
        for name in names:
            match = _OUR_NAME.match(name)
            if match is None or _process_exists(int(match[1])):
                continue
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            dropped.append(name)
        return dropped
    finally:
        await conn.close()


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def temporary_database(admin_dsn: str, *, template: str | None = None) -> Iterator[str]:
    """A new database (optionally cloned from ``template``) for the ``with`` block; yields its name."""
    name = unique_database_name()
    _run_isolated(lambda: create_database(admin_dsn, name, template=template))
    try:
        yield name
    finally:
        _run_isolated(lambda: drop_database(admin_dsn, name))


@pytest.fixture(scope="session")
def pg_admin_dsn() -> str:
    dsn = os.environ.get("SIPUM_TEST_POSTGRES_URL", DEFAULT_ADMIN_DSN)
    _run_isolated(lambda: drop_orphaned_databases(dsn))
    return dsn


@pytest.fixture(scope="session")
def pg_template(pg_admin_dsn: str) -> Iterator[str]:
    """Name of a session-wide database holding the migrated schema, used as a template."""
    from sipum.db.migrate import apply_migrations

    with temporary_database(pg_admin_dsn) as name:

        async def migrate() -> None:
            conn = await asyncpg.connect(dsn_for(pg_admin_dsn, name), timeout=10)
            try:
                await apply_migrations(conn)
            finally:
                await conn.close()

        _run_isolated(migrate)
        yield name


@pytest.fixture
def pg_empty_dsn(pg_admin_dsn: str) -> Iterator[str]:
    """URL of a new empty database, dropped after the test."""
    with temporary_database(pg_admin_dsn) as name:
        yield dsn_for(pg_admin_dsn, name)


@pytest.fixture
def pg_dsn(pg_admin_dsn: str, pg_template: str) -> Iterator[str]:
    """URL of a new database with the full schema, dropped after the test."""
    with temporary_database(pg_admin_dsn, template=pg_template) as name:
        yield dsn_for(pg_admin_dsn, name)


@pytest_asyncio.fixture
async def pg_pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """asyncpg pool on ``pg_dsn`` (schema already migrated)."""
    from sipum.db import create_pool

    pool = await create_pool(pg_dsn, min_size=1, max_size=5)
    try:
        yield pool
    finally:
        await asyncio.wait_for(pool.close(), timeout=10)
