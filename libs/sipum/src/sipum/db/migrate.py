"""Schema migrations: numbered SQL files applied once each, under a PostgreSQL advisory lock.

Every service calls ``apply_migrations`` at start-up, and ``sipum-migrate`` does it by hand.
Several replicas may start together: each takes the same session-level advisory lock
(``pg_advisory_lock``) before reading ``schema_migrations``, so the first one applies the
pending files and the others, once they get the lock, find nothing left to do.  Each file runs
in its own transaction together with its ``schema_migrations`` row, so a failed file leaves no
half-applied schema and is retried on the next start.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import sys
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TypeAlias

import asyncpg

from sipum.config import ServiceSettings, load_settings, redact_url, run_cli
from sipum.db.pool import connect

log = logging.getLogger("sipum.sql.migrate")

#: Key of the advisory lock migrators take (any fixed 64-bit number; this one spells "sipummig").
MIGRATION_LOCK_KEY = 0x73697075_6D6D6967
#: Longest wait for another migrator to finish, and longest run of one migration file.  Explicit,
#: so a pool's short ``command_timeout`` does not cut a long migration short.
LOCK_TIMEOUT = 300.0
STATEMENT_TIMEOUT = 600.0
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

Connectable: TypeAlias = asyncpg.Pool | asyncpg.Connection


@dataclass(frozen=True, slots=True)
class Migration:
    """One ``NNNN_name.sql`` file of ``sipum/db/migrations``."""

    version: str
    """Four digits, e.g. ``"0001"``; the order migrations apply in."""
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"


def load_migrations() -> list[Migration]:
    """Every migration shipped in the package, in version order."""
    migrations: list[Migration] = []
    for entry in resources.files("sipum.db").joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        migrations.append(Migration(match[1], match[2], entry.read_text(encoding="utf-8")))
    migrations.sort(key=lambda m: m.version)
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version number: {versions}")
    return migrations


_CREATE_TRACKING_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def apply_migrations(
    target: Connectable, migrations: Sequence[Migration] | None = None
) -> list[str]:
    """Apply the pending migrations once; returns the labels applied (``[]`` when up to date)."""
    if isinstance(target, asyncpg.Pool):
        async with target.acquire() as conn:
            return await _apply(conn, migrations)
    return await _apply(target, migrations)


async def _apply(conn: asyncpg.Connection, migrations: Sequence[Migration] | None) -> list[str]:
    todo = load_migrations() if migrations is None else list(migrations)
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY, timeout=LOCK_TIMEOUT)
    try:
        await conn.execute(_CREATE_TRACKING_TABLE, timeout=STATEMENT_TIMEOUT)
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        done = {row["version"]: row["checksum"] for row in rows}
        applied: list[str] = []
        for migration in todo:
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    log.warning(
                        "migration %s changed after it was applied; not re-applying it",
                        migration.label,
                    )
                continue
            log.info("applying migration %s", migration.label)
            async with conn.transaction():
                await conn.execute(migration.sql, timeout=STATEMENT_TIMEOUT)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied.append(migration.label)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def applied_versions(target: Connectable) -> list[str]:
    """Versions recorded in ``schema_migrations`` (empty if it does not exist yet)."""
    exists = await target.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return []
    rows = await target.fetch("SELECT version FROM schema_migrations ORDER BY version")
    return [row["version"] for row in rows]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--status",
        action="store_true",
        help="list the migrations and whether each is applied; change nothing",
    )


async def _run(settings: ServiceSettings, status_only: bool) -> int:
    conn = await connect(settings.database_url)
    try:
        if status_only:
            done = set(await applied_versions(conn))
            for migration in load_migrations():
                state = "applied" if migration.version in done else "pending"
                print(f"{migration.label}: {state}")
            return 0
        applied = await apply_migrations(conn)
    finally:
        await conn.close()
    where = redact_url(settings.database_url)
    if applied:
        for label in applied:
            print(f"applied {label}")
    else:
        print(f"schema of {where} is up to date")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """``sipum-migrate [-D URL | -f FILE] [-d sql] [--status]``."""
    status_only = False

    def remember(args: argparse.Namespace, overrides: dict[str, object]) -> None:
        nonlocal status_only
        status_only = bool(args.status)

    def start() -> Awaitable[int]:
        settings = load_settings(
            ServiceSettings,
            argv,
            prog="sipum-migrate",
            description="Apply the sipum database schema migrations (safe to run concurrently).",
            add_arguments=_add_arguments,
            apply_arguments=remember,
        )
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
        return _run(settings, status_only)

    run_cli(start, prog="sipum-migrate")


if __name__ == "__main__":
    main()
