"""G.711 µ-law (PCMU, PT 0) and A-law (PCMA, PT 8) by lookup tables.

The tables are computed once at import from the G.711 segment rules (the same
integer arithmetic as the classic Sun ``g711.c`` reference that CPython's ``audioop``
uses), vectorised with numpy:

- encode: a 65,536-entry table indexed by the 16-bit sample (as unsigned), so a whole
  buffer encodes with one ``numpy.take``;
- decode: a 256-entry table of int16 indexed by the code octet.

The result is bit-exact with ``audioop.lin2ulaw/ulaw2lin/lin2alaw/alaw2lin`` for every
input (tested on all 65,536 samples and all 256 codes).

API: ``ulaw_encode(pcm) -> bytes``, ``ulaw_decode(payload) -> int16 array``,
``alaw_encode``, ``alaw_decode``; ``PcmuCodec``/``PcmaCodec`` are stateless
encoder+decoder objects with ``encode``/``decode`` and ``info``.
"""

from __future__ import annotations

import numpy as np

from .base import CodecInfo, Pcm, as_pcm

PCMU = CodecInfo("PCMU", 8000, 8000, 1, 0)
PCMA = CodecInfo("PCMA", 8000, 8000, 1, 8)

# Segment end points (inclusive) of the magnitude after biasing (µ-law, 14-bit input)
# and of the 13-bit magnitude (A-law): G.711 §2/§3, eight segments each.
_ULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159


def _all_samples() -> np.ndarray:
    """Every int16 value, ordered by its unsigned 16-bit pattern (the table index)."""
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_encode_table() -> np.ndarray:
    value = _all_samples() >> 2  # µ-law works on 14-bit linear samples
    negative = value < 0
    magnitude = np.where(negative, -value, value)
    mask = np.where(negative, 0x7F, 0xFF)
    magnitude = np.minimum(magnitude, _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude, side="left")
    code = np.where(
        segment >= 8,
        0x7F,
        (segment << 4) | ((magnitude >> (np.minimum(segment, 7) + 1)) & 0x0F),
    )
    return (code ^ mask).astype(np.uint8)


def _build_ulaw_decode_table() -> np.ndarray:
    code = ~np.arange(256, dtype=np.int32) & 0xFF  # the code octet is transmitted inverted
    t = (((code & 0x0F) << 3) + _ULAW_BIAS) << ((code & 0x70) >> 4)
    return np.where(code & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _build_alaw_encode_table() -> np.ndarray:
    value = _all_samples() >> 3  # A-law works on 13-bit linear samples
    negative = value < 0
    mask = np.where(negative, 0x55, 0xD5)  # sign bit set for positive values
    magnitude = np.where(negative, -value - 1, value)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude, side="left")
    shift = np.where(segment < 2, 1, np.minimum(segment, 7))
    code = np.where(
        segment >= 8,
        0x7F,
        (np.minimum(segment, 7) << 4) | ((magnitude >> shift) & 0x0F),
    )
    return (code ^ mask).astype(np.uint8)


def _build_alaw_decode_table() -> np.ndarray:
    code = np.arange(256, dtype=np.int32) ^ 0x55  # even bits are inverted on the wire
    segment = (code & 0x70) >> 4
    t = (code & 0x0F) << 4
    t = np.where(segment == 0, t + 8, t + 0x108)
    t = np.where(segment > 1, t << np.maximum(segment - 1, 0), t)
    return np.where(code & 0x80, t, -t).astype(np.int16)


ULAW_ENCODE_TABLE = _build_ulaw_encode_table()
ULAW_DECODE_TABLE = _build_ulaw_decode_table()
ALAW_ENCODE_TABLE = _build_alaw_encode_table()
ALAW_DECODE_TABLE = _build_alaw_decode_table()


def ulaw_encode(pcm: Pcm | bytes) -> bytes:
    """16-bit PCM → µ-law octets (one per sample)."""
    return ULAW_ENCODE_TABLE.take(as_pcm(pcm).view(np.uint16)).tobytes()


def ulaw_decode(payload: bytes) -> Pcm:
    """µ-law octets → int16 samples."""
    return ULAW_DECODE_TABLE.take(np.frombuffer(payload, dtype=np.uint8))


def alaw_encode(pcm: Pcm | bytes) -> bytes:
    """16-bit PCM → A-law octets (one per sample)."""
    return ALAW_ENCODE_TABLE.take(as_pcm(pcm).view(np.uint16)).tobytes()


def alaw_decode(payload: bytes) -> Pcm:
    """A-law octets → int16 samples."""
    return ALAW_DECODE_TABLE.take(np.frombuffer(payload, dtype=np.uint8))


class PcmuCodec:
    """Stateless µ-law encoder and decoder (one object can serve any number of streams)."""

    info = PCMU

    def encode(self, pcm: Pcm | bytes) -> bytes:
        return ulaw_encode(pcm)

    def decode(self, payload: bytes) -> Pcm:
        return ulaw_decode(payload)


class PcmaCodec:
    """Stateless A-law encoder and decoder."""

    info = PCMA

    def encode(self, pcm: Pcm | bytes) -> bytes:
        return alaw_encode(pcm)

    def decode(self, payload: bytes) -> Pcm:
        return alaw_decode(payload)
