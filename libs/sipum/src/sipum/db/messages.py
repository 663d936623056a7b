"""Voice messages: the metadata row of each recording (the audio is a blob under ``blob_key``).

Every read or change that comes from a user goes through ``owner_id``: a message id of another
mailbox behaves exactly like one that does not exist.  Ids come from ``message_id_seq`` (five
digits and up) and appear in URIs such as ``rtsp://host/alice/inbox/67212.wav``.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from sipum.db.errors import IdempotencyConflictError
from sipum.db.pool import Executor
from sipum.events.models import MessageUpdated

if TYPE_CHECKING:
    from sipum.db.users import User

log = logging.getLogger("sipum.sql.messages")


class Folder(enum.StrEnum):
    INBOX = "inbox"
    SAVED = "saved"
    TRASH = "trash"


class Arrival(enum.StrEnum):
    """How the call reached us."""

    DIRECT = "direct"
    """Addressed to our own URI (e.g. the user dialled the mailbox)."""
    FORKED = "forked"
    """The proxy forked the call to the user's phones and to us; we answered after the ring timeout."""
    DIVERTED = "diverted"
    """Redirected/forwarded to us (302, Diversion RFC 5806, History-Info RFC 7044, RFC 4458)."""


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    owner_id: int
    folder: Folder
    caller_uri: str
    caller_display_name: str
    called_uri: str
    arrival: Arrival
    diversion_cause: str | None
    diverted_from: str | None
    received_at: datetime
    duration_ms: int
    codec: str
    size_bytes: int
    blob_key: str
    heard: bool
    idempotency_key: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    """Deleted by the notifier's retention sweeper after this (delete after e-mail, 0009)."""
    interrupted: bool = False
    """Recovered from a recording whose recorder died mid-call (the caller was cut off)."""
    urgent: bool = False
    """The caller marked it urgent (key 4 in the review after the recording, 0014)."""
    forwarded_from: str | None = None
    """A copy forwarded by phone: the mailbox (``username@domain``) it came from (0019)."""

    @property
    def duration_seconds(self) -> float:
        return self.duration_ms / 1000

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Message:
        values = dict(row)
        values["folder"] = Folder(values["folder"])
        values["arrival"] = Arrival(values["arrival"])
        return cls(**values)


def updated_event(owner: User, message: Message, changed: Sequence[str]) -> MessageUpdated:
    """The ``message.updated`` event of ``owner``'s ``message`` as it is now, naming the
    fields that changed (``"heard"``, ``"folder"``).

    The web API and the phone's retrieval menu both change messages; building the event here
    keeps what the registrar-agent's MWI reads the same whichever of them made the change.
    """
    return MessageUpdated(
        username=owner.username,
        domain=owner.domain,
        message_id=message.id,
        folder=message.folder.value,
        heard=message.heard,
        changed=list(changed),
    )


@dataclass(frozen=True, slots=True)
class FolderCount:
    total: int = 0
    unheard: int = 0


@dataclass(frozen=True, slots=True)
class MailboxCounts:
    """Messages per folder, for listings and message-waiting indication."""

    inbox: FolderCount
    saved: FolderCount
    trash: FolderCount

    @property
    def new(self) -> int:
        """RFC 3842 ``Voice-Message`` new count: unheard messages outside the trash."""
        return self.inbox.unheard + self.saved.unheard

    @property
    def old(self) -> int:
        """RFC 3842 ``Voice-Message`` old count: heard messages outside the trash."""
        return (self.inbox.total - self.inbox.unheard) + (self.saved.total - self.saved.unheard)


@dataclass(frozen=True, slots=True)
class MailboxUsage:
    """What a mailbox holds against its limits (every folder counts, trash included)."""

    messages: int
    bytes: int
    max_messages: int
    quota_bytes: int

    @property
    def full(self) -> bool:
        return self.messages >= self.max_messages or self.bytes >= self.quota_bytes


_COLUMNS = (
    "id, owner_id, folder, caller_uri, caller_display_name, called_uri, arrival, "
    "diversion_cause, diverted_from, received_at, duration_ms, codec, size_bytes, blob_key, "
    "heard, idempotency_key, created_at, updated_at, expires_at, interrupted, urgent, "
    "forwarded_from"
)


async def allocate_id(db: Executor) -> int:
    """A fresh message id, for deriving the blob key before the row is written."""
    return int(await db.fetchval("SELECT nextval('message_id_seq')"))


async def insert_idempotent(
    db: Executor,
    *,
    owner_id: int,
    idempotency_key: str,
    caller_uri: str,
    called_uri: str,
    duration_ms: int,
    codec: str,
    size_bytes: int,
    blob_key: str,
    caller_display_name: str = "",
    arrival: Arrival | str = Arrival.DIRECT,
    diversion_cause: str | None = None,
    diverted_from: str | None = None,
    received_at: datetime | None = None,
    message_id: int | None = None,
    interrupted: bool = False,
    urgent: bool = False,
    forwarded_from: str | None = None,
) -> tuple[Message, bool]:
    """Store a message once per ``idempotency_key``; returns (message, created).

    A retry with the same key (the recording session id) returns the message stored the first
    time with ``created=False`` — even when both run at once.  ``message_id`` comes from
    ``allocate_id`` when the blob key was derived from it; otherwise the sequence picks one.
    """
    arrival = Arrival(arrival)
    row = await db.fetchrow(
        f"""INSERT INTO messages (id, owner_id, idempotency_key, caller_uri, caller_display_name,
                                  called_uri, arrival, diversion_cause, diverted_from,
                                  received_at, duration_ms, codec, size_bytes, blob_key,
                                  interrupted, urgent, forwarded_from)
            VALUES (coalesce($1, nextval('message_id_seq')), $2, $3, $4, $5, $6, $7, $8, $9,
                    coalesce($10, now()), $11, $12, $13, $14, $15, $16, $17)
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING {_COLUMNS}""",
        message_id,
        owner_id,
        idempotency_key,
        caller_uri,
        caller_display_name,
        called_uri,
        arrival.value,
        diversion_cause,
        diverted_from,
        received_at,
        duration_ms,
        codec,
        size_bytes,
        blob_key,
        interrupted,
        urgent,
        forwarded_from,
    )
    if row is not None:
        message = Message.from_row(row)
        log.debug("stored message %d for user %d", message.id, owner_id)
        return message, True
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM messages WHERE idempotency_key = $1", idempotency_key
    )
    if row is None:  # stored, then deleted by its owner before this retry arrived
        raise IdempotencyConflictError(f"message {idempotency_key!r} was stored and deleted")
    message = Message.from_row(row)
    if message.owner_id != owner_id:
        raise IdempotencyConflictError(
            f"idempotency key {idempotency_key!r} belongs to another mailbox"
        )
    return message, False


async def get(db: Executor, message_id: int) -> Message | None:
    """A message by id, whoever owns it (for services; user-facing code uses get_for_user)."""
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM messages WHERE id = $1", message_id)
    return None if row is None else Message.from_row(row)


async def get_for_user(db: Executor, owner_id: int, message_id: int) -> Message | None:
    """The message if ``owner_id`` owns it; None for other mailboxes' ids and unknown ids."""
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM messages WHERE id = $1 AND owner_id = $2", message_id, owner_id
    )
    return None if row is None else Message.from_row(row)


async def list_for_user(
    db: Executor,
    owner_id: int,
    folder: Folder | str | None = Folder.INBOX,
    *,
    limit: int = 50,
    offset: int = 0,
    oldest_first: bool = False,
) -> list[Message]:
    """Messages of one folder (every folder when ``folder`` is None), newest first (or oldest
    first: the setting ``message_order``)."""
    folder_value = None if folder is None else Folder(folder).value
    order = "ASC" if oldest_first else "DESC"  # one of two constants, never input
    rows = await db.fetch(
        f"""SELECT {_COLUMNS} FROM messages
            WHERE owner_id = $1 AND ($2::text IS NULL OR folder = $2)
            ORDER BY received_at {order}, id {order}
            LIMIT $3 OFFSET $4""",
        owner_id,
        folder_value,
        limit,
        offset,
    )
    return [Message.from_row(row) for row in rows]


async def mark_heard(
    db: Executor, owner_id: int, message_id: int, heard: bool = True
) -> Message | None:
    row = await db.fetchrow(
        f"""UPDATE messages SET heard = $3, updated_at = now()
            WHERE id = $1 AND owner_id = $2 RETURNING {_COLUMNS}""",
        message_id,
        owner_id,
        heard,
    )
    return None if row is None else Message.from_row(row)


async def move(
    db: Executor, owner_id: int, message_id: int, folder: Folder | str
) -> Message | None:
    row = await db.fetchrow(
        f"""UPDATE messages SET folder = $3, updated_at = now()
            WHERE id = $1 AND owner_id = $2 RETURNING {_COLUMNS}""",
        message_id,
        owner_id,
        Folder(folder).value,
    )
    return None if row is None else Message.from_row(row)


async def delete(db: Executor, owner_id: int, message_id: int) -> Message | None:
    """Delete for good; returns the deleted message (its blob is the caller's to remove)."""
    row = await db.fetchrow(
        f"DELETE FROM messages WHERE id = $1 AND owner_id = $2 RETURNING {_COLUMNS}",
        message_id,
        owner_id,
    )
    return None if row is None else Message.from_row(row)


async def empty_trash(db: Executor, owner_id: int) -> list[Message]:
    rows = await db.fetch(
        f"DELETE FROM messages WHERE owner_id = $1 AND folder = 'trash' RETURNING {_COLUMNS}",
        owner_id,
    )
    return [Message.from_row(row) for row in rows]


async def counts(db: Executor, owner_id: int) -> MailboxCounts:
    rows = await db.fetch(
        """SELECT folder, count(*) AS total, count(*) FILTER (WHERE NOT heard) AS unheard
           FROM messages WHERE owner_id = $1 GROUP BY folder""",
        owner_id,
    )
    by_folder = {row["folder"]: FolderCount(row["total"], row["unheard"]) for row in rows}
    return MailboxCounts(
        inbox=by_folder.get("inbox", FolderCount()),
        saved=by_folder.get("saved", FolderCount()),
        trash=by_folder.get("trash", FolderCount()),
    )


async def usage(db: Executor, owner_id: int) -> MailboxUsage | None:
    """Messages and bytes stored against the user's effective limits; None if no such user."""
    row = await db.fetchrow(
        """SELECT s.max_messages, s.quota_bytes,
                  (SELECT count(*) FROM messages m WHERE m.owner_id = s.user_id) AS messages,
                  (SELECT coalesce(sum(size_bytes), 0) FROM messages m
                   WHERE m.owner_id = s.user_id) AS bytes
           FROM user_effective_settings s WHERE s.user_id = $1""",
        owner_id,
    )
    if row is None:
        return None
    return MailboxUsage(
        messages=int(row["messages"]),
        bytes=int(row["bytes"]),
        max_messages=row["max_messages"],
        quota_bytes=row["quota_bytes"],
    )


# -- delete after e-mail (migration 0009) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpiredMessage:
    """A message the retention sweeper deleted: its row is gone, its audio is the caller's to
    remove, its ``message.deleted`` the caller's to publish."""

    id: int
    owner_id: int
    username: str
    domain: str
    blob_key: str
    expires_at: datetime


async def set_expiry(db: Executor, message_id: int, expires_at: datetime) -> datetime | None:
    """Keep the message only until ``expires_at``; a message that already has an expiry keeps
    the earlier one (a re-sent mail does not extend it). Returns the expiry now in force, or
    None if the message is gone."""
    value: datetime | None = await db.fetchval(
        """UPDATE messages SET expires_at = least(coalesce(expires_at, $2), $2)
           WHERE id = $1 RETURNING expires_at""",
        message_id,
        expires_at,
    )
    return value


async def delete_expired(db: Executor, now: datetime, *, limit: int = 100) -> list[ExpiredMessage]:
    """Delete up to ``limit`` messages whose ``expires_at`` is at or before ``now`` (their
    transcripts go with them by cascade), oldest expiry first.

    One statement: concurrent callers (several notifier replicas) each take other rows
    (``FOR UPDATE SKIP LOCKED``), so every expired message is deleted, and reported, once."""
    rows = await db.fetch(
        """WITH due AS (
               SELECT id FROM messages
               WHERE expires_at IS NOT NULL AND expires_at <= $1
               ORDER BY expires_at LIMIT $2
               FOR UPDATE SKIP LOCKED),
           gone AS (
               DELETE FROM messages m USING due WHERE m.id = due.id
               RETURNING m.id, m.owner_id, m.blob_key, m.expires_at)
           SELECT gone.id, gone.owner_id, u.username, d.name AS domain, gone.blob_key,
                  gone.expires_at
           FROM gone JOIN users u ON u.id = gone.owner_id JOIN domains d ON d.id = u.domain_id
           ORDER BY gone.expires_at, gone.id""",
        now,
        limit,
    )
    if rows:
        log.debug("deleted %d expired messages", len(rows))
    return [ExpiredMessage(**dict(r)) for r in rows]
