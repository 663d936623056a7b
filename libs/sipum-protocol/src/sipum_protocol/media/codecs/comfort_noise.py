"""Comfort noise (RFC 3389, static PT 13 ``CN/8000``).

A CN packet says "the sender stopped sending audio; play noise at this level until the
next packet". Its payload is one octet of noise level in -dBov (0..127, the top bit
unused, §3) optionally followed by reflection coefficients for spectral shaping, which
we parse but do not use (white noise at the right level is enough for a recording).

A CN packet carries no duration: the receiver fills the gap between the CN packet's
timestamp and the next audio packet's timestamp with ``generate(samples)``.

0 dBov is the overload point: for 16-bit PCM, a signal with RMS 32767 (§3 uses a
full-scale square wave as the reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .base import CodecInfo, Pcm

CN_INFO = CodecInfo("CN", 8000, 8000, 1, 13)


@dataclass(slots=True)
class ComfortNoisePayload:
    """One RFC 3389 payload: level in -dBov and the reflection coefficients (raw octets)."""

    level_dbov: int
    """Noise level as a positive number of dB below overload (0 = loudest, 127 = quietest)."""
    reflection_coefficients: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> ComfortNoisePayload:
        if not data:
            raise ValueError("comfort-noise payload is empty")
        return cls(level_dbov=data[0] & 0x7F, reflection_coefficients=bytes(data[1:]))

    def __bytes__(self) -> bytes:
        if not 0 <= self.level_dbov <= 127:
            raise ValueError("comfort-noise level must be 0..127 -dBov")
        return bytes((self.level_dbov,)) + self.reflection_coefficients


@dataclass(slots=True)
class ComfortNoiseGenerator:
    """Fills gaps with white noise at the level of the last CN packet (one per stream)."""

    level_dbov: int = 127
    seed: int | None = None
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    info = CN_INFO

    def decode(self, payload: bytes) -> Pcm:
        """Take the level from a CN packet; returns no samples (the gap sets the length)."""
        self.level_dbov = ComfortNoisePayload.parse(payload).level_dbov
        return np.zeros(0, dtype=np.int16)

    @property
    def rms(self) -> float:
        return float(32767.0 * 10.0 ** (-self.level_dbov / 20.0))

    def generate(self, samples: int) -> Pcm:
        """``samples`` of noise at the current level (silence when the level is 127)."""
        if samples <= 0:
            return np.zeros(0, dtype=np.int16)
        noise = self._rng.standard_normal(samples) * self.rms
        return np.clip(np.rint(noise), -32768, 32767).astype(np.int16)
