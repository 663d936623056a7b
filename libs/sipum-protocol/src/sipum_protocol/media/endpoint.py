"""asyncio RTP/RTCP endpoint of one call: port pool, symmetric RTP, record and play.

Theory of operation
-------------------
:class:`PortPool` hands out RTP ports from a configured range: always an even port for RTP with
RTCP on the next odd one (RFC 3550 §11), both bound before the port is handed out, so a port that
some other process holds is skipped rather than failing a call. Ports are handed out round-robin
(a port freed a moment ago is the last to be reused, so stray packets of an old call do not land
in a new one). When every pair is taken, :class:`PortPoolExhausted` says so.

:class:`RtpEndpoint` is the thin asyncio layer over the sans-I/O cores:
``sipum_protocol.media.receiver.RtpReceiver`` (validation, jitter buffer, RFC 3550 statistics),
``sipum_protocol.media.dtmf`` (RFC 4733 telephone-events), :class:`~sipum_protocol.media.recording.RtpRecording`
and :class:`~sipum_protocol.media.playback.PlaybackSession`.

Receive path, kept minimal because it runs 50 times a second per call. The RTP socket is read
by a reader callback on the loop (``loop.add_reader``), not through an asyncio datagram
transport: the transport asks the kernel for up to 256 KiB per datagram, and an allocation that
size is served by ``mmap``/``munmap`` on glibc, a dozen microseconds per packet — more than the
whole recording path. We ask for 64 KiB (the largest UDP payload, so nothing is ever cut off),
which the allocator serves from its heap. Once the caller's address is latched (below) the
socket is connected to it and read with ``recv``, without building a source address per packet.
``_rtp_readable`` takes the loop time and looks at the 12-octet header: an audio packet with a plain header after latching (nearly every packet) is
only queued with its arrival time. Every ``INBOX_BATCH`` packets, and before anything else is
handled (a timer, another kind of packet, a hang-up), the queue is drained:
``RtpReceiver.accept_run`` accounts the run of in-order packets of the current source in one
tight loop and the run goes to the recording as it is (``RtpRecording.datagrams`` keeps the
datagrams and decodes a whole batch at once). Anything else — the first packet (it latches the
remote address), reordered, lost or duplicated packets, a new SSRC, telephone-events — goes
through the full receiver (``RtpPacket`` parse, jitter buffer) and each released packet to the
recording (audio) or the DTMF receiver (telephone-event). Nothing else: no timer is re-armed per packet — one ``call_at`` handle per
endpoint fires at the earliest deadline (jitter buffer, recording flush/silence, playback pacing,
RTCP) and re-arms itself; a deadline that moved later in the meantime just re-arms it.

Symmetric RTP (RFC 4961; the usual NAT traversal for SIP): we send to the address the SDP offer
gave until the first valid RTP packet of the negotiated payload types arrives, then to the
address that packet came from — and from then on take RTP only from there: the socket is
connected to that address, so the kernel drops anybody else's datagrams (strict RTP). RTCP latches the same way on its own socket (before that it goes
to the SDP's RTCP address, by default the RTP port + 1).

RTCP (RFC 3550 §6): a compound SR (while we send) or RR, plus SDES CNAME, every ~5 s (randomised
0.5–1.5×, §6.3.1); SR + SDES + BYE when the endpoint closes (§6.3.7).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import random
import socket
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .codecs import create_decoder, create_encoder
from .codecs.base import CodecInfo
from .codecs.comfort_noise import CN_INFO
from .dtmf import InbandDtmfDetector, TelephoneEventReceiver
from .playback import PlaybackItem, PlaybackSession, RtpSendStream
from .receiver import RtpReceiver
from .recording import RecordingChunk, RecordingResult, RecordingSettings, RtpRecording
from .rtcp import RtcpBye, RtcpPacket, RtcpReceiverReport, RtcpSdes, serialise_compound
from .rtp import RTP_HEADER, RtpPacket

Address = tuple[str, int]

log = logging.getLogger("sipum.net.rtp")

INBOX_BATCH = 50
"""Audio packets queued per endpoint before they are processed together (≤ 1 s at 20 ms ptime,
the recording's decode batch; every timer, digit and other packet processes the queue first)."""

INBAND_BATCH = 5
"""The queue's size for a call without telephone-event, whose digits are detected in the
audio (100 ms at 20 ms ptime: a key press still acts at once)."""

MAX_DATAGRAM = 65536
"""Receive buffer per RTP datagram: every UDP payload fits (IPv4 at most 65,507 octets)."""

RTCP_INTERVAL = 5.0
"""Mean seconds between RTCP reports (RFC 3550 §6.2 minimum)."""


CN_PAYLOAD_TYPE = CN_INFO.payload_type  # RFC 3389 comfort noise, static PT 13


class _DrainScheduler:
    """Drains the full queues of a loop's endpoints one after another, after the loop's
    current round of I/O callbacks: the batch code then runs warm in the CPU's caches for all
    of them instead of cold for each one between two socket reads (measured with
    bench/rtp_receive_cost.py)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: list[RtpEndpoint] = []

    def schedule(self, endpoint: RtpEndpoint) -> None:
        if not self._due:
            self._loop.call_soon(self._run)
        self._due.append(endpoint)

    def _run(self) -> None:
        due, self._due = self._due, []
        for endpoint in due:
            try:
                endpoint._drain_inbox()
            except Exception:
                # one call's failure must not leave the others' queues undrained
                log.exception("RTP receive failed", extra={"rtp_port": endpoint.local_port})


_drain_schedulers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _DrainScheduler] = (
    weakref.WeakKeyDictionary()
)


def _drain_scheduler(loop: asyncio.AbstractEventLoop) -> _DrainScheduler:
    scheduler = _drain_schedulers.get(loop)
    if scheduler is None:
        scheduler = _drain_schedulers[loop] = _DrainScheduler(loop)
    return scheduler


TIMER_GRID = 0.25
"""Timers that need no precision (RTCP, the recording's flush and silence checks) fire on this
grid of loop time, so the endpoints' timers that fall due together run back to back."""


class PortPoolExhausted(RuntimeError):
    """Every RTP port pair of the pool is in use."""


@dataclass(frozen=True, slots=True)
class PortPair:
    rtp_port: int
    rtp_socket: socket.socket
    rtcp_socket: socket.socket

    @property
    def rtcp_port(self) -> int:
        return self.rtp_port + 1


class PortPool:
    """Even RTP ports (RTCP = RTP + 1) from ``[first, last]`` on *host*."""

    def __init__(self, first: int, last: int, *, host: str = "0.0.0.0") -> None:
        first += first % 2  # RTP on even ports (RFC 3550 §11)
        if not 1024 <= first < last <= 65535:
            raise ValueError(f"RTP port range {first}-{last} is not a range of high ports")
        self.host = host
        self.first = first
        self.last = last
        self._ports = list(range(first, last, 2))  # `last` itself can only be an RTCP port
        self._in_use: set[int] = set()
        self._cursor = 0

    @property
    def capacity(self) -> int:
        return len(self._ports)

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def allocate(self) -> PortPair:
        """Bind the next free pair; :class:`PortPoolExhausted` when none is left."""
        for _ in range(len(self._ports)):
            port = self._ports[self._cursor]
            self._cursor = (self._cursor + 1) % len(self._ports)
            if port in self._in_use:
                continue
            pair = self._bind(port)
            if pair is not None:
                self._in_use.add(port)
                return pair
        raise PortPoolExhausted(
            f"no free RTP port pair in {self.first}-{self.last} on {self.host} "
            f"({len(self._in_use)} of {len(self._ports)} in use by us)"
        )

    def _bind(self, port: int) -> PortPair | None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        rtp = socket.socket(family, socket.SOCK_DGRAM)
        rtcp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            rtp.bind((self.host, port))
            rtcp.bind((self.host, port + 1))
        except OSError:
            # held by another process: skip it
            rtp.close()
            rtcp.close()
            return None
        for s in (rtp, rtcp):
            s.setblocking(False)
        return PortPair(port, rtp, rtcp)

    def release(self, port: int) -> None:
        self._in_use.discard(port)


class _RtcpProtocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: RtpEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.endpoint._rtcp_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.endpoint.errors += 1


class RtpEndpoint:
    """One call's media: open with :meth:`open`, then :meth:`play`, :meth:`record`, :meth:`close`.

    ``on_digit(digit)`` is called once for every DTMF digit received (RFC 4733) when it ends;
    barge-in and the recording's stop digit act already when the key goes down.
    """

    def __init__(
        self,
        *,
        pool: PortPool,
        pair: PortPair,
        codec: CodecInfo,
        payload_type: int | None,
        telephone_event_pt: int | None,
        remote: Address | None,
        remote_rtcp: Address | None,
        cname: str,
        loop: asyncio.AbstractEventLoop,
        rtcp_interval: float = RTCP_INTERVAL,
    ) -> None:
        # The receive hot path's attributes first: adjacent in the instance's values, so a
        # packet touches few cache lines of an endpoint that has gone cold since its last one.
        self._rtp_socket = pair.rtp_socket
        # the loop's clock, without the Python frame BaseEventLoop.time() adds (it is
        # time.monotonic()); other loops (uvloop) keep their own.
        self._clock: Callable[[], float] = (
            time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time
        )
        # queued audio datagrams, end to end, all `_fast_size` octets, and their arrival times
        self._fast_size = -1  # size of the caller's plain audio packets (learnt from them)
        self._audio_pt = codec.payload_type if payload_type is None else payload_type
        self._inbox = bytearray()
        self._inbox_times: list[float] = []
        # In-band digits (no telephone-event) are found in the audio, so it must not wait long
        # in the queue: a key press acts within INBAND_BATCH packets.
        self._inbox_base = INBOX_BATCH if telephone_event_pt is not None else INBAND_BATCH
        self._inbox_limit = self._inbox_base
        self._drains = _drain_scheduler(loop)
        self.pool = pool
        self.local_port = pair.rtp_port
        self.codec = codec
        self.payload_type = codec.payload_type if payload_type is None else payload_type
        self.telephone_event_pt = telephone_event_pt
        self.remote = remote
        self.remote_rtcp = remote_rtcp or (remote and (remote[0], remote[1] + 1))
        self.latched = False
        self.rtcp_latched = False
        self.cname = cname
        self.loop = loop
        self.errors = 0
        self.on_digit: Callable[[str], None] | None = None
        self.receiver = RtpReceiver(clock_rate=codec.clock_rate, ssrc=random.getrandbits(32))
        self.dtmf = TelephoneEventReceiver(clock_rate=codec.clock_rate)
        # Without telephone-event the digits are in the audio: decode it for the Goertzel
        # detector too (its own decoder: G.722's has state).
        self._inband: InbandDtmfDetector | None = None
        if telephone_event_pt is None and codec.sample_rate in (8000, 16000):
            self._inband = InbandDtmfDetector(sample_rate=codec.sample_rate)
            self._inband_decoder = create_decoder(codec.name)
        self._inband_ssrc = -1
        self._inband_origin = 0  # RTP timestamp of the detector's first sample
        self._inband_seconds = 0.0  # audio fed to the detector so far
        self._pressed_ts: int | None = None
        self.stream = RtpSendStream(payload_type=self.payload_type, clock_rate=codec.clock_rate)
        self._encoder = create_encoder(codec.name)
        self.recording: RtpRecording | None = None
        self._recording_done: asyncio.Future[RecordingResult] | None = None
        self._on_chunk: Callable[[RecordingChunk], None] | None = None
        self.playback: PlaybackSession | None = None
        self._playback_done: asyncio.Future[PlaybackSession] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self.rtcp_interval = rtcp_interval
        self._next_rtcp = loop.time() + rtcp_interval * random.uniform(0.5, 1.5)
        self._sent_since_report = False
        self._rtp_reading = False
        self.send_drops = 0
        """RTP packets not sent because the socket's send buffer was full."""
        self._rtcp_transport: asyncio.DatagramTransport | None = None
        self._closed = False
        self._accepted_pts = {self.payload_type, CN_PAYLOAD_TYPE}
        if telephone_event_pt is not None:
            self._accepted_pts.add(telephone_event_pt)
        self._te_pt = telephone_event_pt

    @classmethod
    async def open(
        cls,
        pool: PortPool,
        *,
        codec: CodecInfo,
        payload_type: int | None = None,
        telephone_event_pt: int | None = 101,
        remote: Address | None = None,
        remote_rtcp: Address | None = None,
        cname: str = "sipum",
        rtcp_interval: float = RTCP_INTERVAL,
    ) -> RtpEndpoint:
        """Allocate a port pair and start receiving. *remote* is the address from the SDP offer
        (``c=`` and ``m=`` port), used until symmetric latching finds the real one."""
        loop = asyncio.get_running_loop()
        pair = pool.allocate()
        endpoint = cls(
            pool=pool,
            pair=pair,
            codec=codec,
            payload_type=payload_type,
            telephone_event_pt=telephone_event_pt,
            remote=remote,
            remote_rtcp=remote_rtcp,
            cname=cname,
            loop=loop,
            rtcp_interval=rtcp_interval,
        )
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
        endpoint._arm(endpoint._next_rtcp)
        return endpoint

    @property
    def queued_packets(self) -> int:
        """Audio packets read from the socket and queued, not yet through the receiver."""
        return len(self._inbox_times)

    @property
    def receiving(self) -> bool:
        """The RTP socket is open and read (until :meth:`close`)."""
        return self._rtp_reading

    # -- receive path ---------------------------------------------------------------------------

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
        self._rtp_received(data, addr, self._clock())

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
        now = self._clock()
        # Hot path: an audio packet of the usual size with a plain 12-octet header (no CSRC,
        # extension, padding) is only copied to the end of the queue, its arrival time noted;
        # _drain_inbox handles a batch of them in one tight loop, which costs far less per
        # packet than a pass through the whole receive chain for each datagram. Copying (not
        # keeping the bytes object) frees each datagram while it is still in the CPU's cache,
        # and the queue is one contiguous block the batch code reads in order.
        if len(data) == self._fast_size and data[0] == 0x80 and data[1] & 0x7F == self._audio_pt:
            self._inbox += data
            times = self._inbox_times
            times.append(now)
            if len(times) == self._inbox_limit:
                self._drains.schedule(self)
            return
        assert self.remote is not None
        self._rtp_received(data, self.remote, now)

    def _rtp_received(self, data: bytes, addr: Address, now: float) -> None:
        """Anything but a queued audio packet: handled at once, after what is queued (digits
        must see the audio that came before them)."""
        self._drain_inbox()
        if not self.latched:
            # Latch only onto something that is RTP of a negotiated payload type, so a stray
            # datagram cannot divert the call's audio (RFC 4961 §3 / the usual SBC practice).
            if len(data) < 12 or data[0] >> 6 != 2 or (data[1] & 0x7F) not in self._accepted_pts:
                return
            self._latch(addr)
        if len(data) > 12 and data[0] == 0x80 and data[1] & 0x7F == self._audio_pt:
            # the caller's plain audio packets are this size now (a ptime change costs one
            # packet on this path)
            self._fast_size = len(data)
        for packet in self.receiver.receive(data, now):
            self._deliver(packet, now)
        deadline = self.receiver.next_timer()
        if deadline is not None and deadline < self._timer_at:
            self._arm(deadline)

    def _latch(self, addr: Address) -> None:
        """Symmetric RTP: from now on send to *addr* and take RTP only from it. Connecting the
        socket makes the kernel drop datagrams from any other source (what Asterisk calls
        strict RTP: nobody else can inject audio into the call once it is latched)."""
        self.remote = addr
        self.latched = True
        try:
            self._rtp_socket.connect(addr)
        except OSError:
            return  # keep reading (and filtering nothing) with recvfrom
        if self._rtp_reading:
            self.loop.add_reader(self._rtp_socket.fileno(), self._rtp_readable)

    def _drain_inbox(self) -> None:
        times = self._inbox_times
        if not times:
            return
        block, size = self._inbox, self._fast_size
        self._inbox = bytearray()
        self._inbox_times = []
        receiver = self.receiver
        count = len(times)
        i = 0
        while i < count:
            # the run of in-order packets of the current source: accounted without RtpPackets
            end = receiver.accept_run(block, size, times, i)
            if end > i:
                run = block if end - i == count else block[i * size : end * size]
                recording = self.recording
                if recording is not None and recording.datagrams(run, size, now=times[end - 1]):
                    self._recording_finished()
                if self._inband is not None:
                    # after the recording has the run: a digit found in it cuts the message
                    # where its tone began
                    for k in range(i, end):
                        _, _, _, ts, ssrc = RTP_HEADER.unpack_from(block, k * size)
                        payload = bytes(block[k * size + 12 : (k + 1) * size])
                        self._inband_audio(ssrc, ts, payload, times[k])
            if end < count:
                data = bytes(block[end * size : (end + 1) * size])
                for packet in receiver.receive(data, times[end]):
                    self._deliver(packet, times[end])
            i = end + 1
        deadline = receiver.next_timer()
        if deadline is not None and deadline < self._timer_at:
            self._arm(deadline)

    def _deliver(self, packet: RtpPacket, now: float) -> None:
        pt = packet.payload_type
        if pt == self._audio_pt:
            recording = self.recording
            if recording is not None and recording.packet(
                packet.ssrc, packet.timestamp, packet.payload, now=now
            ):
                self._recording_finished()
            if self._inband is not None:
                self._inband_audio(packet.ssrc, packet.timestamp, packet.payload, now)
        elif pt == self._te_pt:
            ended = self.dtmf.receive(packet, now)
            pressed = self.dtmf.active
            if pressed is not None and packet.timestamp != self._pressed_ts:
                # Act on the key going down (the event's first packet), not on its end:
                # barge-in feels instant and the recording is cut where the tone began.
                self._pressed_ts = packet.timestamp
                self._key_down(pressed, packet.ssrc, packet.timestamp, now)
            for digit in ended:
                if digit.timestamp != self._pressed_ts:
                    # its first packets were lost: only now do we learn of it
                    self._key_down(digit.digit, packet.ssrc, digit.timestamp, now)
                if self.on_digit is not None:
                    self.on_digit(digit.digit)
            deadline = self.dtmf.next_timer()
            if deadline is not None and deadline < self._timer_at:
                self._arm(deadline)
        elif pt == CN_PAYLOAD_TYPE:
            if self.recording is not None:
                self.recording.comfort_noise(packet.ssrc, packet.timestamp, packet.payload, now=now)
        # anything else (unknown types) leaves a gap the recording fills with silence

    def _inband_audio(self, ssrc: int, timestamp: int, payload: bytes, now: float) -> None:
        """Feed in-order audio to the in-band detector; act on the digits it confirms."""
        assert self._inband is not None
        pcm = self._inband_decoder.decode(payload)
        clock = self.codec.clock_rate
        if ssrc != self._inband_ssrc:
            # map detector time to this source's RTP clock (gaps are ignored: the detector
            # hears the audio back to back)
            self._inband_ssrc = ssrc
            self._inband_origin = timestamp - round(self._inband_seconds * clock)
        self._inband_seconds += len(pcm) / self.codec.sample_rate
        for found in self._inband.process(pcm):
            start_ts = (self._inband_origin + round(found.start * clock)) & 0xFFFFFFFF
            self._key_down(found.digit, ssrc, start_ts, now)
            if self.on_digit is not None:
                self.on_digit(found.digit)

    def _key_down(self, digit: str, ssrc: int, timestamp: int, now: float) -> None:
        playback = self.playback
        if playback is not None and playback.interrupt(digit):
            self._playback_finished()
        recording = self.recording
        if recording is not None and recording.dtmf(digit, now=now, ssrc=ssrc, timestamp=timestamp):
            self._recording_finished()

    def _rtcp_received(self, data: bytes, addr: Address) -> None:
        packets = self.receiver.receive_rtcp(data, self.loop.time())
        if packets and not self.rtcp_latched:
            self.remote_rtcp = addr
            self.rtcp_latched = True

    # -- timers ---------------------------------------------------------------------------------

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
        self._drain_inbox()
        now = self.loop.time()
        for packet in self.receiver.poll(now):
            self._deliver(packet, now)
        for digit in self.dtmf.poll(now):
            # a digit whose end packets were all lost (its start was acted on already)
            if self.on_digit is not None:
                self.on_digit(digit.digit)
        # precise deadlines: playback pacing, jitter-buffer waits, digit ends; lazy ones (RTCP,
        # the recording's flush and silence checks) are rounded up to TIMER_GRID
        precise = [float("inf")]
        recording = self.recording
        lazy = float("inf")
        if recording is not None:
            deadline = recording.next_timer()
            if deadline is not None and deadline <= now and recording.handle_timer(now):
                self._recording_finished()
            if self.recording is not None and (deadline := recording.next_timer()) is not None:
                lazy = deadline
        playback = self.playback
        if playback is not None:
            self._send_playback(playback, now)
            if self.playback is not None and (due := playback.next_due()) is not None:
                precise.append(due)
        if now >= self._next_rtcp:
            self._send_rtcp(bye=False)
            self._next_rtcp = now + self.rtcp_interval * random.uniform(0.5, 1.5)
        lazy = min(lazy, self._next_rtcp)
        for deadline_fn in (self.receiver.next_timer, self.dtmf.next_timer):
            deadline = deadline_fn()
            if deadline is not None:
                precise.append(deadline)
        lazy = math.ceil(lazy / TIMER_GRID) * TIMER_GRID
        self._arm(max(min(min(precise), lazy), now))

    # -- sending --------------------------------------------------------------------------------

    def _send_playback(self, playback: PlaybackSession, now: float) -> None:
        packets = playback.packets_due(now)
        if packets and self.remote is not None and self._rtp_reading:
            sendto = self._rtp_socket.sendto
            for data in packets:
                try:
                    sendto(data, self.remote)
                except (BlockingIOError, InterruptedError):
                    # send buffer full: a late RTP packet is worth no more than a lost one
                    self.send_drops += 1
                except OSError:
                    self.errors += 1
            self._sent_since_report = True
        if playback.finished:
            self._playback_finished()

    def _send_rtcp(self, *, bye: bool) -> None:
        if self.remote_rtcp is None or self._rtcp_transport is None:
            return
        now = self.loop.time()
        blocks = self.receiver.report_blocks(now)[-31:]
        report: RtcpPacket
        if self._sent_since_report or (bye and self.stream.packet_count):
            report = self.stream.sender_report(now, wallclock=time.time(), reports=blocks)
            self._sent_since_report = False
        else:
            report = RtcpReceiverReport(ssrc=self.stream.ssrc, reports=blocks)
        packets: list[RtcpPacket] = [report, RtcpSdes.cname_for(self.stream.ssrc, self.cname)]
        if bye:
            packets.append(RtcpBye([self.stream.ssrc]))
        self._rtcp_transport.sendto(serialise_compound(packets), self.remote_rtcp)

    # -- what a service calls ------------------------------------------------------------------------

    async def play(
        self, items: Sequence[PlaybackItem], *, barge_in: str = "", ptime: float = 0.02
    ) -> PlaybackSession:
        """Play *items* (prompt paths, PCM, pauses) and return the finished session
        (``interrupted_by`` says which digit cut it short, if any)."""
        if self.playback is not None:
            raise RuntimeError("already playing")
        now = self.loop.time()
        self.playback = PlaybackSession(
            self._encoder, items, now=now, stream=self.stream, barge_in=barge_in, ptime=ptime
        )
        done: asyncio.Future[PlaybackSession] = self.loop.create_future()
        self._playback_done = done
        self._arm(now)
        return await done

    def stop_playback(self) -> None:
        if self.playback is not None:
            self.playback.stop()
            self._playback_finished()

    def _playback_finished(self) -> None:
        playback, done = self.playback, self._playback_done
        self.playback = self._playback_done = None
        if done is not None and not done.done() and playback is not None:
            done.set_result(playback)

    async def record(
        self,
        settings: RecordingSettings | None = None,
        *,
        on_chunk: Callable[[RecordingChunk], None] | None = None,
    ) -> RecordingResult:
        """Record until a stop condition (see :mod:`sipum_protocol.media.recording`); chunks go to
        *on_chunk* as they are made. :meth:`hangup` ends it from outside (BYE)."""
        if self.recording is not None:
            raise RuntimeError("already recording")
        self._drain_inbox()  # what came before the recording started is not part of it
        now = self.loop.time()
        if settings is not None and settings.sample_rate != self.codec.sample_rate:
            # the deployment's limits and thresholds hold for any codec; the rate is the call's
            settings = dataclasses.replace(settings, sample_rate=self.codec.sample_rate)
        self.recording = RtpRecording(
            create_decoder(self.codec.name), settings, now=now, on_chunk=on_chunk
        )
        # never queue more than the recording decodes at once (its batch follows the flush
        # interval, which bounds what a crash can lose)
        self._inbox_limit = min(self._inbox_base, self.recording.batch)
        done: asyncio.Future[RecordingResult] = self.loop.create_future()
        self._recording_done = done
        self._arm(min(self._timer_at, now + 0.05))
        return await done

    def hangup(self) -> None:
        """The call ended: finish a running recording (keeping what was said) and playback."""
        self._drain_inbox()
        now = self.loop.time()
        if self.recording is not None:
            for packet in self.receiver.flush():
                self._deliver(packet, now)
        if self.recording is not None:
            self.recording.hangup(now=now)
            self._recording_finished()
        self.stop_playback()

    def _recording_finished(self) -> None:
        recording, done = self.recording, self._recording_done
        self.recording = self._recording_done = None
        self._inbox_limit = self._inbox_base
        if done is not None and not done.done() and recording is not None:
            assert recording.session.result is not None
            done.set_result(recording.session.result)

    async def close(self) -> None:
        """Send RTCP BYE, stop everything, return the ports to the pool."""
        if self._closed:
            return
        self.hangup()
        self._send_rtcp(bye=True)
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
