"""The recording engine proper: silence-aware, chunked recording of one message (sans-I/O).

Theory of operation
-------------------
:class:`RecordingSession` is fed decoded PCM (``int16`` at the codec's audio rate) with the
*position* of its first sample on the recording's timeline, plus events (DTMF digit, hang-up)
and ``now``; it hands out PCM chunks to persist and, at the end, a :class:`RecordingResult`
(stop reason, duration, whether the message is too short to keep).

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
audio has been fed for ``flush_grace`` — with :class:`~.rtp_recording.RtpRecording`, which feeds
a batch a second, that keeps hundreds of calls' timers from firing every two seconds for nothing.

Stop reasons: ``silence`` (``max_silence`` of silence, or no audio at all for that long),
``max_length``, ``dtmf`` (a stop digit, ``#`` by default), ``hangup``. A message with less than
``min_voice`` of non-silent audio is flagged ``discarded`` (the caller's chunks should be deleted).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..codecs.base import Pcm

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

    @property
    def longest_fill(self) -> int:
        """Most samples worth filling into a gap: a longer one ends the recording as silence
        anyway (``max_silence`` plus one analysis frame)."""
        return self._max_silence + self._frame

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
