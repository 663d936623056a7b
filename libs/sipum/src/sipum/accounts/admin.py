"""What an administrator does — one service layer under the admin REST API and ``sipum-admin``.

Every change goes through the same ``sipum.db`` functions the rest of sipum uses and publishes
the same events (``user.created``, ``user.updated``, ``user.deleted``), so the registrar-agent
registers, re-registers and de-registers exactly as when users act themselves. Errors are
``AdminError`` subclasses with a message fit for an API answer or a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import nats.js.errors

from sipum.accounts.removal import Removal, remove_mailbox
from sipum.blobstore import BlobStore
from sipum.db import Pool, domains, pin_lockouts, settings, users
from sipum.db.errors import DomainInUseError, DomainNotFoundError, UserExistsError
from sipum.events import DomainUpdated, EventBus, UserCreated, UserUpdated
from sipum.security.passwords import WeakSecretError


class AdminError(Exception):
    """An administrative action that cannot be done as asked."""


class NotFound(AdminError):
    pass


class Conflict(AdminError):
    pass


class Invalid(AdminError):
    pass


@dataclass(frozen=True, slots=True)
class UserPage:
    items: list[users.User]
    total: int


@dataclass(frozen=True, slots=True)
class QuotaLine:
    username: str
    domain: str
    messages: int
    bytes: int
    max_messages: int
    quota_bytes: int

    @property
    def percent(self) -> float:
        """The fuller of the two limits, in percent."""
        shares = [
            100.0 * self.bytes / self.quota_bytes if self.quota_bytes else 100.0,
            100.0 * self.messages / self.max_messages if self.max_messages else 100.0,
        ]
        return round(max(shares), 1)


@dataclass(frozen=True, slots=True)
class ConsumerStatus:
    name: str
    pending: int
    """Events not yet delivered to it."""
    unacknowledged: int
    waiting_clients: int


@dataclass(frozen=True, slots=True)
class SystemStatus:
    domains: int
    users: int
    messages: int
    stream: str
    stream_events: int
    consumers: list[ConsumerStatus]


# -- domains ---------------------------------------------------------------------------------


async def create_domain(pool: Pool, name: str, **defaults: Any) -> domains.Domain:
    try:
        name = domains.normalize_name(name)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    if await domains.get_by_name(pool, name) is not None:
        raise Conflict(f"domain {name} exists")
    realm = defaults.pop("realm", None)
    defaults = _checked(defaults, settings.DOMAIN_COLUMNS)
    if realm is not None:
        defaults["realm"] = realm
    try:
        return await domains.create(pool, name, **defaults)
    except TypeError as exc:
        raise Invalid(str(exc)) from None


async def domain_by_name(pool: Pool, name: str) -> domains.Domain:
    domain = await domains.get_by_name(pool, name.strip().lower())
    if domain is None:
        raise NotFound(f"no domain {name}")
    return domain


async def update_domain(
    pool: Pool, name: str, *, bus: EventBus | None = None, **defaults: Any
) -> domains.Domain:
    """Change a domain's defaults; with ``bus``, ``domain.updated`` names the settings that
    changed (after the commit). Users without a value of their own get the new ones on their
    next call: the services read the settings when they need them."""
    domain = await domain_by_name(pool, name)
    defaults = _checked(defaults, settings.DOMAIN_COLUMNS)
    for key, value in defaults.items():
        if value is None and settings.SETTINGS[key].legacy_domain_not_null:
            raise Invalid(f"{key}: a domain always has a value for it")
    try:
        updated = await domains.update(pool, domain.id, **defaults)
    except TypeError as exc:
        raise Invalid(str(exc)) from None
    assert updated is not None
    changed = sorted(k for k in defaults if getattr(domain, k) != getattr(updated, k))
    if bus is not None and changed:
        await bus.publish(DomainUpdated(domain=updated.name, changed=changed))
    return updated


async def delete_domain(
    pool: Pool,
    bus: EventBus,
    blobs: BlobStore,
    name: str,
    *,
    with_users: bool,
    deregister_wait: float,
) -> int:
    """Delete a domain; with ``with_users`` its mailboxes first (each as a user's own deletion
    would). Returns how many mailboxes were deleted."""
    domain = await domain_by_name(pool, name)
    members = await users.list_users(pool, domain=domain.name)
    if members and not with_users:
        raise Conflict(f"domain {domain.name} has {len(members)} users (delete them with it?)")
    for user in members:
        await remove_mailbox(user, pool=pool, bus=bus, blobs=blobs, deregister_wait=deregister_wait)
    try:
        await domains.delete(pool, domain.id)
    except DomainInUseError:
        raise Conflict(f"domain {domain.name} got a new user meanwhile") from None
    return len(members)


# -- users -----------------------------------------------------------------------------------


async def list_users(
    pool: Pool,
    *,
    domain: str | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> UserPage:
    """Users by domain and name; ``search`` matches name, display name or e-mail (case-blind)."""
    pattern = (
        None
        if not search
        else "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    )
    where = (
        " WHERE ($1::text IS NULL OR d.name = $1)"
        " AND ($2::text IS NULL OR u.username ILIKE $2 OR u.display_name ILIKE $2"
        " OR coalesce(u.email, '') ILIKE $2)"
    )
    domain_name = None if domain is None else domain.strip().lower()
    total = await pool.fetchval(
        "SELECT count(*) FROM users u JOIN domains d ON d.id = u.domain_id" + where,
        domain_name,
        pattern,
    )
    page = await users.search(pool, where, domain_name, pattern, limit=limit, offset=offset)
    return UserPage(page, int(total))


async def user_by_address(pool: Pool, address: str) -> users.User:
    try:
        username, domain = users.split_address(address)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    user = await users.get_by_address(pool, username, domain)
    if user is None:
        raise NotFound(f"no user {address}")
    return user


async def create_user(
    pool: Pool,
    bus: EventBus,
    address: str,
    password: str,
    *,
    email: str | None = None,
    display_name: str = "",
    pin: str | None = None,
    **overrides: Any,
) -> users.User:
    overrides = _checked(overrides, users.OVERRIDABLE)
    try:
        username, domain = users.split_address(address)
        user = await users.create(
            pool, username, domain, password, email=email, display_name=display_name, pin=pin,
            **overrides,
        )  # fmt: skip
    except UserExistsError:
        raise Conflict(f"{address} exists") from None
    except DomainNotFoundError:
        raise NotFound(f"no domain for {address}") from None
    except (ValueError, TypeError, WeakSecretError) as exc:
        raise Invalid(str(exc)) from None
    await bus.publish(
        UserCreated(
            username=user.username,
            domain=user.domain,
            display_name=user.display_name or None,
            email=user.email,
        )  # fmt: skip
    )
    return user


async def _announce(bus: EventBus, user: users.User, changed: list[str]) -> None:
    await bus.publish(
        UserUpdated(
            username=user.username,
            domain=user.domain,
            display_name=user.display_name or None,
            email=user.email,
            changed=changed,
        )  # fmt: skip
    )


async def update_overrides(
    pool: Pool, bus: EventBus, address: str, changes: dict[str, Any]
) -> users.User:
    """Set (a value) or clear (None: back to the domain default) the user's overrides."""
    user = await user_by_address(pool, address)
    unknown = set(changes) - set(users.OVERRIDABLE)
    if unknown:
        raise Invalid(f"not a user setting: {', '.join(sorted(unknown))}")
    if not changes:
        return user
    changes = _checked(changes, users.OVERRIDABLE)
    try:
        updated = await users.update(pool, user.id, **changes)
    except (asyncpg.CheckViolationError, asyncpg.DataError) as exc:  # the column's bounds
        raise Invalid(f"out of bounds: {exc}") from None
    assert updated is not None
    await _announce(bus, updated, sorted(changes))
    return updated


async def reset_password(pool: Pool, bus: EventBus, address: str, password: str) -> None:
    user = await user_by_address(pool, address)
    try:
        await users.set_password(pool, user.id, password)
    except WeakSecretError as exc:
        raise Invalid(str(exc)) from None
    await _announce(bus, user, ["password"])  # the agent re-registers with the new HA1


async def reset_pin(pool: Pool, bus: EventBus, address: str, pin: str | None) -> None:
    user = await user_by_address(pool, address)
    try:
        await users.set_pin(pool, user.id, pin)
    except WeakSecretError as exc:
        raise Invalid(str(exc)) from None
    await _announce(bus, user, ["pin"])


async def set_disabled(pool: Pool, bus: EventBus, address: str, disabled: bool) -> users.User:
    """Disable or enable a mailbox (docs/administration.md): ``user.updated`` with ``disabled``
    or ``enabled`` makes the registrar-agent de-register or register its voicemail contact.
    Published every time (the agent is idempotent), so a repeat repairs a lost event."""
    user = await user_by_address(pool, address)
    updated = await users.set_disabled(pool, user.id, disabled)
    if updated is None:
        raise NotFound(f"no user {address}")
    await _announce(bus, updated, ["disabled" if disabled else "enabled"])
    return updated


@dataclass(frozen=True, slots=True)
class Unlocked:
    """What ``unlock`` lifted: the mailbox's phone PIN lockout as it was."""

    address: str
    was_locked: bool
    locked_until: datetime | None
    failures: int
    lockouts: int


async def unlock(pool: Pool, address: str, *, now: datetime | None = None) -> Unlocked:
    """Lift the mailbox's phone PIN lockout and forget its wrong PINs (``pin_lockouts``);
    *now* (default: the wall clock) only decides whether it was still locked."""
    now = now or datetime.now(UTC)
    user = await user_by_address(pool, address)
    state = await pin_lockouts.get(pool, user.id)
    await pin_lockouts.clear(pool, user.id)
    return Unlocked(
        address=user.address,
        was_locked=state.locked(now),
        locked_until=state.locked_until if state.locked(now) else None,
        failures=state.failures,
        lockouts=state.lockouts,
    )


async def delete_user(
    pool: Pool, bus: EventBus, blobs: BlobStore, address: str, *, deregister_wait: float
) -> Removal:
    user = await user_by_address(pool, address)
    return await remove_mailbox(
        user, pool=pool, bus=bus, blobs=blobs, deregister_wait=deregister_wait
    )


# -- reports ---------------------------------------------------------------------------------


async def quota_report(pool: Pool, *, domain: str | None = None) -> list[QuotaLine]:
    """Every mailbox's use against its effective limits, fullest first."""
    rows = await pool.fetch(
        """SELECT s.username, s.domain, s.max_messages, s.quota_bytes,
                  count(m.id) AS messages, coalesce(sum(m.size_bytes), 0) AS bytes
           FROM user_effective_settings s LEFT JOIN messages m ON m.owner_id = s.user_id
           WHERE ($1::text IS NULL OR s.domain = $1)
           GROUP BY s.user_id, s.username, s.domain, s.max_messages, s.quota_bytes""",
        None if domain is None else domain.strip().lower(),
    )
    lines = [
        QuotaLine(
            r["username"],
            r["domain"],
            int(r["messages"]),
            int(r["bytes"]),
            int(r["max_messages"]),
            int(r["quota_bytes"]),
        )  # fmt: skip
        for r in rows
    ]
    return sorted(lines, key=lambda q: (-q.percent, q.domain, q.username))


async def system_status(pool: Pool, bus: EventBus) -> SystemStatus:
    """Counts from the database, and the event stream with each durable consumer's backlog
    (the notifier, webhooks, MWI shards, …: a growing ``pending`` is a service not keeping up)."""
    counts = await pool.fetchrow(
        """SELECT (SELECT count(*) FROM domains) AS domains, (SELECT count(*) FROM users) AS users,
                  (SELECT count(*) FROM messages) AS messages"""
    )
    info = await bus.js.stream_info(bus.stream)
    consumers: list[ConsumerStatus] = []
    try:
        for c in await bus.js.consumers_info(bus.stream):
            if c.config.durable_name:
                consumers.append(
                    ConsumerStatus(
                        c.config.durable_name,
                        int(c.num_pending or 0),
                        int(c.num_ack_pending or 0),
                        int(c.num_waiting or 0),
                    )  # fmt: skip
                )
    except nats.js.errors.Error:
        pass
    return SystemStatus(
        int(counts["domains"]), int(counts["users"]), int(counts["messages"]),
        bus.stream, int(info.state.messages), sorted(consumers, key=lambda c: c.name),
    )  # fmt: skip


__all__ = [
    "AdminError", "Conflict", "ConsumerStatus", "Invalid", "NotFound", "QuotaLine",
    "SystemStatus", "Unlocked", "UserPage", "create_domain", "create_user", "delete_domain",
    "delete_user", "domain_by_name", "list_users", "quota_report", "reset_password", "reset_pin",
    "set_disabled", "system_status", "unlock", "update_domain", "update_overrides",
    "user_by_address",
]  # fmt: skip


# -- the settings, as text (the command line) ---------------------------------------------

#: The settings model (``sipum.db.settings``), re-exported for the command line.
SETTINGS = settings.SETTINGS


def parse_setting(assignment: str) -> tuple[str, Any]:
    """``ring_timeout_seconds=20`` → ("ring_timeout_seconds", 20); ``=default`` → None (clear
    the user's override)."""
    name, sep, text = assignment.partition("=")
    found = SETTINGS.get(name.strip())
    if not sep or found is None:
        raise Invalid(f"expected NAME=VALUE with NAME one of {', '.join(SETTINGS)}")
    text = text.strip()
    if text == "default":
        return found.name, None
    try:
        return found.name, found.parse(text)
    except settings.InvalidSetting as exc:
        raise Invalid(str(exc)) from None


def _checked(values: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    try:
        return settings.check_values(values, allowed=allowed)
    except settings.InvalidSetting as exc:
        raise Invalid(str(exc)) from None
