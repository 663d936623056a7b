"""Fault: the PostgreSQL server restarts (fast shutdown, down 3 s, started again on the same
port) while calls through Kamailio are in progress and end.

The system runs on a PostgreSQL cluster of its own (``initdb`` in the test's tmp dir, a free
port — the shared server must never be restarted). Every pooled connection of every service is
cut; Kamailio's too. The recorders finish their recordings from memory and the spool and store
the messages when the database answers again; nothing lost, nothing doubled, nothing flagged
interrupted, every message mailed once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import asyncpg
import pytest
from sipum.db.migrate import apply_migrations
from sipum_testing.postgres import PrivatePostgresServer, dsn_for, temporary_database

from ..e2e.firstcall.system import FirstCallSystem
from .calls import CallsInProgress, sign_up_alice, wait_for_count

pytestmark = pytest.mark.timeout(180)

SPEECH = 3.0
DOWN = 3.0


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgresServer]:
    server = PrivatePostgresServer()
    try:
        yield server.init().start()
    finally:
        server.remove()


@pytest.fixture
def pg_admin_dsn(private_postgres: PrivatePostgresServer) -> str:
    return private_postgres.admin_dsn


@pytest.fixture
def pg_template(pg_admin_dsn: str) -> Iterator[str]:
    """The migrated schema on the private server (the session's template is on the shared one)."""
    with temporary_database(pg_admin_dsn) as name:

        async def migrate() -> None:
            conn = await asyncpg.connect(dsn_for(pg_admin_dsn, name), timeout=10)
            try:
                await apply_migrations(conn)
            finally:
                await conn.close()

        asyncio.run(migrate())
        yield name


async def test_postgres_restart_with_calls_in_progress(
    system: FirstCallSystem, private_postgres: PrivatePostgresServer
) -> None:
    await sign_up_alice(system)
    async with CallsInProgress(system, speech_seconds=SPEECH) as calls:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(private_postgres.stop)
        down_at = time.monotonic()
        await asyncio.sleep(DOWN)
        await asyncio.to_thread(private_postgres.start)
        up_at = time.monotonic()
        await calls.ended()
        await wait_for_count(calls.watch, "message.created", calls.calls, limit=40)
        stored_after = time.monotonic() - up_at
        outcome = await calls.count(settle=2.0)  # a doubled mail would arrive then
    durations = outcome.durations
    outcome.report(
        f"PostgreSQL restart (down {up_at - down_at:.1f} s) mid-call",
        **{
            "ended by": ",".join(sorted({p.ended_by for p in outcome.placed})),
            "all stored after PostgreSQL is back": f"{stored_after:.1f} s",
            "durations": f"{durations[0]:.2f}-{durations[-1]:.2f} s",
        },
    )
    outcome.assert_none_lost_or_doubled()
    assert all(abs(d - SPEECH) < 0.3 for d in durations), durations  # whole messages
