"""Audio codecs for RTP: registry, G.711 (PCMU/PCMA), G.722, Opus, comfort noise, resampling.

Registry
--------
``CODECS`` maps the encoding name (case-insensitive lookup through ``codec_info(name)``)
to its ``CodecInfo``; ``codec_for_payload_type(pt)`` finds a static payload type.

Per stream and direction, create an encoder or decoder (G.722 and Opus are stateful):

    enc = create_encoder("PCMU")      # .encode(int16 array or bytes) -> payload bytes
    dec = create_decoder("G722")      # .decode(payload) -> int16 array at info.sample_rate

=========  =========  ==========  ===  =============================
name       RTP clock  PCM rate    PT   implementation
=========  =========  ==========  ===  =============================
PCMU       8000       8000        0    lookup tables (``g711``)
PCMA       8000       8000        8    lookup tables (``g711``)
G722       8000       16000       9    ``g722`` package (``G722``)
opus       48000      48000       111  PyAV's libopus (dynamic PT)
CN         8000       8000        13   RFC 3389 level → noise
=========  =========  ==========  ===  =============================

``resample(pcm, from_rate, to_rate)`` / ``Resampler`` convert between PCM rates (e.g.
Opus 48 kHz → 16 kHz for storage). ``ComfortNoiseGenerator`` (the CN "decoder") takes
the level from a CN packet and ``generate(n)`` fills the gap up to the next packet.
"""

from __future__ import annotations

from typing import Any

from .base import CodecInfo, Decoder, Encoder, Pcm, as_pcm
from .comfort_noise import CN_INFO, ComfortNoiseGenerator, ComfortNoisePayload
from .g711 import (
    PCMA,
    PCMU,
    PcmaCodec,
    PcmuCodec,
    alaw_decode,
    alaw_encode,
    ulaw_decode,
    ulaw_encode,
)
from .g722 import G722_INFO, G722Decoder, G722Encoder
from .opus import OPUS_INFO, OpusDecoder, OpusEncoder
from .resample import Resampler, resample

CODECS: dict[str, CodecInfo] = {
    info.name.lower(): info for info in (PCMU, PCMA, G722_INFO, OPUS_INFO, CN_INFO)
}
"""Every supported codec by lower-case encoding name."""

AUDIO_CODECS = ("PCMU", "PCMA", "G722", "opus")
"""Codecs that carry audio (CN only marks silence)."""


def codec_info(name: str) -> CodecInfo:
    """The codec for an ``a=rtpmap`` encoding name (case-insensitive); ``KeyError`` if unknown."""
    return CODECS[name.lower()]


def codec_for_payload_type(payload_type: int) -> CodecInfo:
    """The codec with this static payload type; ``KeyError`` for dynamic/unknown ones."""
    for info in CODECS.values():
        if info.static and info.payload_type == payload_type:
            return info
    raise KeyError(payload_type)


def create_encoder(name: str, **options: Any) -> Encoder:
    """A new encoder for one stream (``options`` go to Opus: ``bit_rate``, ``frame_ms``,
    ``application``)."""
    info = codec_info(name)
    if info is PCMU:
        return PcmuCodec()
    if info is PCMA:
        return PcmaCodec()
    if info is G722_INFO:
        return G722Encoder()
    if info is OPUS_INFO:
        return OpusEncoder(**options)
    raise KeyError(f"no encoder for {info.name}")


def create_decoder(name: str) -> Decoder:
    """A new decoder for one stream (CN gives a ``ComfortNoiseGenerator``)."""
    info = codec_info(name)
    if info is PCMU:
        return PcmuCodec()
    if info is PCMA:
        return PcmaCodec()
    if info is G722_INFO:
        return G722Decoder()
    if info is OPUS_INFO:
        return OpusDecoder()
    return ComfortNoiseGenerator()


__all__ = [
    "AUDIO_CODECS",
    "CN_INFO",
    "CODECS",
    "G722_INFO",
    "OPUS_INFO",
    "PCMA",
    "PCMU",
    "CodecInfo",
    "ComfortNoiseGenerator",
    "ComfortNoisePayload",
    "Decoder",
    "Encoder",
    "G722Decoder",
    "G722Encoder",
    "OpusDecoder",
    "OpusEncoder",
    "Pcm",
    "PcmaCodec",
    "PcmuCodec",
    "Resampler",
    "alaw_decode",
    "alaw_encode",
    "as_pcm",
    "codec_for_payload_type",
    "codec_info",
    "create_decoder",
    "create_encoder",
    "resample",
    "ulaw_decode",
    "ulaw_encode",
]
