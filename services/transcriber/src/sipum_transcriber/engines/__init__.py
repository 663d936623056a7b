"""Speech-to-text engines behind one small interface.

An engine turns 16-bit mono PCM into a :class:`Transcript`. It is slow (a second or more of
CPU per message) and blocking, so the service never calls it on the event loop: each engine
lives in a worker process of its own (``sipum_transcriber.worker``), loaded once and reused.

- ``pocketsphinx`` (default): CMU PocketSphinx 5; the wheel carries the en-US acoustic model,
  dictionary and language model, so it works on a fresh install with nothing downloaded.
- ``faster-whisper``: Whisper on CTranslate2 from a model directory the operator provides
  (``model_dir``); many languages and far better accuracy, more CPU and memory. Optional
  dependency: ``pip install 'sipum-transcriber[faster-whisper]'``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from sipum.errors import ConfigError

EngineName = Literal["pocketsphinx", "faster-whisper"]


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start: float
    """Seconds from the start of the audio."""
    end: float
    confidence: float | None = None
    """0..1; None when the engine gives none."""


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    language: str
    """The language transcribed (or detected), a BCP 47 tag such as ``en-US``."""
    words: tuple[Word, ...] = ()
    confidence: float | None = None
    """0..1 for the whole text; None when the engine gives none."""

    def __repr__(self) -> str:
        # The text is the caller's speech: a repr (in a traceback, a log) shows only its size.
        return f"Transcript(language={self.language!r}, chars={len(self.text)}, words={len(self.words)})"


class UnsupportedLanguage(Exception):
    """The engine cannot transcribe this language (not retried: a retry cannot help)."""


class Engine(Protocol):
    name: str
    version: str

    def transcribe(self, pcm: bytes, sample_rate: int, language: str) -> Transcript:
        """``pcm``: 16-bit signed little-endian mono samples at ``sample_rate`` Hz;
        ``language``: a BCP 47 tag (``en-US``) or ``auto`` where the engine can detect it."""
        ...


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """What a worker process needs to load an engine (picklable: it crosses the process
    boundary)."""

    name: EngineName = "pocketsphinx"
    model_dir: str | None = None
    device: str = "cpu"
    compute_type: str = "int8"
    threads: int = 1
    options: dict[str, str] = field(default_factory=dict)


def load_engine(spec: EngineSpec) -> Engine:
    """Load the engine ``spec`` names; ``ConfigError`` when it cannot be loaded."""
    if spec.name == "pocketsphinx":
        from sipum_transcriber.engines.pocketsphinx import PocketSphinxEngine

        return PocketSphinxEngine()
    if spec.name == "faster-whisper":
        from sipum_transcriber.engines.faster_whisper import FasterWhisperEngine

        return FasterWhisperEngine.from_directory(
            spec.model_dir,
            device=spec.device,
            compute_type=spec.compute_type,
            threads=spec.threads,
        )
    raise ConfigError("transcriber_engine", f"unknown engine {spec.name!r}")
