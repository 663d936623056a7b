"""Uploaded greetings: any audio PyAV (FFmpeg) can read → 16-bit mono WAV at 16 kHz.

16 kHz keeps wideband (G.722) calls wideband; the recorder resamples for narrowband calls.
Uploads are bounded in bytes (by the route) and in length (here), and decoding runs in a
worker thread so a large file does not stall the event loop.
"""

from __future__ import annotations

import io

import av
import numpy as np
from sipum_protocol.media.recording import wav_bytes

GREETING_RATE = 16000
MAX_GREETING_SECONDS = 120.0
MIN_GREETING_SECONDS = 0.3


class BadAudio(ValueError):
    """Not audio we can read, or too short/long."""


def to_greeting_wav(data: bytes) -> tuple[bytes, int]:
    """(WAV bytes, duration in ms) of the uploaded audio; raises :class:`BadAudio`."""
    chunks: list[np.ndarray] = []
    total = 0
    limit = int(MAX_GREETING_SECONDS * GREETING_RATE)
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise BadAudio("the upload has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=GREETING_RATE)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1)
                    chunks.append(samples.astype(np.int16, copy=False))
                    total += len(samples)
                    if total > limit:
                        raise BadAudio(f"greetings are at most {MAX_GREETING_SECONDS:.0f} s long")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1).astype(np.int16, copy=False))
    except BadAudio:
        raise
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise BadAudio(f"cannot read the upload as audio: {exc}") from None
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    if len(pcm) < MIN_GREETING_SECONDS * GREETING_RATE:
        raise BadAudio(f"greetings are at least {MIN_GREETING_SECONDS} s long")
    return wav_bytes(pcm, GREETING_RATE), round(len(pcm) * 1000 / GREETING_RATE)
