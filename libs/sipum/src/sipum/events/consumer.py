"""Durable consumers: stored events delivered at least once to a handler.

The message is acked only after the handler returned. A handler that raises gets the event
back after a delay (``retry_delays``: 1 s, 5 s, 15 s, 60 s, …) up to ``max_deliver`` times; a
payload that does not validate is terminated at once, since no retry can fix it. While a
handler runs, the ack deadline is extended every ``ack_wait / 2`` so a slow handler is not
raced by a redelivery to another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from pydantic import ValidationError

from sipum.events.errors import EventBusError
from sipum.events.models import EVENT_MODELS, Event
from sipum.events.subjects import Subjects, validate_token

log = logging.getLogger("sipum.events")

E = TypeVar("E", bound=Event)

DEFAULT_RETRY_DELAYS: tuple[float, ...] = (1.0, 5.0, 15.0, 60.0)

EventHandler = Callable[[E], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where the event being handled came from; see ``current_delivery()``."""

    subject: str
    stream_seq: int
    num_delivered: int
    consumer: str


_current_delivery: contextvars.ContextVar[Delivery | None] = contextvars.ContextVar(
    "sipum_current_delivery", default=None
)


def current_delivery() -> Delivery:
    """Inside an event handler: the delivery being handled (e.g. ``num_delivered`` to know
    whether this is a retry)."""
    delivery = _current_delivery.get()
    if delivery is None:
        raise RuntimeError("current_delivery() is only available inside an event handler")
    return delivery


class EventSubscription:
    """A running durable subscription.

    ``stop()`` is the graceful end: no new events are taken, events already buffered for
    this process are handed back at once (nak, so another replica gets them now rather than
    after ``ack_wait``), and handlers in flight may finish within ``timeout``. The durable
    consumer stays on the server and keeps its position.
    """

    def __init__(self, consumer: str) -> None:
        self.consumer = consumer
        self.stopping = False
        self.tasks: set[asyncio.Task[None]] = set()
        self._sub: JetStreamContext.PushSubscription | None = None

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        if self.stopping or self._sub is None:
            return
        self.stopping = True
        sub = self._sub
        try:
            # nats-py leaves Subscription.drain() unannotated.
            await asyncio.wait_for(sub.drain(), timeout)  # type: ignore[no-untyped-call]
            if self.tasks:
                await asyncio.wait(set(self.tasks), timeout=timeout)
        except TimeoutError:
            log.warning("consumer %s: handlers still running after %.1fs", self.consumer, timeout)
        except nats.errors.Error as exc:
            log.warning("consumer %s: drain failed: %s", self.consumer, exc)
        finally:
            for task in self.tasks:
                task.cancel()
            with contextlib.suppress(nats.errors.Error):
                if not sub._closed:
                    await sub.unsubscribe()


def filter_subject(subjects: Subjects, target: type[Event] | str) -> tuple[str, type[Event] | None]:
    """The consumer's filter subject for a model class or a filter relative to
    ``<prefix>.evt.``, and the model when it is one class."""
    if isinstance(target, str):
        if not target or target.startswith(".") or target.endswith("."):
            raise ValueError(f"bad event filter {target!r}")
        if target.startswith(subjects.events_root) or ".evt." in target:
            raise ValueError(
                f"event filter {target!r} must be relative to "
                f"{subjects.events_root!r}, e.g. 'message.*'"
            )
        return subjects.events_root + target, None
    if not target.kind:
        raise TypeError(f"{target.__name__} is not a concrete event kind")
    return subjects.event(target.kind), target


async def subscribe_durable(
    js: JetStreamContext,
    subjects: Subjects,
    stream: str,
    target: type[E] | str,
    handler: EventHandler[E],
    *,
    durable: str,
    queue: str | None,
    start: Literal["all", "new"],
    ack_wait: float,
    max_deliver: int,
    retry_delays: Sequence[float],
    max_ack_pending: int,
    concurrency: int,
    in_flight: set[asyncio.Task[None]],
) -> EventSubscription:
    """Bind (creating or updating) the durable consumer and deliver its events to
    ``handler``; see ``EventBus.subscribe``. Handler tasks run with ``concurrency > 1`` are
    also added to ``in_flight`` (the bus waits for them when it closes)."""
    validate_token(durable, "durable name")
    queue = queue or durable
    validate_token(queue, "queue name")
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    subject, model = filter_subject(subjects, target)
    delays = tuple(retry_delays) or (1.0,)
    config = api.ConsumerConfig(
        durable_name=durable,
        deliver_group=queue,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=max_deliver,
        max_ack_pending=max_ack_pending,
        deliver_policy=api.DeliverPolicy.ALL if start == "all" else api.DeliverPolicy.NEW,
        filter_subject=subject,
    )
    await update_consumer_if_changed(js, stream, durable, config)

    async def handle(msg: Msg) -> None:
        await handle_event(msg, subjects, model, handler, delays, ack_wait, max_deliver)

    slots = asyncio.Semaphore(concurrency)
    subscription = EventSubscription(durable)

    async def on_msg(msg: Msg) -> None:
        if subscription.stopping:
            await msg.nak()  # hand it back now: another replica takes it
            return
        if concurrency == 1:
            await handle(msg)
            return
        await slots.acquire()
        task = asyncio.create_task(handle(msg))
        for tasks in (in_flight, subscription.tasks):
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        task.add_done_callback(lambda _: slots.release())

    subscription._sub = await js.subscribe(
        subject,
        queue=queue,
        durable=durable,
        stream=stream,
        cb=on_msg,
        manual_ack=True,
        config=config,
    )
    return subscription


async def update_consumer_if_changed(
    js: JetStreamContext, stream: str, durable: str, config: api.ConsumerConfig
) -> None:
    """Bring an existing consumer's delivery limits up to ``config``; refuse a change of
    filter or queue group (those need a new durable name)."""
    try:
        info = await js.consumer_info(stream, durable)
    except nats.js.errors.NotFoundError:
        return  # js.subscribe() creates it
    current = info.config
    if current.deliver_group != config.deliver_group:
        raise EventBusError(
            f"consumer {durable} exists with queue group {current.deliver_group!r}, "
            f"not {config.deliver_group!r}; delete it to change the group"
        )
    if current.filter_subject != config.filter_subject:
        # NATS 2.9 accepts a new filter on a push consumer but then stops delivering;
        # recreating would lose (or replay) its position. Make it an explicit decision.
        raise EventBusError(
            f"consumer {durable} exists with filter {current.filter_subject!r}, not "
            f"{config.filter_subject!r}; use another durable name or delete the consumer"
        )
    wanted = (config.ack_wait, config.max_deliver, config.max_ack_pending)
    have = (current.ack_wait, current.max_deliver, current.max_ack_pending)
    if wanted == have:
        return
    log.info("updating consumer %s of stream %s: %s -> %s", durable, stream, have, wanted)
    updated = dataclasses.replace(
        current,
        ack_wait=config.ack_wait,
        max_deliver=config.max_deliver,
        max_ack_pending=config.max_ack_pending,
    )
    await js.add_consumer(stream, config=updated)


async def handle_event(
    msg: Msg,
    subjects: Subjects,
    model: type[Event] | None,
    handler: EventHandler[Any],
    delays: tuple[float, ...],
    ack_wait: float,
    max_deliver: int,
) -> None:
    """Decode one delivery, run the handler, and ack, nak with a delay, or terminate."""
    meta = msg.metadata
    kind = subjects.kind_of(msg.subject) or ""
    cls = model or EVENT_MODELS.get(kind)
    if cls is None:
        log.info("skipping event of unknown kind %r (seq %s)", kind, meta.sequence.stream)
        await msg.ack()
        return
    try:
        event = cls.model_validate_json(msg.data)
    except ValidationError as exc:
        log.error(
            "dropping undecodable %s (seq %s): %s",
            msg.subject,
            meta.sequence.stream,
            exc.errors(include_url=False),
        )
        await msg.term()
        return
    delivery = Delivery(
        subject=msg.subject,
        stream_seq=meta.sequence.stream,
        num_delivered=meta.num_delivered,
        consumer=meta.consumer,
    )
    token = _current_delivery.set(delivery)
    keepalive = asyncio.create_task(keep_in_progress(msg, ack_wait / 2))
    try:
        await handler(event)
    except asyncio.CancelledError:
        raise
    except Exception:
        if max_deliver > 0 and meta.num_delivered >= max_deliver:
            log.exception(
                "handler failed for %s id=%s on delivery %d of %d; giving up",
                msg.subject,
                event.id,
                meta.num_delivered,
                max_deliver,
            )
            await msg.term()
            return
        delay = delays[min(meta.num_delivered, len(delays)) - 1]
        log.exception(
            "handler failed for %s id=%s (delivery %d); retrying in %.1fs",
            msg.subject,
            event.id,
            meta.num_delivered,
            delay,
        )
        await msg.nak(delay=delay)
        return
    finally:
        keepalive.cancel()
        _current_delivery.reset(token)
    await msg.ack()


async def keep_in_progress(msg: Msg, every: float) -> None:
    """Tell JetStream the message is still being worked on (resets its ack timer)."""
    while True:
        await asyncio.sleep(every)
        try:
            await msg.in_progress()
        except nats.errors.Error as exc:
            log.warning("could not extend the ack deadline: %s", exc)
            return
