"""``EventBus``: the one object every service uses to publish, consume and call over NATS.

It holds the connection, the subject names of one prefix and the name of one stream, and
hands each job to the module that does it:

* ``sipum.events.connection`` — connecting (fail fast at start-up, reconnect for ever after);
* ``sipum.events.stream`` — the JetStream stream: its settings, ``ensure_stream()``, and
  ``publish()`` with ``Nats-Msg-Id`` so a retried publish is dropped as a duplicate;
* ``sipum.events.consumer`` — ``subscribe()``: durable consumers, at-least-once delivery,
  retries with delays, ``current_delivery()``;
* ``sipum.events.rpc`` — ``request()``/``serve()``: core NATS request/reply in a queue group
  (``sipum.media.allocate``), error replies as ``RemoteError``;
* ``sipum.events.session_control`` — ``send_command()``/``subscribe_session()``: live session
  commands, plain core NATS messages (no stream);
* ``publish_heartbeat()``/``subscribe_heartbeats()`` — media-recorder liveness, and
  ``publish_agent_heartbeat()``/``subscribe_agent_heartbeats()`` — registrar-agent liveness,
  core NATS (``sipum.events.liveness`` interprets both);
* ``sipum.events.errors`` — what all of them raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from typing import Literal, TypeVar

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as CoreSubscription
from nats.js import api
from pydantic import BaseModel, ValidationError

from sipum.events import consumer, rpc, session_control
from sipum.events import stream as event_stream
from sipum.events.connection import DEFAULT_NATS_URL, connect_nats
from sipum.events.consumer import DEFAULT_RETRY_DELAYS, EventHandler, EventSubscription
from sipum.events.errors import EventBusError
from sipum.events.models import (
    AgentHeartbeat,
    CallTransferReply,
    CallTransferRequest,
    Envelope,
    Event,
    MediaAllocateReply,
    MediaAllocateRequest,
    RecorderHeartbeat,
    SessionCommand,
)
from sipum.events.stream import DEFAULT_DUPLICATE_WINDOW, DEFAULT_MAX_AGE
from sipum.events.subjects import (
    DEFAULT_PREFIX,
    DEFAULT_STREAM,
    MEDIA_RECORDER_QUEUE,
    TRANSFER_QUEUE,
    Subjects,
    validate_stream_name,
)

log = logging.getLogger("sipum.events")

E = TypeVar("E", bound=Event)
Req = TypeVar("Req", bound=BaseModel)
H = TypeVar("H", bound=Envelope)
Rep = TypeVar("Rep", bound=BaseModel)


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
        # Handlers and RPC answers running in their own tasks; close() lets them finish.
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._reconnect_listeners: list[Callable[[], None]] = []
        self.reconnect_wait = 2.0
        """Seconds between the client's reconnect attempts (``connection``): after a server
        restart every client is back within about this long of the server."""

    def on_reconnect(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (no arguments, must not block) after every reconnection."""
        self._reconnect_listeners.append(listener)

    def _reconnected(self) -> None:
        for listener in list(self._reconnect_listeners):
            try:
                listener()
            except Exception:
                log.exception("reconnect listener failed")

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
        bus: EventBus | None = None
        nc = await connect_nats(
            url,
            name,
            connect_timeout=connect_timeout,
            closing=lambda: bus is not None and bus._closing,
            reconnected=lambda: bus._reconnected() if bus is not None else None,
        )
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
        await event_stream.check_stream(self.js, self.stream)

    # -- stream -------------------------------------------------------------------------------

    def stream_config(
        self,
        *,
        max_age: timedelta = DEFAULT_MAX_AGE,
        max_bytes: int = -1,
        duplicate_window: timedelta = DEFAULT_DUPLICATE_WINDOW,
        replicas: int = 1,
    ) -> api.StreamConfig:
        return event_stream.stream_config(
            self.stream,
            self.subjects,
            max_age=max_age,
            max_bytes=max_bytes,
            duplicate_window=duplicate_window,
            replicas=replicas,
        )

    async def ensure_stream(
        self,
        *,
        max_age: timedelta = DEFAULT_MAX_AGE,
        max_bytes: int = -1,
        duplicate_window: timedelta = DEFAULT_DUPLICATE_WINDOW,
        replicas: int = 1,
    ) -> api.StreamInfo:
        """Create the stream or bring its settings up to date; safe to call from every replica
        at every start, also concurrently."""
        config = self.stream_config(
            max_age=max_age,
            max_bytes=max_bytes,
            duplicate_window=duplicate_window,
            replicas=replicas,
        )
        return await event_stream.ensure_stream(self.js, config)

    async def delete_stream(self) -> None:
        """Remove the stream and all its consumers (tests; never done by a service)."""
        await event_stream.delete_stream(self.js, self.stream)

    # -- events -------------------------------------------------------------------------------

    async def publish(self, event: Event, *, timeout: float = 5.0) -> api.PubAck:  # noqa: ASYNC109
        """Store ``event`` in the stream; returns the ack (``duplicate`` is true when the same
        event id was already stored within the duplicate window)."""
        return await event_stream.store_event(
            self.js, self.subjects, self.stream, event, timeout=timeout
        )

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
        return await consumer.subscribe_durable(
            self.js,
            self.subjects,
            self.stream,
            target,
            handler,
            durable=durable,
            queue=queue,
            start=start,
            ack_wait=ack_wait,
            max_deliver=max_deliver,
            retry_delays=retry_delays,
            max_ack_pending=max_ack_pending,
            concurrency=concurrency,
            in_flight=self._tasks,
        )

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
        return await rpc.request(self.nc, subject, request, reply_model, timeout=timeout)

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
        return await rpc.serve(
            self.nc, subject, request_model, handler, queue=queue, in_flight=self._tasks
        )

    # -- media ---------------------------------------------------------------------------------

    async def allocate_media(
        self,
        request: MediaAllocateRequest,
        *,
        timeout: float = 2.0,  # noqa: ASYNC109 - passed on to the NATS request
        recorder_id: str | None = None,
    ) -> MediaAllocateReply:
        """Ask one media-recorder replica for a session (``sipum.media.allocate``: any replica
        of the queue group; with ``recorder_id``: that replica, ``media_allocate_at``)."""
        subject = (
            self.subjects.media_allocate
            if recorder_id is None
            else self.subjects.media_allocate_at(recorder_id)
        )
        return await self.request(subject, request, MediaAllocateReply, timeout=timeout)

    async def serve_media_allocate(
        self,
        handler: Callable[[MediaAllocateRequest], Awaitable[MediaAllocateReply]],
        *,
        queue: str = MEDIA_RECORDER_QUEUE,
        recorder_id: str | None = None,
    ) -> CoreSubscription:
        """The queue group's subject; with ``recorder_id``: this replica's own subject
        (``media_allocate_at``; a queue group of one)."""
        if recorder_id is not None:
            return await self.serve(
                self.subjects.media_allocate_at(recorder_id),
                MediaAllocateRequest,
                handler,
                queue=f"{queue}-{recorder_id.encode().hex()}",
            )
        return await self.serve(
            self.subjects.media_allocate, MediaAllocateRequest, handler, queue=queue
        )

    async def request_transfer(
        self,
        request: CallTransferRequest,
        *,
        timeout: float,  # noqa: ASYNC109 - passed on to the NATS request
    ) -> CallTransferReply:
        """Ask the agent holding the session's call to transfer it (``<p>.call.<id>.transfer``)."""
        return await self.request(
            self.subjects.call_transfer(request.session_id),
            request,
            CallTransferReply,
            timeout=timeout,
        )

    async def serve_transfer(
        self,
        session_id: str,
        handler: Callable[[CallTransferRequest], Awaitable[CallTransferReply]],
    ) -> CoreSubscription:
        """Answer transfer requests for one call (the agent that holds its dialog)."""
        return await self.serve(
            self.subjects.call_transfer(session_id),
            CallTransferRequest,
            handler,
            queue=TRANSFER_QUEUE,
        )

    async def send_command(self, command: SessionCommand) -> None:
        """Publish a live-session command (fire and forget, core NATS)."""
        await session_control.send_command(self.nc, self.subjects, command)

    async def subscribe_session(
        self,
        session_id: str,
        handler: Callable[[SessionCommand], Awaitable[None]],
        *,
        commands: Iterable[str] | None = None,
    ) -> list[CoreSubscription]:
        """Receive commands for one session: all of them, or only ``commands`` (the recorder
        listens for ``hangup``/``dtmf``, the agent for ``ended``)."""
        return await session_control.subscribe_session(
            self.nc, self.subjects, session_id, handler, commands=commands
        )

    # -- liveness --------------------------------------------------------------------------------

    async def publish_heartbeat(self, heartbeat: RecorderHeartbeat) -> None:
        """One media-recorder heartbeat (core NATS, fire and forget)."""
        await self.nc.publish(self.subjects.recorder_heartbeat, heartbeat.to_json())

    async def subscribe_heartbeats(
        self, handler: Callable[[RecorderHeartbeat], None]
    ) -> CoreSubscription:
        """Every replica's heartbeats; an undecodable one is logged and dropped. The handler
        runs in the subscription's callback and must not block."""
        return await self._subscribe_beats(
            self.subjects.recorder_heartbeat, RecorderHeartbeat, handler
        )

    async def publish_agent_heartbeat(self, heartbeat: AgentHeartbeat) -> None:
        """One registrar-agent heartbeat (core NATS, fire and forget)."""
        await self.nc.publish(self.subjects.agent_heartbeat, heartbeat.to_json())

    async def subscribe_agent_heartbeats(
        self, handler: Callable[[AgentHeartbeat], None]
    ) -> CoreSubscription:
        """Every registrar-agent's heartbeats (our own too), like :meth:`subscribe_heartbeats`."""
        return await self._subscribe_beats(self.subjects.agent_heartbeat, AgentHeartbeat, handler)

    async def _subscribe_beats(
        self, subject: str, model: type[H], handler: Callable[[H], None]
    ) -> CoreSubscription:
        async def on_msg(msg: Msg) -> None:
            try:
                heartbeat = model.model_validate_json(msg.data)
            except ValidationError as exc:
                log.error("dropping undecodable heartbeat: %s", exc)
                return
            try:
                handler(heartbeat)
            except Exception:
                log.exception("heartbeat handler failed")

        return await self.nc.subscribe(subject, cb=on_msg)
