"""Transcripts of voice messages (table ``transcripts``, migration 0007).

One row per message, written once by the transcriber (:func:`store` is idempotent: a
redelivered job finds the row and writes nothing) and deleted with the message by the foreign
key. The text is indexed for full-text search in the text-search configuration of its
language (``transcript_search_config``); :func:`search` queries it for one mailbox.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from sipum.db.messages import _COLUMNS as _MESSAGE_COLUMNS
from sipum.db.messages import Folder, Message
from sipum.db.pool import Executor

log = logging.getLogger("sipum.sql.transcripts")


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start: float
    """Seconds from the start of the message."""
    end: float
    confidence: float | None = None
    """0..1, None when the engine gives none."""

    def as_json(self) -> dict[str, Any]:
        return {
            "word": self.word,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "confidence": None if self.confidence is None else round(self.confidence, 3),
        }


@dataclass(frozen=True, slots=True)
class Transcript:
    message_id: int
    language: str
    text: str
    confidence: float | None
    words: tuple[Word, ...]
    engine: str
    engine_version: str
    elapsed_ms: int
    created_at: datetime

    def __repr__(self) -> str:
        # A transcript is the caller's speech: keep it out of logs that print a repr.
        return (
            f"Transcript(message_id={self.message_id}, language={self.language!r}, "
            f"chars={len(self.text)}, words={len(self.words)}, engine={self.engine!r})"
        )

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Transcript:
        words = tuple(Word(**w) for w in json.loads(row["words"]))
        return cls(
            message_id=row["message_id"],
            language=row["language"],
            text=row["text"],
            confidence=row["confidence"],
            words=words,
            engine=row["engine"],
            engine_version=row["engine_version"],
            elapsed_ms=row["elapsed_ms"],
            created_at=row["created_at"],
        )


_COLUMNS = (
    "message_id, language, text, confidence, words::text AS words, engine, engine_version, "
    "elapsed_ms, created_at"
)


async def store(
    db: Executor,
    message_id: int,
    *,
    language: str,
    text: str,
    confidence: float | None,
    words: tuple[Word, ...] | list[Word],
    engine: str,
    engine_version: str,
    elapsed_ms: int,
) -> bool:
    """Write the transcript of ``message_id`` unless one exists; True if this call wrote it.

    False also when the message is gone (deleted while it was being transcribed)."""
    try:
        status = await db.execute(
            """INSERT INTO transcripts (message_id, language, text, confidence, words, engine,
                                        engine_version, elapsed_ms)
               VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8)
               ON CONFLICT (message_id) DO NOTHING""",
            message_id,
            language,
            text,
            confidence,
            json.dumps([w.as_json() for w in words]),
            engine,
            engine_version,
            elapsed_ms,
        )
    except asyncpg.ForeignKeyViolationError:
        return False
    created = bool(status == "INSERT 0 1")
    log.debug("transcript of message %d %s", message_id, "stored" if created else "existed")
    return created


async def get(db: Executor, message_id: int) -> Transcript | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM transcripts WHERE message_id = $1", message_id)
    return None if row is None else Transcript.from_row(row)


async def search(
    db: Executor, owner_id: int, query: str, *, language: str = "en-US", limit: int = 50
) -> list[int]:
    """Ids of the owner's messages whose transcript matches ``query`` (web-search syntax:
    words, ``"a phrase"``, ``or``, ``-word``), best match first. ``language`` chooses the
    stemming of the query words; transcripts are stemmed in their own language."""
    rows = await db.fetch(
        """SELECT t.message_id
           FROM transcripts t JOIN messages m ON m.id = t.message_id,
                websearch_to_tsquery(transcript_search_config($3), $2) q
           WHERE m.owner_id = $1 AND t.search @@ q
           ORDER BY ts_rank(t.search, q) DESC, t.message_id DESC
           LIMIT $4""",
        owner_id,
        query,
        language,
        limit,
    )
    return [row["message_id"] for row in rows]


async def get_many(db: Executor, message_ids: Sequence[int]) -> dict[int, Transcript]:
    """The transcripts of those of ``message_ids`` that have one (for a page of a list)."""
    if not message_ids:
        return {}
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM transcripts WHERE message_id = ANY($1::bigint[])",
        list(message_ids),
    )
    return {row["message_id"]: Transcript.from_row(row) for row in rows}


@dataclass(frozen=True, slots=True)
class SearchPage:
    messages: list[Message]
    """Best match first (then newest)."""
    total: int
    """Matches in the whole folder, for paging."""


async def search_messages(
    db: Executor,
    owner_id: int,
    query: str,
    *,
    folder: Folder | str | None = Folder.INBOX,
    language: str = "en-US",
    limit: int = 50,
    offset: int = 0,
) -> SearchPage:
    """A page of the owner's messages (of ``folder``; every folder when None) whose transcript
    matches ``query`` in web-search syntax, like :func:`search`. The match is the indexed
    expression ``transcripts.search @@ tsquery`` (GIN index ``transcripts_search``)."""
    folder_value = None if folder is None else Folder(folder).value
    rows = await db.fetch(
        f"""WITH q AS (SELECT websearch_to_tsquery(transcript_search_config($3), $2) AS q),
                 hits AS (
                     SELECT t.message_id, ts_rank(t.search, q.q) AS rank
                     FROM transcripts t JOIN messages m ON m.id = t.message_id, q
                     WHERE t.search @@ q.q AND m.owner_id = $1
                       AND ($4::text IS NULL OR m.folder = $4))
            SELECT {_MESSAGE_COLUMNS}
            FROM messages JOIN hits ON hits.message_id = messages.id
            ORDER BY hits.rank DESC, messages.received_at DESC, messages.id DESC
            LIMIT $5 OFFSET $6""",
        owner_id,
        query,
        language,
        folder_value,
        limit,
        offset,
    )
    total = len(rows) + offset
    if len(rows) == limit or (not rows and offset > 0):
        total = await db.fetchval(
            """SELECT count(*) FROM transcripts t JOIN messages m ON m.id = t.message_id
               WHERE t.search @@ websearch_to_tsquery(transcript_search_config($3), $2)
                 AND m.owner_id = $1 AND ($4::text IS NULL OR m.folder = $4)""",
            owner_id,
            query,
            language,
            folder_value,
        )
    found = [Message.from_row(row) for row in rows]
    return SearchPage(found, int(total))
