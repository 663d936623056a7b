"""Webhooks and their outbox (tables ``webhooks``, ``webhook_deliveries``, ``webhook_attempts``).

The web-api creates, lists and deletes endpoints (a user's own or, for an administrator, a
domain's: every such function takes the :class:`Owner`) and queues test events; the notifier fans
events out (:func:`enqueue_for_event`), takes due deliveries under a lease
(:func:`lease_due`) and records each attempt (:func:`record_success`, :func:`record_failure`).
Several notifier replicas share the outbox: ``FOR UPDATE SKIP LOCKED`` hands each due row to one
of them, and the lease lets another take it over if that one dies mid-request.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sipum.db.pool import Executor

#: What an endpoint may subscribe to (``mailbox.locked``: phone access locked after wrong PINs).
WEBHOOK_EVENTS = ("message.created", "message.updated", "message.deleted", "mailbox.locked")
TEST_EVENT = "webhook.test"


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    user_id: int | None
    domain_id: int | None
    url: str
    secret: str
    events: list[str]
    enabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    webhook_id: int
    url: str
    secret: str
    event_id: uuid.UUID
    event_kind: str
    body: str
    attempts: int
    """Attempts so far, this one included (the lease counts it)."""
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryLog:
    id: int
    event_id: uuid.UUID
    event_kind: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


_WEBHOOK = "id, user_id, domain_id, url, secret, events, enabled, created_at"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose endpoints: one user's (``webhooks.user_id``) or one domain's (``domain_id``);
    exactly one of the two is set on every row (the table's CHECK). Every function that reads
    or changes endpoints is keyed by one, so another owner's endpoint looks like a missing one."""

    column: Literal["user_id", "domain_id"]
    id: int

    @classmethod
    def user(cls, user_id: int) -> Owner:
        return cls("user_id", user_id)

    @classmethod
    def domain(cls, domain_id: int) -> Owner:
        return cls("domain_id", domain_id)

    def __post_init__(self) -> None:
        # the column is put into the SQL text: only these two names may ever get there
        if self.column not in ("user_id", "domain_id"):
            raise ValueError(f"not an owner column: {self.column!r}")


async def create(
    db: Executor, owner: Owner, *, url: str, events: list[str], secret: str | None = None
) -> Webhook:
    unknown = set(events) - set(WEBHOOK_EVENTS)
    if unknown or not events:
        raise ValueError(f"unknown webhook events: {', '.join(sorted(unknown)) or '(none)'}")
    row = await db.fetchrow(
        f"""INSERT INTO webhooks ({owner.column}, url, secret, events)
            VALUES ($1, $2, $3, $4) RETURNING {_WEBHOOK}""",
        owner.id,
        url,
        secret or new_secret(),
        sorted(set(events)),
    )
    return Webhook(**dict(row))


async def list_for(db: Executor, owner: Owner) -> list[Webhook]:
    rows = await db.fetch(
        f"SELECT {_WEBHOOK} FROM webhooks WHERE {owner.column} = $1 ORDER BY id", owner.id
    )
    return [Webhook(**dict(r)) for r in rows]


async def get_for(db: Executor, owner: Owner, webhook_id: int) -> Webhook | None:
    row = await db.fetchrow(
        f"SELECT {_WEBHOOK} FROM webhooks WHERE id = $1 AND {owner.column} = $2",
        webhook_id,
        owner.id,
    )
    return None if row is None else Webhook(**dict(row))


async def delete_for(db: Executor, owner: Owner, webhook_id: int) -> bool:
    status = await db.execute(
        f"DELETE FROM webhooks WHERE id = $1 AND {owner.column} = $2", webhook_id, owner.id
    )
    return bool(status == "DELETE 1")


async def deliveries_for(
    db: Executor, owner: Owner, webhook_id: int, *, limit: int = 50
) -> list[DeliveryLog]:
    """The endpoint's last ``limit`` deliveries, newest first (none for another's endpoint)."""
    rows = await db.fetch(
        f"""SELECT d.id, d.event_id, d.event_kind, d.state, d.attempts, d.last_status,
                   d.last_error, d.created_at, d.finished_at
            FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
            WHERE w.id = $1 AND w.{owner.column} = $2
            ORDER BY d.id DESC LIMIT $3""",
        webhook_id,
        owner.id,
        limit,
    )
    return [DeliveryLog(**dict(r)) for r in rows]


async def enqueue_for_event(
    db: Executor,
    *,
    event_id: uuid.UUID,
    kind: str,
    username: str,
    domain: str,
    body: str,
) -> list[int]:
    """One delivery per enabled endpoint of the mailbox's user or domain that subscribed to
    ``kind``; nothing for a redelivered event. (An endpoint created while the notifier was
    catching up on a backlog gets those events too: harmless, and no clock comparison between
    the event's producer and the database can drop one.)"""
    rows = await db.fetch(
        """INSERT INTO webhook_deliveries (webhook_id, event_id, event_kind, body)
           SELECT w.id, $1, $2, $3
           FROM webhooks w
           LEFT JOIN users u ON u.id = w.user_id
           LEFT JOIN domains du ON du.id = u.domain_id
           LEFT JOIN domains dd ON dd.id = w.domain_id
           WHERE w.enabled AND $2 = ANY (w.events)
             AND ((u.username = $4 AND du.name = $5) OR dd.name = $5)
           ON CONFLICT (webhook_id, event_id) DO NOTHING
           RETURNING id""",
        event_id,
        kind,
        body,
        username,
        domain,
    )
    return [r["id"] for r in rows]


async def enqueue_test(db: Executor, webhook_id: int, body: str, event_id: uuid.UUID) -> int:
    delivery_id: int = await db.fetchval(
        """INSERT INTO webhook_deliveries (webhook_id, event_id, event_kind, body)
           VALUES ($1, $2, $3, $4) RETURNING id""",
        webhook_id,
        event_id,
        TEST_EVENT,
        body,
    )
    return delivery_id


async def lease_due(db: Executor, *, limit: int, lease_seconds: float) -> list[Delivery]:
    """Take up to ``limit`` due deliveries for ``lease_seconds`` (counting the attempt)."""
    rows = await db.fetch(
        """WITH due AS (
               SELECT id FROM webhook_deliveries
               WHERE state = 'pending' AND next_attempt_at <= now()
                 AND (lease_until IS NULL OR lease_until < now())
               ORDER BY next_attempt_at
               LIMIT $1
               FOR UPDATE SKIP LOCKED)
           UPDATE webhook_deliveries d
              SET lease_until = now() + make_interval(secs => $2), attempts = d.attempts + 1
           FROM due, webhooks w
           WHERE d.id = due.id AND w.id = d.webhook_id
           RETURNING d.id, d.webhook_id, w.url, w.secret, d.event_id, d.event_kind, d.body,
                     d.attempts, d.created_at""",
        limit,
        float(lease_seconds),
    )
    return [Delivery(**dict(r)) for r in rows]


async def _log_attempt(
    db: Executor, d: Delivery, status: int | None, error: str | None, duration_ms: int
) -> None:
    await db.execute(
        """INSERT INTO webhook_attempts (delivery_id, attempt, status, error, duration_ms)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
        d.id,
        d.attempts,
        status,
        error,
        duration_ms,
    )


async def record_success(db: Executor, d: Delivery, status: int, duration_ms: int) -> None:
    await db.execute(
        """UPDATE webhook_deliveries
              SET state = 'delivered', last_status = $2, last_error = NULL, lease_until = NULL,
                  finished_at = now()
           WHERE id = $1""",
        d.id,
        status,
    )
    await _log_attempt(db, d, status, None, duration_ms)


async def record_failure(
    db: Executor,
    d: Delivery,
    *,
    status: int | None,
    error: str,
    duration_ms: int,
    retry_in: float | None,
) -> str:
    """Schedule the next attempt in ``retry_in`` seconds, or (``None``) dead-letter it.

    Returns the delivery's new state."""
    state = "pending" if retry_in is not None else "dead"
    await db.execute(
        """UPDATE webhook_deliveries
              SET state = $2, last_status = $3, last_error = $4, lease_until = NULL,
                  next_attempt_at = now() + make_interval(secs => $5),
                  finished_at = CASE WHEN $2 = 'dead' THEN now() END
           WHERE id = $1""",
        d.id,
        state,
        status,
        error[:500],
        float(retry_in or 0.0),
    )
    await _log_attempt(db, d, status, error[:500], duration_ms)
    return state
