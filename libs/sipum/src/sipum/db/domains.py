"""Domains (``example.com``) and the administrator defaults their users inherit."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from sipum.db import settings
from sipum.db.errors import DomainInUseError
from sipum.db.pool import Executor

log = logging.getLogger("sipum.sql.domains")

#: Columns an administrator may set; a user's column of the same name overrides each one.
#: Every attribute of the settings model (``sipum.db.settings``).
DEFAULT_SETTINGS = settings.DOMAIN_COLUMNS


@dataclass(frozen=True, slots=True)
class Domain:
    id: int
    name: str
    realm: str
    """Digest realm of its users' HA1 values (normally the domain name)."""
    quota_bytes: int
    max_messages: int
    max_message_seconds: int
    ring_timeout_seconds: int
    email_attaches_audio: bool
    email_audio_format: str
    """``wav`` or ``mp3``: what a notification e-mail attaches."""
    created_at: datetime
    transcription_enabled: bool = True
    """Whether the transcriber turns its users' messages into text (migration 0007)."""
    transcription_language: str | None = None
    """Language tag of its users' messages (``en-US``); None = the transcriber's setting."""
    # Migration 0010: None = the built-in value (``sipum.db.settings``).
    min_message_seconds: float | None = None
    max_silence_seconds: float | None = None
    delete_after_email: bool = False
    greeting_mode: str | None = None
    prompt_language: str | None = None
    time_zone: str | None = None
    pin_min_length: int | None = None
    pin_lockout_failures: int | None = None
    """Migration 0016; None = the media-recorder's ``pin_lockout_failures``."""
    operator_uri: str | None = None
    urgent_allowed: bool | None = None
    """Migration 0018; None = the built-in (true)."""
    message_order: str | None = None
    email_notifications: bool | None = None
    command_notifications: bool | None = None
    mail_from: str | None = None
    """From: of the domain's notification e-mails; None = the notifier's ``mail_from``."""
    registrar: str | None = None
    """Where its users' voicemail contacts are registered (``host[:port]`` or ``sip:…``);
    None = the registrar-agent's ``registrar`` (migration 0015)."""

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Domain:
        return cls(**dict(row))


_COLUMNS = "id, name, realm, " + ", ".join(DEFAULT_SETTINGS) + ", created_at"


def normalize_name(name: str) -> str:
    """Domain names compare case-insensitively (RFC 3261 section 19.1.4)."""
    name = name.strip().lower()
    if not name or "@" in name or any(c.isspace() for c in name):
        raise ValueError(f"invalid domain name {name!r}")
    return name


def _check_defaults(values: dict[str, Any]) -> None:
    unknown = set(values) - set(DEFAULT_SETTINGS)
    if unknown:
        raise TypeError(f"not a domain setting: {', '.join(sorted(unknown))}")


async def create(db: Executor, name: str, *, realm: str | None = None, **defaults: Any) -> Domain:
    """Create a domain; settings not given take the schema's defaults."""
    _check_defaults(defaults)
    name = normalize_name(name)
    columns = ["name", "realm", *defaults]
    values = [name, realm or name, *defaults.values()]
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    # Column names come from DEFAULT_SETTINGS only; every value is a bound parameter.
    row = await db.fetchrow(
        f"INSERT INTO domains ({', '.join(columns)}) VALUES ({placeholders}) RETURNING {_COLUMNS}",
        *values,
    )
    log.debug("created domain %s", name)
    return Domain.from_row(row)


async def ensure(db: Executor, name: str) -> Domain:
    """The domain ``name``, created with default settings if it does not exist yet."""
    name = normalize_name(name)
    row = await db.fetchrow(
        f"""INSERT INTO domains (name, realm) VALUES ($1, $1)
            ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
            RETURNING {_COLUMNS}""",
        name,
    )
    return Domain.from_row(row)


async def get(db: Executor, domain_id: int) -> Domain | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM domains WHERE id = $1", domain_id)
    return None if row is None else Domain.from_row(row)


async def get_by_name(db: Executor, name: str) -> Domain | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM domains WHERE name = $1", name.strip().lower())
    return None if row is None else Domain.from_row(row)


async def list_all(db: Executor) -> list[Domain]:
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM domains ORDER BY name")
    return [Domain.from_row(row) for row in rows]


async def update(db: Executor, domain_id: int, **defaults: Any) -> Domain | None:
    """Change administrator defaults (``quota_bytes=…`` etc.); None if no such domain."""
    _check_defaults(defaults)
    if not defaults:
        return await get(db, domain_id)
    assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(defaults, start=2))
    row = await db.fetchrow(
        f"UPDATE domains SET {assignments} WHERE id = $1 RETURNING {_COLUMNS}",
        domain_id,
        *defaults.values(),
    )
    return None if row is None else Domain.from_row(row)


async def delete(db: Executor, domain_id: int) -> bool:
    """Delete a domain without users; raises ``DomainInUseError`` while it has some."""
    try:
        status = await db.execute("DELETE FROM domains WHERE id = $1", domain_id)
    except asyncpg.ForeignKeyViolationError:
        raise DomainInUseError(f"domain {domain_id} still has users") from None
    return bool(status == "DELETE 1")
