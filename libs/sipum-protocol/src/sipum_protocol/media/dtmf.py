"""DTMF: RFC 4733 telephone-events (receive and send) and in-band Goertzel detection.

API
---
- ``TelephoneEvent``: the 4-octet payload (RFC 4733 §2.3) with ``parse``/``bytes``.
- ``TelephoneEventReceiver(clock_rate=8000)``: sans-I/O. ``receive(packet, now)``
  takes every RTP packet of the telephone-event payload type (in order, e.g. from
  ``RtpReceiver``) and returns the ``DtmfDigit``s that *ended*; ``poll(now)`` at
  ``next_timer()`` reports a digit whose end packets never came. ``active`` is the
  digit held down right now (from its first packet) for instant barge-in.
- ``TelephoneEventSender(payload_type, clock_rate, ptime)``: ``packets(...)`` gives the
  scheduled packets of one digit (send time + ``RtpPacket``).
- ``InbandDtmfDetector(sample_rate)`` (8000 or 16000): ``process(pcm)`` returns the
  ``InbandDigit``s confirmed so far (analysis runs in ~50 ms batches), ``flush()`` at the
  end of the audio; fed the decoded audio of calls that did not negotiate telephone-event.
- ``dtmf_tone(digit, duration, sample_rate, level_dbm0)``: a DTMF tone pair as int16.

Receiving telephone-events (RFC 4733 §2.5.2)
--------------------------------------------
All packets of one event carry the same RTP timestamp (the event's start) and a growing
duration; the last one has the E bit and is sent three times. So a digit is keyed by its
timestamp: the first end packet reports it, later copies and any packet of that
timestamp are absorbed (a set of recently reported timestamps). Packet loss must not
lose a digit, nor report it twice:

- all end packets lost → the digit is reported when the next event (another
  timestamp) starts, or ``timeout`` seconds after its last packet;
- only end packets arrive → the first one reports the digit;
- a long event (> 0xFFFF duration units, §2.5.1.3) is split into segments whose
  timestamps continue where the previous segment ended; a new timestamp that continues
  the current, unfinished event without a marker bit is a segment, not a new digit.

Durations are reported in milliseconds (the duration field is in RTP clock units).

In-band detection (Goertzel)
----------------------------
The audio is cut into 25.5 ms windows (204 samples at 8 kHz, 408 at 16 kHz) every
6.4 ms (one "block"). For each window the energies at the eight DTMF frequencies are computed with
Hann-windowed Goertzel (one DFT bin each, at the exact frequency, done for all windows
at once as a matrix product). A window shows digit (row r, column c) when:

- both tones are above ``min_level_dbm0`` (ITU-T Q.24 accepts down to about -25 dBm0
  per tone; default floor -35 dBm0);
- twist: the column tone is at most ``max_twist_db`` above or below the row tone;
- relative peak: every other row (column) frequency is ``relative_peak_db`` below
  the strongest row (column);
- the two tones carry at least ``min_tone_fraction`` of the window's energy — speech
  spreads its energy over many harmonics and formants, a DTMF pair concentrates it.

A digit is reported once it has shown in consecutive windows and its tone has lasted
``min_duration`` (40 ms). Windows that only partly cover a short, strong tone still show
it, so the duration is measured on 6.4 ms blocks: those of the run whose mean power is
at least half the tone pair's power count as "tone on". The same or another digit can
only be reported again after a gap of ``min_gap`` with no digit (so a short drop-out
inside one key press is not two digits); the pause is measured on the blocks too.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .codecs.base import Pcm, as_pcm
from .rtp import RtpPacket, ts_diff

EVENT_CODES = "0123456789*#ABCD"
"""RFC 4733 §3.2 event codes 0-15 for the DTMF digits."""

ROW_FREQUENCIES = (697.0, 770.0, 852.0, 941.0)
COLUMN_FREQUENCIES = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")

_EVENT = struct.Struct("!BBH")

# 0 dBm0 is a sine whose power is 3.14 dB below a full-scale sine of the µ-law/A-law
# coder (G.711 §4, the "digital milliwatt"); in 16-bit linear that is amplitude ~22,700.
DBM0_AMPLITUDE = 32768.0 * 10 ** (-3.14 / 20)


def digit_for_event(event: int) -> str | None:
    """The DTMF character of an event code, ``None`` for non-DTMF events (flash, tones)."""
    return EVENT_CODES[event] if 0 <= event < 16 else None


def event_for_digit(digit: str) -> int:
    index = EVENT_CODES.find(digit.upper())
    if len(digit) != 1 or index < 0:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return index


@dataclass(slots=True)
class TelephoneEvent:
    """RFC 4733 §2.3 payload: event, end bit, volume (-dBm0), duration (clock units)."""

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    @classmethod
    def parse(cls, data: bytes) -> TelephoneEvent:
        if len(data) < 4:
            raise ValueError("telephone-event payload truncated")
        event, flags, duration = _EVENT.unpack_from(data)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def __bytes__(self) -> bytes:
        return _EVENT.pack(
            self.event & 0xFF,
            (0x80 if self.end else 0) | (self.volume & 0x3F),
            self.duration & 0xFFFF,
        )


@dataclass(slots=True, frozen=True)
class DtmfDigit:
    """One key press received as telephone-events."""

    digit: str
    timestamp: int
    """RTP timestamp of the event's start (its key)."""
    duration_ms: float
    volume: int
    """Power level in -dBm0 (0..63)."""
    ended: bool
    """True if an end packet was received; False if the end was inferred."""


@dataclass(slots=True)
class _ActiveEvent:
    digit: str
    event: int
    timestamp: int  # first segment's timestamp: the digit's key
    segment_timestamp: int
    base_duration: int  # duration of the earlier segments
    duration: int  # within the current segment
    volume: int
    last_seen: float


class TelephoneEventReceiver:
    """Turns telephone-event packets into digits, each reported exactly once."""

    def __init__(self, *, clock_rate: int = 8000, timeout: float = 0.5) -> None:
        self.clock_rate = clock_rate
        self.timeout = timeout
        """Seconds without a packet after which an event whose end was lost is reported."""
        self._active: _ActiveEvent | None = None
        self._reported: deque[int] = deque(maxlen=32)
        # A segment of a long event starts where the previous one hit the 16-bit duration
        # limit; allow for a sender that cut it up to 200 ms short of the limit.
        self._segment_gap_min = 0xFFFF - clock_rate // 5
        self.ignored = 0
        """Packets that were not DTMF events or were invalid."""

    @property
    def active(self) -> str | None:
        """The digit whose key is down right now (no end seen yet), for barge-in."""
        return self._active.digit if self._active else None

    def _finish(self, event: _ActiveEvent, ended: bool) -> DtmfDigit:
        self._reported.append(event.timestamp)
        # segment timestamps are keys too: a late packet of an earlier segment is absorbed
        if event.segment_timestamp != event.timestamp:
            self._reported.append(event.segment_timestamp)
        total = event.base_duration + event.duration
        return DtmfDigit(
            digit=event.digit,
            timestamp=event.timestamp,
            duration_ms=1000.0 * total / self.clock_rate,
            volume=event.volume,
            ended=ended,
        )

    def receive(self, packet: RtpPacket, now: float) -> list[DtmfDigit]:
        """Feed one telephone-event RTP packet; returns the digits that ended."""
        try:
            payload = TelephoneEvent.parse(packet.payload)
        except ValueError:
            self.ignored += 1
            return []
        digit = digit_for_event(payload.event)
        if digit is None:
            self.ignored += 1
            return []
        ts = packet.timestamp
        out: list[DtmfDigit] = self.poll(now)
        if ts in self._reported:
            return out  # retransmitted end packet or straggler of a finished event
        active = self._active
        if active is not None and ts == active.segment_timestamp:
            active.duration = max(active.duration, payload.duration)
            active.volume = payload.volume
            active.last_seen = now
        elif (
            active is not None
            and payload.event == active.event
            and not packet.marker
            and self._segment_gap_min <= ts_diff(ts, active.segment_timestamp) <= 0xFFFF
        ):
            # RFC 4733 §2.5.1.3: the next segment of a long event
            active.base_duration += ts_diff(ts, active.segment_timestamp)
            active.segment_timestamp = ts
            active.duration = payload.duration
            active.last_seen = now
        else:
            if active is not None:
                if ts_diff(ts, active.segment_timestamp) < 0:
                    return out  # an older event's straggler we never saw begin: stale
                out.append(self._finish(active, ended=False))
            active = _ActiveEvent(
                digit, payload.event, ts, ts, 0, payload.duration, payload.volume, now
            )
            self._active = active
        if payload.end:
            out.append(self._finish(active, ended=True))
            self._active = None
        return out

    def next_timer(self) -> float | None:
        return self._active.last_seen + self.timeout if self._active else None

    def poll(self, now: float) -> list[DtmfDigit]:
        """Report the current digit if its packets stopped without an end packet."""
        active = self._active
        if active is not None and now >= active.last_seen + self.timeout:
            self._active = None
            return [self._finish(active, ended=False)]
        return []


@dataclass(slots=True, frozen=True)
class ScheduledPacket:
    at: float
    """When to send it (seconds, same clock as the ``start`` given)."""
    packet: RtpPacket


class TelephoneEventSender:
    """Builds the packets of one digit (RFC 4733 §2.5.1): the first has the marker bit,
    then one every ``ptime`` with the same timestamp and a growing duration, and the
    final one (E bit, full duration) three times (§2.5.1.4). Events longer than 0xFFFF
    clock units are split into segments (§2.5.1.3)."""

    def __init__(
        self,
        *,
        payload_type: int = 101,
        clock_rate: int = 8000,
        ptime: float = 0.02,
        volume: int = 10,
    ) -> None:
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.ptime = ptime
        self.volume = volume

    def packets(
        self,
        digit: str,
        *,
        duration: float,
        timestamp: int,
        first_sequence: int,
        ssrc: int,
        start: float,
    ) -> list[ScheduledPacket]:
        """The packets for ``digit`` held ``duration`` seconds, starting at ``start`` with
        RTP ``timestamp`` and sequence ``first_sequence`` (the caller continues its own
        sequence after the returned packets: ``first_sequence + len(result)``)."""
        event = event_for_digit(digit)
        step = round(self.ptime * self.clock_rate)
        total = max(step, round(duration * self.clock_rate))
        out: list[ScheduledPacket] = []
        seq = first_sequence
        elapsed = 0  # clock units since the event started, at the packet being built
        segment_start = 0
        while True:
            elapsed = min(elapsed + step, total)
            if elapsed - segment_start > 0xFFFF:
                # close this segment at the maximum duration, start the next one there
                segment_start += 0xFFFF
            in_segment = elapsed - segment_start
            final = elapsed == total
            payload = TelephoneEvent(event, end=final, volume=self.volume, duration=in_segment)
            repeats = 3 if final else 1
            for _ in range(repeats):
                out.append(
                    ScheduledPacket(
                        at=start + len(out) * self.ptime,
                        packet=RtpPacket(
                            payload_type=self.payload_type,
                            sequence_number=seq & 0xFFFF,
                            timestamp=(timestamp + segment_start) & 0xFFFFFFFF,
                            ssrc=ssrc,
                            payload=bytes(payload),
                            marker=not out,
                        ),
                    )
                )
                seq += 1
            if final:
                return out


def dtmf_tone(
    digit: str,
    duration: float,
    *,
    sample_rate: int = 8000,
    level_dbm0: float = -10.0,
    twist_db: float = 0.0,
) -> Pcm:
    """The two-tone signal of ``digit``: each tone at ``level_dbm0`` (the column tone
    ``twist_db`` louder), ``duration`` seconds of int16 samples."""
    key = digit.upper()
    event_for_digit(key)  # validates
    r = next(i for i, row in enumerate(KEYPAD) if key in row)
    c = KEYPAD[r].index(key)
    t = np.arange(round(duration * sample_rate)) / sample_rate
    amp = DBM0_AMPLITUDE * 10 ** (level_dbm0 / 20)
    signal = amp * np.sin(2 * np.pi * ROW_FREQUENCIES[r] * t)
    signal += amp * 10 ** (twist_db / 20) * np.sin(2 * np.pi * COLUMN_FREQUENCIES[c] * t)
    return np.clip(np.rint(signal), -32768, 32767).astype(np.int16)


@dataclass(slots=True, frozen=True)
class InbandDigit:
    digit: str
    start: float
    """Seconds from the start of the audio fed to the detector."""


class InbandDtmfDetector:
    """Goertzel DTMF detector for one audio stream (see the module docstring)."""

    def __init__(
        self,
        *,
        sample_rate: int = 8000,
        min_duration: float = 0.040,
        min_gap: float = 0.040,
        min_level_dbm0: float = -35.0,
        max_twist_db: float = 8.0,
        relative_peak_db: float = 10.0,
        min_tone_fraction: float = 0.6,
        batch_windows: int = 8,
    ) -> None:
        if sample_rate not in (8000, 16000):
            raise ValueError("in-band DTMF detection runs at 8000 or 16000 Hz")
        self.sample_rate = sample_rate
        self.hop = round(0.0064 * sample_rate)  # one "block": 51 samples at 8 kHz
        self.window = 4 * self.hop  # 25.5 ms: ~39 Hz resolution, rows are 73+ Hz apart
        hop_seconds = self.hop / sample_rate
        # consecutive windows guaranteed inside a tone of min_duration, whatever the alignment
        self.min_windows = max(1, int((min_duration * sample_rate - self.window) // self.hop))
        # blocks of a min_duration tone that are at least half covered by it
        self.min_blocks = max(1, int(min_duration / hop_seconds) - 1)
        self.min_gap_blocks = max(1, int(min_gap / hop_seconds) - 1)
        self.release_windows = round(0.1 / hop_seconds)
        taper = np.hanning(self.window)
        n = np.arange(self.window)
        freqs = np.array(ROW_FREQUENCIES + COLUMN_FREQUENCIES)
        angle = 2 * np.pi * freqs[None, :] * n[:, None] / sample_rate
        # real and imaginary parts of the eight Hann-windowed DFT bins, one real matrix
        self._basis = np.hstack([taper[:, None] * np.cos(angle), taper[:, None] * np.sin(angle)])
        # power of a sine of amplitude A at an exact frequency: |X|^2 = (A * sum(w) / 2)^2,
        # so tone power A^2/2 = 2 |X|^2 / sum(w)^2
        self._tone_scale = 2.0 / taper.sum() ** 2
        self._taper_sq = taper**2
        self._taper_sq_sum = float((taper**2).sum())
        min_amp = DBM0_AMPLITUDE * 10 ** (min_level_dbm0 / 20)
        self._min_power = min_amp**2 / 2
        self._max_twist = 10 ** (max_twist_db / 10)
        self._relative_peak = 10 ** (relative_peak_db / 10)
        self.min_tone_fraction = min_tone_fraction
        self.batch_windows = batch_windows
        self._buffer = np.zeros(0, dtype=np.float64)
        self._buffer_start = 0  # absolute sample index of _buffer[0]
        # the current run of windows showing one digit
        self._candidate: str | None = None
        self._run_windows = 0
        self._run_start_block = 0
        self._run_power = 0.0  # strongest tone-pair power seen in the run
        self._run_blocks: list[float] = []  # mean power of each block the run covers
        self._reported: str | None = None  # reported, and no pause has followed yet
        self._reported_power = 0.0
        self._off_blocks = 0
        self._quiet_windows = 0

    def classify(
        self, frames: npt.NDArray[np.float64]
    ) -> tuple[list[str | None], npt.NDArray[np.float64]]:
        """Digit shown by each window (rows of ``frames``, ``None`` if none) and the power
        of its strongest row + column tones."""
        parts = frames @ self._basis
        power = (parts[:, :8] ** 2 + parts[:, 8:] ** 2) * self._tone_scale
        total = (frames**2 @ self._taper_sq) / self._taper_sq_sum  # windowed mean power
        rows, cols = power[:, :4], power[:, 4:]
        r = rows.argmax(axis=1)
        c = cols.argmax(axis=1)
        idx = np.arange(len(frames))
        row_peak, col_peak = rows[idx, r], cols[idx, c]
        ok = (row_peak >= self._min_power) & (col_peak >= self._min_power)
        ok &= (col_peak <= row_peak * self._max_twist) & (row_peak <= col_peak * self._max_twist)
        rows_other = rows.copy()
        rows_other[idx, r] = 0
        cols_other = cols.copy()
        cols_other[idx, c] = 0
        ok &= rows_other.max(axis=1) * self._relative_peak <= row_peak
        ok &= cols_other.max(axis=1) * self._relative_peak <= col_peak
        ok &= row_peak + col_peak >= self.min_tone_fraction * total
        digits = [KEYPAD[r[i]][c[i]] if ok[i] else None for i in range(len(frames))]
        return digits, row_peak + col_peak

    def process(self, pcm: Pcm | bytes) -> list[InbandDigit]:
        """Feed the next chunk of audio; returns the digits confirmed so far. Windows are
        analysed in batches of ``batch_windows`` (numpy's per-call cost dominates small
        batches), so a digit is reported up to one batch (~50 ms) after it is complete."""
        samples = as_pcm(pcm).astype(np.float64)
        self._buffer = np.concatenate([self._buffer, samples])
        return self._analyse(self.batch_windows)

    def flush(self) -> list[InbandDigit]:
        """Analyse every complete window still buffered (end of the audio)."""
        return self._analyse(1)

    def _analyse(self, min_count: int) -> list[InbandDigit]:
        buffer = self._buffer
        hop = self.hop
        count = (len(buffer) - self.window) // hop + 1 if len(buffer) >= self.window else 0
        out: list[InbandDigit] = []
        if count >= min_count:
            frames = np.lib.stride_tricks.sliding_window_view(buffer, self.window)[
                : count * hop : hop
            ]
            # mean power of each block; window i covers blocks i .. i+3
            blocks = (buffer[: (count + 3) * hop] ** 2).reshape(-1, hop).mean(axis=1)
            digits, powers = self.classify(frames)
            first_block = self._buffer_start // hop
            for i, digit in enumerate(digits):
                found = self._step(digit, float(powers[i]), blocks[i : i + 4], first_block + i)
                if found is not None:
                    out.append(found)
            consumed = count * hop
            buffer = buffer[consumed:]
            self._buffer_start += consumed
        self._buffer = buffer
        return out

    def _step(
        self, digit: str | None, power: float, blocks: npt.NDArray[np.float64], block: int
    ) -> InbandDigit | None:
        newest = float(blocks[3])  # the block this window adds to the stream
        if self._reported is not None:
            # Released after a real pause: min_gap of blocks well below the tone's power
            # (a 10 ms drop-out inside a key press is not a pause, ITU-T Q.24), or after a
            # long stretch of windows without any digit (speech right after the tone).
            self._off_blocks = self._off_blocks + 1 if newest < 0.5 * self._reported_power else 0
            self._quiet_windows = self._quiet_windows + 1 if digit is None else 0
            if (
                self._off_blocks >= self.min_gap_blocks
                or self._quiet_windows >= self.release_windows
            ):
                self._reported = None
        if digit is None:
            self._candidate = None
            return None
        if digit != self._candidate:
            self._candidate = digit
            self._run_windows = 0
            self._run_start_block = block
            self._run_power = 0.0
            self._run_blocks = [float(b) for b in blocks[:3]]
        self._run_windows += 1
        self._run_blocks.append(newest)
        self._run_power = max(self._run_power, power)
        if digit == self._reported or self._run_windows < self.min_windows:
            return None
        # How long is the tone really? Windows that only partly cover a short, strong tone
        # still show it, so count the blocks carrying at least half the tone power.
        threshold = 0.5 * self._run_power
        on = [i for i, p in enumerate(self._run_blocks) if p >= threshold]
        if len(on) < self.min_blocks:
            return None
        self._reported = digit
        self._reported_power = self._run_power
        self._off_blocks = 0
        self._quiet_windows = 0
        start_block = self._run_start_block + on[0]
        return InbandDigit(digit, start_block * self.hop / self.sample_rate)
