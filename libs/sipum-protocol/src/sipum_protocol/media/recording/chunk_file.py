"""A local WAV file a recording is appended to chunk by chunk, and its repair after a crash.

:class:`WavChunkFile` writes the header with zero sizes, appends each chunk and ``fsync``s it,
and fixes the header at close; :func:`recover_wav` fixes up the header of a file a crashed
process left behind (what a crash loses is only what had not been handed out as a chunk yet).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from .session import RecordingChunk
from .wav import WAV_HEADER_SIZE, wav_header


@dataclass
class WavChunkFile:
    """Appends recording chunks to a WAV file, each one flushed to disk (``fsync``) as it comes.

    The header is written first with zero sizes and fixed at :meth:`close`; after a crash,
    :func:`recover_wav` fixes it from the file's length.
    """

    path: Path
    sample_rate: int
    fsync: bool = True
    samples: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self._file = open(self.path, "wb")  # closed in close()
        self._file.write(wav_header(0, self.sample_rate))
        self._sync()

    def _sync(self) -> None:
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def write(self, chunk: RecordingChunk) -> None:
        if chunk.pcm:
            self._file.write(chunk.pcm)
            self.samples += len(chunk.pcm) // 2
        self._sync()

    def close(self) -> float:
        """Fix the header; returns the duration in seconds."""
        self._file.seek(0)
        self._file.write(wav_header(self.samples, self.sample_rate))
        self._sync()
        self._file.close()
        return self.samples / self.sample_rate


@dataclass(frozen=True)
class RecoveredWav:
    path: Path
    sample_rate: int
    samples: int

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate


def recover_wav(path: Path | str, *, sample_rate: int | None = None) -> RecoveredWav:
    """Make the WAV file a crashed :class:`WavChunkFile` left behind valid again.

    The header's sizes are recomputed from the file length; an odd trailing byte (a sample
    torn by the crash) is cut off. *sample_rate* is only needed if the header itself is damaged.
    """
    path = Path(path)
    with open(path, "r+b") as f:
        head = f.read(WAV_HEADER_SIZE)
        f.seek(0, os.SEEK_END)
        size = f.tell()
        rate = sample_rate
        if len(head) == WAV_HEADER_SIZE and head[:4] == b"RIFF" and head[8:16] == b"WAVEfmt ":
            rate = rate or struct.unpack_from("<I", head, 24)[0]
        if not rate:
            raise ValueError(f"{path}: no WAV header and no sample rate given")
        data = max(0, size - WAV_HEADER_SIZE)
        data -= data % 2
        if size < WAV_HEADER_SIZE:
            f.seek(0, os.SEEK_END)
            f.write(bytes(WAV_HEADER_SIZE - size))
        f.truncate(WAV_HEADER_SIZE + data)
        f.seek(0)
        f.write(wav_header(data // 2, rate))
        f.flush()
        os.fsync(f.fileno())
    return RecoveredWav(path, rate, data // 2)
