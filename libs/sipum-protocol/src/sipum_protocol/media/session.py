"""The media of one call as a sans-I/O state machine: RTP and RTCP in, RTP and RTCP out.

Theory of operation
-------------------
:class:`MediaSession` has the shape of the SIP transaction layer and of aioquic's
``QuicConnection``: it owns no socket, no loop and no clock. Its owner feeds it

- ``receive_datagram(data, addr, now)`` — every datagram of the call's RTP and RTCP ports
  (RTCP is told apart by its packet type, RFC 5761 §4);
- ``handle_timer(now)`` — at (or after) ``next_timer()``;
- commands: ``play(items, now=…)``, ``stop_playback()``, ``record(settings, now=…)``,
  ``hangup(now=…)``, ``close(now=…)``;

and after each of them collects ``datagrams_to_send()`` → ``[(bytes, address)]`` and
``next_event()`` (see :mod:`.events`) until it returns ``None``, then re-arms one timer at
``next_timer()``. Tests drive it with a fake clock; :class:`~.endpoint.RtpEndpoint` is the asyncio
driver.

Inside, it joins the sans-I/O cores: :class:`~.receiver.RtpReceiver` (RFC 3550 A.1 validation,
jitter buffer, A.3/A.8 statistics), :class:`~.dtmf.TelephoneEventReceiver` (RFC 4733) or, for a
call that negotiated no telephone-event, :class:`~.dtmf.InbandDtmfDetector`,
:class:`~.recording.RtpRecording` and :class:`~.playback.PlaybackSession` on one
:class:`~.playback.RtpSendStream`.

Receive path, kept minimal because it runs 50 times a second per call: an audio packet of the
caller's usual size with a plain 12-octet header (nearly every packet, once the source is
latched) is only appended to a queue — one contiguous byte block, datagrams end to end, and
their arrival times. ``receive_datagram`` returns True when the queue holds a batch
(``QUEUE_BATCH``, or the recording's smaller batch, or ``INBAND_BATCH`` for in-band digits):
the owner then calls :meth:`MediaSession.drain_queue` soon (the asyncio driver drains every
call's full queue back to back after the loop's round of I/O callbacks). Everything else — a
timer, a command, any other packet — drains the queue first, so order is kept. Draining:
``RtpReceiver.accept_run`` accounts the run of in-order packets of the current source in one
tight loop and the run goes to the recording as it is (``RtpRecording.datagrams`` decodes a
whole batch at once). Anything else — the first packet, reordered, lost or duplicated packets, a
new SSRC, telephone-events, comfort noise — goes through the full receiver and each released
packet to the recording (audio, CN) or the DTMF receiver (telephone-event).

Symmetric RTP (RFC 4961, the usual NAT traversal for SIP): media goes to the address the SDP
offer gave until the first valid RTP packet of a negotiated payload type arrives, then to the
address that packet came from (:class:`~.events.RtpSourceLatched`; the driver connects its socket
to it, so the kernel drops anybody else's datagrams — strict RTP). RTCP latches the same way
(before that it goes to the SDP's RTCP address, by default the RTP port + 1).

Digits act when the key goes down (the event's first packet): barge-in stops the playback, a
stop digit ends the recording cut where the tone began (RFC 4733 §2.5.1.1: the event's timestamp
is its start); :class:`~.events.DigitReceived` comes when the event ends, once.

RTCP (RFC 3550 §6): a compound SR (while we send) or RR, plus SDES CNAME, every ~5 s
(randomised 0.5–1.5×, §6.3.1); SR + SDES + BYE on :meth:`MediaSession.close` (§6.3.7). Timers that
need no precision (RTCP, the recording's flush and silence checks) are rounded up to a grid
(``TIMER_GRID``), so the timers of many calls that fall due together run back to back.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import deque
from collections.abc import Sequence
from typing import TypedDict

from .codecs import create_decoder, create_encoder
from .codecs.base import CodecInfo
from .codecs.comfort_noise import CN_INFO
from .dtmf import InbandDtmfDetector, TelephoneEventReceiver
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
from .receiver import RtpReceiver
from .recording import RecordingChunk, RecordingResult, RecordingSettings, RtpRecording
from .rtcp import RtcpBye, RtcpPacket, RtcpReceiverReport, RtcpSdes, serialise_compound
from .rtp import RTP_HEADER, RtpPacket, is_rtcp

QUEUE_BATCH = 50
"""Audio packets queued before they are processed together (≤ 1 s at 20 ms ptime, the
recording's decode batch; every timer, digit and other packet processes the queue first)."""

INBAND_BATCH = 5
"""The queue's size for a call without telephone-event, whose digits are detected in the
audio (100 ms at 20 ms ptime: a key press still acts at once)."""

RTCP_INTERVAL = 5.0
"""Mean seconds between RTCP reports (RFC 3550 §6.2 minimum)."""

TIMER_GRID = 0.25
"""Timers that need no precision (RTCP, the recording's flush and silence checks) fall due on
this grid of the clock, so the calls' timers that fall due together run back to back."""

CN_PAYLOAD_TYPE = CN_INFO.payload_type  # RFC 3389 comfort noise, static PT 13 (RFC 3551 §6)

MAX_REPORT_BLOCKS = 31
"""Report blocks that fit in one SR/RR (RFC 3550 §6.4: a five-bit count)."""


class SessionOptions(TypedDict, total=False):
    """The negotiated options of a :class:`MediaSession` beyond its codec, as its drivers pass
    them through (``RtpEndpoint.open(pool, codec=…, **options)``): the defaults live in one place,
    ``MediaSession.__init__``."""

    payload_type: int | None
    telephone_event_pt: int | None
    remote: Address | None
    remote_rtcp: Address | None
    cname: str
    rtcp_interval: float


class MediaSession:
    """RTP, RTCP, DTMF, recording and playback of one call, sans-I/O (see module docstring).

    *remote* and *remote_rtcp* are the addresses of the SDP offer (``c=``, ``m=`` port, and
    ``a=rtcp`` or the port + 1), used until symmetric latching finds the real ones.
    *wallclock_offset* is Unix time minus the clock of ``now`` (for the NTP timestamps of sender
    reports, RFC 3550 §6.4.1); *rng* makes the SSRC, sequence and RTCP intervals repeatable.
    """

    def __init__(
        self,
        *,
        codec: CodecInfo,
        now: float,
        payload_type: int | None = None,
        telephone_event_pt: int | None = 101,
        remote: Address | None = None,
        remote_rtcp: Address | None = None,
        cname: str = "sipum",
        rtcp_interval: float = RTCP_INTERVAL,
        wallclock_offset: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        # The receive hot path's attributes first: adjacent in the instance's values, so a
        # packet touches few cache lines of a session that has gone cold since its last one.
        # Queued audio datagrams, end to end, all `_fast_size` octets, and their arrival times.
        self._fast_size = -1  # size of the caller's plain audio packets (learnt from them)
        self.payload_type = codec.payload_type if payload_type is None else payload_type
        self._audio_pt = self.payload_type
        self._queue = bytearray()
        self._queue_times: list[float] = []
        # In-band digits (no telephone-event) are found in the audio, so it must not wait long
        # in the queue: a key press acts within INBAND_BATCH packets.
        self._queue_base = QUEUE_BATCH if telephone_event_pt is not None else INBAND_BATCH
        self._queue_limit = self._queue_base
        self._rng = rng or random.Random()
        self.codec = codec
        self.telephone_event_pt = telephone_event_pt
        self._te_pt = telephone_event_pt
        self.remote = remote
        self.remote_rtcp = remote_rtcp or (remote and (remote[0], remote[1] + 1))
        self.latched = False
        self.rtcp_latched = False
        self.cname = cname
        self.wallclock_offset = wallclock_offset
        self.receiver = RtpReceiver(clock_rate=codec.clock_rate, ssrc=self._rng.getrandbits(32))
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
        self.stream = RtpSendStream(
            payload_type=self.payload_type, clock_rate=codec.clock_rate, rng=rng
        )
        self._encoder = create_encoder(codec.name)
        self.recording: RtpRecording | None = None
        """The recording in progress (``record``), until it stops."""
        self.playback: PlaybackSession | None = None
        """The playback in progress (``play``), until it finishes."""
        self.rtcp_interval = rtcp_interval
        self._next_rtcp = now + rtcp_interval * self._rng.uniform(0.5, 1.5)
        self._sent_since_report = False
        self._accepted_pts = {self.payload_type, CN_PAYLOAD_TYPE}
        if telephone_event_pt is not None:
            self._accepted_pts.add(telephone_event_pt)
        self._events: deque[MediaEvent] = deque()
        self._outgoing: list[tuple[bytes, Address]] = []
        self.closed = False

    # -- what the owner reads -----------------------------------------------------------------

    @property
    def queued_packets(self) -> int:
        """Audio packets queued, not yet through the receiver (see :meth:`drain_queue`)."""
        return len(self._queue_times)

    def next_event(self) -> MediaEvent | None:
        """The oldest event not taken yet, or None."""
        return self._events.popleft() if self._events else None

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """RTP and RTCP datagrams to send now, with their destinations, in order (tell them
        apart with ``is_rtcp`` to pick the socket)."""
        out, self._outgoing = self._outgoing, []
        return out

    def next_timer(self) -> float | None:
        """When :meth:`handle_timer` must run next; None once closed. Precise deadlines
        (playback pacing, jitter-buffer waits, digit ends) as they are, lazy ones (RTCP, the
        recording's flush and silence checks) rounded up to ``TIMER_GRID``."""
        if self.closed:
            return None
        precise = math.inf
        for deadline in (self.receiver.next_timer(), self.dtmf.next_timer()):
            if deadline is not None and deadline < precise:
                precise = deadline
        if self.playback is not None and (due := self.playback.next_due()) is not None:
            precise = min(precise, due)
        lazy = self._next_rtcp
        if self.recording is not None and (deadline := self.recording.next_timer()) is not None:
            lazy = min(lazy, deadline)
        return min(precise, math.ceil(lazy / TIMER_GRID) * TIMER_GRID)

    # -- input: datagrams -------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> bool:
        """Take one datagram of the call's RTP or RTCP port that arrived at *now* from *addr*.

        True when the owner has something to do: a full queue to :meth:`drain_queue` (if
        ``queued_packets``), or else events, datagrams or a new timer. False: the packet was
        only queued."""
        # Hot path: an audio packet of the usual size with a plain 12-octet header (no CSRC,
        # extension, padding) is only copied to the end of the queue, its arrival time noted;
        # drain_queue handles a batch of them in one tight loop, which costs far less per
        # packet than a pass through the whole receive chain for each datagram. Copying (not
        # keeping the bytes object) frees each datagram while it is still in the CPU's cache,
        # and the queue is one contiguous block the batch code reads in order.
        if len(data) == self._fast_size and data[0] == 0x80 and data[1] & 0x7F == self._audio_pt:
            self._queue += data
            times = self._queue_times
            times.append(now)
            return len(times) == self._queue_limit
        if is_rtcp(data):
            self._receive_rtcp(data, addr, now)
        else:
            self._receive_rtp(data, addr, now)
        return True

    def _receive_rtp(self, data: bytes, addr: Address, now: float) -> None:
        """Anything but a queued audio packet: handled at once, after what is queued (digits
        must see the audio that came before them)."""
        self.drain_queue()
        if not self.latched:
            # Latch only onto something that is RTP of a negotiated payload type, so a stray
            # datagram cannot divert the call's audio (RFC 4961 §3 / the usual SBC practice).
            if len(data) < 12 or data[0] >> 6 != 2 or (data[1] & 0x7F) not in self._accepted_pts:
                return
            self.remote = addr
            self.latched = True
            self._events.append(RtpSourceLatched(addr))
        if len(data) > 12 and data[0] == 0x80 and data[1] & 0x7F == self._audio_pt:
            # the caller's plain audio packets are this size now (a ptime change costs one
            # packet on this path)
            self._fast_size = len(data)
        for packet in self.receiver.receive(data, now):
            self._deliver(packet, now)

    def _receive_rtcp(self, data: bytes, addr: Address, now: float) -> None:
        packets = self.receiver.receive_rtcp(data, now)
        if packets and not self.rtcp_latched:
            self.remote_rtcp = addr
            self.rtcp_latched = True
        for packet in packets:
            if isinstance(packet, RtcpBye):
                self._events.append(RtcpByeReceived(tuple(packet.sources), packet.reason))

    def drain_queue(self) -> None:
        """Process the queued audio packets (each with its own arrival time)."""
        times = self._queue_times
        if not times:
            return
        block, size = self._queue, self._fast_size
        self._queue = bytearray()
        self._queue_times = []
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
                self._events.append(DigitReceived(digit.digit))
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
            self._events.append(DigitReceived(found.digit))

    def _key_down(self, digit: str, ssrc: int, timestamp: int, now: float) -> None:
        playback = self.playback
        if playback is not None and playback.interrupt(digit):
            self._playback_finished()
        recording = self.recording
        if recording is not None and recording.dtmf(digit, now=now, ssrc=ssrc, timestamp=timestamp):
            self._recording_finished()

    # -- input: timers ----------------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Run whatever is due at *now* (early calls are harmless: nothing is due yet)."""
        if self.closed:
            return
        self.drain_queue()
        for packet in self.receiver.poll(now):
            self._deliver(packet, now)
        for digit in self.dtmf.poll(now):
            # a digit whose end packets were all lost (its start was acted on already)
            self._events.append(DigitReceived(digit.digit))
        recording = self.recording
        if recording is not None:
            deadline = recording.next_timer()
            if deadline is not None and deadline <= now and recording.handle_timer(now):
                self._recording_finished()
        playback = self.playback
        if playback is not None:
            self._send_playback(playback, now)
        if now >= self._next_rtcp:
            self._send_rtcp(now, bye=False)
            self._next_rtcp = now + self.rtcp_interval * self._rng.uniform(0.5, 1.5)

    # -- output -----------------------------------------------------------------------------------

    def _send_playback(self, playback: PlaybackSession, now: float) -> None:
        packets = playback.packets_due(now)
        if packets and self.remote is not None:
            remote = self.remote
            self._outgoing.extend((data, remote) for data in packets)
            self._sent_since_report = True
        if playback.finished:
            self._playback_finished()

    def _send_rtcp(self, now: float, *, bye: bool) -> None:
        if self.remote_rtcp is None:
            return
        blocks = self.receiver.report_blocks(now)[-MAX_REPORT_BLOCKS:]
        report: RtcpPacket
        if self._sent_since_report or (bye and self.stream.packet_count):
            # an SR while we send (§6.4.1), its NTP time the same instant as its RTP time
            wallclock = now + self.wallclock_offset
            report = self.stream.sender_report(now, wallclock=wallclock, reports=blocks)
            self._sent_since_report = False
        else:
            report = RtcpReceiverReport(ssrc=self.stream.ssrc, reports=blocks)
        # every compound carries an SDES CNAME (§6.1); BYE goes last (§6.6)
        packets: list[RtcpPacket] = [report, RtcpSdes.cname_for(self.stream.ssrc, self.cname)]
        if bye:
            packets.append(RtcpBye([self.stream.ssrc]))
        self._outgoing.append((serialise_compound(packets), self.remote_rtcp))

    def _playback_finished(self) -> None:
        playback, self.playback = self.playback, None
        if playback is not None:
            self._events.append(PlaybackFinished(playback))

    def _chunk_ready(self, chunk: RecordingChunk) -> None:
        self._events.append(ChunkReady(chunk))

    def _recording_finished(self) -> None:
        recording, self.recording = self.recording, None
        self._queue_limit = self._queue_base
        if recording is not None:
            result: RecordingResult | None = recording.session.result
            assert result is not None
            self._events.append(RecordingStopped(result))

    # -- commands ---------------------------------------------------------------------------------

    def play(
        self,
        items: Sequence[PlaybackItem],
        *,
        now: float,
        barge_in: str = "",
        ptime: float = 0.02,
    ) -> PlaybackSession:
        """Start playing *items* (prompt paths, PCM, pauses); its first packet is due at *now*
        (``next_timer``). :class:`~.events.PlaybackFinished` says when it is over."""
        if self.playback is not None:
            raise RuntimeError("already playing")
        self.playback = PlaybackSession(
            self._encoder, items, now=now, stream=self.stream, barge_in=barge_in, ptime=ptime
        )
        return self.playback

    def stop_playback(self) -> None:
        """End the playback in progress (a :class:`~.events.PlaybackFinished` follows)."""
        if self.playback is not None:
            self.playback.stop()
            self._playback_finished()

    def record(self, settings: RecordingSettings | None = None, *, now: float) -> RtpRecording:
        """Start recording (see :mod:`.recording`): :class:`~.events.ChunkReady` as audio is
        committed, :class:`~.events.RecordingStopped` at the end. The sample rate is the
        call's codec's, whatever *settings* say (the deployment's limits and thresholds hold
        for any codec)."""
        if self.recording is not None:
            raise RuntimeError("already recording")
        self.drain_queue()  # what came before the recording started is not part of it
        if settings is not None and settings.sample_rate != self.codec.sample_rate:
            settings = dataclasses.replace(settings, sample_rate=self.codec.sample_rate)
        self.recording = RtpRecording(
            create_decoder(self.codec.name), settings, now=now, on_chunk=self._chunk_ready
        )
        # never queue more than the recording decodes at once (its batch follows the flush
        # interval, which bounds what a crash can lose)
        self._queue_limit = min(self._queue_base, self.recording.batch)
        return self.recording

    def hangup(self, *, now: float) -> None:
        """The call ended (BYE): finish a running recording, keeping what was said (the jitter
        buffer's held packets included), and the playback."""
        self.drain_queue()
        if self.recording is not None:
            for packet in self.receiver.flush():
                self._deliver(packet, now)
        if self.recording is not None:
            self.recording.hangup(now=now)
            self._recording_finished()
        self.stop_playback()

    def close(self, *, now: float) -> None:
        """Hang up and say goodbye: SR/RR + SDES + BYE (RFC 3550 §6.3.7). Nothing is sent or
        received after this."""
        if self.closed:
            return
        self.hangup(now=now)
        self._send_rtcp(now, bye=True)
        self.closed = True
