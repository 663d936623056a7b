"""The setting ``prompt_language`` applied (real RTP, NATS, PostgreSQL, espeak-ng): a mailbox
whose effective ``prompt_language`` is German greets the caller with the German prompt set
(compared with the rendered file), phrase by phrase falling back to the default set (the beep);
the user's own ``en`` overrides the domain's ``de-DE`` on the next call; a full German mailbox
says so in German."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sipum.db import domains, users
from sipum_media_recorder.audio import Prompts
from sipum_protocol.media.prompts import PromptLibrary, prompt_language
from sipum_testing.rtp_caller import best_correlation

pytestmark = pytest.mark.timeout(90)


def pcm_of(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def test_language_tags_pick_a_set() -> None:
    assert prompt_language("de-DE") == "de"
    assert prompt_language("DE_at") == "de"
    assert prompt_language("fr-FR") == "en"  # no French set: the default
    assert prompt_language(None) == "en"


async def test_german_greeting_for_a_german_mailbox(world: Any, tmp_path: Path) -> None:
    default: PromptLibrary = world.prompts.library
    german_library = PromptLibrary.for_language(default, "de")
    german_library.ensure_all()
    world.prompts = Prompts(default, languages={"de": Prompts(german_library)})
    await world.start_recorder()

    async def heard() -> np.ndarray:
        caller = await world.caller()
        reply = await caller.allocate()
        await caller.wait_quiet(quiet=0.4, after=25)
        audio = caller.audio()
        await caller.hangup()
        await world.wait_ended(reply.session_id)
        caller.close()
        return audio

    # The domain's default: German (a regional tag picks the "de" set).
    await domains.update(world.pool, world.alice.domain_id, prompt_language="de-DE")
    german = pcm_of(german_library.path("leave-message", 8000))
    beep = pcm_of(default.path("beep", 8000))
    assert german_library.path("beep", 8000) == default.path("beep", 8000)  # fallback
    audio = await heard()
    score, _ = best_correlation(audio, german)
    assert score > 0.9, score
    expected = (len(german) + len(beep)) / 8000
    assert abs(len(audio) / 8000 - expected) < 0.1, (len(audio) / 8000, expected)

    # The user's own "en" overrides the domain's German: the default (short) prompt again.
    await users.update(world.pool, world.alice.id, prompt_language="en")
    audio = await heard()
    english = pcm_of(default.path("leave-message", 8000))
    assert abs(len(audio) / 8000 - (len(english) + len(beep)) / 8000) < 0.1
    assert best_correlation(audio, german[: len(audio) // 2])[0] < 0.5

    # A full mailbox says so in the mailbox's language too ("goodbye" as well).
    await users.update(world.pool, world.alice.id, prompt_language="de", max_messages=0)
    audio = await heard()
    for name in ("mailbox-full", "goodbye"):
        score, _ = best_correlation(audio, pcm_of(german_library.path(name, 8000)))
        assert score > 0.9, (name, score)
