"""RTP in front of the recording engine: in-order payloads (or whole datagrams) → decoded PCM
at its timeline position, comfort-noise fill (RFC 3389), digits cut at their RTP timestamp."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import numpy as np

from ..codecs.base import Decoder
from ..codecs.comfort_noise import ComfortNoiseGenerator
from ..rtp import RTP_HEADER
from .session import RecordingChunk, RecordingSession, RecordingSettings
from .timeline import RtpTimeline

_PTIME = 0.02
"""The packet time batch sizes are worked out for (the usual one; others only shift the
batch's duration)."""

MAX_BATCH = 50
"""Most packets decoded together: 1 s at 20 ms ptime; fewer when the flush interval is short
(a batch is at most half of it, so what a crash can lose stays about one flush interval)."""

FEED_GRACE = 3.0
"""Longest wait without a feed before the session's flush timer stands in (see
``RecordingSession``'s ``flush_grace``; a full batch is fed every second). Only when the
caller's RTP stops without a BYE does it matter: the last committed audio is then handed out
this long after the last packet at most (less with a short flush interval)."""

#: Codecs whose payload is a plain sample stream, one octet per RTP clock tick (G.711: one
#: sample; G.722: two 16 kHz samples coded in 8 bits per 8 kHz tick): consecutive payloads can be
#: joined and decoded in one call.
_STREAM_CODECS = frozenset({"PCMU", "PCMA", "G722"})


class RtpRecording:
    """A :class:`RecordingSession` fed from in-order RTP payloads of one call.

    ``packet(ssrc, timestamp, payload, now)`` takes one payload; its timestamp gives its position
    (reordering and duplicates are the jitter buffer's job; a late duplicate that still gets here
    is dropped by the session's overlap rule). ``comfort_noise(...)`` takes an RFC 3389 CN packet:
    the gap from its timestamp to the next audio packet is filled with noise at its level instead
    of digital silence. Other payload types must be filtered out before (their gap is silence).

    ``datagrams(block, size, now=…)`` is the endpoint's fast path: whole in-order datagrams of
    the current source with plain 12-octet headers (``RtpReceiver.accept_run`` took them), all
    of one size and laid end to end. They are only kept; at the flush their headers are read
    together: the block is viewed as one numpy array of rows, the timestamps checked for
    continuity in one vector operation, and each continuous run's payloads (the rows minus
    their header columns) decoded in one call.

    Why payloads are batched: per packet, this is the hot path of a recorder with hundreds of
    calls. For sample-stream codecs (G.711, G.722) consecutive payloads are only collected, then
    joined, decoded and analysed every ``batch`` packets (by default half the flush interval at
    20 ms ptime, at most ``MAX_BATCH`` = 1 s; it delays a silence stop by at most that), on a
    discontinuity, and on every timer, digit or hang-up — so the work per packet is an append.
    """

    def __init__(
        self,
        decoder: Decoder,
        settings: RecordingSettings | None = None,
        *,
        now: float,
        on_chunk: Callable[[RecordingChunk], None] | None = None,
        batch: int | None = None,
    ) -> None:
        info = decoder.info
        if settings is None:
            settings = RecordingSettings(sample_rate=info.sample_rate)
        elif settings.sample_rate != info.sample_rate:
            raise ValueError(
                f"recording at {settings.sample_rate} Hz, but {info.name} decodes to {info.sample_rate} Hz"
            )
        if batch is None:
            batch = min(MAX_BATCH, round(settings.flush_interval / 2 / _PTIME))
        self._joinable = info.name in _STREAM_CODECS
        self.batch = self._batch = max(1, batch) if self._joinable else 1
        """Packets decoded together (a caller that queues packets should queue no more)."""
        self.decoder = decoder
        grace = min(FEED_GRACE, settings.flush_interval + self._batch * _PTIME)
        self.session = RecordingSession(settings, now=now, on_chunk=on_chunk, flush_grace=grace)
        self.timeline = RtpTimeline(info)
        self._pending: list[bytes] = []
        # whole datagrams of one size end to end (the fast path), not decoded yet
        self._blocks: list[bytes | bytearray] = []
        self._block_size = 0
        self._block_count = 0
        self._blocks_at = now
        self._pending_position = 0
        self._pending_at = now
        self._pending_ssrc = -1
        self._next_ts = -1  # timestamp that continues the pending run
        self._cn = ComfortNoiseGenerator()
        self._cn_from: int | None = None  # position where the sender's comfort noise began

    @property
    def done(self) -> bool:
        return self.session.result is not None

    def datagrams(self, block: bytes | bytearray, size: int, *, now: float) -> bool:
        """Take in-order datagrams of the current source, all *size* octets with a plain
        12-octet header, laid end to end in *block* (kept, not copied: the caller must not
        change it afterwards); *now* is when the last of them arrived. True once the recording
        has stopped."""
        if self._pending:
            self._flush()
        if not self._joinable:
            return self._one_by_one(block, size, now)
        if self._blocks and size != self._block_size:
            self._flush_datagrams()
        self._blocks.append(block)
        self._block_size = size
        self._block_count += len(block) // size
        self._blocks_at = now
        if self._block_count >= self._batch:
            self._flush_datagrams()
        return self.session.result is not None

    def _flush_datagrams(self) -> None:
        blocks = self._blocks
        if not blocks:
            return
        self._blocks = []
        count, self._block_count = self._block_count, 0
        session = self.session
        if session.result is not None:
            return
        now = self._blocks_at
        size = self._block_size
        joined = blocks[0] if len(blocks) == 1 else b"".join(blocks)
        if size % 4:
            # not viewable as 32-bit words (no usual G.711/G.722 ptime): one payload at a time
            self._one_by_one(joined, size, now)
            self._flush()
            return
        ssrc = int.from_bytes(joined[8:12], "big")
        # Rows of 32-bit words: column 1 is the RTP timestamp (a view, no copy).
        stamps = np.frombuffer(joined, dtype=">u4").reshape(count, size // 4)[:, 1]
        # A run continues while each timestamp is the previous one plus its payload length
        # (one octet per RTP clock tick for these codecs); uint32 arithmetic wraps as the
        # timestamps do.
        steps = stamps[1:] - stamps[:-1]
        bounds = [0, count]
        if (steps != size - 12).any():
            bounds[1:1] = (np.flatnonzero(steps != size - 12) + 1).tolist()
        payloads = np.frombuffer(joined, dtype=np.uint8).reshape(count, size)[:, 12:]
        for begin, end in pairwise(bounds):
            position = self.timeline.position(ssrc, int(stamps[begin]), session.position)
            if self._cn_from is not None:
                self._fill_comfort_noise(position, now)
            pcm = self.decoder.decode(payloads[begin:end].tobytes())
            session.feed(pcm, now=now, position=position)
            if session.result is not None:
                return

    def _one_by_one(self, block: bytes | bytearray, size: int, now: float) -> bool:
        """Datagrams of a block through ``packet``, one payload at a time."""
        for offset in range(0, len(block), size):
            _, _, _, timestamp, ssrc = RTP_HEADER.unpack_from(block, offset)
            if self.packet(ssrc, timestamp, bytes(block[offset + 12 : offset + size]), now=now):
                return True
        return self.session.result is not None

    def _flush_all(self) -> None:
        """Decode and hand to the session whatever is collected, on either path."""
        self._flush_datagrams()
        self._flush()

    def packet(self, ssrc: int, timestamp: int, payload: bytes, *, now: float) -> bool:
        """Take one payload; returns True once the recording has stopped."""
        if self._blocks:
            self._flush_datagrams()
        if ssrc == self._pending_ssrc and timestamp == self._next_ts:
            pending = self._pending
            pending.append(payload)
            self._next_ts = (timestamp + len(payload)) & 0xFFFFFFFF
            self._pending_at = now
            if len(pending) < self._batch:
                # the session saw nothing new (a stopped one never gets here: see below)
                return False
            self._flush()
            return self.session.result is not None
        session = self.session
        if session.result is not None:
            return True
        if self._pending:
            self._flush()
        self._pending_position = self.timeline.position(ssrc, timestamp, session.position)
        self._pending_at = now
        if self._cn_from is not None:
            self._fill_comfort_noise(self._pending_position, now)
        if self._joinable:
            self._pending = [payload]
            self._pending_ssrc = ssrc
            self._next_ts = (timestamp + len(payload)) & 0xFFFFFFFF
            if self._batch == 1:
                self._flush()
        else:
            session.feed(self.decoder.decode(payload), now=now, position=self._pending_position)
        return session.result is not None

    def comfort_noise(self, ssrc: int, timestamp: int, payload: bytes, *, now: float) -> None:
        """An RFC 3389 CN packet (PT 13): the sender stopped sending audio at *timestamp*; the
        gap up to its next audio packet is filled with noise at the packet's level (§4: a CN
        packet carries no duration)."""
        self._flush_all()
        session = self.session
        if session.result is not None:
            return
        try:
            self._cn.decode(payload)
        except ValueError:
            return  # empty payload: the gap stays digital silence
        self._cn_from = self.timeline.position(ssrc, timestamp, session.position)

    def _fill_comfort_noise(self, until: int, now: float) -> None:
        session = self.session
        start = max(self._cn_from or 0, session.position)
        self._cn_from = None
        # bounded: a longer gap would end the recording as silence anyway
        length = min(until - start, session.longest_fill)
        if length > 0:
            session.feed(self._cn.generate(length), now=now, position=start)

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        payload = pending[0] if len(pending) == 1 else b"".join(pending)
        self._pending = []
        session = self.session
        if session.result is None:
            session.feed(
                self.decoder.decode(payload), now=self._pending_at, position=self._pending_position
            )
        # the next packet must go through the timeline again (it re-reads the position)
        self._pending_ssrc = -1

    def next_timer(self) -> float | None:
        return self.session.next_timer()

    def handle_timer(self, now: float) -> bool:
        """Run the session's timers (audio still being collected is analysed first). True once
        the recording has stopped."""
        self._flush_all()
        self.session.handle_timer(now)
        return self.session.result is not None

    def dtmf(
        self, digit: str, *, now: float, ssrc: int | None = None, timestamp: int | None = None
    ) -> bool:
        """A telephone-event digit began at RTP *timestamp* (RFC 4733 §2.5.1.1: the event's
        timestamp is its start): the recording is cut there when the digit stops it."""
        self._flush_all()
        position = None
        if ssrc is not None and timestamp is not None and ssrc == self.timeline.ssrc:
            position = self.timeline.position(ssrc, timestamp, self.session.position)
        return self.session.dtmf(digit, now=now, position=position)

    def hangup(self, *, now: float) -> None:
        self._flush_all()
        self.session.hangup(now=now)
