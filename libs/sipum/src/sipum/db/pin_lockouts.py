"""Phone PIN failures per mailbox (table ``pin_lockouts``), shared by every recorder replica.

The rules are :mod:`sipum.security.pin_lockout`; this module reads a mailbox's row, applies
them and writes the result in one transaction under ``SELECT … FOR UPDATE``, so two replicas
counting a wrong PIN for the same mailbox at the same moment both count (and only one of them
sees the lock begin). ``now`` is the caller's (the recorder's clock); the rows hold absolute
times, so replicas with slightly different clocks disagree by at most that difference.
"""

from __future__ import annotations

from datetime import datetime

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
        await conn.execute(
            """UPDATE pin_lockouts
               SET failures = $2, window_started_at = $3, locked_until = $4, lockouts = $5,
                   last_failure_at = $6, updated_at = now()
               WHERE user_id = $1""",
            user_id,
            s.failures,
            s.window_started_at,
            s.locked_until,
            s.lockouts,
            s.last_failure_at,
        )
    return outcome


async def clear(db: Executor, user_id: int) -> bool:
    """Forget the mailbox's failures and lift its lock; True if there was anything to forget."""
    status = await db.execute("DELETE FROM pin_lockouts WHERE user_id = $1", user_id)
    return bool(status == "DELETE 1")
