"""Opus (RFC 6716, RTP payload format RFC 7587) through PyAV's bundled libopus.

RTP clock and PCM rate are both 48 kHz; SDP always says ``opus/48000/2`` (RFC 7587 §7)
but we encode mono and ask the decoder for mono. Payload type is dynamic; we offer 111.

Encoder and decoder are stateful (prediction, resampler history, lookahead): one object
per stream direction. The encoder's default ``application="audio"`` (CELT/hybrid) keeps
the waveform (correlation > 0.99 on speech-like signals at 32 kbit/s); ``"voip"`` (SILK)
sounds as good to a listener but matches the waveform much less (~0.8).
``OpusEncoder.encode`` takes exactly one frame (``frame_ms``,
default 20 ms = 960 samples) and returns one packet. The decoder output lags the encoder
input by libopus's lookahead (312 samples at 48 kHz, the Ogg "pre-skip"), as for any
Opus stream without container metadata.
"""

from __future__ import annotations

import av
import numpy as np

from .base import CodecInfo, Pcm, as_pcm

OPUS_INFO = CodecInfo("opus", 48000, 48000, 1, 111, static=False)


class OpusEncoder:
    """Stateful Opus encoder for one stream: 48 kHz mono int16 frames in, packets out."""

    info = OPUS_INFO

    def __init__(
        self, *, bit_rate: int = 32000, frame_ms: int = 20, application: str = "audio"
    ) -> None:
        if frame_ms not in (10, 20, 40, 60):
            raise ValueError("Opus frame length must be 10, 20, 40 or 60 ms")
        self.frame_samples = OPUS_INFO.sample_rate * frame_ms // 1000
        ctx = av.CodecContext.create("libopus", "w")
        ctx.sample_rate = OPUS_INFO.sample_rate
        ctx.layout = "mono"
        ctx.format = "s16"
        ctx.bit_rate = bit_rate
        ctx.options = {"frame_duration": str(frame_ms), "application": application}
        ctx.open()
        self._ctx = ctx
        self._pts = 0

    def encode(self, pcm: Pcm | bytes) -> bytes:
        samples = as_pcm(pcm)
        if len(samples) != self.frame_samples:
            raise ValueError(f"Opus encodes frames of {self.frame_samples} samples")
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = OPUS_INFO.sample_rate
        frame.pts = self._pts
        self._pts += len(samples)
        packets = self._ctx.encode(frame)
        # libopus has no frame delay in FFmpeg's wrapper: one frame in, one packet out.
        return b"".join(bytes(p) for p in packets)


class OpusDecoder:
    """Stateful Opus decoder for one stream: packets in, 48 kHz mono int16 out."""

    info = OPUS_INFO

    def __init__(self) -> None:
        ctx = av.CodecContext.create("opus", "r")
        ctx.sample_rate = OPUS_INFO.sample_rate
        ctx.layout = "mono"
        self._ctx = ctx

    def decode(self, payload: bytes) -> Pcm:
        """One packet → PCM; ``ValueError`` for a payload libopus rejects (the decoder stays
        usable). An empty payload gives no samples: handed to FFmpeg it would mean "end of
        stream" and stop the decoder for good."""
        if not payload:
            return np.zeros(0, dtype=np.int16)
        chunks = []
        for frame in self._ctx.decode(av.Packet(payload)):
            chunks.append(frame.to_ndarray().reshape(-1))
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        decoded = np.concatenate(chunks)
        if decoded.dtype == np.int16:
            return decoded.astype(np.int16)
        # FFmpeg's Opus decoder produces planar float in [-1, 1)
        scaled = np.rint(decoded.astype(np.float64) * 32768.0)
        return np.clip(scaled, -32768, 32767).astype(np.int16)
