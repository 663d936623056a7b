"""WAV files of recorded messages: the canonical 16-bit mono header and whole files."""

from __future__ import annotations

import struct

from ..codecs.base import Pcm
from .session import RecordingChunk

WAV_HEADER_SIZE = 44


def wav_header(samples: int, sample_rate: int) -> bytes:
    """The canonical 44-byte RIFF/WAVE header of 16-bit mono PCM with *samples* samples."""
    data_size = 2 * samples
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_size,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        1,  # mono
        sample_rate,
        2 * sample_rate,
        2,
        16,
        b"data",
        data_size,
    )


def wav_bytes(pcm: Pcm | bytes, sample_rate: int) -> bytes:
    data = pcm if isinstance(pcm, bytes) else pcm.astype("<i2", copy=False).tobytes()
    return wav_header(len(data) // 2, sample_rate) + data


def wav_from_chunks(chunks: list[RecordingChunk], sample_rate: int) -> bytes:
    """One WAV file from a session's chunks (in index order; e.g. parts kept in a blob store)."""
    ordered = sorted(chunks, key=lambda c: c.index)
    pcm = b"".join(c.pcm for c in ordered)
    return wav_header(len(pcm) // 2, sample_rate) + pcm
