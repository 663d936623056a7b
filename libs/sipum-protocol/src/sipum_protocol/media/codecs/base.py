"""Codec description and the encoder/decoder interface every codec implements.

A codec is described by a frozen ``CodecInfo`` (name as in SDP ``a=rtpmap``, RTP clock
rate, PCM sample rate, channels, static/default payload type, default frame length).
``RTP clock rate`` and ``sample rate`` differ for G.722 (RTP clock 8000, audio 16 kHz:
RFC 3551 §4.5.2) — timestamps advance by ``info.timestamp_step`` per frame, PCM by
``info.samples_per_frame``.

Encoders and decoders are objects, one per stream and direction, because G.722 and Opus
carry state from frame to frame (G.711 ones are stateless but have the same shape):

- ``Encoder.encode(pcm) -> bytes``: ``pcm`` is a 1-D ``numpy.int16`` array or native
  16-bit little-endian bytes at ``info.sample_rate``; returns one RTP payload.
- ``Decoder.decode(payload) -> numpy.ndarray`` (``int16``, 1-D, at ``info.sample_rate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class CodecInfo:
    """What SDP and the RTP layer need to know about one codec."""

    name: str
    """Encoding name as in ``a=rtpmap`` (``PCMU``, ``PCMA``, ``G722``, ``opus``, ``CN``)."""
    clock_rate: int
    """RTP timestamp clock rate (Hz)."""
    sample_rate: int
    """Rate of the PCM this codec encodes from and decodes to (Hz)."""
    channels: int
    payload_type: int
    """Static payload type (RFC 3551 table 4) or the default dynamic one we offer."""
    frame_ms: int = 20
    """Default packetisation time (``a=ptime``)."""
    static: bool = True
    """False for dynamic payload types that SDP must map with ``a=rtpmap``."""

    @property
    def samples_per_frame(self) -> int:
        return self.sample_rate * self.frame_ms // 1000

    @property
    def timestamp_step(self) -> int:
        """RTP timestamp increment per default frame."""
        return self.clock_rate * self.frame_ms // 1000

    @property
    def rtpmap(self) -> str:
        """The ``a=rtpmap`` value after the payload type, e.g. ``opus/48000/2``."""
        if self.name == "opus":
            # RFC 7587 §7: always signalled as two channels.
            return f"opus/{self.clock_rate}/2"
        if self.channels != 1:
            return f"{self.name}/{self.clock_rate}/{self.channels}"
        return f"{self.name}/{self.clock_rate}"


class Encoder(Protocol):
    info: CodecInfo

    def encode(self, pcm: Pcm | bytes) -> bytes: ...


class Decoder(Protocol):
    info: CodecInfo

    def decode(self, payload: bytes) -> Pcm: ...


def as_pcm(pcm: Pcm | bytes | bytearray | memoryview | npt.ArrayLike) -> Pcm:
    """View bytes (native 16-bit) or an array as a 1-D int16 array without copying when possible."""
    if type(pcm) is np.ndarray and pcm.dtype == np.int16 and pcm.ndim == 1:
        return pcm  # the per-packet fast path
    if isinstance(pcm, bytes | bytearray | memoryview):
        if len(pcm) % 2:
            raise ValueError("16-bit PCM bytes must have an even length")
        return np.frombuffer(pcm, dtype=np.int16)
    arr = np.asarray(pcm)
    if arr.dtype != np.int16:
        raise ValueError(f"PCM must be int16, not {arr.dtype}")
    return arr.reshape(-1)
