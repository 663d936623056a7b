"""Audio the recorder plays: system prompts, uploaded greetings and stored messages.

System prompts come from ``sipum_protocol.media.prompts`` (espeak-ng + sox, cached on disk). Rendering
runs in one worker thread: it is blocking work, and one thread means two calls never render the
same missing file at once. Uploaded greetings and messages are blobs; WAV is read directly,
anything else (an MP3 or Opus upload kept as is) is decoded with PyAV.
"""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from sipum_protocol.media.codecs import CodecInfo
from sipum_protocol.media.playback import PcmItem
from sipum_protocol.media.prompts import (
    DEFAULT_LANGUAGE,
    PromptLibrary,
    language_sets,
    prompt_language,
)


class Prompts:
    """The prompt library behind a single rendering thread, and its other languages' sets
    (:meth:`language`: the same thread, each phrase not translated from the default set)."""

    def __init__(
        self,
        library: PromptLibrary,
        *,
        executor: ThreadPoolExecutor | None = None,
        languages: dict[str, Prompts] | None = None,
    ) -> None:
        self.library = library
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="prompts")
        self._languages: dict[str, Prompts] = {DEFAULT_LANGUAGE: self}
        for name, prompts in (languages or {}).items():
            self._languages.setdefault(name, prompts)

    @classmethod
    async def open(cls, directory: str | Path, *, texts: dict[str, str] | None = None) -> Prompts:
        """The library in *directory*, every prompt rendered (a few seconds the first time),
        with every language's set in ``<directory>/<language>`` (``scripts/generate_prompts.py``
        renders them at build time; missing files are rendered here)."""

        def build() -> dict[str, PromptLibrary]:
            library = PromptLibrary(directory, texts=texts)
            sets = {DEFAULT_LANGUAGE: library}
            if texts is None:  # custom texts (tests): no translations of them
                sets = language_sets(library)
            for each in sets.values():
                each.ensure_all(workers=2)
            return sets

        sets = await asyncio.to_thread(build)
        default = cls(sets.pop(DEFAULT_LANGUAGE))
        for name, library in sets.items():
            default._languages[name] = cls(library, executor=default._executor)
        return default

    def language(self, tag: str | None) -> Prompts:
        """The set for a mailbox's ``prompt_language`` (``de-DE`` → ``de``); the default set
        when there is none for it."""
        return self._languages.get(prompt_language(tag), self)

    def rate_for(self, codec: CodecInfo) -> int:
        """The prompt rate closest above the codec's audio rate (the player resamples)."""
        rates = sorted(self.library.rates)
        return next((r for r in rates if r >= codec.sample_rate), rates[-1])

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def names(self, names: Sequence[str], rate: int) -> list[Path]:
        paths: list[Path] = await self._run(self.library.paths, names, rate)
        return paths

    async def spoken(self, text: str, rate: int) -> Path:
        """Free text (a caller's display name) with the prompt voice, rendered once, cached."""
        path: Path = await self._run(self.library.spoken, text, rate)
        return path

    async def sequence(self, what: str, rate: int, **kwargs: Any) -> list[Path]:
        paths: list[Path] = await self._run(
            self.library.prompt_sequence_for, what, rate=rate, **kwargs
        )
        return paths

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def decode_audio(data: bytes) -> PcmItem:
    """A WAV (16-bit PCM) or any format PyAV reads, as mono int16 samples."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            if w.getsampwidth() == 2 and w.getcomptype() == "NONE":
                channels = w.getnchannels()
                rate = w.getframerate()
                pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
                if channels > 1:
                    pcm = pcm.reshape(-1, channels).mean(axis=1).round().astype(np.int16)
                return PcmItem(pcm.astype(np.int16), rate)
    except (wave.Error, EOFError):
        pass
    return _decode_with_av(data)


def _decode_with_av(data: bytes) -> PcmItem:
    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or 16000
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        parts: list[np.ndarray] = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                parts.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            parts.append(out.to_ndarray().reshape(-1))
    pcm = np.concatenate(parts).astype(np.int16) if parts else np.zeros(0, np.int16)
    return PcmItem(pcm, rate)


def decode_wav_pcm(data: bytes) -> tuple[bytes, int]:
    """Raw PCM bytes and sample rate of a WAV blob we wrote."""
    item = decode_audio(data)
    return item.pcm.astype("<i2").tobytes(), item.sample_rate
