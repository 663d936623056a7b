"""Delivering webhooks: events into the outbox, due outbox rows out as signed HTTP POSTs.

Two halves, both in every notifier replica:

1. **Fan-out.** A JetStream durable consumer (``notifier-webhooks``, filter ``message.*``)
   turns each event into one ``webhook_deliveries`` row per matching endpoint and acks. The rows
   are keyed by (endpoint, event id), so a redelivered event adds nothing: at-least-once from the
   stream becomes exactly one row.
2. **Delivery.** A loop leases due rows (``FOR UPDATE SKIP LOCKED``, a lease longer than one
   request) and POSTs each in its own task: at most ``webhook_concurrency`` requests at once and
   at most ``PER_ENDPOINT`` per endpoint, each bounded by ``webhook_timeout``. A slow or dead
   endpoint therefore holds only its own rows; the e-mail (another consumer) and other
   endpoints go on. 2xx is delivered; anything else is retried after
   ``base · 2^(attempt-1)`` (±10 %, at most ``webhook_retry_max``) until ``webhook_retry_window``
   (24 h) after the event, then the row is dead (dead-lettered, kept for the delivery log). A
   destination the SSRF guard refuses is dead at once: it will not become allowed by waiting.

Crash at any point: a row not yet inserted is inserted by the redelivered event; a leased row
whose sender died is leased again when its lease runs out and sent again (the receiver sees the
same ``Idempotency-Key``); a row recorded as delivered is never sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import defaultdict
from datetime import UTC, datetime

import httpx
from prometheus_client import Counter, Histogram
from sipum.db import webhooks
from sipum.events.models import MailboxEvent
from sipum.runtime import ServiceContext
from sipum.security.destinations import (
    DestinationRefused,
    parse_networks,
    resolve_destination,
)

from sipum_notifier.settings import NotifierSettings
from sipum_notifier.webhooks.signature import SIGNATURE_HEADER, sign

log = logging.getLogger("sipum.misc.webhooks")
CONSUMER = "notifier-webhooks"
#: A second durable consumer for the mailbox events (a consumer has one filter subject).
MAILBOX_CONSUMER = "notifier-webhooks-mailbox"
PER_ENDPOINT = 4
USER_AGENT = "sipum-webhooks/0.1"

DELIVERIES = Counter(
    "sipum_webhook_attempts_total", "Webhook delivery attempts by outcome", ["outcome"]
)
LATENCY = Histogram(
    "sipum_webhook_delivery_seconds",
    "From the event to its successful delivery",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600, 3600),
)


def event_body(event: MailboxEvent) -> str:
    """The JSON that is signed and sent: ``{id, type, created, data}``."""
    return json.dumps(
        {
            "id": str(event.id),
            "type": event.kind,
            "created": event.ts.isoformat(),
            "data": event.model_dump(mode="json"),
        },
        separators=(",", ":"),
    )


class WebhookDispatcher:
    def __init__(self, settings: NotifierSettings, ctx: ServiceContext) -> None:
        self.settings = settings
        self.ctx = ctx
        self.allowed = parse_networks(settings.webhook_allowed_networks)
        self.wake = asyncio.Event()
        self.per_endpoint: defaultdict[int, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(PER_ENDPOINT)
        )
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(settings.webhook_timeout),
            headers={"User-Agent": USER_AGENT},
            trust_env=False,  # no proxy from the environment: the guard checks the real peer
        )
        self.subscription: object = None
        self.mailbox_subscription: object = None
        self.loop_task: asyncio.Task[None] | None = None
        self.in_flight: set[asyncio.Task[None]] = set()
        self.stopping = False

    async def start(self) -> None:
        self.subscription = await self.ctx.bus.subscribe(
            "message.*", self.fan_out, durable=CONSUMER, start="new"
        )
        self.mailbox_subscription = await self.ctx.bus.subscribe(
            "mailbox.*", self.fan_out, durable=MAILBOX_CONSUMER, start="new"
        )
        self.loop_task = asyncio.create_task(self.delivery_loop(), name="webhook-delivery")

    async def stop_accepting(self) -> None:
        self.stopping = True
        for subscription in (self.subscription, self.mailbox_subscription):
            if subscription is not None:
                await subscription.stop()  # type: ignore[attr-defined]
        self.wake.set()

    async def drain(self) -> None:
        if self.loop_task is not None:
            self.loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.loop_task
        if self.in_flight:
            # Requests in flight finish within their time limit; unfinished leases expire.
            await asyncio.wait(self.in_flight, timeout=self.settings.webhook_timeout + 1)
        await self.client.aclose()

    # -- fan-out ----------------------------------------------------------------------------

    async def fan_out(self, event: object) -> None:
        if not isinstance(event, MailboxEvent) or event.kind not in webhooks.WEBHOOK_EVENTS:
            return
        queued = await webhooks.enqueue_for_event(
            self.ctx.pool,
            event_id=event.id,
            kind=event.kind,
            username=event.username,
            domain=event.domain,
            body=event_body(event),
        )
        if queued:
            self.wake.set()

    # -- delivery ---------------------------------------------------------------------------

    async def delivery_loop(self) -> None:
        lease = self.settings.webhook_timeout + 10
        while not self.stopping:
            free = self.settings.webhook_concurrency - len(self.in_flight)
            due: list[webhooks.Delivery] = []
            if free > 0:
                try:
                    due = await webhooks.lease_due(self.ctx.pool, limit=free, lease_seconds=lease)
                except Exception:
                    log.exception("cannot read the webhook outbox; trying again")
            for delivery in due:
                task = asyncio.create_task(self._deliver_in_slot(delivery))
                self.in_flight.add(task)
                task.add_done_callback(self.in_flight.discard)
            if len(due) < max(free, 1):
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.settings.webhook_poll_interval)

    async def _deliver_in_slot(self, delivery: webhooks.Delivery) -> None:
        try:
            async with self.per_endpoint[delivery.webhook_id]:
                await self.deliver(delivery)
        except Exception:
            log.exception("webhook delivery %d failed unexpectedly", delivery.id)
        finally:
            self.wake.set()  # a slot is free: look for more due rows

    def retry_in(self, delivery: webhooks.Delivery) -> float | None:
        s = self.settings
        delay = min(s.webhook_retry_base * 2 ** (delivery.attempts - 1), s.webhook_retry_max)
        delay *= random.uniform(0.9, 1.1)
        age = (datetime.now(UTC) - delivery.created_at).total_seconds()
        return delay if age + delay <= s.webhook_retry_window else None

    async def deliver(self, delivery: webhooks.Delivery) -> None:
        pool = self.ctx.pool
        started = time.monotonic()
        try:
            destination = await resolve_destination(delivery.url, self.allowed)
        except DestinationRefused as exc:
            DELIVERIES.labels("refused").inc()
            await webhooks.record_failure(
                pool, delivery, status=None, error=f"refused: {exc}", duration_ms=0, retry_in=None
            )
            log.warning("webhook %d refused: %s", delivery.webhook_id, exc)
            return
        body = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            "Host": destination.host_header,
            "Idempotency-Key": str(delivery.event_id),
            "Sipum-Event": delivery.event_kind,
            "Sipum-Delivery": str(delivery.id),
            SIGNATURE_HEADER: sign(delivery.secret, int(time.time()), body),
        }
        extensions = {"sni_hostname": destination.host} if destination.scheme == "https" else {}
        status: int | None = None
        error: str | None = None
        try:
            request = self.client.build_request(
                "POST",
                destination.connect_url,
                content=body,
                headers=headers,
                extensions=extensions,
            )
            response = await self.client.send(request, stream=True)
            status = response.status_code
            await response.aclose()  # the body is not ours to read
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
        elapsed_ms = round((time.monotonic() - started) * 1000)
        if status is not None and 200 <= status < 300:
            DELIVERIES.labels("delivered").inc()
            await webhooks.record_success(pool, delivery, status, elapsed_ms)
            LATENCY.observe((datetime.now(UTC) - delivery.created_at).total_seconds())
            return
        retry_in = self.retry_in(delivery)
        state = await webhooks.record_failure(
            pool,
            delivery,
            status=status,
            error=error or f"HTTP {status}",
            duration_ms=elapsed_ms,
            retry_in=retry_in,
        )
        DELIVERIES.labels("dead" if state == "dead" else "retry").inc()
        log.info(
            "webhook %d attempt %d failed (%s); %s",
            delivery.webhook_id,
            delivery.attempts,
            error or f"HTTP {status}",
            "dead-lettered" if state == "dead" else f"retry in {retry_in:.1f} s",
        )
