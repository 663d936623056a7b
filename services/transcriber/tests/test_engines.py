"""The engines without the service: PocketSphinx on known speech, faster-whisper's loading
errors and its adapter over a fake model."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from sipum.errors import ConfigError
from sipum_testing.speech import SENTENCES, edit_distance, render, word_error_rate
from sipum_transcriber.audio import AudioError, decode_wav
from sipum_transcriber.engines import EngineSpec, UnsupportedLanguage, load_engine
from sipum_transcriber.engines.faster_whisper import FasterWhisperEngine
from sipum_transcriber.engines.pocketsphinx import PocketSphinxEngine

# Measured on the five espeak-ng sentences at 8 kHz (Debian 13, espeak-ng 1.51, pocketsphinx
# 5.1.1): WER 0.84. Formant-synthesised speech through a telephone band is hard for the small
# en-US model; the threshold keeps a margin over that figure and fails on a broken pipeline
# (measured on the same clips: silence 1.0, byte-swapped samples 0.97, 8 kHz audio passed as
# 16 kHz 1.0, as 4 kHz 0.95).
POCKETSPHINX_WER_LIMIT = 0.90


@pytest.fixture(scope="module")
def clips() -> list[tuple[bytes, int]]:
    return [decode_wav(render(sentence)) for sentence in SENTENCES]


def test_word_error_rate() -> None:
    assert edit_distance("a b c".split(), "a x c d".split()) == 2
    assert word_error_rate("Call me, back!", "call me back") == 0.0
    assert word_error_rate(["a b", "c d"], ["a b", "c"]) == 0.25
    with pytest.raises(ValueError):
        word_error_rate("", "x")


def test_pocketsphinx_on_known_speech(clips: list[tuple[bytes, int]]) -> None:
    engine = PocketSphinxEngine()
    results = [engine.transcribe(pcm, rate, "en-US") for pcm, rate in clips]
    wer = word_error_rate(list(SENTENCES), [r.text for r in results])
    print(f"pocketsphinx WER on {len(SENTENCES)} clips: {wer:.3f}")
    assert wer < POCKETSPHINX_WER_LIMIT
    for (pcm, rate), result in zip(clips, results, strict=True):
        assert result.language == "en-US" and result.words
        duration = len(pcm) / 2 / rate
        assert all(0 <= w.start < w.end <= duration + 0.05 for w in result.words)
        assert all(w.confidence is not None and 0 <= w.confidence <= 1 for w in result.words)
        assert result.text == " ".join(w.word for w in result.words)
        assert result.confidence is not None and 0 <= result.confidence <= 1
        assert "(" not in result.text and "<" not in result.text  # no fillers, no "(2)"
    assert "chars=" in repr(results[0]) and results[0].text not in repr(results[0])


def test_pocketsphinx_silence_and_unsupported_language() -> None:
    engine = PocketSphinxEngine()
    silence = engine.transcribe(bytes(16000), 8000, "en")
    assert silence.text == "" and silence.words == () and silence.confidence is None
    with pytest.raises(UnsupportedLanguage):
        engine.transcribe(bytes(16000), 8000, "de-DE")


def test_decode_wav_mixes_stereo_and_refuses_other_audio() -> None:
    import io
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.array([100, 300, -100, -300], dtype="<i2").tobytes())
    pcm, rate = decode_wav(out.getvalue())
    assert rate == 16000 and np.frombuffer(pcm, "<i2").tolist() == [200, -200]
    with pytest.raises(AudioError):
        decode_wav(b"RIFF" + bytes(40))


def test_faster_whisper_model_directory_errors(tmp_path: Path) -> None:
    spec = EngineSpec(name="faster-whisper")
    with pytest.raises(ConfigError, match="transcriber_model_dir: required"):
        load_engine(spec)
    with pytest.raises(ConfigError, match="is not a directory"):
        load_engine(EngineSpec(name="faster-whisper", model_dir=str(tmp_path / "none")))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"missing model\.bin, tokenizer\.json"):
        load_engine(EngineSpec(name="faster-whisper", model_dir=str(tmp_path)))
    (tmp_path / "model.bin").write_bytes(b"not a model")
    (tmp_path / "tokenizer.json").write_text("{}")
    # Without the extra installed: says how to get it; with it: CTranslate2 cannot read the
    # file. Either way one line naming the setting, never a traceback.
    with pytest.raises(ConfigError, match=r"transcriber_(engine|model_dir): "):
        load_engine(EngineSpec(name="faster-whisper", model_dir=str(tmp_path)))


class FakeWhisperModel:
    """Shaped like ``faster_whisper.WhisperModel.transcribe``: (segments generator, info)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    def transcribe(self, audio: np.ndarray, **options: object):  # type: ignore[no-untyped-def]
        self.calls.append({"audio": audio, **options})
        word = SimpleNamespace
        segments = [
            SimpleNamespace(
                text=" Call me back.",
                words=[
                    word(word=" Call", start=0.1, end=0.4, probability=0.9),
                    word(word=" me", start=0.4, end=0.5, probability=0.8),
                    word(word=" back.", start=0.5, end=0.9, probability=0.7),
                ],
            ),
            SimpleNamespace(text=" ", words=[]),
        ]
        return iter(segments), SimpleNamespace(language="de", language_probability=0.9)


def test_faster_whisper_adapter_over_a_fake_model() -> None:
    model = FakeWhisperModel()
    engine = FasterWhisperEngine(model, version="1.2.1 (test)")
    pcm = (np.sin(np.arange(8000) / 5) * 10000).astype("<i2").tobytes()
    result = engine.transcribe(pcm, 8000, "en-US")
    [call] = model.calls
    audio = call["audio"]
    assert isinstance(audio, np.ndarray) and audio.dtype == np.float32 and len(audio) == 16000
    assert float(np.abs(audio).max()) <= 1.0 and call["language"] == "en"
    assert call["word_timestamps"] is True
    assert result.text == "Call me back." and result.language == "en-US"
    assert [w.word for w in result.words] == ["Call", "me", "back."]
    assert result.confidence == pytest.approx(0.8)
    detected = engine.transcribe(pcm, 16000, "auto")
    assert model.calls[1]["language"] is None and detected.language == "de"


async def test_engine_process_survives_ctrl_c_while_it_starts() -> None:
    """Ctrl-C reaches the whole process group; the service stops gracefully, so its engine
    process must not die of it, not even before its own code runs (up's Ctrl-C test found
    that window)."""
    import asyncio
    import os
    import signal

    from sipum_transcriber.worker import EngineWorker

    worker = EngineWorker(EngineSpec())
    interrupts = 0

    async def interrupt() -> None:
        nonlocal interrupts
        while True:
            if worker.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGINT)
                    interrupts += 1
            await asyncio.sleep(0.002)

    pester = asyncio.create_task(interrupt())
    try:
        await worker.start()
    finally:
        pester.cancel()
    try:
        assert interrupts > 10
        result = await worker.transcribe(bytes(8000), 8000, "en-US", time_limit=30)
        assert result.text == ""
    finally:
        await worker.close()
