"""Prompts rendered by the real espeak-ng and sox: reproducible bytes, audible, sensible lengths."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from sipum_protocol.media.prompts import (
    PROMPT_TEXTS,
    PROMPT_TRANSLATIONS,
    Beep,
    PromptLibrary,
    digit_prompts,
    ensure_prompts,
    language_sets,
    main,
    number_words,
    prompt_language,
    tone_pcm,
)


def read(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 1
        assert w.getsampwidth() == 2
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2")


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> PromptLibrary:
    return ensure_prompts(tmp_path_factory.mktemp("prompts"))


def test_generation_is_reproducible_byte_for_byte(library: PromptLibrary, tmp_path: Path) -> None:
    again = ensure_prompts(tmp_path)
    first = sorted(p.relative_to(library.directory) for p in library.directory.rglob("*.wav"))
    second = sorted(p.relative_to(again.directory) for p in again.directory.rglob("*.wav"))
    assert first == second
    assert len(first) == 2 * (len(PROMPT_TEXTS) + 1)  # every text + the beep, at 8 and 16 kHz
    for rel in first:
        assert (library.directory / rel).read_bytes() == (again.directory / rel).read_bytes(), rel


@pytest.mark.parametrize("rate", [8000, 16000])
def test_every_prompt_is_audible_with_sensible_duration(library: PromptLibrary, rate: int) -> None:
    for name, text in PROMPT_TEXTS.items():
        file_rate, pcm = read(library.path(name, rate))
        assert file_rate == rate
        duration = len(pcm) / rate
        # espeak-ng at 150 wpm: a word is ~0.3–0.6 s; allow generous bounds per word.
        words = len(text.split())
        assert 0.2 * words < duration < 1.2 * words + 1.0, (name, duration)
        rms_dbfs = 20 * np.log10(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) / 32768)
        assert rms_dbfs > -35, (name, rms_dbfs)
        peak = np.abs(pcm.astype(np.int32)).max()
        # normalised to -3 dBFS peak (resampling may overshoot slightly)
        assert 0.6 * 32768 < peak < 32768, (name, peak)


def test_rates_hold_the_same_speech(library: PromptLibrary) -> None:
    _, narrow = read(library.path("leave-message", 8000))
    _, wide = read(library.path("leave-message", 16000))
    assert abs(len(wide) - 2 * len(narrow)) <= 2
    # decimate the 16 kHz file: it carries the same waveform as the 8 kHz one
    n = min(len(narrow), len(wide) // 2)
    a = narrow[:n].astype(np.float64)
    b = wide[: 2 * n : 2].astype(np.float64)
    assert np.corrcoef(a, b)[0, 1] > 0.9


def test_beep_is_a_clean_1khz_tone(library: PromptLibrary) -> None:
    rate, pcm = read(library.path("beep", 8000))
    assert len(pcm) == 3200
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    peak_hz = np.argmax(spectrum) * rate / len(pcm)
    assert abs(peak_hz - 1000) < 5
    assert abs(int(pcm[0])) < 50 and abs(int(pcm[-1])) < 50  # ramps: no click
    assert np.array_equal(tone_pcm(Beep(), 16000), read(library.path("beep", 16000))[1])


def test_unavailable_greeting_with_number_speaks_digits(library: PromptLibrary) -> None:
    seq = library.unavailable_greeting(rate=8000, number="12-34")
    names = [p.name.rsplit("-", 1)[0] for p in seq]
    assert names == [
        "person-at",
        "digit-1",
        "digit-2",
        "digit-3",
        "digit-4",
        "is-not-available",
        "leave-message",
        "beep",
    ]
    assert all(p.exists() for p in seq)


def test_unavailable_greeting_with_name_renders_the_name(library: PromptLibrary) -> None:
    seq = library.unavailable_greeting(rate=16000, name="Alice Liddell", number="1234")
    assert len(seq) == 5
    spoken = seq[1]
    assert spoken.name.startswith("text-")
    rate, pcm = read(spoken)
    assert rate == 16000 and 0.5 < len(pcm) / rate < 3
    # cached: same file, same bytes on a second call; the 8 kHz twin exists too
    assert library.spoken("Alice  Liddell", 16000) == spoken
    assert library.spoken("Alice Liddell", 8000).exists()


def test_name_that_looks_like_an_option_is_spoken_not_obeyed(library: PromptLibrary) -> None:
    path = library.spoken("-w /dev/null --version", 8000)
    _, pcm = read(path)
    assert len(pcm) > 8000


def test_greeting_without_name_or_number(library: PromptLibrary) -> None:
    seq = library.unavailable_greeting(rate=8000)
    assert [p.name.rsplit("-", 1)[0] for p in seq] == ["leave-message", "beep"]


def test_counts_and_menus(library: PromptLibrary) -> None:
    assert number_words(0) == ["number-0"]
    assert number_words(7) == ["number-7"]
    assert number_words(21) == ["number-20", "number-1"]
    assert number_words(40) == ["number-40"]
    assert number_words(300) == ["number-3", "number-hundred"]
    assert number_words(115) == ["number-1", "number-hundred", "number-15"]
    assert number_words(1234) == ["digit-1", "digit-2", "digit-3", "digit-4"]
    assert digit_prompts("+1 (2)*#") == ["digit-1", "digit-2", "digit-star", "digit-hash"]

    def names(seq: list[Path]) -> list[str]:
        return [p.name.rsplit("-", 1)[0] for p in seq]

    assert names(library.prompt_sequence_for("new_messages", rate=8000, count=0)) == [
        "no-new-messages"
    ]
    assert names(library.prompt_sequence_for("new_messages", rate=8000, count=1)) == [
        "you-have",
        "number-1",
        "new-message",
    ]
    assert names(library.prompt_sequence_for("new_messages", rate=8000, count=23)) == [
        "you-have",
        "number-20",
        "number-3",
        "new-messages",
    ]
    assert names(library.prompt_sequence_for("menu", rate=8000)) == [
        "menu-replay",
        "menu-delete",
        "menu-save",
        "menu-end",
    ]
    with pytest.raises(KeyError):
        library.path("no-such-prompt", 8000)
    with pytest.raises(KeyError):
        library.path("goodbye", 44100)


def test_changed_text_gets_a_new_file_and_prune_removes_the_old(tmp_path: Path) -> None:
    old = PromptLibrary(tmp_path, rates=(8000,), texts={"goodbye": "Goodbye."})
    old_path = old.path("goodbye", 8000)
    new = PromptLibrary(tmp_path, rates=(8000,), texts={"goodbye": "Bye now."})
    new_path = new.path("goodbye", 8000)
    assert old_path != new_path and old_path.exists()
    assert new.remove_stale() == 1
    assert not old_path.exists() and new_path.exists()


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path), "--rate", "8000"]) == 0
    assert "prompt files" in capsys.readouterr().out
    assert len(list((tmp_path / "8000").glob("*.wav"))) == len(PROMPT_TEXTS) + 1
    assert not (tmp_path / "16000").exists()
    # The other languages' sets (all by default), in <directory>/<language>/.
    assert len(list((tmp_path / "de" / "8000").glob("*.wav"))) == len(PROMPT_TRANSLATIONS["de"])


def test_a_language_set_speaks_its_phrases_and_falls_back_per_phrase(
    library: PromptLibrary,
) -> None:
    german = PromptLibrary.for_language(library, "de")
    assert german.directory == library.directory / "de"
    assert german.voice.name == "de"
    leave = german.path("leave-message", 8000)
    assert leave.parent == library.directory / "de" / "8000"
    rate, pcm = read(leave)
    assert rate == 8000 and np.abs(pcm).max() > 10000
    # Not the English file: another text, another voice, another length.
    assert leave != library.path("leave-message", 8000)
    assert len(pcm) != len(read(library.path("leave-message", 8000))[1])
    # Untranslated prompts and the beep are the default set's files.
    assert german.path("options-menu", 8000) == library.path("options-menu", 8000)
    assert german.path("beep", 8000) == library.path("beep", 8000)
    # The greeting sequence mixes them: German phrases and digits, the default beep.
    sequence = german.prompt_sequence_for("unavailable", rate=8000, number="12")
    assert [p.parent for p in sequence[:-1]] == [library.directory / "de" / "8000"] * 5
    assert sequence[-1] == library.path("beep", 8000)
    assert set(languages := language_sets(library)) == {"en", "de"}
    assert languages["en"] is library


def test_language_tags() -> None:
    assert prompt_language("de") == prompt_language("de-CH") == "de"
    assert prompt_language("en-GB") == prompt_language("xx") == prompt_language("") == "en"
