"""The asyncio driver of one call's :class:`~.session.MediaSession`: sockets, loop time, futures.

Theory of operation
-------------------
Everything the call's media *does* is in the sans-I/O session; this layer only moves bytes and
time. After every input — a datagram, the timer, a command — it takes the session's events
(turning them into the service's callbacks and futures), sends its datagrams (RTP on the RTP
socket, RTCP, told apart by packet type, RFC 5761 §4, on the RTCP socket) and re-arms its one
``call_at`` timer at ``next_timer()`` when that is earlier than the armed one (a deadline that
moved later just lets the early timer fire and re-arm).

Receive path. The RTP socket is read by a reader callback on the loop (``loop.add_reader``), not
through an asyncio datagram transport: the transport asks the kernel for up to 256 KiB per
datagram, and an allocation that size is served by ``mmap``/``munmap`` on glibc, a dozen
microseconds per packet — more than the whole recording path. We ask for 64 KiB (the largest UDP
payload, so nothing is ever cut off), which the allocator serves from its heap. Once the
session has latched onto the caller's address (:class:`~.events.RtpSourceLatched`) the socket is
connected to it — the kernel then drops anybody else's datagrams (strict RTP) — and read with
``recv``, without building a source address per packet. The session only queues plain audio
packets; when its queue is full the endpoint goes on the loop's
:class:`~.drain.DrainScheduler`, which drains all full queues back to back after the round of
I/O callbacks. Any other packet is handled by the session at once and acted on at once.

RTCP arrives on its own socket through an ordinary ``DatagramProtocol`` (a few packets every
five seconds).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Unpack

from .codecs.base import CodecInfo
from .drain import drain_scheduler
from .dtmf import TelephoneEventReceiver
from .events import (
    Address,
    ChunkReady,
    DigitReceived,
    MediaEvent,
    PlaybackFinished,
    RecordingStopped,
    RtcpByeReceived,
    RtpSourceLatched,
)
from .playback import PlaybackItem, PlaybackSession, RtpSendStream
from .ports import PortPair, PortPool
from .receiver import RtpReceiver
from .recording import RecordingChunk, RecordingResult, RecordingSettings, RtpRecording
from .rtp import is_rtcp
from .session import MediaSession, SessionOptions

log = logging.getLogger("sipum.net.rtp")

MAX_DATAGRAM = 65536
"""Receive buffer per RTP datagram: every UDP payload fits (IPv4 at most 65,507 octets)."""


class _RtcpProtocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: RtpEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.endpoint._rtcp_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.endpoint.errors += 1


class RtpEndpoint:
    """One call's media on the loop: open with :meth:`open`, then :meth:`play`, :meth:`record`,
    :meth:`hangup`, :meth:`close`.

    ``on_digit(digit)`` is called once for every DTMF digit received (RFC 4733 or in-band) when
    it ends; barge-in and the recording's stop digit act already when the key goes down.
    ``on_event(event)`` sees every session event after the endpoint has acted on it.
    """

    def __init__(
        self,
        *,
        pool: PortPool,
        pair: PortPair,
        session: MediaSession,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        # The receive hot path's attributes first (few cache lines per packet).
        self._rtp_socket = pair.rtp_socket
        self._receive = session.receive_datagram
        self._peer: Address = ("", 0)  # the latched source, passed with each recv'd datagram
        # the loop's clock, without the Python frame BaseEventLoop.time() adds (it is
        # time.monotonic()); other loops (uvloop) keep their own.
        self._clock: Callable[[], float] = (
            time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time
        )
        self._drains = drain_scheduler(loop)
        self.session = session
        """The sans-I/O media session this endpoint drives."""
        self.pool = pool
        self.local_port = pair.rtp_port
        self.loop = loop
        self.errors = 0
        """Socket errors (ICMP unreachable and the like)."""
        self.send_drops = 0
        """RTP packets not sent because the socket's send buffer was full."""
        self.on_digit: Callable[[str], None] | None = None
        self.on_event: Callable[[MediaEvent], None] | None = None
        self._on_chunk: Callable[[RecordingChunk], None] | None = None
        self._recording_done: asyncio.Future[RecordingResult] | None = None
        self._playback_done: asyncio.Future[PlaybackSession] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._rtp_reading = False
        self._rtcp_transport: asyncio.DatagramTransport | None = None
        self._closed = False

    @classmethod
    async def open(
        cls,
        pool: PortPool,
        *,
        codec: CodecInfo,
        **options: Unpack[SessionOptions],
    ) -> RtpEndpoint:
        """Allocate a port pair and start receiving. ``options["remote"]`` is the address from
        the SDP offer (``c=`` and ``m=`` port), used until symmetric latching finds the real one."""
        loop = asyncio.get_running_loop()
        session = MediaSession(
            codec=codec,
            now=loop.time(),
            **options,
            wallclock_offset=time.time() - loop.time(),
        )
        pair = pool.allocate()
        endpoint = cls(pool=pool, pair=pair, session=session, loop=loop)
        try:
            rtcp_transport, _ = await loop.create_datagram_endpoint(
                lambda: _RtcpProtocol(endpoint), sock=pair.rtcp_socket
            )
            loop.add_reader(pair.rtp_socket.fileno(), endpoint._rtp_first_readable)
        except BaseException:
            pair.rtp_socket.close()
            pair.rtcp_socket.close()
            pool.release(pair.rtp_port)
            raise
        endpoint._rtp_reading = True
        endpoint._rtcp_transport = rtcp_transport
        endpoint._act()
        return endpoint

    # -- the session's state, for the service -------------------------------------------------

    @property
    def codec(self) -> CodecInfo:
        return self.session.codec

    @property
    def payload_type(self) -> int:
        return self.session.payload_type

    @property
    def telephone_event_pt(self) -> int | None:
        return self.session.telephone_event_pt

    @property
    def remote(self) -> Address | None:
        return self.session.remote

    @property
    def remote_rtcp(self) -> Address | None:
        return self.session.remote_rtcp

    @property
    def latched(self) -> bool:
        return self.session.latched

    @property
    def rtcp_latched(self) -> bool:
        return self.session.rtcp_latched

    @property
    def receiver(self) -> RtpReceiver:
        return self.session.receiver

    @property
    def dtmf(self) -> TelephoneEventReceiver:
        return self.session.dtmf

    @property
    def stream(self) -> RtpSendStream:
        return self.session.stream

    @property
    def recording(self) -> RtpRecording | None:
        return self.session.recording

    @property
    def playback(self) -> PlaybackSession | None:
        return self.session.playback

    @property
    def queued_packets(self) -> int:
        """Audio packets read from the socket and queued, not yet through the receiver."""
        return self.session.queued_packets

    @property
    def receiving(self) -> bool:
        """The RTP socket is open and read (until :meth:`close`)."""
        return self._rtp_reading

    # -- receiving ------------------------------------------------------------------------------

    def _rtp_first_readable(self) -> None:
        """The loop's reader callback until the caller's address is latched: one datagram per
        wake-up, as asyncio's transports do (a second read to find the socket empty would cost
        as much as the first)."""
        try:
            data, addr = self._rtp_socket.recvfrom(MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.errors += 1
            return
        if self._receive(data, addr, self._clock()):
            self._after_receive()

    def _rtp_readable(self) -> None:
        """The reader callback once latched: the socket is connected to the caller, so the
        kernel drops datagrams from anyone else and ``recv`` needs no source address."""
        try:
            data = self._rtp_socket.recv(MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            # e.g. ICMP port unreachable reported on the connected socket: the caller went away
            self.errors += 1
            return
        if self._receive(data, self._peer, self._clock()):
            self._after_receive()

    def _after_receive(self) -> None:
        if self.session.queued_packets:
            self._drains.schedule(self)  # a full queue: drained with the others'
        else:
            self._act()  # anything else was handled at once: act on it at once

    def process_queue(self) -> None:
        """Drain the session's queue and act on what came of it (the drain scheduler's call)."""
        self.session.drain_queue()
        self._act()

    def _rtcp_received(self, data: bytes, addr: Address) -> None:
        if self._closed:
            return
        self.session.receive_datagram(data, addr, self.loop.time())
        self._act()

    # -- acting on the session's output -----------------------------------------------------------

    def _act(self) -> None:
        """Events to callbacks and futures, datagrams to the sockets, the timer re-armed."""
        session = self.session
        while (event := session.next_event()) is not None:
            self._dispatch(event)
        outgoing = session.datagrams_to_send()
        if outgoing:
            self._transmit(outgoing)
        when = session.next_timer()
        if when is not None and when < self._timer_at:
            self._arm(when)

    def _dispatch(self, event: MediaEvent) -> None:
        if isinstance(event, ChunkReady):
            if self._on_chunk is not None:
                self._on_chunk(event.chunk)
        elif isinstance(event, DigitReceived):
            if self.on_digit is not None:
                self.on_digit(event.digit)
        elif isinstance(event, PlaybackFinished):
            playback_done, self._playback_done = self._playback_done, None
            if playback_done is not None and not playback_done.done():
                playback_done.set_result(event.playback)
        elif isinstance(event, RecordingStopped):
            recording_done, self._recording_done = self._recording_done, None
            self._on_chunk = None
            if recording_done is not None and not recording_done.done():
                recording_done.set_result(event.result)
        elif isinstance(event, RtpSourceLatched):
            self._latch(event.address)
        elif isinstance(event, RtcpByeReceived):
            log.debug("RTCP BYE from %s", event.sources, extra={"rtp_port": self.local_port})
        if self.on_event is not None:
            self.on_event(event)

    def _latch(self, addr: Address) -> None:
        """Take RTP only from *addr*: connecting the socket makes the kernel drop datagrams from
        any other source (what Asterisk calls strict RTP: nobody else can inject audio into the
        call once it is latched)."""
        if not self._rtp_reading:
            return
        try:
            self._rtp_socket.connect(addr)
        except OSError:
            return  # keep reading (and filtering nothing) with recvfrom
        self._peer = addr
        self.loop.add_reader(self._rtp_socket.fileno(), self._rtp_readable)

    def _transmit(self, datagrams: list[tuple[bytes, Address]]) -> None:
        sendto = self._rtp_socket.sendto
        for data, addr in datagrams:
            if is_rtcp(data):
                if self._rtcp_transport is not None:
                    self._rtcp_transport.sendto(data, addr)
                continue
            if not self._rtp_reading:
                continue
            try:
                sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                # send buffer full: a late RTP packet is worth no more than a lost one
                self.send_drops += 1
            except OSError:
                self.errors += 1

    def _arm(self, when: float) -> None:
        if self._closed:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        if self._closed:
            return
        self.session.handle_timer(self.loop.time())
        self._act()

    # -- what a service calls ------------------------------------------------------------------------

    def play(
        self, items: Sequence[PlaybackItem], *, barge_in: str = "", ptime: float = 0.02
    ) -> asyncio.Future[PlaybackSession]:
        """Start playing *items* (prompt paths, PCM, pauses) now; the future is the finished
        session (``interrupted_by`` says which digit cut it short, if any)."""
        self.session.play(items, now=self.loop.time(), barge_in=barge_in, ptime=ptime)
        done: asyncio.Future[PlaybackSession] = self.loop.create_future()
        self._playback_done = done
        self._act()
        return done

    def stop_playback(self) -> None:
        self.session.stop_playback()
        self._act()

    def record(
        self,
        settings: RecordingSettings | None = None,
        *,
        on_chunk: Callable[[RecordingChunk], None] | None = None,
    ) -> asyncio.Future[RecordingResult]:
        """Start recording now, until a stop condition (see :mod:`sipum_protocol.media.recording`);
        chunks go to *on_chunk* as they are made; the future is the result. :meth:`hangup` ends
        it from outside (BYE)."""
        session = self.session
        if session.recording is not None:
            raise RuntimeError("already recording")
        # the queue is drained before the recording starts: act on what came of it first
        session.drain_queue()
        self._act()
        session.record(settings, now=self.loop.time())
        self._on_chunk = on_chunk
        done: asyncio.Future[RecordingResult] = self.loop.create_future()
        self._recording_done = done
        self._act()
        return done

    def hangup(self) -> None:
        """The call ended: finish a running recording (keeping what was said) and playback."""
        self.session.hangup(now=self.loop.time())
        self._act()

    async def close(self) -> None:
        """Send RTCP BYE, stop everything, return the ports to the pool."""
        if self._closed:
            return
        self.session.close(now=self.loop.time())
        self._act()
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._rtp_reading:
            self._rtp_reading = False
            self.loop.remove_reader(self._rtp_socket.fileno())
        self._rtp_socket.close()
        if self._rtcp_transport is not None:
            self._rtcp_transport.close()
        self.pool.release(self.local_port)
        # let the transports finish closing (their sockets are released on the next loop turn)
        await asyncio.sleep(0)
