"""Transcriber settings (environment prefix ``SIPUM_``; see docs/configuration.md)."""

from __future__ import annotations

from pydantic import Field
from sipum.config import ServiceSettings

from sipum_transcriber.engines import EngineName, EngineSpec


class TranscriberSettings(ServiceSettings):
    transcriber_engine: EngineName = "pocketsphinx"
    """``pocketsphinx`` (en-US model shipped in its wheel) or ``faster-whisper`` (needs
    ``transcriber_model_dir`` and the ``faster-whisper`` extra)."""
    transcriber_model_dir: str | None = None
    """Directory of a CTranslate2 Whisper model (``model.bin``, ``config.json``,
    ``tokenizer.json``) for ``faster-whisper``."""
    transcriber_device: str = "cpu"
    """faster-whisper: ``cpu`` or ``cuda``."""
    transcriber_compute_type: str = "int8"
    """faster-whisper: CTranslate2 compute type (``int8``, ``int8_float16``, ``float16``…)."""
    transcriber_threads: int = Field(default=1, ge=1, le=64)
    """faster-whisper: CPU threads of one engine process."""
    transcriber_concurrency: int = Field(default=1, ge=1, le=64)
    """Messages transcribed at once by a replica: one engine process each (about one core
    and its model's memory each)."""
    transcription_language: str = Field(default="en-US", min_length=2, max_length=35)
    """Language of messages whose domain and user set none (``auto``: the engine detects
    it, faster-whisper only)."""
    transcriber_time_limit: float = Field(default=120.0, gt=0)
    """A transcription still running after this many seconds is stopped (its process is
    killed) and retried."""
    transcriber_max_attempts: int = Field(default=3, ge=1, le=100)
    """Deliveries of one message before the transcriber gives up on it."""
    transcriber_ack_wait: float = Field(default=60.0, gt=0)
    """Seconds without an acknowledgement after which JetStream hands a message to another
    replica: how long a job of a crashed replica waits before it is redone."""
    transcriber_max_pending: int = Field(default=64, ge=1)
    """Messages handed out and not yet acknowledged, over all replicas (JetStream
    ``max_ack_pending``): at least replicas × concurrency."""

    def engine_spec(self) -> EngineSpec:
        return EngineSpec(
            name=self.transcriber_engine,
            model_dir=self.transcriber_model_dir,
            device=self.transcriber_device,
            compute_type=self.transcriber_compute_type,
            threads=self.transcriber_threads,
        )
