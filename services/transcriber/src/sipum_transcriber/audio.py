"""The stored message (WAV, as the media-recorder writes it) as PCM for an engine."""

from __future__ import annotations

import io
import wave

import numpy as np


class AudioError(Exception):
    """The blob is not audio an engine can take (not retried: a retry reads the same bytes)."""


def decode_wav(data: bytes) -> tuple[bytes, int]:
    """16-bit mono PCM and its sample rate from a PCM WAV (stereo is mixed down)."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"not a PCM WAV: {exc}") from None
    if width != 2:
        raise AudioError(f"{8 * width}-bit samples; 16-bit expected")
    if channels > 1:
        samples = np.frombuffer(frames, dtype="<i2").reshape(-1, channels)
        frames = samples.mean(axis=1).astype("<i2").tobytes()
    return frames, rate
