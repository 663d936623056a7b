"""Recording engine: one caller's audio → 16-bit PCM chunks → a WAV message.

Theory of operation
-------------------
:class:`RecordingSession` is sans-I/O. It is fed decoded PCM (``int16`` at the codec's audio
rate) with the *position* of its first sample on the recording's timeline, plus events (DTMF
digit, hang-up) and ``now``; it hands out PCM chunks to persist and, at the end, a
:class:`RecordingResult` (stop reason, duration, whether the message is too short to keep).
:class:`RtpRecording` puts an RTP receive path in front of it (timestamps → positions, decode).

The timeline is the wall clock of the caller's audio: position ``p`` is ``p / sample_rate``
seconds after the first sample. A gap in positions (lost packets, silence suppression) is
filled with digital silence, so the message's duration stays true to the call; samples that
arrive for positions already written (duplicates, very late packets) are dropped.

Silence detection runs on fixed 20 ms frames of that timeline (independent of packet sizes): a
frame whose RMS level is below ``silence_threshold_dbfs`` is silence. Frames are analysed in
small batches (``analysis_interval``) so the per-packet cost stays a list append.

Why audio is held back: a recording that ends on silence must lose its trailing silence, and one
that ends on ``#`` must lose the tone, but chunks already handed out cannot be taken back. So the
session only *commits* audio up to the start of the current silence run and at least
``hold_back`` behind the newest sample; the rest is kept until voice resumes (then it is
committed as it is — pauses inside a message are part of it) or the recording ends (then it is
trimmed to ``trailing_silence`` of silence). Committed audio is handed out as a chunk whenever
``flush_interval`` of it has accumulated or ``flush_interval`` of wall-clock time has passed, so a
crash loses at most the last chunk plus trailing silence that would have been trimmed anyway. The
wall-clock rule is applied by each feed; the flush timer (``next_timer``) stands in only when no
audio has been fed for ``flush_grace`` — with :class:`RtpRecording`, which feeds a batch a
second, that keeps hundreds of calls' timers from firing every two seconds for nothing.

Stop reasons: ``silence`` (``max_silence`` of silence, or no audio at all for that long),
``max_length``, ``dtmf`` (a stop digit, ``#`` by default), ``hangup``. A message with less than
``min_voice`` of non-silent audio is flagged ``discarded`` (the caller's chunks should be deleted).

Storage helpers: :class:`WavChunkFile` appends chunks to a WAV file whose header is fixed up at
close, and :func:`recover_wav` fixes up the header of a file a crashed process left behind.
"""

from __future__ import annotations

import enum
import os
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np

from .codecs.base import CodecInfo, Decoder, Pcm
from .codecs.comfort_noise import ComfortNoiseGenerator
from .rtp import RTP_HEADER

_FRAME_SECONDS = 0.02


class StopReason(enum.Enum):
    SILENCE = "silence"
    MAX_LENGTH = "max_length"
    DTMF = "dtmf"
    HANGUP = "hangup"


@dataclass(frozen=True, kw_only=True)
class RecordingSettings:
    """What a voicemail deployment tunes. Durations in seconds."""

    sample_rate: int = 8000
    #: frames with an RMS level below this (dBFS, full scale = 32768) are silence
    silence_threshold_dbfs: float = -45.0
    #: this much continuous silence (or no audio at all) ends the recording
    max_silence: float = 5.0
    #: messages with less non-silent audio than this are discarded
    min_voice: float = 1.0
    #: the recording stops at this length
    max_length: float = 180.0
    #: digits that end the recording (RFC 4733 events or in-band detection)
    stop_digits: str = "#"
    #: trailing silence kept after the last voiced frame (a natural ending, not a cut-off word)
    trailing_silence: float = 0.5
    #: audio is handed out at least this often (seconds of audio, and seconds of wall clock)
    flush_interval: float = 2.0
    #: newest audio kept back so a stop digit's tone can still be cut off
    hold_back: float = 0.3
    #: how much audio is collected before silence analysis runs (bounds per-packet work)
    analysis_interval: float = 0.1

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        for name in ("max_silence", "max_length", "flush_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("min_voice", "trailing_silence", "hold_back", "analysis_interval"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


@dataclass(frozen=True, slots=True)
class RecordingChunk:
    """A run of committed audio, in order; the chunks of a session concatenate to the message."""

    index: int
    #: timeline position (samples) of the chunk's first sample
    start: int
    #: 16-bit little-endian mono PCM
    pcm: bytes
    #: the last chunk of the recording (possibly empty)
    final: bool = False


@dataclass(frozen=True, kw_only=True)
class RecordingResult:
    reason: StopReason
    #: less than ``min_voice`` of non-silent audio: do not store it
    discarded: bool
    sample_rate: int
    #: samples in the message (sum of all chunk lengths)
    samples: int
    #: non-silent samples in the message
    voiced_samples: int
    #: the stop digit, when reason is ``dtmf``
    digit: str | None = None

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate

    @property
    def voiced_duration(self) -> float:
        return self.voiced_samples / self.sample_rate


def _frame_powers(buf: bytearray, offset: int, count: int, frame: int) -> np.ndarray:
    """Mean square of *count* frames of *frame* samples at byte *offset* of *buf*.

    A function of its own so the numpy view of the bytearray is gone when it returns (a live
    view would forbid resizing the buffer)."""
    block = np.frombuffer(buf, dtype="<i2", count=count * frame, offset=offset)
    x = block.astype(np.float32).reshape(count, frame)
    result: np.ndarray = np.einsum("ij,ij->i", x, x) / frame
    return result


class RecordingSession:
    """Silence-aware, chunked recording of one message (sans-I/O; see module docstring).

    ``feed(pcm, position=…, now=…)`` → ``drain_chunks()``; ``dtmf(digit)``, ``hangup()``,
    ``handle_timer(now)`` at ``next_timer()``; ``result`` once ``done``. An optional
    ``on_chunk`` callback receives each chunk as it is made instead of ``drain_chunks``.
    """

    def __init__(
        self,
        settings: RecordingSettings | None = None,
        *,
        now: float,
        on_chunk: Callable[[RecordingChunk], None] | None = None,
        flush_grace: float = 0.0,
    ) -> None:
        s = self.settings = settings or RecordingSettings()
        # While audio keeps coming, feed() flushes on the wall clock itself; the flush timer
        # only stands in when no audio has come for this long (a caller that feeds in batches
        # sets it to a little more than the time between two feeds, so the timer does not
        # fire just before a feed that would have done the same).
        self._flush_grace = flush_grace
        rate = s.sample_rate
        self._frame = max(1, round(rate * _FRAME_SECONDS))
        ref = 32768.0 * 10 ** (s.silence_threshold_dbfs / 20)
        # Compare mean squares, not dB: no log per frame.
        self._threshold_power = ref * ref
        self._max_silence = round(s.max_silence * rate)
        self._max_length = round(s.max_length * rate)
        self._trailing = round(s.trailing_silence * rate)
        self._flush = max(1, round(s.flush_interval * rate))
        self._hold_back = round(s.hold_back * rate)
        self._batch = max(self._frame, round(s.analysis_interval * rate))
        self._on_chunk = on_chunk

        # Timeline bookkeeping (all in samples):
        # [_buf_start, _total) lives in _buf (not handed out yet);
        # [_analysed, _total) has not been through silence analysis yet;
        # _silence_start is where the current silence run began (None while voiced).
        self._buf = bytearray()
        self._buf_start = 0
        self._total = 0
        self._analysed = 0
        self._silence_start: int | None = 0
        # runs of analysed frames not yet handed out, as (start, voiced); a run ends where the
        # next one starts (or at _analysed). They count the voiced audio handed out.
        self._frames: deque[tuple[int, bool]] = deque()
        self._voiced_out = 0
        self._chunks: list[RecordingChunk] = []
        self._chunk_index = 0
        self._samples_out = 0

        self._started_at = now
        self._last_audio_at = now
        self._last_flush_at = now
        self.result: RecordingResult | None = None

    # -- inputs -----------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.result is not None

    @property
    def position(self) -> int:
        """Next expected timeline position (samples received or filled so far)."""
        return self._total

    def feed(self, pcm: Pcm | bytes, *, now: float, position: int | None = None) -> None:
        """Add audio whose first sample sits at *position* on the timeline (default: right after
        the previous audio). Gaps are filled with silence; overlaps with written audio dropped."""
        if self.result is not None:
            return
        data = pcm if isinstance(pcm, bytes) else pcm.astype("<i2", copy=False).tobytes()
        if position is not None and position != self._total:
            if position > self._total:
                gap = min(position, self._max_length) - self._total
                if gap > 0:
                    self._buf += bytes(2 * gap)
                    self._total += gap
            else:
                skip = self._total - position
                data = data[2 * skip :]
        self._last_audio_at = now
        if data:
            room = self._max_length - self._total
            if len(data) > 2 * room:
                data = data[: 2 * room]
            self._buf += data
            self._total += len(data) // 2
        if self._total >= self._max_length:
            self._analyse(now, partial=True)
        elif self._total - self._analysed >= self._batch:
            self._analyse(now)

    def dtmf(self, digit: str, *, now: float, position: int | None = None) -> bool:
        """A digit was pressed (RFC 4733 event start or in-band detection). *position* is the
        timeline position where its tone began, if known: the message is cut there.
        Returns True if it stopped the recording."""
        if self.result is not None or digit not in self.settings.stop_digits:
            return False
        self._analyse(now, partial=True)
        end = self._total if position is None else max(0, min(position, self._total))
        self._finish(StopReason.DTMF, end, digit=digit)
        return True

    def hangup(self, *, now: float) -> None:
        """The call ended (BYE): keep what was recorded, minus trailing silence."""
        if self.result is None:
            self._analyse(now, partial=True)
            self._finish(StopReason.HANGUP, self._total)

    def next_timer(self) -> float | None:
        """When :meth:`handle_timer` must run next (no-audio timeout, wall-clock length limit,
        flush of committed audio)."""
        if self.result is not None:
            return None
        s = self.settings
        return min(
            self._last_audio_at + s.max_silence,
            self._started_at + s.max_length + 1.0,
            max(self._last_flush_at + s.flush_interval, self._last_audio_at + self._flush_grace),
        )

    def handle_timer(self, now: float) -> None:
        if self.result is not None:
            return
        s = self.settings
        self._analyse(now, partial=True)
        if self.result is not None:
            return
        if now >= self._last_audio_at + s.max_silence:
            # The caller's phone stopped sending (or never started): same as silence.
            self._finish(StopReason.SILENCE, self._total)
        elif now >= self._started_at + s.max_length + 1.0:
            self._finish(StopReason.MAX_LENGTH, self._total)
        else:
            self._maybe_flush(now)

    def drain_chunks(self) -> list[RecordingChunk]:
        """Chunks made since the last call, in order (empty if an ``on_chunk`` callback is set)."""
        chunks, self._chunks = self._chunks, []
        return chunks

    # -- internals --------------------------------------------------------------------------------

    def _analyse(self, now: float, *, partial: bool = False) -> None:
        """Classify whole frames in [_analysed, _total) (and a trailing partial frame if
        *partial*), update the silence run, commit and flush."""
        frame = self._frame
        count = (self._total - self._analysed) // frame
        if count:
            offset = 2 * (self._analysed - self._buf_start)
            voiced = _frame_powers(self._buf, offset, count, frame) > self._threshold_power
            if voiced.all():
                self._classify_run(True, count * frame)  # the usual case: all speech
            elif not voiced.any():
                self._classify_run(False, count * frame)
            else:
                self._classify(voiced.tolist(), frame)
        if partial and self._total > self._analysed:
            n = self._total - self._analysed
            offset = 2 * (self._analysed - self._buf_start)
            power = _frame_powers(self._buf, offset, 1, n)
            self._classify([bool(power[0] > self._threshold_power)], n)
        if self.result is not None:
            return
        if (
            self._silence_start is not None
            and self._total - self._silence_start >= self._max_silence
        ):
            self._finish(StopReason.SILENCE, self._total)
        elif self._total >= self._max_length:
            self._finish(StopReason.MAX_LENGTH, self._max_length)
        else:
            self._maybe_flush(now)

    def _classify(self, voiced: list[bool], length: int) -> None:
        """Extend the run-length list of (start, voiced) with analysed frames."""
        pos = self._analysed
        frames = self._frames
        last = frames[-1][1] if frames else None
        for is_voiced in voiced:
            if is_voiced is not last:
                frames.append((pos, is_voiced))
                last = is_voiced
                if is_voiced:
                    self._silence_start = None
                elif self._silence_start is None:
                    self._silence_start = pos
            pos += length
        self._analysed = pos

    def _classify_run(self, is_voiced: bool, length: int) -> None:
        """``_classify`` for *length* samples that are all voiced or all silent."""
        frames = self._frames
        if not frames or frames[-1][1] is not is_voiced:
            frames.append((self._analysed, is_voiced))
            if is_voiced:
                self._silence_start = None
            elif self._silence_start is None:
                self._silence_start = self._analysed
        self._analysed += length

    def _commit_limit(self) -> int:
        limit = self._analysed - self._hold_back
        if self._silence_start is not None:
            limit = min(limit, self._silence_start)
        return max(limit, self._buf_start)

    def _maybe_flush(self, now: float) -> None:
        limit = self._commit_limit()
        ready = limit - self._buf_start
        due = now - self._last_flush_at >= self.settings.flush_interval
        if ready >= self._flush or (ready > 0 and due):
            self._emit(limit, final=False)
            self._last_flush_at = now
        elif due:
            # Nothing committed to hand out (no audio yet, or a pause held back as possible
            # trailing silence): the flush is done for this interval. Without this the flush
            # deadline stays in the past and the endpoint's timer fires on every loop turn.
            self._last_flush_at = now

    def _emit(self, end: int, *, final: bool) -> None:
        """Hand out [_buf_start, end) as the next chunk and forget it."""
        n = end - self._buf_start
        pcm = bytes(self._buf[: 2 * n])
        del self._buf[: 2 * n]
        # Count voiced samples of the frames handed out (a frame cut by `end` counts in part).
        frames = self._frames
        while frames:
            start, is_voiced = frames[0]
            frame_end = frames[1][0] if len(frames) > 1 else self._analysed
            if start >= end:
                break
            if is_voiced:
                self._voiced_out += min(frame_end, end) - max(start, self._buf_start)
            if frame_end <= end:
                frames.popleft()
            else:
                # Keep the rest of a cut frame; its start moves to `end`.
                frames[0] = (end, is_voiced)
                break
        chunk = RecordingChunk(self._chunk_index, self._buf_start, pcm, final)
        self._chunk_index += 1
        self._buf_start = end
        self._samples_out += n
        if self._on_chunk is not None:
            self._on_chunk(chunk)
        else:
            self._chunks.append(chunk)

    def _finish(self, reason: StopReason, end: int, *, digit: str | None = None) -> None:
        end = min(end, self._total)
        # Trim trailing silence to a natural tail; never cut into committed (handed-out) audio.
        if self._silence_start is not None and self._silence_start < end:
            end = min(end, self._silence_start + self._trailing)
        end = max(end, self._buf_start)
        self._emit(end, final=True)
        self._buf = bytearray()
        self._frames.clear()
        self.result = RecordingResult(
            reason=reason,
            discarded=self._voiced_out < round(self.settings.min_voice * self.settings.sample_rate),
            sample_rate=self.settings.sample_rate,
            samples=self._samples_out,
            voiced_samples=self._voiced_out,
            digit=digit,
        )


# -- RTP in front of the session -----------------------------------------------------------------


class RtpTimeline:
    """Maps RTP timestamps of one call to recording positions (samples at the audio rate).

    32-bit timestamps are unwrapped (RFC 3550 §5.1: they wrap and start at a random value); the
    first packet is position 0. G.722's RTP clock (8000) differs from its audio rate (16000,
    RFC 3551 §4.5.2), hence the scale. A new SSRC or a jump of more than ``max_jump`` seconds
    (a phone restarting its stream) re-bases the clock: its next packet continues right after
    the audio written so far instead of leaving a huge gap or overwriting the past.
    """

    def __init__(self, info: CodecInfo, *, max_jump: float = 10.0) -> None:
        self.scale = (
            info.sample_rate // info.clock_rate if info.sample_rate >= info.clock_rate else 1
        )
        self._clock = info.clock_rate
        self._max_jump = round(max_jump * info.clock_rate)
        self._ssrc: int | None = None
        self._base = 0  # unwrapped timestamp that maps to position `_base_position`
        self._base_position = 0
        self._last_ts = 0
        self._unwrapped = 0

    def position(self, ssrc: int, timestamp: int, written: int) -> int:
        """Timeline position of a packet; *written* is how far the recording has got."""
        if self._ssrc != ssrc:
            self._ssrc = ssrc
            self._last_ts = timestamp
            self._unwrapped = timestamp
            self._base = timestamp
            self._base_position = written
            return written
        delta = ((timestamp - self._last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        unwrapped = self._unwrapped + delta
        pos = self._base_position + (unwrapped - self._base) * self.scale
        if abs(pos - written) > self._max_jump * self.scale:
            # Timestamp jump: continue where the recording is.
            self._base = unwrapped
            self._base_position = written
            pos = written
        if delta > 0:
            self._last_ts = timestamp
            self._unwrapped = unwrapped
        return pos


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
            position = self.timeline.position(ssrc, int(stamps[begin]), session._total)
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
        self._pending_position = self.timeline.position(ssrc, timestamp, session._total)
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
        self._cn_from = self.timeline.position(ssrc, timestamp, session._total)

    def _fill_comfort_noise(self, until: int, now: float) -> None:
        session = self.session
        start = max(self._cn_from or 0, session._total)
        self._cn_from = None
        # bounded: a longer gap would end the recording as silence anyway
        length = min(until - start, session._max_silence + session._frame)
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
        if ssrc is not None and timestamp is not None and ssrc == self.timeline._ssrc:
            position = self.timeline.position(ssrc, timestamp, self.session._total)
        return self.session.dtmf(digit, now=now, position=position)

    def hangup(self, *, now: float) -> None:
        self._flush_all()
        self.session.hangup(now=now)


# -- WAV storage ---------------------------------------------------------------------------------

WAV_HEADER_SIZE = 44


def wav_header(samples: int, sample_rate: int) -> bytes:
    """The canonical 44-byte RIFF/WAVE header of 16-bit mono PCM with *samples* samples."""
    data_size = 2 * samples
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_size,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        1,  # mono
        sample_rate,
        2 * sample_rate,
        2,
        16,
        b"data",
        data_size,
    )


def wav_bytes(pcm: Pcm | bytes, sample_rate: int) -> bytes:
    data = pcm if isinstance(pcm, bytes) else pcm.astype("<i2", copy=False).tobytes()
    return wav_header(len(data) // 2, sample_rate) + data


@dataclass
class WavChunkFile:
    """Appends recording chunks to a WAV file, each one flushed to disk (``fsync``) as it comes.

    The header is written first with zero sizes and fixed at :meth:`close`; after a crash,
    :func:`recover_wav` fixes it from the file's length.
    """

    path: Path
    sample_rate: int
    fsync: bool = True
    samples: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self._file = open(self.path, "wb")  # closed in close()
        self._file.write(wav_header(0, self.sample_rate))
        self._sync()

    def _sync(self) -> None:
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def write(self, chunk: RecordingChunk) -> None:
        if chunk.pcm:
            self._file.write(chunk.pcm)
            self.samples += len(chunk.pcm) // 2
        self._sync()

    def close(self) -> float:
        """Fix the header; returns the duration in seconds."""
        self._file.seek(0)
        self._file.write(wav_header(self.samples, self.sample_rate))
        self._sync()
        self._file.close()
        return self.samples / self.sample_rate


@dataclass(frozen=True)
class RecoveredWav:
    path: Path
    sample_rate: int
    samples: int

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate


def recover_wav(path: Path | str, *, sample_rate: int | None = None) -> RecoveredWav:
    """Make the WAV file a crashed :class:`WavChunkFile` left behind valid again.

    The header's sizes are recomputed from the file length; an odd trailing byte (a sample
    torn by the crash) is cut off. *sample_rate* is only needed if the header itself is damaged.
    """
    path = Path(path)
    with open(path, "r+b") as f:
        head = f.read(WAV_HEADER_SIZE)
        f.seek(0, os.SEEK_END)
        size = f.tell()
        rate = sample_rate
        if len(head) == WAV_HEADER_SIZE and head[:4] == b"RIFF" and head[8:16] == b"WAVEfmt ":
            rate = rate or struct.unpack_from("<I", head, 24)[0]
        if not rate:
            raise ValueError(f"{path}: no WAV header and no sample rate given")
        data = max(0, size - WAV_HEADER_SIZE)
        data -= data % 2
        if size < WAV_HEADER_SIZE:
            f.seek(0, os.SEEK_END)
            f.write(bytes(WAV_HEADER_SIZE - size))
        f.truncate(WAV_HEADER_SIZE + data)
        f.seek(0)
        f.write(wav_header(data // 2, rate))
        f.flush()
        os.fsync(f.fileno())
    return RecoveredWav(path, rate, data // 2)


def wav_from_chunks(chunks: list[RecordingChunk], sample_rate: int) -> bytes:
    """One WAV file from a session's chunks (in index order; e.g. parts kept in a blob store)."""
    ordered = sorted(chunks, key=lambda c: c.index)
    pcm = b"".join(c.pcm for c in ordered)
    return wav_header(len(pcm) // 2, sample_rate) + pcm
