"""Message audio for streaming: the stored WAV decoded once to 8 kHz PCM and kept in a small
LRU cache (a player's DESCRIBE, SETUP and PLAY, and seeks, all hit the same message)."""

from __future__ import annotations

import io
from collections import OrderedDict

import numpy as np
from sipum_protocol.media.codecs import resample
from sipum_protocol.media.playback import read_wav

STREAM_RATE = 8000  # PCMU


def decode_wav(data: bytes) -> np.ndarray:
    """16-bit PCM WAV bytes → mono int16 samples at 8 kHz."""
    pcm, rate = read_wav(io.BytesIO(data))
    if rate != STREAM_RATE:
        pcm = resample(pcm, rate, STREAM_RATE)
    return pcm


class AudioCache:
    def __init__(self, blobs: object, *, capacity: int = 32) -> None:
        self.blobs = blobs
        self.capacity = capacity
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()

    async def pcm(self, blob_key: str) -> np.ndarray:
        cached = self._items.get(blob_key)
        if cached is not None:
            self._items.move_to_end(blob_key)
            return cached
        data = await self.blobs.get(blob_key)  # type: ignore[attr-defined]
        pcm = decode_wav(data)
        self._items[blob_key] = pcm
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return pcm
