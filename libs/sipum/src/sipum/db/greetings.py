"""Greetings: per user at most one of each kind; the audio is a blob under ``blob_key``."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from sipum.db.pool import Executor

log = logging.getLogger("sipum.sql.greetings")


class GreetingKind(enum.StrEnum):
    UNAVAILABLE = "unavailable"
    """Played when the user does not answer."""
    BUSY = "busy"
    """Played when the call was diverted because the user was busy."""
    NAME = "name"
    """The user's recorded name, spoken in system prompts."""
    TEMPORARY = "temporary"
    """Overrides the others until ``expires_at`` (e.g. "I am on holiday until …")."""


@dataclass(frozen=True, slots=True)
class Greeting:
    id: int
    user_id: int
    kind: GreetingKind
    blob_key: str
    codec: str
    duration_ms: int
    size_bytes: int
    expires_at: datetime | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Greeting:
        values = dict(row)
        values["kind"] = GreetingKind(values["kind"])
        return cls(**values)


_COLUMNS = "id, user_id, kind, blob_key, codec, duration_ms, size_bytes, expires_at, updated_at"


async def put(
    db: Executor,
    user_id: int,
    kind: GreetingKind | str,
    blob_key: str,
    *,
    codec: str = "pcm_s16le",
    duration_ms: int = 0,
    size_bytes: int = 0,
    expires_at: datetime | None = None,
) -> tuple[Greeting, str | None]:
    """Set the user's greeting of ``kind``; returns (greeting, blob key it replaced or None).

    The caller deletes the replaced blob (when it differs from the new one).
    """
    row = await db.fetchrow(
        f"""WITH previous AS (SELECT blob_key FROM greetings WHERE user_id = $1 AND kind = $2)
            INSERT INTO greetings (user_id, kind, blob_key, codec, duration_ms, size_bytes,
                                   expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (user_id, kind) DO UPDATE
               SET blob_key = EXCLUDED.blob_key, codec = EXCLUDED.codec,
                   duration_ms = EXCLUDED.duration_ms, size_bytes = EXCLUDED.size_bytes,
                   expires_at = EXCLUDED.expires_at, updated_at = now()
            RETURNING {_COLUMNS}, (SELECT blob_key FROM previous) AS replaced""",
        user_id,
        GreetingKind(kind).value,
        blob_key,
        codec,
        duration_ms,
        size_bytes,
        expires_at,
    )
    values = dict(row)
    replaced = values.pop("replaced")
    return Greeting.from_row(values), replaced


async def get(db: Executor, user_id: int, kind: GreetingKind | str) -> Greeting | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM greetings WHERE user_id = $1 AND kind = $2",
        user_id,
        GreetingKind(kind).value,
    )
    return None if row is None else Greeting.from_row(row)


async def list_for_user(db: Executor, user_id: int) -> list[Greeting]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM greetings WHERE user_id = $1 ORDER BY kind", user_id
    )
    return [Greeting.from_row(row) for row in rows]


async def delete(db: Executor, user_id: int, kind: GreetingKind | str) -> Greeting | None:
    """Remove a greeting; returns it (its blob is the caller's to remove)."""
    row = await db.fetchrow(
        f"DELETE FROM greetings WHERE user_id = $1 AND kind = $2 RETURNING {_COLUMNS}",
        user_id,
        GreetingKind(kind).value,
    )
    return None if row is None else Greeting.from_row(row)


async def for_call(
    db: Executor, user_id: int, *, busy: bool = False, now: datetime | None = None
) -> Greeting | None:
    """The greeting to play to a caller: an unexpired temporary one first, then the busy one
    when the call came because the user was busy, then the unavailable one.  None: use the
    system's default prompt."""
    order = ["temporary", "busy", "unavailable"] if busy else ["temporary", "unavailable"]
    row = await db.fetchrow(
        f"""SELECT {_COLUMNS} FROM greetings
            WHERE user_id = $1 AND kind = ANY($2::text[])
              AND (kind <> 'temporary' OR expires_at IS NULL
                   OR expires_at > coalesce($3, now()))
            ORDER BY array_position($2::text[], kind)
            LIMIT 1""",
        user_id,
        order,
        now,
    )
    return None if row is None else Greeting.from_row(row)
