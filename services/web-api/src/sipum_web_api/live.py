"""Live mailbox events for browsers and API clients: Server-Sent Events fed by JetStream.

One web-api process keeps **one** ordered JetStream consumer of ``<prefix>.evt.message.*``
(started when the first client connects) and fans each event out to the open streams of that
mailbox only: nobody sees another mailbox's events, nor another domain's. Each event goes out
with its JetStream stream sequence as the SSE ``id`` (WHATWG HTML, *Server-sent events*), so a
client that reconnects sends ``Last-Event-ID`` and gets what it missed, replayed from the stream
by a short-lived consumer starting after that sequence — at most ``REPLAY_LIMIT`` events or
``REPLAY_SECONDS``; beyond that it gets one ``reset`` event and reloads its list.

Bounded everywhere: a client's queue holds ``QUEUE_SIZE`` events; a client too slow to take
them is disconnected (it reconnects and replays), so it cannot hold memory or delay others. A
comment line every ``HEARTBEAT_SECONDS`` keeps proxies from closing an idle stream and lets a
dead client be noticed. A mailbox may have ``MAX_STREAMS_PER_MAILBOX`` streams open at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from nats.aio.msg import Msg
from nats.js import api
from pydantic import ValidationError
from sipum.events import EventBus, parse_event
from sipum.events.models import MailboxEvent

log = logging.getLogger("sipum.misc.live")
QUEUE_SIZE = 256
REPLAY_LIMIT = 1000
REPLAY_SECONDS = 5.0
HEARTBEAT_SECONDS = 15.0
MAX_STREAMS_PER_MAILBOX = 10


@dataclass(frozen=True, slots=True)
class LiveEvent:
    sequence: int
    kind: str
    data: str

    def frame(self) -> bytes:
        """One SSE message: ``id``, ``event`` and the JSON payload on one ``data`` line."""
        return f"id: {self.sequence}\nevent: {self.kind}\ndata: {self.data}\n\n".encode()


RESET = b"event: reset\ndata: {}\n\n"


class TooManyStreams(Exception):
    """The mailbox already has the maximum number of live streams open."""


@dataclass(eq=False)
class LiveStream:
    """One client's connection: a bounded queue the hub fills."""

    mailbox: str
    queue: asyncio.Queue[LiveEvent] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False


class LiveEvents:
    """The hub of one web-api process."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.streams: defaultdict[str, set[LiveStream]] = defaultdict(set)
        self.subject = bus.subjects.events_root + "message.*"
        self._subscription: object = None
        self._starting = asyncio.Lock()

    async def _ensure_started(self) -> None:
        async with self._starting:
            if self._subscription is None:
                self._subscription = await self.bus.js.subscribe(
                    self.subject,
                    cb=self._on_message,
                    ordered_consumer=True,
                    deliver_policy=api.DeliverPolicy.NEW,
                )

    async def close(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()  # type: ignore[attr-defined]
            self._subscription = None

    def _decode(self, msg: Msg) -> tuple[str, LiveEvent] | None:
        kind = self.bus.subjects.kind_of(msg.subject)
        if kind is None:
            return None
        try:
            event = parse_event(kind, msg.data)
        except (KeyError, ValidationError):
            return None
        if not isinstance(event, MailboxEvent):
            return None
        sequence = msg.metadata.sequence.stream
        return event.mailbox, LiveEvent(sequence, kind, msg.data.decode())

    async def _on_message(self, msg: Msg) -> None:
        decoded = self._decode(msg)
        if decoded is None:
            return
        mailbox, event = decoded
        for stream in list(self.streams.get(mailbox, ())):
            try:
                stream.queue.put_nowait(event)
            except asyncio.QueueFull:
                stream.overflowed = True  # its generator ends the response; the client resumes

    async def replay(self, mailbox: str, after: int) -> list[LiveEvent] | None:
        """The mailbox's events after stream sequence ``after``; None when more than the replay
        bound lies in between (the client should reload)."""
        found: list[LiveEvent] = []
        subscription = await self.bus.js.subscribe(
            self.subject,
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            config=api.ConsumerConfig(opt_start_seq=after + 1),
        )
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + REPLAY_SECONDS
            for _ in range(REPLAY_LIMIT):
                try:
                    msg = await subscription.next_msg(timeout=max(0.01, deadline - loop.time()))
                except TimeoutError:
                    # Nothing more (num_pending says so first, unless the stream is empty).
                    return found
                decoded = self._decode(msg)
                if decoded is not None and decoded[0] == mailbox:
                    found.append(decoded[1])
                if msg.metadata.num_pending == 0:
                    return found
            return None
        finally:
            await subscription.unsubscribe()

    async def open(self, mailbox: str) -> LiveStream:
        if len(self.streams.get(mailbox, ())) >= MAX_STREAMS_PER_MAILBOX:
            raise TooManyStreams(mailbox)
        await self._ensure_started()
        stream = LiveStream(mailbox)
        self.streams[mailbox].add(stream)
        return stream

    def close_stream(self, stream: LiveStream) -> None:
        streams = self.streams.get(stream.mailbox)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self.streams[stream.mailbox]

    async def frames(self, stream: LiveStream, last_event_id: int | None) -> AsyncIterator[bytes]:
        """What the response body of one client is: retry hint, replay, live events,
        heartbeats — until the client goes, or falls too far behind."""
        try:
            yield b"retry: 3000\n\n"
            sent = last_event_id or 0
            if last_event_id is not None:
                missed = await self.replay(stream.mailbox, last_event_id)
                if missed is None:
                    yield RESET
                else:
                    for event in missed:
                        sent = event.sequence
                        yield event.frame()
            while not stream.overflowed:
                try:
                    event = await asyncio.wait_for(stream.queue.get(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if event.sequence > sent:  # already sent by the replay
                    sent = event.sequence
                    yield event.frame()
        finally:
            self.close_stream(stream)
