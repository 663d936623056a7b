"""The user's webhooks: endpoints that receive the mailbox's events as signed JSON.

Create (the secret is shown once, in the answer), list, delete, the delivery log, and a test
event. The web-api only writes the outbox; the notifier delivers (docs/notifier.md). A URL that
points into a non-public network is refused here with 422 — and checked again by the notifier
before every attempt, because DNS answers change.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field
from sipum.db import webhooks
from sipum.security.destinations import DestinationRefused, resolve_destination

from sipum_web_api.deps import CurrentUser, PoolDep, StateDep
from sipum_web_api.schemas import ErrorOut, Responses

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
ERRORS: Responses = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}}

EventKind = str


class WebhookIn(BaseModel):
    url: str = Field(max_length=2048, examples=["https://hooks.example.net/sipum"])
    events: list[EventKind] = Field(
        default_factory=lambda: list(webhooks.WEBHOOK_EVENTS),
        description="Any of message.created, message.updated, message.deleted, mailbox.locked"
        " (default all).",
    )


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str]
    enabled: bool
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="The HMAC-SHA256 key of Sipum-Signature; shown only now.")


class DeliveryOut(BaseModel):
    id: int
    event_id: uuid.UUID
    event: str
    state: str = Field(description="pending, delivered or dead (gave up after 24 h)")
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


class TestQueued(BaseModel):
    delivery_id: int


def webhook_out(w: webhooks.Webhook) -> WebhookOut:
    return WebhookOut(
        id=w.id, url=w.url, events=w.events, enabled=w.enabled, created_at=w.created_at
    )


def delivery_out(d: webhooks.DeliveryLog) -> DeliveryOut:
    return DeliveryOut(
        id=d.id,
        event_id=d.event_id,
        event=d.event_kind,
        state=d.state,
        attempts=d.attempts,
        last_status=d.last_status,
        last_error=d.last_error,
        created_at=d.created_at,
        finished_at=d.finished_at,
    )


async def owned(pool: PoolDep, user: CurrentUser, webhook_id: int) -> webhooks.Webhook:
    hook = await webhooks.get_for(pool, webhooks.Owner.user(user.id), webhook_id)
    if hook is None:  # another user's endpoint looks exactly like a missing one
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such webhook")
    return hook


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses={**ERRORS, 409: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
async def create_webhook(
    body: WebhookIn, pool: PoolDep, user: CurrentUser, state: StateDep
) -> WebhookCreated:
    unknown = sorted(set(body.events) - set(webhooks.WEBHOOK_EVENTS))
    if unknown or not body.events:
        raise HTTPException(422, f"unknown events: {', '.join(unknown) or '(none given)'}")
    try:
        await resolve_destination(body.url, state.webhook_networks)
    except DestinationRefused as exc:
        raise HTTPException(422, f"url refused: {exc}") from None
    owner = webhooks.Owner.user(user.id)
    if len(await webhooks.list_for(pool, owner)) >= state.max_webhooks:
        raise HTTPException(409, f"at most {state.max_webhooks} webhooks per mailbox")
    hook = await webhooks.create(pool, owner, url=body.url, events=body.events)
    return WebhookCreated(**webhook_out(hook).model_dump(), secret=hook.secret)


@router.get("", response_model=list[WebhookOut], responses=ERRORS)
async def list_webhooks(pool: PoolDep, user: CurrentUser) -> list[WebhookOut]:
    return [webhook_out(w) for w in await webhooks.list_for(pool, webhooks.Owner.user(user.id))]


@router.delete("/{webhook_id}", status_code=204, response_class=Response, responses=ERRORS)
async def delete_webhook(webhook_id: int, pool: PoolDep, user: CurrentUser) -> Response:
    if not await webhooks.delete_for(pool, webhooks.Owner.user(user.id), webhook_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such webhook")
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=list[DeliveryOut], responses=ERRORS)
async def list_deliveries(webhook_id: int, pool: PoolDep, user: CurrentUser) -> list[DeliveryOut]:
    """The last 50 deliveries, newest first, with the state of each."""
    await owned(pool, user, webhook_id)
    owner = webhooks.Owner.user(user.id)
    return [delivery_out(d) for d in await webhooks.deliveries_for(pool, owner, webhook_id)]


@router.post("/{webhook_id}/test", status_code=202, response_model=TestQueued, responses=ERRORS)
async def send_test_event(
    webhook_id: int, request: Request, pool: PoolDep, user: CurrentUser
) -> TestQueued:
    """Queue a ``webhook.test`` event for this endpoint; the notifier sends it within about a
    second, signed like every other (see its delivery log)."""
    hook = await owned(pool, user, webhook_id)
    event_id = uuid.uuid4()
    body = json.dumps(
        {
            "id": str(event_id),
            "type": webhooks.TEST_EVENT,
            "created": datetime.now(UTC).isoformat(),
            "data": {"webhook_id": hook.id, "mailbox": f"{user.username}@{user.domain}"},
        },
        separators=(",", ":"),
    )
    return TestQueued(delivery_id=await webhooks.enqueue_test(pool, hook.id, body, event_id))
