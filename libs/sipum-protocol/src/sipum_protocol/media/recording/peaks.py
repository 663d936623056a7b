"""Waveform peaks of a recording: what an inbox draws without downloading the audio.

The samples are cut into ``buckets`` equal spans (the last ones one sample longer when they do
not divide evenly); each peak is the span's largest absolute sample over full scale (32768),
0…1, rounded to 3 decimals. A recording shorter than ``buckets`` samples has one peak per
sample. Computed once when a message is stored and kept as JSON next to its audio::

    {"v": 1, "sample_rate": 8000, "samples": 56640, "peaks": [0.012, 0.377, …]}
"""

from __future__ import annotations

import io
import json
import wave
from dataclasses import dataclass

import numpy as np

from ..codecs.base import Pcm

PEAKS_VERSION = 1
DEFAULT_BUCKETS = 400
MAX_BUCKETS = 4000
FULL_SCALE = 32768.0


@dataclass(frozen=True, slots=True)
class Peaks:
    sample_rate: int
    samples: int
    peaks: list[float]

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate if self.sample_rate else 0.0

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "v": PEAKS_VERSION,
                "sample_rate": self.sample_rate,
                "samples": self.samples,
                "peaks": self.peaks,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Peaks:
        """Parse stored peaks; ``ValueError`` for anything that is not what ``to_json`` writes."""
        try:
            doc = json.loads(data)
            peaks = [float(p) for p in doc["peaks"]]
            found = cls(int(doc["sample_rate"]), int(doc["samples"]), peaks)
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"not waveform peaks: {exc}") from None
        if doc.get("v") != PEAKS_VERSION or len(peaks) > MAX_BUCKETS:
            raise ValueError("not waveform peaks of this version")
        if any(not 0.0 <= p <= 1.0 for p in peaks) or found.sample_rate <= 0:
            raise ValueError("waveform peaks out of range")
        return found


def compute_peaks(pcm: Pcm | bytes, sample_rate: int, buckets: int = DEFAULT_BUCKETS) -> Peaks:
    """Peaks of 16-bit mono PCM (little-endian bytes or an int16 array)."""
    if not 1 <= buckets <= MAX_BUCKETS:
        raise ValueError(f"buckets must be 1…{MAX_BUCKETS}")
    samples = (
        np.frombuffer(pcm, dtype="<i2") if isinstance(pcm, bytes | bytearray | memoryview) else pcm
    )
    n = len(samples)
    if n == 0:
        return Peaks(sample_rate, 0, [])
    magnitude = np.abs(samples.astype(np.int32))
    count = min(buckets, n)
    starts = (np.arange(count, dtype=np.int64) * n) // count
    highest = np.maximum.reduceat(magnitude, starts)
    peaks = np.round(np.minimum(highest / FULL_SCALE, 1.0), 3)
    return Peaks(sample_rate, n, [float(p) for p in peaks])


def peaks_of_wav(data: bytes, buckets: int = DEFAULT_BUCKETS) -> Peaks:
    """Peaks of a 16-bit mono WAV file (what sipum stores); ``ValueError`` for another format."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise ValueError("peaks need 16-bit mono WAV")
            rate = wav.getframerate()
            pcm = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a WAV file: {exc}") from None
    return compute_peaks(pcm, rate, buckets)
