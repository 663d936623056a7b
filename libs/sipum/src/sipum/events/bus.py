"""``EventBus``: the one publish/subscribe/RPC helper every service uses.

* Events go through JetStream (stream ``SIPUM`` by default): ``publish()`` waits for the
  stream's ack and sets ``Nats-Msg-Id`` to the event id so a retried publish is dropped as a
  duplicate. ``subscribe()`` binds a *durable* consumer with manual ack: the message is acked
  only after the handler returned; a handler that raises gets the message back after a delay
  (``retry_delays``) up to ``max_deliver`` times; a payload that cannot be decoded is
  terminated (a retry cannot fix it) and logged.
* RPC (``sipum.media.allocate``) is core NATS request/reply: ``serve()`` answers as a queue
  group, so one replica gets each request; ``request()`` raises ``NoResponders`` at once when
  nobody serves the subject and ``RequestTimeout`` when nobody answered in time. An error
  reply carries header ``Sipum-Error`` and an ``RpcError`` body and is raised as
  ``RemoteError`` on the caller's side.
* Live session commands are plain core NATS messages (no stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as CoreSubscription
from nats.js import api
from pydantic import BaseModel, ValidationError

from sipum.errors import ConfigError
from sipum.events.models import (
    EVENT_MODELS,
    SESSION_COMMAND_MODELS,
    Event,
    MediaAllocateReply,
    MediaAllocateRequest,
    RpcError,
    SessionCommand,
)
from sipum.events.subjects import (
    DEFAULT_PREFIX,
    DEFAULT_STREAM,
    MEDIA_RECORDER_QUEUE,
    Subjects,
    validate_stream_name,
    validate_token,
)

log = logging.getLogger("sipum.events")

E = TypeVar("E", bound=Event)
Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)
C = TypeVar("C", bound=SessionCommand)

MSG_ID_HEADER = "Nats-Msg-Id"
ERROR_HEADER = "Sipum-Error"

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (1.0, 5.0, 15.0, 60.0)


DEFAULT_SUBJECTS = Subjects()
DEFAULT_MAX_AGE = timedelta(days=14)
DEFAULT_DUPLICATE_WINDOW = timedelta(minutes=2)


def stream_config(
    stream: str = DEFAULT_STREAM,
    subjects: Subjects = DEFAULT_SUBJECTS,
    *,
    max_age: timedelta = DEFAULT_MAX_AGE,
    max_bytes: int = -1,
    duplicate_window: timedelta = DEFAULT_DUPLICATE_WINDOW,
) -> api.StreamConfig:
    """The stream that keeps every event: file storage, limits retention (events stay for
    ``max_age`` whether or not anyone consumed them, so the events command can replay them),
    old events discarded first, duplicates by ``Nats-Msg-Id`` dropped within the window."""
    return api.StreamConfig(
        name=validate_stream_name(stream),
        description="sipum domain events",
        subjects=[subjects.events],
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        discard=api.DiscardPolicy.OLD,
        max_age=max_age.total_seconds(),
        max_bytes=max_bytes,
        duplicate_window=duplicate_window.total_seconds(),
    )


class EventBusError(Exception):
    """Something went wrong talking to NATS."""


class NoResponders(EventBusError):
    """Nobody subscribes to the requested subject (e.g. no media-recorder is running)."""


class RequestTimeout(EventBusError):
    """A responder exists but did not answer within the timeout."""


class RemoteError(EventBusError):
    """The responder answered with an error (``code`` is one of ``RpcError``'s codes).

    Raise it from a ``serve()`` handler to choose the code the caller sees.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


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


def redact_url(url: str) -> str:
    """The URL (or comma-separated URLs) without passwords, fit for a log or error message."""
    if "," in url:
        return ",".join(redact_url(u.strip()) for u in url.split(","))
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


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
        self._sub: Any = None

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        if self.stopping or self._sub is None:
            return
        self.stopping = True
        try:
            await asyncio.wait_for(self._sub.drain(), timeout)
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
                if not self._sub._closed:
                    await self._sub.unsubscribe()


EventHandler = Callable[[E], Awaitable[None]]


class EventBus:
    """Connection to NATS plus the subject names of one prefix and the name of one stream."""

    def __init__(
        self,
        nc: NATS,
        *,
        prefix: str = DEFAULT_PREFIX,
        stream: str = DEFAULT_STREAM,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.subjects = Subjects(prefix)
        self.stream = validate_stream_name(stream)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    # -- connection ---------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        url: str = DEFAULT_NATS_URL,
        name: str = "sipum",
        *,
        prefix: str = DEFAULT_PREFIX,
        stream: str = DEFAULT_STREAM,
        connect_timeout: float = 2.0,
    ) -> EventBus:
        """Connect; an unreachable server raises ``ConfigError("nats_url", ...)`` at once.

        ``url`` may list several servers of a cluster, separated by commas.

        After the first connection succeeds, the client reconnects for ever on its own
        (publishes wait in its buffer meanwhile).
        """

        connected = False
        first_errors: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            if not connected:
                first_errors.append(exc)
            # Failures of the first connect end up in the ConfigError below; log them quietly.
            log.log(logging.WARNING if connected else logging.DEBUG, "nats error: %s", exc)

        bus: EventBus | None = None

        async def on_disconnected() -> None:
            if bus is None or not bus._closing:
                log.warning("nats disconnected from %s", redact_url(url))

        async def on_reconnected() -> None:
            log.info("nats reconnected to %s", redact_url(url))

        try:
            nc = await nats.connect(
                servers=[u.strip() for u in url.split(",") if u.strip()],
                name=name,
                connect_timeout=connect_timeout,
                allow_reconnect=False,  # for the *initial* connect only, see below
                max_reconnect_attempts=1,
                reconnect_time_wait=0.5,
                error_cb=on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
            )
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            cause = first_errors[-1] if first_errors else exc
            reason = str(cause) or type(cause).__name__
            raise ConfigError(
                "nats_url", f"cannot connect to NATS at {redact_url(url)}: {reason}"
            ) from exc
        # Initial connect fails fast above; from now on survive server restarts.
        nc.options["allow_reconnect"] = True
        nc.options["max_reconnect_attempts"] = -1
        nc.options["reconnect_time_wait"] = 2
        connected = True
        bus = cls(nc, prefix=prefix, stream=stream)
        return bus

    async def close(self, timeout: float = 5.0, *, drain: bool = True) -> None:  # noqa: ASYNC109
        """Let handlers in flight finish, drain subscriptions, flush publishes, disconnect.

        ``drain=False`` just flushes and disconnects (for readers that stop mid-stream and
        do not want the messages already buffered for them).
        """
        self._closing = True
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        if self.nc.is_closed:
            return
        if not drain:
            with contextlib.suppress(TimeoutError, nats.errors.Error):
                await self.nc.flush(timeout=max(1, int(timeout)))
            await self.nc.close()
            return
        try:
            await asyncio.wait_for(self.nc.drain(), timeout)
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("nats drain did not finish cleanly: %s", exc)
            await self.nc.close()

    @property
    def is_connected(self) -> bool:
        return bool(self.nc.is_connected)

    async def check(self) -> None:
        """Health: connected and the stream exists (raises ``EventBusError`` otherwise)."""
        if not self.nc.is_connected:
            raise EventBusError("not connected to NATS")
        try:
            await self.js.stream_info(self.stream)
        except nats.js.errors.NotFoundError as exc:
            raise EventBusError(f"stream {self.stream} does not exist") from exc
        except (TimeoutError, nats.errors.Error) as exc:
            raise EventBusError(f"JetStream does not answer: {exc}") from exc

    # -- stream -------------------------------------------------------------------------------

    def stream_config(
        self,
        *,
        max_age: timedelta = DEFAULT_MAX_AGE,
        max_bytes: int = -1,
        duplicate_window: timedelta = DEFAULT_DUPLICATE_WINDOW,
    ) -> api.StreamConfig:
        return stream_config(
            self.stream,
            self.subjects,
            max_age=max_age,
            max_bytes=max_bytes,
            duplicate_window=duplicate_window,
        )

    async def ensure_stream(
        self,
        *,
        max_age: timedelta = DEFAULT_MAX_AGE,
        max_bytes: int = -1,
        duplicate_window: timedelta = DEFAULT_DUPLICATE_WINDOW,
    ) -> api.StreamInfo:
        """Create the stream or bring its settings up to date; safe to call from every replica
        at every start, also concurrently."""
        config = self.stream_config(
            max_age=max_age, max_bytes=max_bytes, duplicate_window=duplicate_window
        )
        try:
            info = await self.js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            try:
                return await self.js.add_stream(config)
            except nats.js.errors.BadRequestError:
                # Another replica created it between our two calls; fall through to update.
                info = await self.js.stream_info(self.stream)
        current = info.config
        if (
            current.subjects == config.subjects
            and current.max_age == config.max_age
            and current.max_bytes == config.max_bytes
            and current.duplicate_window == config.duplicate_window
        ):
            return info
        log.info("updating stream %s settings", self.stream)
        return await self.js.update_stream(config)

    async def delete_stream(self) -> None:
        """Remove the stream and all its consumers (tests; never done by a service)."""
        try:
            await self.js.delete_stream(self.stream)
        except nats.js.errors.NotFoundError:
            pass

    # -- events -------------------------------------------------------------------------------

    async def publish(self, event: Event, *, timeout: float = 5.0) -> api.PubAck:  # noqa: ASYNC109
        """Store ``event`` in the stream; returns the ack (``duplicate`` is true when the same
        event id was already stored within the duplicate window)."""
        if not event.kind:
            raise TypeError(f"{type(event).__name__} is not a concrete event kind")
        subject = self.subjects.event(event.kind)
        try:
            return await self.js.publish(
                subject,
                event.to_json(),
                timeout=timeout,
                stream=self.stream,
                headers={MSG_ID_HEADER: str(event.id)},
            )
        except nats.js.errors.NoStreamResponseError as exc:
            raise EventBusError(
                f"no stream stores {subject} (does stream {self.stream} exist? "
                "ensure_stream() creates it)"
            ) from exc

    def _filter_subject(self, target: type[Event] | str) -> tuple[str, type[Event] | None]:
        if isinstance(target, str):
            if not target or target.startswith(".") or target.endswith("."):
                raise ValueError(f"bad event filter {target!r}")
            if target.startswith(self.subjects.events_root) or ".evt." in target:
                raise ValueError(
                    f"event filter {target!r} must be relative to "
                    f"{self.subjects.events_root!r}, e.g. 'message.*'"
                )
            return self.subjects.events_root + target, None
        if not target.kind:
            raise TypeError(f"{target.__name__} is not a concrete event kind")
        return self.subjects.event(target.kind), target

    async def subscribe(
        self,
        target: type[E] | str,
        handler: EventHandler[E],
        *,
        durable: str,
        queue: str | None = None,
        start: Literal["all", "new"] = "all",
        ack_wait: float = 30.0,
        max_deliver: int = 10,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        max_ack_pending: int = 1000,
        concurrency: int = 1,
    ) -> EventSubscription:
        """Deliver events to ``handler`` through the durable consumer ``durable``.

        ``target`` is a model class (``MessageCreated``) or a filter relative to
        ``<prefix>.evt.`` (``"message.*"``, ``">"``); with a filter, the handler gets whichever
        model matches each subject (events of kinds this code does not know are acked and
        skipped). Every replica of a service passes the same ``durable``; it doubles as the
        queue group (``queue`` defaults to it), so each event goes to one replica.
        ``start`` applies only when the consumer is created: ``"all"`` also delivers what the
        stream already holds, ``"new"`` only what arrives from now on.
        Delivery is at least once: handlers must be idempotent.

        While a handler runs, the message's ack deadline (``ack_wait``) is extended every
        ``ack_wait / 2`` seconds, so a slow handler is not raced by a redelivery. With
        ``concurrency > 1`` up to that many events are handled at once (order is then not
        kept). If the durable consumer exists with other ``ack_wait``, ``max_deliver`` or
        ``max_ack_pending``, it is updated to these; with another filter or queue group,
        ``EventBusError`` is raised (changing those needs a new durable name).
        """
        validate_token(durable, "durable name")
        queue = queue or durable
        validate_token(queue, "queue name")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        subject, model = self._filter_subject(target)
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
        await self._update_consumer_if_changed(durable, config)

        async def handle(msg: Msg) -> None:
            await self._handle_event(msg, model, handler, delays, ack_wait, max_deliver)

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
            for tasks in (self._tasks, subscription.tasks):
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            task.add_done_callback(lambda _: slots.release())

        subscription._sub = await self.js.subscribe(
            subject,
            queue=queue,
            durable=durable,
            stream=self.stream,
            cb=on_msg,
            manual_ack=True,
            config=config,
        )
        return subscription

    async def _update_consumer_if_changed(self, durable: str, config: api.ConsumerConfig) -> None:
        try:
            info = await self.js.consumer_info(self.stream, durable)
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
        log.info("updating consumer %s of stream %s: %s -> %s", durable, self.stream, have, wanted)
        updated = dataclasses.replace(
            current,
            ack_wait=config.ack_wait,
            max_deliver=config.max_deliver,
            max_ack_pending=config.max_ack_pending,
        )
        await self.js.add_consumer(self.stream, config=updated)

    async def _handle_event(
        self,
        msg: Msg,
        model: type[Event] | None,
        handler: EventHandler[Any],
        delays: tuple[float, ...],
        ack_wait: float,
        max_deliver: int,
    ) -> None:
        meta = msg.metadata
        kind = self.subjects.kind_of(msg.subject) or ""
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
        keepalive = asyncio.create_task(self._keep_in_progress(msg, ack_wait / 2))
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

    @staticmethod
    async def _keep_in_progress(msg: Msg, every: float) -> None:
        """Tell JetStream the message is still being worked on (resets its ack timer)."""
        while True:
            await asyncio.sleep(every)
            try:
                await msg.in_progress()
            except nats.errors.Error as exc:
                log.warning("could not extend the ack deadline: %s", exc)
                return

    # -- RPC ----------------------------------------------------------------------------------

    async def request(
        self,
        subject: str,
        request: BaseModel,
        reply_model: type[Rep],
        *,
        timeout: float = 2.0,  # noqa: ASYNC109 - passed on to the NATS request
    ) -> Rep:
        """Send ``request`` to one responder of ``subject`` and decode its reply."""
        try:
            msg = await self.nc.request(
                subject, request.model_dump_json().encode(), timeout=timeout
            )
        except nats.errors.NoRespondersError as exc:
            raise NoResponders(f"nobody serves {subject}") from exc
        except nats.errors.TimeoutError as exc:
            raise RequestTimeout(f"no reply on {subject} within {timeout:.1f}s") from exc
        if msg.headers and ERROR_HEADER in msg.headers:
            try:
                err = RpcError.model_validate_json(msg.data)
            except ValidationError:
                raise RemoteError(
                    msg.headers[ERROR_HEADER], msg.data.decode(errors="replace")
                ) from None
            raise RemoteError(err.code, err.message)
        try:
            return reply_model.model_validate_json(msg.data)
        except ValidationError as exc:
            raise EventBusError(
                f"reply on {subject} is not a {reply_model.__name__}: "
                f"{exc.error_count()} validation errors"
            ) from exc

    async def serve(
        self,
        subject: str,
        request_model: type[Req],
        handler: Callable[[Req], Awaitable[BaseModel]],
        *,
        queue: str,
    ) -> CoreSubscription:
        """Answer requests on ``subject`` as member of queue group ``queue``.

        Each request runs in its own task (a slow one does not hold up the next).
        """
        validate_token(queue, "queue name")

        async def on_msg(msg: Msg) -> None:
            task = asyncio.create_task(self._answer(msg, request_model, handler))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return await self.nc.subscribe(subject, queue=queue, cb=on_msg)

    async def _answer(
        self,
        msg: Msg,
        request_model: type[Req],
        handler: Callable[[Req], Awaitable[BaseModel]],
    ) -> None:
        if not msg.reply:
            log.warning("request on %s without a reply subject, ignored", msg.subject)
            return
        try:
            req = request_model.model_validate_json(msg.data)
            reply = await handler(req)
        except ValidationError as exc:
            await self._reply_error(msg, "bad_request", str(exc.errors(include_url=False)))
            return
        except RemoteError as exc:
            await self._reply_error(msg, exc.code, exc.message)
            return
        except Exception as exc:
            log.exception("handler for %s failed", msg.subject)
            await self._reply_error(msg, "internal", f"{type(exc).__name__}: {exc}")
            return
        await self.nc.publish(msg.reply, reply.model_dump_json().encode())

    async def _reply_error(self, msg: Msg, code: str, message: str) -> None:
        body = RpcError(code=code, message=message).model_dump_json().encode()
        await self.nc.publish(msg.reply, body, headers={ERROR_HEADER: code})

    # -- media ---------------------------------------------------------------------------------

    async def allocate_media(
        self,
        request: MediaAllocateRequest,
        *,
        timeout: float = 2.0,  # noqa: ASYNC109 - passed on to the NATS request
    ) -> MediaAllocateReply:
        """Ask one media-recorder replica for a session (``sipum.media.allocate``)."""
        return await self.request(
            self.subjects.media_allocate, request, MediaAllocateReply, timeout=timeout
        )

    async def serve_media_allocate(
        self,
        handler: Callable[[MediaAllocateRequest], Awaitable[MediaAllocateReply]],
        *,
        queue: str = MEDIA_RECORDER_QUEUE,
    ) -> CoreSubscription:
        return await self.serve(
            self.subjects.media_allocate, MediaAllocateRequest, handler, queue=queue
        )

    async def send_command(self, command: SessionCommand) -> None:
        """Publish a live-session command (fire and forget, core NATS)."""
        if not command.command:
            raise TypeError(f"{type(command).__name__} is not a concrete session command")
        await self.nc.publish(
            self.subjects.media_session(command.session_id, command.command),
            command.to_json(),
        )

    async def subscribe_session(
        self,
        session_id: str,
        handler: Callable[[SessionCommand], Awaitable[None]],
        *,
        commands: Iterable[str] | None = None,
    ) -> list[CoreSubscription]:
        """Receive commands for one session: all of them, or only ``commands`` (the recorder
        listens for ``hangup``/``dtmf``, the agent for ``ended``)."""
        if commands is None:
            subjects = [self.subjects.media_session_all(session_id)]
        else:
            subjects = [self.subjects.media_session(session_id, c) for c in commands]

        async def on_msg(msg: Msg) -> None:
            command = msg.subject.rsplit(".", 1)[-1]
            model = SESSION_COMMAND_MODELS.get(command)
            if model is None:
                log.info("ignoring unknown session command %r", command)
                return
            try:
                cmd = model.model_validate_json(msg.data)
            except ValidationError as exc:
                log.error("dropping undecodable %s: %s", msg.subject, exc)
                return
            try:
                await handler(cmd)
            except Exception:
                log.exception("session command handler failed for %s", msg.subject)

        return [await self.nc.subscribe(subject, cb=on_msg) for subject in subjects]
