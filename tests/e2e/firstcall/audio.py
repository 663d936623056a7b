"""The known audio a caller sends, and how what comes back is compared with it."""

from __future__ import annotations

import io
import wave

import numpy as np
from sipum_protocol.media.codecs.g711 import ulaw_decode, ulaw_encode

RATE = 8000


def known_audio(seconds: float, *, seed: int = 7) -> np.ndarray:
    """A loud speech-like signal (gliding harmonics, syllable envelope, a little noise).

    Never silent for long, so the recorder's silence detection never stops it, and without
    periodic structure, so a correlation peak is unambiguous."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    f0 = 150 + 40 * np.sin(2 * np.pi * 0.6 * t) + 15 * np.sin(2 * np.pi * 1.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voice = np.zeros(len(t))
    for k in range(1, 7):
        voice += np.sin(k * phase) / k
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 2.9 * t) ** 2
    signal = 5500 * envelope * voice + 250 * rng.standard_normal(len(t))
    return np.clip(np.round(signal), -32768, 32767).astype(np.int16)


def through_ulaw(pcm: np.ndarray) -> np.ndarray:
    """What a G.711 µ-law hop leaves of *pcm* (the recorder stores decoded PCMU)."""
    return ulaw_decode(ulaw_encode(pcm))


def wav_pcm(data: bytes) -> tuple[np.ndarray, int]:
    """Samples (mono int16) and rate of a WAV file."""
    with wave.open(io.BytesIO(data), "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2, "expected 16-bit mono"
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


def find(haystack: np.ndarray, needle: np.ndarray) -> tuple[float, int]:
    """Where *needle* sits best inside *haystack*: (normalised correlation, offset).

    Cross-correlation by FFT, each position normalised by the energy of the haystack window
    under it (so a loud prompt next to the message does not win)."""
    h = haystack.astype(np.float64)
    n = needle.astype(np.float64)
    if len(n) == 0 or len(h) < len(n):
        return 0.0, -1
    size = 1 << int(np.ceil(np.log2(len(h) + len(n))))
    spectrum = np.fft.rfft(h, size) * np.conj(np.fft.rfft(n, size))
    corr = np.fft.irfft(spectrum, size)[: len(h) - len(n) + 1]
    cumulative = np.concatenate([[0.0], np.cumsum(h * h)])
    window_energy = cumulative[len(n) :] - cumulative[: len(h) - len(n) + 1]
    scores = corr / np.sqrt(np.maximum(window_energy, 1e-9) * float(n @ n))
    best = int(np.argmax(scores))
    return float(scores[best]), best


def match(reference: np.ndarray, got: np.ndarray, *, trim: float = 0.1) -> float:
    """Correlation of *got* (a recording or decoded stream that should hold *reference*,
    possibly shifted, with a few ms lost or added at the edges) with *reference*.

    The middle of the reference (``trim`` seconds off each end) is searched for in *got*; the
    result is the normalised correlation at the best position (1.0 = identical shape)."""
    cut = round(trim * RATE)
    core = reference[cut : len(reference) - cut]
    score, _ = find(got, core)
    return score
