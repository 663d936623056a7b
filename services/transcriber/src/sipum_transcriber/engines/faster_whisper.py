"""faster-whisper: Whisper on CTranslate2, from a model directory the operator provides.

Nothing is downloaded: the directory must hold a converted model (``model.bin``,
``config.json``) and its ``tokenizer.json`` (without it faster-whisper would fetch one from a
model hub). Convert one with ``ct2-transformers-converter --model openai/whisper-small
--output_dir whisper-small-ct2 --copy_files tokenizer.json preprocessor_config.json
--quantization int8`` on a machine that may download, and copy the directory over.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np
from sipum.errors import ConfigError
from sipum_protocol.media.codecs.resample import resample

from sipum_transcriber.engines import Transcript, Word

MODEL_RATE = 16000
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")


def check_model_directory(model_dir: str | None) -> Path:
    """The model directory, or ``ConfigError`` saying what is wrong with it."""
    if not model_dir:
        raise ConfigError(
            "transcriber_model_dir", "required with transcriber_engine=faster-whisper"
        )
    path = Path(model_dir)
    if not path.is_dir():
        raise ConfigError("transcriber_model_dir", f"{path} is not a directory")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ConfigError(
            "transcriber_model_dir",
            f"{path} is not a CTranslate2 Whisper model directory (missing {', '.join(missing)})",
        )
    return path


class FasterWhisperEngine:
    name = "faster-whisper"

    def __init__(self, model: Any, *, version: str) -> None:
        """``model``: a ``faster_whisper.WhisperModel`` (or anything with its
        ``transcribe(audio, language=, word_timestamps=, ...)``)."""
        self._model = model
        self.version = version

    @classmethod
    def from_directory(
        cls,
        model_dir: str | None,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        threads: int = 1,
    ) -> FasterWhisperEngine:
        path = check_model_directory(model_dir)
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise ConfigError(
                "transcriber_engine",
                "faster-whisper is not installed (install sipum-transcriber[faster-whisper])",
            ) from None
        try:
            model = WhisperModel(
                str(path),
                device=device,
                compute_type=compute_type,
                cpu_threads=threads,
                num_workers=1,
                local_files_only=True,
            )
        except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError of its own
            raise ConfigError("transcriber_model_dir", f"cannot load {path}: {exc}") from None
        version = importlib.metadata.version("faster-whisper")
        return cls(model, version=f"{version} ({path.name})")

    def transcribe(self, pcm: bytes, sample_rate: int, language: str) -> Transcript:
        samples = np.frombuffer(pcm, dtype="<i2")
        if sample_rate != MODEL_RATE:
            samples = resample(samples, sample_rate, MODEL_RATE)
        audio = samples.astype(np.float32) / 32768.0
        asked = None if language.lower() == "auto" else language.split("-")[0].lower()
        segments, info = self._model.transcribe(
            audio,
            language=asked,
            word_timestamps=True,
            beam_size=5,
            condition_on_previous_text=False,
        )
        words: list[Word] = []
        texts: list[str] = []
        for segment in segments:  # a generator: decoding happens while we iterate
            texts.append(segment.text.strip())
            for w in segment.words or ():
                words.append(
                    Word(
                        word=w.word.strip(),
                        start=float(w.start),
                        end=float(w.end),
                        confidence=float(w.probability),
                    )
                )
        confidence = sum(w.confidence or 0.0 for w in words) / len(words) if words else None
        detected = getattr(info, "language", None)
        return Transcript(
            text=" ".join(t for t in texts if t),
            language=language if asked is not None or not detected else str(detected),
            words=tuple(words),
            confidence=confidence,
        )
