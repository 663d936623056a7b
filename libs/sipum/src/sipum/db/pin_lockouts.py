"""Phone PIN failures per mailbox (table ``pin_lockouts``), shared by every recorder replica.

The rules are :mod:`sipum.security.pin_lockout`; this module reads a mailbox's row, applies
them and writes the result in one transaction under ``SELECT … FOR UPDATE``, so two replicas
counting a wrong PIN for the same mailbox at the same moment both count (and only one of them
sees the lock begin). ``now`` is the caller's (the recorder's clock); the rows hold absolute
times, so replicas with slightly different clocks disagree by at most that difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from sipum.db.pool import Executor
from sipum.security.pin_lockout import FailureOutcome, LockoutPolicy, LockoutState, record_failure

_COLUMNS = "failures, window_started_at, locked_until, lockouts, last_failure_at"


def _state(row: asyncpg.Record | None) -> LockoutState:
    if row is None:
        return LockoutState()
    return LockoutState(
        failures=row["failures"],
        window_started_at=row["window_started_at"],
        locked_until=row["locked_until"],
        lockouts=row["lockouts"],
        last_failure_at=row["last_failure_at"],
    )


async def get(db: Executor, user_id: int) -> LockoutState:
    """The mailbox's state (the empty state if it has no failures)."""
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM pin_lockouts WHERE user_id = $1", user_id)
    return _state(row)


async def add_failure(
    pool: asyncpg.Pool, user_id: int, now: datetime, policy: LockoutPolicy
) -> FailureOutcome:
    """Count one wrong PIN for the mailbox at *now*; the outcome says whether it locked it."""
    async with pool.acquire() as conn, conn.transaction():
        # make sure a row exists to lock (a first failure races nobody for the insert)
        await conn.execute(
            "INSERT INTO pin_lockouts (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING",
            user_id,
        )
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM pin_lockouts WHERE user_id = $1 FOR UPDATE", user_id
        )
        outcome = record_failure(_state(row), now, policy)
        s = outcome.state
        # a new lock is neither published nor told yet (0020): the sweep retries until it is
        await conn.execute(
            """UPDATE pin_lockouts
               SET failures = $2, window_started_at = $3, locked_until = $4, lockouts = $5,
                   last_failure_at = $6, updated_at = now(),
                   published_at = CASE WHEN $7 THEN NULL ELSE published_at END,
                   notified_at = CASE WHEN $7 THEN NULL ELSE notified_at END
               WHERE user_id = $1""",
            user_id,
            s.failures,
            s.window_started_at,
            s.locked_until,
            s.lockouts,
            s.last_failure_at,
            outcome.newly_locked,
        )
    return outcome


async def mark_published(db: Executor, user_id: int, locked_until: datetime, now: datetime) -> None:
    """``mailbox.locked`` for the lock ending at *locked_until* is in the stream."""
    await db.execute(
        "UPDATE pin_lockouts SET published_at = $3 WHERE user_id = $1 AND locked_until = $2",
        user_id,
        locked_until,
        now,
    )


async def mark_notified(db: Executor, user_id: int, locked_until: datetime, now: datetime) -> None:
    """The owner was told about the lock ending at *locked_until* (the notifier's e-mail)."""
    await db.execute(
        "UPDATE pin_lockouts SET notified_at = $3 WHERE user_id = $1 AND locked_until = $2",
        user_id,
        locked_until,
        now,
    )


async def notified(db: Executor, user_id: int, locked_until: datetime) -> bool:
    """Whether the owner was told about the lock ending at *locked_until* already."""
    value = await db.fetchval(
        "SELECT notified_at FROM pin_lockouts WHERE user_id = $1 AND locked_until = $2",
        user_id,
        locked_until,
    )
    return value is not None


@dataclass(frozen=True, slots=True)
class Untold:
    """A lock in force whose owner was not told yet (for the re-publishing sweep)."""

    user_id: int
    username: str
    domain: str
    lockouts: int
    locked_until: datetime


async def claim_untold(
    db: Executor, now: datetime, *, retry_after: timedelta, limit: int = 100
) -> list[Untold]:
    """Locks still in force with ``notified_at`` NULL whose last publish (or, never published,
    last failure) is older than *retry_after*; each claimed one gets ``published_at = now``,
    so one replica's sweep takes it per retry interval (``FOR UPDATE SKIP LOCKED``)."""
    rows = await db.fetch(
        """WITH due AS (
               SELECT user_id FROM pin_lockouts
               WHERE locked_until > $1 AND notified_at IS NULL
                 AND coalesce(published_at, last_failure_at) <= $1 - $2::interval
               ORDER BY user_id LIMIT $3
               FOR UPDATE SKIP LOCKED
           )
           UPDATE pin_lockouts p SET published_at = $1
           FROM due, users u, domains d
           WHERE p.user_id = due.user_id AND u.id = p.user_id AND d.id = u.domain_id
           RETURNING p.user_id, u.username, d.name AS domain, p.lockouts,
                     p.locked_until""",
        now,
        retry_after,
        limit,
    )
    return [Untold(**dict(row)) for row in rows]


async def clear(db: Executor, user_id: int) -> bool:
    """Forget the mailbox's failures and lift its lock; True if there was anything to forget."""
    status = await db.execute("DELETE FROM pin_lockouts WHERE user_id = $1", user_id)
    return bool(status == "DELETE 1")
