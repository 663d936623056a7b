"""G.722 (PT 9) through the ``g722`` package (import name ``G722``, a C extension).

G.722 codes 16 kHz audio at 64 kbit/s, one octet per two samples, but its RTP clock
runs at 8000 Hz for historical reasons (RFC 3551 §4.5.2): a 20 ms frame is 320 samples,
160 octets, and advances the RTP timestamp by 160.

The codec is ADPCM: encoder and decoder carry predictor state from frame to frame, so
each stream direction needs its own ``G722Encoder``/``G722Decoder`` object and frames
must be fed in order.
"""

from __future__ import annotations

import numpy as np
from G722 import G722 as _G722State

from .base import CodecInfo, Pcm, as_pcm

G722_INFO = CodecInfo("G722", 8000, 16000, 1, 9)
_BIT_RATE = 64000


class G722Encoder:
    """Stateful G.722 encoder for one stream (16 kHz int16 in, 64 kbit/s out)."""

    info = G722_INFO

    def __init__(self) -> None:
        self._state = _G722State(G722_INFO.sample_rate, _BIT_RATE)

    def encode(self, pcm: Pcm | bytes) -> bytes:
        samples = as_pcm(pcm)
        if len(samples) % 2:
            raise ValueError("G.722 encodes sample pairs: give an even number of samples")
        # The extension reads numpy int16 arrays element-wise (bytes would be read as 8-bit).
        return bytes(self._state.encode(np.ascontiguousarray(samples)))


class G722Decoder:
    """Stateful G.722 decoder for one stream (payload in, 16 kHz int16 out)."""

    info = G722_INFO

    def __init__(self) -> None:
        self._state = _G722State(G722_INFO.sample_rate, _BIT_RATE)

    def decode(self, payload: bytes) -> Pcm:
        return np.frombuffer(self._state.decode(payload), dtype=np.int16).copy()
