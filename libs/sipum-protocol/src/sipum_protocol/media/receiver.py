"""RTP receive session: source validation, jitter buffer, statistics, receiver reports.

Theory of operation
-------------------
``RtpReceiver`` is sans-I/O: the endpoint feeds it datagrams with their arrival time
(``receive(data, now)``) and calls ``poll(now)`` when ``next_timer()`` is due; both
return the RTP packets that are ready, in sequence order, each once. It never touches
a socket or a clock. ``accept_run(block, size, arrivals, start)`` is the fast path for
the common case, in-order packets of the current source, over a batch of queued datagrams
in one tight loop (what the endpoint uses: per packet an unpack, a few comparisons and the
A.8 arithmetic, no ``RtpPacket`` and no method call).

One remote source at a time. A voicemail call has one sender; when its SSRC changes
mid-call (a phone re-INVITEs, an SBC or B2BUA switches legs) the receiver *re-syncs*:
what the jitter buffer holds of the old source is released first, then statistics and
buffer start afresh for the new SSRC. Stray packets of a retired SSRC that arrive within
``STALE_WINDOW`` after the switch are dropped (``counters.stale_ssrc``).

Per source, ``RtpSourceStats`` keeps the RFC 3550 Appendix A state:

- A.1 sequence validation: the extended highest sequence number (``cycles`` of 65536 +
  ``max_seq``) survives the 16-bit wrap; a jump of more than ``MAX_DROPOUT`` ahead (or
  ``MAX_MISORDER`` behind) is accepted only when the next packet follows it
  sequentially — then the sender restarted its sequence and we re-sync as for a new
  SSRC (both packets are kept, unlike the reference code which drops the first);
- A.3 loss: expected = extended max − base + 1, cumulative lost = expected − received
  (``received`` counts every valid packet, duplicates included, as A.3 says, so the
  figure can be negative), fraction lost over the interval since the previous report;
- A.8 interarrival jitter: transit = arrival (in RTP clock units) − timestamp,
  J += (|D| − J) / 16. A timestamp jump (|D| above ``TIMESTAMP_JUMP`` seconds, e.g. the
  sender reset its RTP clock) re-bases the transit time instead of polluting J.

Reports: ``report_blocks(now)`` gives one ``RtcpReportBlock`` per source heard since the
last report (fraction lost over that interval; LSR/DLSR from the last SR the source
sent, which ``receive_rtcp`` records), ``receiver_report(now)`` wraps them in an RR with
our SSRC, ``compound_report(now, cname)`` adds the mandatory SDES CNAME (RFC 3550 §6.1).
A sender (playback) builds SR packets itself and can put these blocks in them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from .jitter import JitterBuffer
from .rtcp import (
    RtcpBye,
    RtcpPacket,
    RtcpReceiverReport,
    RtcpReportBlock,
    RtcpSdes,
    RtcpSenderReport,
    ntp_middle32,
    parse_compound,
    serialise_compound,
)
from .rtp import RtpPacket

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
"""Largest forward sequence jump accepted as loss (RFC 3550 A.1)."""
MAX_MISORDER = 100
"""Largest backward sequence step accepted as reordering (RFC 3550 A.1)."""
STALE_WINDOW = 0.5
"""Seconds after an SSRC switch during which packets of the old SSRC are dropped as
stragglers; later, the old SSRC coming back is a switch like any other (a call taken
off hold after a PBX's music-on-hold stream)."""
TIMESTAMP_JUMP = 1.0
"""Transit-time change (seconds) treated as a timestamp discontinuity, not jitter."""

_SEQ_TS_SSRC = struct.Struct("!2xHII")
"""Sequence number, timestamp and SSRC of an RTP header (RFC 3550 §5.1)."""


@dataclass(slots=True)
class RtpSourceStats:
    """Reception statistics of one SSRC (RFC 3550 A.1, A.3, A.8)."""

    ssrc: int
    clock_rate: int
    base_seq: int = 0
    max_seq: int = 0
    cycles: int = 0
    bad_seq: int = RTP_SEQ_MOD + 1
    received: int = 0
    expected_prior: int = 0
    received_prior: int = 0
    transit: float | None = None
    jitter: float = 0.0
    """Interarrival jitter estimate, RTP clock units (A.8)."""
    last_sr: int = 0
    """Middle 32 bits of the NTP timestamp of the last SR from this source (0 = none)."""
    last_sr_time: float = 0.0
    received_since_report: bool = False

    def init_seq(self, seq: int) -> None:
        """Start counting at ``seq`` (A.1 ``init_seq``)."""
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.transit = None
        self.jitter = 0.0

    def update_seq(self, seq: int) -> str:
        """A.1 ``update_seq``: ``"ok"``, ``"jump"`` (first packet after a big jump — held
        back), or ``"restart"`` (the jump is confirmed: stats were reset at ``seq - 1``)."""
        udelta = (seq - self.max_seq) & 0xFFFF
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:  # in order, with permissible gap: wrapped
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                # two sequential packets: the sender restarted its sequence numbers
                self.init_seq((seq - 1) & 0xFFFF)
                self.max_seq = seq
                self.received = 2  # this packet and the held-back one before it
                return "restart"
            self.bad_seq = (seq + 1) & 0xFFFF
            return "jump"
        # else: duplicate or reordered packet; counted as received (A.3)
        self.received += 1
        return "ok"

    def update_jitter(self, timestamp: int, now: float) -> None:
        """A.8: fold one packet's transit time into the jitter estimate."""
        arrival = now * self.clock_rate
        transit = arrival - timestamp
        if self.transit is None:
            self.transit = transit
            return
        d = transit - self.transit
        # RTP timestamps are 32 bit: fold the transit difference into ±2**31 (by comparison,
        # not a float modulo, which would round away the fraction of a clock tick)
        if d >= 2**31:
            d -= 2**32
        elif d < -(2**31):
            d += 2**32
        self.transit = transit
        if abs(d) > TIMESTAMP_JUMP * self.clock_rate:
            return  # discontinuity, not network jitter
        self.jitter += (abs(d) - self.jitter) / 16.0

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (A.3), clamped to the 24-bit signed field."""
        return max(-0x800000, min(0x7FFFFF, self.expected - self.received))

    def report_block(self, now: float) -> RtcpReportBlock:
        """A report block for this source; starts a new fraction-lost interval (A.3)."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = (lost_interval << 8) // expected_interval
        self.received_since_report = False
        dlsr = int((now - self.last_sr_time) * 65536) if self.last_sr else 0
        return RtcpReportBlock(
            ssrc=self.ssrc,
            fraction_lost=min(fraction, 255),
            packets_lost=self.lost,
            highest_sequence=self.extended_max & 0xFFFFFFFF,
            jitter=int(self.jitter),
            lsr=self.last_sr,
            dlsr=dlsr,
        )


@dataclass(slots=True)
class ReceiverCounters:
    """What the receive path dropped or noticed (beyond the per-source A.3 figures)."""

    invalid: int = 0
    """Datagrams that were not valid RTP."""
    stale_ssrc: int = 0
    """Packets of a retired SSRC arriving after the switch to a new one."""
    ssrc_changes: int = 0
    sequence_restarts: int = 0
    byes: int = 0
    """RTCP BYE packets naming the current source."""


@dataclass
class RtpReceiver:
    """One call's RTP receive path (see the module docstring)."""

    clock_rate: int
    """RTP clock rate of the negotiated codec (8000 for PCMU/PCMA/G.722, 48000 for Opus)."""
    ssrc: int = 0
    """Our own SSRC, the sender of the receiver reports."""
    jitter_capacity: int = 50
    """Jitter buffer size in packets (50 × 20 ms = 1 s)."""
    jitter_delay: float = 0.1
    """Longest wait (s) for a missing packet before it is given up."""
    source: RtpSourceStats | None = None
    counters: ReceiverCounters = field(default_factory=ReceiverCounters)
    buffer: JitterBuffer = field(init=False)
    _retired: dict[int, RtpSourceStats] = field(default_factory=dict, init=False)
    _held_jump: RtpPacket | None = field(default=None, init=False)
    _held_jump_time: float = field(default=0.0, init=False)
    _switch_time: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.buffer = JitterBuffer(capacity=self.jitter_capacity, max_delay=self.jitter_delay)

    # -- RTP -------------------------------------------------------------------------------

    def receive(self, data: bytes | RtpPacket, now: float) -> list[RtpPacket]:
        """Feed one datagram (or parsed packet) that arrived at ``now``; returns the packets
        ready for decoding, in order."""
        if isinstance(data, RtpPacket):
            packet = data
        else:
            try:
                packet = RtpPacket.parse(data)
            except ValueError:
                self.counters.invalid += 1
                return []
        source = self.source
        out: list[RtpPacket] = []
        if source is None or packet.ssrc != source.ssrc:
            if packet.ssrc in self._retired and now - self._switch_time < STALE_WINDOW:
                self.counters.stale_ssrc += 1
                return []
            if source is not None:
                self.counters.ssrc_changes += 1
                self._retire(source, out)
                self._switch_time = now
            source = self._new_source(packet.ssrc, packet.sequence_number)
        verdict = source.update_seq(packet.sequence_number)
        if verdict == "jump":
            # maybe a restart: hold it until the next packet tells (A.1 probation of one)
            self._held_jump, self._held_jump_time = packet, now
            return out
        if verdict == "restart":
            self.counters.sequence_restarts += 1
            out.extend(self.buffer.flush())
            self.buffer.reset()
            held, held_time = self._held_jump, self._held_jump_time
            self._held_jump = None
            source.transit = None
            if held is not None:
                source.update_jitter(held.timestamp, held_time)
                out.extend(self.buffer.push(held, held_time))
        else:
            self._held_jump = None  # the jump was a stray packet
        source.received_since_report = True
        source.update_jitter(packet.timestamp, now)
        out.extend(self.buffer.push(packet, now))
        return out

    def accept_run(
        self, block: bytes | bytearray, size: int, arrivals: Sequence[float], start: int = 0
    ) -> int:
        """Fast path over queued datagrams of one size laid end to end in *block* (datagram
        ``k`` is ``block[k*size:(k+1)*size]``, arrived at ``arrivals[k]``): account them from
        ``start`` on for as long as each is the next sequence number of the current source and
        nothing is held — exactly as ``receive`` would, A.1, A.8 and the jitter buffer — and
        return the index of the first one not taken (``start`` if none was). The caller uses
        the taken datagrams' payloads directly and passes the first one not taken to
        ``receive``. Each datagram must start with a plain 12-octet RTP header (version 2,
        no padding, extension or CSRC list), which the caller checked."""
        source = self.source
        expected = self.buffer.expected
        if source is None or expected is None or self._held_jump is not None:
            return start
        ssrc = source.ssrc
        rate = source.clock_rate
        transit = source.transit
        jitter = source.jitter
        jump = TIMESTAMP_JUMP * rate
        unpack = _SEQ_TS_SSRC.unpack_from
        seq = expected
        highest = source.max_seq
        wraps = 0
        end = len(arrivals)
        i = start
        offset = start * size
        while i < end:
            seq_i, timestamp, ssrc_i = unpack(block, offset)
            if seq_i != seq or ssrc_i != ssrc:
                break
            # A.8, as update_jitter does it (the fold into ±2**31 by comparison: cheaper than
            # a float modulo, and only a timestamp wrap needs it)
            arrival_transit = arrivals[i] * rate - timestamp
            if transit is not None:
                d = arrival_transit - transit
                if d >= 2**31:
                    d -= 2**32
                elif d < -(2**31):
                    d += 2**32
                if d < 0:
                    d = -d
                if d <= jump:
                    jitter += (d - jitter) / 16.0
            transit = arrival_transit
            # A.1 update_seq with udelta == 1
            if seq_i < highest:
                wraps += 1
            highest = seq_i
            seq = (seq_i + 1) & 0xFFFF
            i += 1
            offset += size
        taken = i - start
        if taken:
            if wraps:
                source.cycles += wraps * RTP_SEQ_MOD
            source.max_seq = highest
            source.received += taken
            source.received_since_report = True
            source.transit = transit
            source.jitter = jitter
            self.buffer.advance(taken)
        return i

    def _new_source(self, ssrc: int, seq: int) -> RtpSourceStats:
        source = RtpSourceStats(ssrc=ssrc, clock_rate=self.clock_rate)
        # init_seq sets max_seq = seq; update_seq of the same seq then counts it (udelta 0)
        source.init_seq(seq)
        self.source = source
        self._retired.pop(ssrc, None)
        return source

    def _retire(self, source: RtpSourceStats, out: list[RtpPacket]) -> None:
        out.extend(self.buffer.flush())
        self.buffer.reset()
        self._held_jump = None
        self._retired[source.ssrc] = source
        while len(self._retired) > 8:
            del self._retired[next(iter(self._retired))]

    def poll(self, now: float) -> list[RtpPacket]:
        """Release packets whose wait for a missing predecessor is over."""
        return self.buffer.poll(now)

    def next_timer(self) -> float | None:
        """When ``poll`` should next be called (``None``: nothing is waiting)."""
        return self.buffer.next_deadline()

    def flush(self) -> list[RtpPacket]:
        """End of the call: everything still held, in order."""
        return self.buffer.flush()

    # -- RTCP ------------------------------------------------------------------------------

    def receive_rtcp(self, data: bytes, now: float) -> list[RtcpPacket]:
        """Feed one RTCP datagram: records SR times for LSR/DLSR and counts BYEs of the
        current source. Returns the parsed packets (``[]`` if invalid)."""
        try:
            packets = parse_compound(data)
        except ValueError:
            self.counters.invalid += 1
            return []
        for packet in packets:
            if isinstance(packet, RtcpSenderReport):
                stats = self._stats_for(packet.ssrc)
                if stats is not None:
                    stats.last_sr = ntp_middle32(packet.ntp_timestamp)
                    stats.last_sr_time = now
            elif isinstance(packet, RtcpBye):
                if self.source is not None and self.source.ssrc in packet.sources:
                    self.counters.byes += 1
        return packets

    def _stats_for(self, ssrc: int) -> RtpSourceStats | None:
        if self.source is not None and self.source.ssrc == ssrc:
            return self.source
        return self._retired.get(ssrc)

    def report_blocks(self, now: float) -> list[RtcpReportBlock]:
        """Report blocks for every source heard since the previous report (RFC 3550 §6.4)."""
        blocks = [s.report_block(now) for s in self._retired.values() if s.received_since_report]
        if self.source is not None:
            blocks.append(self.source.report_block(now))
        return blocks

    def receiver_report(self, now: float) -> RtcpReceiverReport:
        return RtcpReceiverReport(ssrc=self.ssrc, reports=self.report_blocks(now)[-31:])

    def compound_report(self, now: float, cname: str) -> bytes:
        """RR + SDES CNAME, the minimal compound packet a receiver sends (§6.1)."""
        return serialise_compound([self.receiver_report(now), RtcpSdes.cname_for(self.ssrc, cname)])
