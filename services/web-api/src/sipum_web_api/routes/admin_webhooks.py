"""A domain's webhooks, managed by an administrator (``/api/v1/admin/domains/{name}/webhooks``).

A domain endpoint receives the events of every mailbox of the domain (the notifier's fan-out
matches it by the event's domain, docs/notifier.md). Same bodies and rules as a user's own
endpoints (``routes/webhooks.py``): the secret is shown once, the URL must resolve to public
addresses unless ``webhook_allowed_networks`` allows it, at most ``max_webhooks_per_user`` per
domain. Every route takes an administrator's token (a user's gets 403, none 401).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Response, status
from sipum.db import Pool, domains, webhooks
from sipum.security.destinations import DestinationRefused, resolve_destination

from sipum_web_api.deps import CurrentAdmin, PoolDep, StateDep
from sipum_web_api.routes.admin import ERRORS
from sipum_web_api.routes.webhooks import (
    DeliveryOut,
    TestQueued,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
    delivery_out,
    webhook_out,
)

router = APIRouter(prefix="/api/v1/admin/domains/{name}/webhooks", tags=["admin"])


async def domain_named(pool: Pool, name: str) -> domains.Domain:
    found = await domains.get_by_name(pool, name)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no domain {name}")
    return found


async def domain_webhook(pool: Pool, name: str, webhook_id: int) -> webhooks.Webhook:
    domain = await domain_named(pool, name)
    hook = await webhooks.get_for(pool, webhooks.Owner.domain(domain.id), webhook_id)
    if hook is None:  # a user's endpoint or another domain's looks like a missing one
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such webhook")
    return hook


@router.post("", status_code=201, response_model=WebhookCreated, responses=ERRORS)
async def create_domain_webhook(
    name: str, body: WebhookIn, pool: PoolDep, state: StateDep, _: CurrentAdmin
) -> WebhookCreated:
    """An endpoint for every mailbox of the domain; the secret is in this answer only."""
    domain = await domain_named(pool, name)
    unknown = sorted(set(body.events) - set(webhooks.WEBHOOK_EVENTS))
    if unknown or not body.events:
        raise HTTPException(422, f"unknown events: {', '.join(unknown) or '(none given)'}")
    try:
        await resolve_destination(body.url, state.webhook_networks)
    except DestinationRefused as exc:
        raise HTTPException(422, f"url refused: {exc}") from None
    owner = webhooks.Owner.domain(domain.id)
    if len(await webhooks.list_for(pool, owner)) >= state.max_webhooks:
        raise HTTPException(409, f"at most {state.max_webhooks} webhooks per domain")
    hook = await webhooks.create(pool, owner, url=body.url, events=body.events)
    return WebhookCreated(**webhook_out(hook).model_dump(), secret=hook.secret)


@router.get("", response_model=list[WebhookOut], responses=ERRORS)
async def list_domain_webhooks(name: str, pool: PoolDep, _: CurrentAdmin) -> list[WebhookOut]:
    domain = await domain_named(pool, name)
    owner = webhooks.Owner.domain(domain.id)
    return [webhook_out(w) for w in await webhooks.list_for(pool, owner)]


@router.delete("/{webhook_id}", status_code=204, response_class=Response, responses=ERRORS)
async def delete_domain_webhook(
    name: str, webhook_id: int, pool: PoolDep, _: CurrentAdmin
) -> Response:
    """Remove the endpoint; its pending deliveries go with it."""
    domain = await domain_named(pool, name)
    if not await webhooks.delete_for(pool, webhooks.Owner.domain(domain.id), webhook_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such webhook")
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=list[DeliveryOut], responses=ERRORS)
async def list_domain_deliveries(
    name: str, webhook_id: int, pool: PoolDep, _: CurrentAdmin
) -> list[DeliveryOut]:
    """The last 50 deliveries, newest first, with the state of each."""
    hook = await domain_webhook(pool, name, webhook_id)
    assert hook.domain_id is not None
    owner = webhooks.Owner.domain(hook.domain_id)
    return [delivery_out(d) for d in await webhooks.deliveries_for(pool, owner, hook.id)]


@router.post("/{webhook_id}/test", status_code=202, response_model=TestQueued, responses=ERRORS)
async def send_domain_test_event(
    name: str, webhook_id: int, pool: PoolDep, _: CurrentAdmin
) -> TestQueued:
    """Queue a signed ``webhook.test`` event for this endpoint (sent within about a second)."""
    hook = await domain_webhook(pool, name, webhook_id)
    event_id = uuid.uuid4()
    body = json.dumps(
        {
            "id": str(event_id),
            "type": webhooks.TEST_EVENT,
            "created": datetime.now(UTC).isoformat(),
            "data": {"webhook_id": hook.id, "domain": name.strip().lower()},
        },
        separators=(",", ":"),
    )
    return TestQueued(delivery_id=await webhooks.enqueue_test(pool, hook.id, body, event_id))
