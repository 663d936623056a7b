"""pytest fixtures on a real PostgreSQL (127.0.0.1:5432, user postgres, trust auth).

- ``pg_admin_dsn`` — URL of the server's ``postgres`` database (env ``SIPUM_TEST_POSTGRES_URL``
  overrides it);
- ``pg_empty_dsn`` — a new, empty, uniquely named database (for migration tests);
- ``pg_dsn`` — a new uniquely named database with every migration applied, cloned from a
  per-session template so each test gets a fresh schema in a few milliseconds;
- ``pg_pool`` — an asyncpg pool on ``pg_dsn``;
- ``PrivatePostgresServer`` — a test's own cluster (``initdb``, a free port), to restart it
  (fault tests; the shared server must never be restarted).

Every database is dropped ``WITH (FORCE)`` when its fixture ends; databases left behind by a
test process that was killed are dropped at the start of the next session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
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


class PrivatePostgresServer:
    """A PostgreSQL cluster of one test (``initdb`` in ``data_dir``, a free loopback port, trust
    auth for ``postgres``), for faults the shared server must not suffer: ``stop()`` then
    ``start()`` again on the same port is a server restart. The ``postgres`` process is ours
    (stopped by PID: SIGINT, PostgreSQL's fast shutdown). Run as root, the cluster belongs to
    the ``postgres`` system user (PostgreSQL refuses to run as root)."""

    def __init__(self) -> None:
        # Its own directory under the system's temp dir, not pytest's tmp_path: that one is
        # private to root, and the ``postgres`` user must reach its data directory.
        self._parent = tempfile.mkdtemp(prefix="sipum-pg-")
        os.chmod(self._parent, 0o755)
        self.data_dir = os.path.join(self._parent, "data")
        self.port = _free_tcp_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._user = "postgres" if os.geteuid() == 0 else None

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _binary(self, name: str) -> str:
        binary = shutil.which(name)
        if binary is None:
            raise RuntimeError(f"{name} (PostgreSQL server) is not installed")
        return binary

    def init(self) -> PrivatePostgresServer:
        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        result = subprocess.run(
            [self._binary("initdb"), "-D", self.data_dir, "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-sync", "--no-instructions"],
            capture_output=True, user=self._user, timeout=120,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stderr.decode(errors='replace')[-800:]}")
        return self

    def start(self, limit: float = 30.0) -> PrivatePostgresServer:
        self.proc = subprocess.Popen(
            [self._binary("postgres"), "-D", self.data_dir, "-p", str(self.port),
             "-k", self.data_dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
             "-c", "max_connections=200"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user=self._user,
        )  # fmt: skip
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                _run_isolated(lambda: _ping(self.admin_dsn))
                return self
            except (OSError, asyncpg.PostgresError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the private PostgreSQL did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown: sessions cut, no data lost
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def remove(self) -> None:
        """Stop it and delete the cluster's files."""
        self.stop()
        shutil.rmtree(self._parent, ignore_errors=True)


async def _ping(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=2)
    await conn.close()


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
