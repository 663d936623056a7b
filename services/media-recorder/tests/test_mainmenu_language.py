"""The owner's main menu speaks her mailbox's ``prompt_language`` (over loopback RTP): with
``de`` the PIN prompt, the count and the message menu are the German set's; a phrase without a
translation comes from the default set; without the setting, the default set throughout."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sipum.db import users
from sipum_media_recorder.audio import Prompts
from sipum_protocol.media.codecs.g711 import ulaw_decode, ulaw_encode
from sipum_protocol.media.prompts import PromptLibrary, Voice
from sipum_testing.rtp_caller import best_correlation, speech_like

from .test_mainmenu import menu_request, prompt_audio, where
from .test_retrieve import PIN, store_message

pytestmark = pytest.mark.timeout(60)

#: The German set of the test: short words of its own, so each can be told from the default's.
GERMAN = {
    "enter-pin": "geheimzahl",
    "you-have": "sie haben",
    "message-menu": "auswahl",
    "goodbye": "tschuess",
}


def audio_of(library: PromptLibrary, name: str) -> np.ndarray:
    with wave.open(str(library.path(name, 8000)), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return ulaw_decode(ulaw_encode(pcm))


@pytest.fixture
def german(world: Any, tmp_path: Path) -> PromptLibrary:
    """The world's prompts with a ``de`` set over them (as ``Prompts.open`` builds it)."""
    default = world.prompts.library
    library = PromptLibrary(
        tmp_path / "de", rates=(8000,), voice=Voice(name="de", speed=450), texts=GERMAN,
        fallback=default,
    )  # fmt: skip
    library.ensure_all()
    world.prompts = Prompts(
        default, languages={"de": Prompts(library, executor=world.prompts._executor)}
    )
    return library


async def test_a_german_mailbox_hears_the_german_menu_and_pin_prompt(
    world: Any, german: PromptLibrary
) -> None:
    await users.update(world.pool, world.alice.id, prompt_language="de-DE")
    message = ulaw_decode(ulaw_encode(speech_like(0.8, seed=60)))
    await store_message(world, message)
    await world.start_recorder()
    caller = await world.caller()
    # not trusted: the PIN is asked, in German
    reply = await caller.allocate(menu_request(caller, trusted=False))
    await caller.wait_quiet(0.3, after=3)
    assert best_correlation(caller.audio(), audio_of(german, "enter-pin"))[0] > 0.9
    await caller.send_digits(PIN + "#")
    await caller.wait_quiet(0.5, after=len(caller.received) + len(message) // 160)
    heard = caller.audio()
    t_count = where(heard, audio_of(german, "you-have"))
    # "received" has no German text here: the default set's word
    t_envelope = where(heard, prompt_audio(world, "received"))
    t_audio = where(heard, message)
    t_menu = where(heard, audio_of(german, "message-menu"))
    assert t_count < t_envelope < t_audio < t_menu
    assert best_correlation(heard, prompt_audio(world, "message-menu"))[0] < 0.9
    start = len(caller.received)
    await caller.send_digit("#")
    assert (await world.wait_ended(reply.session_id)).end_reason == "completed"
    assert best_correlation(caller.audio(start), audio_of(german, "goodbye"))[0] > 0.9
    caller.close()


async def test_without_prompt_language_the_menu_is_the_default_set(
    world: Any, german: PromptLibrary
) -> None:
    message = ulaw_decode(ulaw_encode(speech_like(0.8, seed=61)))
    await store_message(world, message)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate(menu_request(caller))
    await caller.wait_quiet(0.5, after=len(message) // 160)
    heard = caller.audio()
    assert where(heard, prompt_audio(world, "you-have")) < where(
        heard, prompt_audio(world, "message-menu")
    )
    assert best_correlation(heard, audio_of(german, "message-menu"))[0] < 0.9
    await caller.send_digit("#")
    assert (await world.wait_ended(reply.session_id)).end_reason == "completed"
    caller.close()
