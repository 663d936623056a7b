"""``create_pool``: connection failures become one-line ConfigErrors without the password."""

from __future__ import annotations

import asyncio
import socket

import pytest
from sipum.db import create_pool, open_database
from sipum.errors import ConfigError


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_refused() -> None:
    port = closed_port()
    with pytest.raises(ConfigError) as info:
        await create_pool(f"postgresql://postgres:sekrit@127.0.0.1:{port}/x")
    assert (
        str(info.value) == f"database_url: cannot connect to 127.0.0.1:{port}: Connection refused"
    )


async def test_connect_timeout_is_bounded() -> None:
    # A listener that accepts TCP but never speaks: the PostgreSQL start-up never completes.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(ConfigError, match="timed out"):
            await create_pool(f"postgresql://u:sekrit@127.0.0.1:{port}/x", connect_timeout=0.5)
    finally:
        server.close()
    assert loop.time() - started < 5


async def test_unknown_database_and_role(pg_admin_dsn: str) -> None:
    base = pg_admin_dsn.rsplit("/", 1)[0]
    with pytest.raises(ConfigError, match='database "sipum_missing_db" does not exist'):
        await create_pool(base + "/sipum_missing_db")
    with pytest.raises(ConfigError, match="login failed") as info:
        await create_pool("postgresql://nosuchrole:sekrit@127.0.0.1:5432/postgres")
    assert "sekrit" not in str(info.value)


async def test_old_url_form_and_open_database(pg_empty_dsn: str) -> None:
    # sql://user@host:port/db reaches the same database as the postgresql:// form.
    rest = pg_empty_dsn.removeprefix("postgresql://")
    pool = await open_database("sql://" + rest)
    try:
        assert await pool.fetchval("SELECT count(*) FROM schema_migrations") >= 1
        assert await pool.fetchval("SELECT current_setting('application_name')") == "sipum"
    finally:
        await pool.close()
