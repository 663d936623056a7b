"""Migrations: applied once, idempotent, safe when several processes start together."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import asyncpg
from sipum.db.migrate import applied_versions, apply_migrations, load_migrations


async def test_first_run_applies_every_migration_then_nothing(pg_empty_dsn: str) -> None:
    conn = await asyncpg.connect(pg_empty_dsn)
    try:
        first = await apply_migrations(conn)
        second = await apply_migrations(conn)
        versions = await applied_versions(conn)
        tables = {
            row["tablename"]
            for row in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        }
    finally:
        await conn.close()
    expected = [m.label for m in load_migrations()]
    assert first == expected and first[0] == "0001_initial"
    assert second == []
    assert versions == [m.version for m in load_migrations()]
    assert {"domains", "users", "messages", "greetings", "schema_migrations"} <= tables


async def test_concurrent_migrators_on_separate_connections_apply_once(pg_empty_dsn: str) -> None:
    conns = [await asyncpg.connect(pg_empty_dsn) for _ in range(4)]
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(apply_migrations(c) for c in conns)), timeout=30
        )
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
    finally:
        for c in conns:
            await c.close()
    labels = [m.label for m in load_migrations()]
    # Exactly one migrator applied everything; the others found it done.
    assert sorted(results, key=len) == [[], [], [], labels]
    assert count == len(labels)


def test_concurrent_migrate_processes_apply_once(pg_empty_dsn: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "sipum.db.migrate", "-D", pg_empty_dsn],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    applied_lines = [
        line for out, _ in outputs for line in out.splitlines() if line.startswith("applied ")
    ]
    assert applied_lines == ["applied 0001_initial"] or applied_lines == [
        f"applied {m.label}" for m in load_migrations()
    ]
    up_to_date = [out for out, _ in outputs if "is up to date" in out]
    assert len(up_to_date) == 2


async def test_failed_migration_leaves_nothing_and_is_retried(pg_empty_dsn: str) -> None:
    from sipum.db.migrate import Migration

    good = Migration("0001", "make_t", "CREATE TABLE t (x int);")
    bad = Migration("0002", "broken", "CREATE TABLE u (y int); SELECT no_such_function();")
    conn = await asyncpg.connect(pg_empty_dsn)
    try:
        try:
            await apply_migrations(conn, [good, bad])
        except asyncpg.UndefinedFunctionError:
            pass
        else:
            raise AssertionError("broken migration did not fail")
        assert await applied_versions(conn) == ["0001"]
        assert await conn.fetchval("SELECT to_regclass('u') IS NULL")
        fixed = Migration("0002", "broken", "CREATE TABLE u (y int);")
        assert await apply_migrations(conn, [good, fixed]) == ["0002_broken"]
        # The lock was released on the error path: another session can take it at once.
        other = await asyncpg.connect(pg_empty_dsn)
        try:
            assert await other.fetchval("SELECT pg_try_advisory_lock($1)", 0x736970756D6D6967)
        finally:
            await other.close()
    finally:
        await conn.close()
