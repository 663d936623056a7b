"""Users (mailboxes ``username@domain``): credentials, profile, per-user setting overrides.

Passwords and PINs are stored as argon2id hashes; the SIP password (the same as the web
password) only as its digest HA1 values, which the registrar-agent needs to REGISTER for the
user and Kamailio needs to check the user's phones (see ``kamailio_subscriber``).
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from sipum.db import domains, settings
from sipum.db.errors import DomainNotFoundError, InvalidUsernameError, UserExistsError
from sipum.db.pool import Executor
from sipum.security.passwords import (
    WeakSecretError,
    check_password_strength,
    check_pin_strength,
    digest_credentials,
    hash_secret,
    hash_secret_async,
    verify_secret_async,
)

log = logging.getLogger("sipum.sql.users")

#: Settings a user row has a value of its own for (NULL = the domain's default).
OVERRIDABLE = settings.USER_COLUMNS

# Mirrors the CHECK on users.username: no URI delimiters, and "-<n>-retrieve" is reserved for
# the one-message retrieval URI sip:alice-67212-retrieve@host.
_USERNAME = re.compile(r"^[^@:;?/\s]+$")
_RESERVED_SUFFIX = re.compile(r"-[0-9]+-retrieve$")


@functools.cache
def _dummy_hash() -> str:
    """A hash verified when the user does not exist, so a failed login by an unknown name takes
    as long as one by a known name (no user enumeration by timing)."""
    return hash_secret(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class User:
    id: int
    domain_id: int
    domain: str
    username: str
    display_name: str
    email: str | None
    realm: str
    ha1: str = field(repr=False)
    ha1b: str = field(repr=False)
    ha1_sha256: str = field(repr=False)
    has_pin: bool
    quota_bytes: int | None
    """Override of the domain default; None = the domain's value.  Same for the next four."""
    max_messages: int | None
    max_message_seconds: int | None
    ring_timeout_seconds: int | None
    email_attaches_audio: bool | None
    created_at: datetime
    updated_at: datetime
    email_audio_format: str | None = None
    """Override of the domain's attachment format (``wav``/``mp3``); None = the domain's."""
    transcription_enabled: bool | None = None
    transcription_language: str | None = None
    # Migration 0010 (sipum.db.settings); None = the domain's value.
    min_message_seconds: float | None = None
    max_silence_seconds: float | None = None
    delete_after_email: bool | None = None
    greeting_mode: str | None = None
    prompt_language: str | None = None
    time_zone: str | None = None
    operator_uri: str | None = None
    message_order: str | None = None
    email_notifications: bool | None = None
    command_notifications: bool | None = None
    urgent_allowed: bool | None = None
    """Migration 0018; None = the domain's value."""
    disabled_at: datetime | None = None
    """When an administrator disabled the mailbox (migration 0011); None = enabled."""

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    @property
    def address(self) -> str:
        """``username@domain``, the mailbox's name."""
        return f"{self.username}@{self.domain}"

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> User:
        return cls(**dict(row))


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    """What applies to a user: each override, else the domain default, else the built-in
    (``sipum.db.settings.resolve``). A None below: the service's own setting applies."""

    user_id: int
    quota_bytes: int
    max_messages: int
    max_message_seconds: int
    ring_timeout_seconds: int
    email_attaches_audio: bool
    email_audio_format: str
    """``wav`` or ``mp3``."""
    transcription_enabled: bool = True
    transcription_language: str | None = None
    """None: the transcriber's ``transcription_language`` setting applies."""
    min_message_seconds: float | None = None
    """None: the recorder's ``min_voice_seconds``."""
    max_silence_seconds: float | None = None
    """None: the recorder's ``max_silence_seconds``."""
    delete_after_email: bool = False
    greeting_mode: str = "auto"
    prompt_language: str | None = None
    time_zone: str = "UTC"
    pin_min_length: int = 4
    pin_lockout_failures: int | None = None
    """None: the media-recorder's ``pin_lockout_failures``."""
    operator_uri: str | None = None
    urgent_allowed: bool = True
    """A caller may mark a message urgent (the review's key 4)."""
    message_order: str = "newest"
    email_notifications: bool = True
    command_notifications: bool = True
    mail_from: str | None = None
    """None: the notifier's ``mail_from``."""
    registrar: str | None = None
    """None: the registrar-agent's ``registrar``."""


_SELECT = """
SELECT u.id, u.domain_id, d.name AS domain, u.username, u.display_name, u.email, d.realm,
       u.ha1, u.ha1b, u.ha1_sha256, u.pin_hash IS NOT NULL AS has_pin,
       u.quota_bytes, u.max_messages, u.max_message_seconds, u.ring_timeout_seconds,
       u.email_attaches_audio, u.email_audio_format, u.created_at, u.updated_at,
       u.transcription_enabled, u.transcription_language,
       u.min_message_seconds, u.max_silence_seconds, u.delete_after_email, u.greeting_mode,
       u.prompt_language, u.time_zone, u.operator_uri, u.message_order, u.email_notifications,
       u.command_notifications, u.urgent_allowed, u.disabled_at
FROM users u JOIN domains d ON d.id = u.domain_id
"""


def normalize_username(username: str) -> str:
    """Lower-cased user part; raises ``InvalidUsernameError`` for one we cannot serve."""
    username = username.strip().lower()
    if not _USERNAME.match(username):
        raise InvalidUsernameError(f"invalid username {username!r}")
    if _RESERVED_SUFFIX.search(username):
        raise InvalidUsernameError(f"username {username!r} ends like a retrieval URI")
    return username


def split_address(address: str) -> tuple[str, str]:
    """``"Alice@Example.com"`` → ``("alice", "example.com")``."""
    username, at, domain = address.strip().rpartition("@")
    if not at:
        raise InvalidUsernameError(f"not username@domain: {address!r}")
    return normalize_username(username), domains.normalize_name(domain)


async def create(
    db: Executor,
    username: str,
    domain: str,
    password: str,
    *,
    email: str | None = None,
    display_name: str = "",
    pin: str | None = None,
    **overrides: Any,
) -> User:
    """Create ``username@domain`` (the domain must exist).

    Raises ``UserExistsError``, ``DomainNotFoundError``, ``InvalidUsernameError`` or
    ``WeakSecretError`` (a ``ValueError``) for a too short password or a malformed PIN.
    """
    _check_overrides(overrides)
    username = normalize_username(username)
    if username.endswith("-retrieve"):
        # sip:alice-retrieve@host is alice's main menu (migration 0013; existing names stay)
        raise InvalidUsernameError(f"username {username!r} ends like the main-menu URI")
    domain = domains.normalize_name(domain)
    check_password_strength(password)
    if pin is not None:
        check_pin_strength(pin, username=username)
    found = await domains.get_by_name(db, domain)
    if found is None:
        raise DomainNotFoundError(domain)
    if pin is not None:
        _check_pin_length(pin, found.pin_min_length)
    creds = digest_credentials(username, found.name, found.realm, password)
    password_hash = await hash_secret_async(password)
    pin_hash = None if pin is None else await hash_secret_async(pin)
    columns = [
        "domain_id",
        "username",
        "display_name",
        "email",
        "password_hash",
        "ha1",
        "ha1b",
        "ha1_sha256",
        "pin_hash",
        *overrides,
    ]
    values = [
        found.id,
        username,
        display_name,
        email,
        password_hash,
        creds.ha1,
        creds.ha1b,
        creds.ha1_sha256,
        pin_hash,
        *overrides.values(),
    ]
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    try:
        user_id = await db.fetchval(
            f"INSERT INTO users ({', '.join(columns)}) VALUES ({placeholders}) RETURNING id",
            *values,
        )
    except asyncpg.UniqueViolationError:
        raise UserExistsError(f"{username}@{domain}") from None
    log.debug("created user %s@%s (id %d)", username, domain, user_id)
    user = await get(db, user_id)
    assert user is not None
    return user


async def get(db: Executor, user_id: int) -> User | None:
    row = await db.fetchrow(_SELECT + " WHERE u.id = $1", user_id)
    return None if row is None else User.from_row(row)


async def get_by_address(db: Executor, username: str, domain: str) -> User | None:
    """The user ``username@domain`` (case-insensitive), or None."""
    row = await db.fetchrow(
        _SELECT + " WHERE u.username = $1 AND d.name = $2",
        username.strip().lower(),
        domain.strip().lower(),
    )
    return None if row is None else User.from_row(row)


async def list_users(
    db: Executor, *, domain: str | None = None, limit: int | None = None, offset: int = 0
) -> list[User]:
    """Users ordered by domain then username (all of them when ``limit`` is None)."""
    rows = await db.fetch(
        _SELECT + " WHERE ($1::text IS NULL OR d.name = $1)"
        " ORDER BY d.name, u.username LIMIT $2 OFFSET $3",
        None if domain is None else domain.strip().lower(),
        limit,
        offset,
    )
    return [User.from_row(row) for row in rows]


async def search(
    db: Executor, where: str, *args: object, limit: int = 50, offset: int = 0
) -> list[User]:
    """Users matching ``where`` (a fixed SQL condition over ``u``/``d`` with ``$1…`` bound to
    ``args``; callers pass constants, never input), by domain and name."""
    n = len(args)
    rows = await db.fetch(
        _SELECT + where + f" ORDER BY d.name, u.username LIMIT ${n + 1} OFFSET ${n + 2}",
        *args,
        limit,
        offset,
    )
    return [User.from_row(row) for row in rows]


async def verify_password(db: Executor, user_id: int, password: str) -> bool:
    stored = await db.fetchval("SELECT password_hash FROM users WHERE id = $1", user_id)
    if stored is None:
        await verify_secret_async(_dummy_hash(), password)
        return False
    return await verify_secret_async(stored, password)


async def authenticate(db: Executor, username: str, domain: str, password: str) -> User | None:
    """The user if ``password`` is theirs, else None (same cost whether or not they exist)."""
    user = await get_by_address(db, username, domain)
    if user is None:
        await verify_secret_async(_dummy_hash(), password)
        return None
    return user if await verify_password(db, user.id, password) else None


async def verify_pin(db: Executor, user_id: int, pin: str) -> bool:
    """Whether ``pin`` is the user's PIN (False when they have none)."""
    stored = await db.fetchval("SELECT pin_hash FROM users WHERE id = $1", user_id)
    if stored is None:
        return False
    return await verify_secret_async(stored, pin)


async def verify_no_pin(pin: str) -> bool:
    """A PIN check for a mailbox that does not exist (the voicemail access number's wrong
    mailbox number): as slow as a real one, so timing tells nothing; always False."""
    await verify_secret_async(_dummy_hash(), pin)
    return False


def access_number(username: str, domain: str, domain_id: int = 0) -> User:
    """Not a mailbox: the voicemail access number ``sip:<username>@<domain>`` (id 0, no
    credentials, no PIN) standing in for the mailbox until the caller has said which one
    (the registrar-agent's call and the media-recorder's session need a ``User``)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return User(
        id=0, domain_id=domain_id, domain=domain, username=username, display_name="",
        email=None, realm=domain, ha1="", ha1b="", ha1_sha256="", has_pin=False,
        quota_bytes=None, max_messages=None, max_message_seconds=None,
        ring_timeout_seconds=None, email_attaches_audio=None, created_at=epoch,
        updated_at=epoch,
    )  # fmt: skip


async def set_password(db: Executor, user_id: int, password: str) -> bool:
    """New web/SIP password: new argon2 hash and new HA1 values.  False if no such user."""
    check_password_strength(password)
    user = await get(db, user_id)
    if user is None:
        return False
    creds = digest_credentials(user.username, user.domain, user.realm, password)
    password_hash = await hash_secret_async(password)
    status = await db.execute(
        """UPDATE users SET password_hash = $2, ha1 = $3, ha1b = $4, ha1_sha256 = $5,
                            updated_at = now()
           WHERE id = $1""",
        user_id,
        password_hash,
        creds.ha1,
        creds.ha1b,
        creds.ha1_sha256,
    )
    return bool(status == "UPDATE 1")


async def set_pin(db: Executor, user_id: int, pin: str | None) -> bool:
    """New mailbox PIN (None removes it).  False if no such user.

    Trivial PINs are refused (``WeakSecretError``: ``check_pin_strength``, which knows the
    username). A new PIN also lifts a phone lockout (``pin_lockouts``): whoever set it knows it.
    """
    pin_hash = None
    if pin is not None:
        row = await db.fetchrow(
            "SELECT u.username, d.pin_min_length FROM users u JOIN domains d"
            " ON d.id = u.domain_id WHERE u.id = $1",
            user_id,
        )
        if row is None:
            return False
        check_pin_strength(pin, username=row["username"])
        _check_pin_length(pin, row["pin_min_length"])
        pin_hash = await hash_secret_async(pin)
    status = await db.execute(
        """WITH cleared AS (DELETE FROM pin_lockouts WHERE user_id = $1)
           UPDATE users SET pin_hash = $2, updated_at = now() WHERE id = $1""",
        user_id,
        pin_hash,
    )
    return bool(status == "UPDATE 1")


_PROFILE_FIELDS = ("display_name", "email")


async def update(db: Executor, user_id: int, **changes: Any) -> User | None:
    """Change ``display_name``, ``email`` and/or overrides (``ring_timeout_seconds=None``
    returns to the domain default).  Fields not given stay as they are."""
    unknown = set(changes) - set(_PROFILE_FIELDS) - set(OVERRIDABLE)
    if unknown:
        raise TypeError(f"not a user field: {', '.join(sorted(unknown))}")
    if "display_name" in changes and changes["display_name"] is None:
        changes["display_name"] = ""
    if changes:
        # Column names come from the whitelists above; values are bound parameters.
        assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(changes, start=2))
        status = await db.execute(
            f"UPDATE users SET {assignments}, updated_at = now() WHERE id = $1",
            user_id,
            *changes.values(),
        )
        if status != "UPDATE 1":
            return None
    return await get(db, user_id)


_SETTINGS_SELECT = (
    "SELECT "
    + ", ".join(f"u.{c} AS u_{c}" for c in settings.USER_COLUMNS)
    + ", "
    + ", ".join(f"d.{c} AS d_{c}" for c in settings.DOMAIN_COLUMNS)
    + " FROM users u JOIN domains d ON d.id = u.domain_id WHERE u.id = $1"
)


async def set_disabled(db: Executor, user_id: int, disabled: bool) -> User | None:
    """Disable (now) or enable the mailbox; None if no such user. Idempotent: disabling a
    disabled user keeps the first time."""
    await db.execute(
        """UPDATE users SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, now()) END,
                            updated_at = now()
           WHERE id = $1""",
        user_id,
        disabled,
    )
    return await get(db, user_id)


async def settings_report(db: Executor, user_id: int) -> dict[str, settings.Resolved] | None:
    """Every setting of the user: effective value, source, the default it overrides; None if
    no such user. The one place that reads the override columns (``settings.resolve``)."""
    row = await db.fetchrow(_SETTINGS_SELECT, user_id)
    if row is None:
        return None
    return settings.resolve(
        {c: row[f"u_{c}"] for c in settings.USER_COLUMNS},
        {c: row[f"d_{c}"] for c in settings.DOMAIN_COLUMNS},
    )


async def effective_settings(db: Executor, user_id: int) -> EffectiveSettings | None:
    """What applies to the user now (read at the moment a service needs it: a change counts
    from the next call, no restart)."""
    report = await settings_report(db, user_id)
    if report is None:
        return None
    # One field per setting (a test checks the names); each value passed Setting.check, so its
    # type is the setting's — which mypy cannot see through the table.
    values = {name: r.value for name, r in report.items()}
    return EffectiveSettings(user_id=user_id, **values)  # type: ignore[arg-type]


async def delete(db: Executor, user_id: int) -> list[str] | None:
    """Delete a user with their messages and greetings.

    Returns the blob keys that belonged to them (for the caller to delete from the blob
    store), or None if there was no such user.
    """
    row = await db.fetchrow(
        """WITH keys AS (SELECT blob_key FROM messages WHERE owner_id = $1
                         UNION ALL
                         SELECT blob_key FROM greetings WHERE user_id = $1),
                gone AS (DELETE FROM users WHERE id = $1 RETURNING id)
           SELECT (SELECT count(*) FROM gone) AS deleted,
                  (SELECT coalesce(array_agg(blob_key), '{}') FROM keys) AS keys""",
        user_id,
    )
    if row["deleted"] == 0:
        return None
    log.debug("deleted user %d", user_id)
    return list(row["keys"])


def _check_pin_length(pin: str, domain_min: int | None) -> None:
    """The domain's PIN policy (setting ``pin_min_length``) on top of ``check_pin``."""
    least = settings.SETTINGS["pin_min_length"].builtin if domain_min is None else domain_min
    assert isinstance(least, int)
    if len(pin) < least:
        raise WeakSecretError(f"PIN must have at least {least} digits")


def _check_overrides(overrides: dict[str, Any]) -> None:
    unknown = set(overrides) - set(OVERRIDABLE)
    if unknown:
        raise TypeError(f"not a user setting: {', '.join(sorted(unknown))}")
