"""``*`` during a mailbox's greeting (record mode) takes the caller to the mailbox's main menu:
the trusted owner straight in, anyone else after the PIN; nothing is recorded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sipum.db import messages
from sipum_protocol.media.codecs.g711 import ulaw_decode, ulaw_encode
from sipum_testing.rtp_caller import best_correlation, speech_like

from .test_mainmenu import prompt_audio, until_heard, where
from .test_retrieve import PIN, store_message

pytestmark = pytest.mark.timeout(60)


async def greeting_begun(caller: Any, packets: int = 25) -> None:
    """Half a second of the greeting has arrived."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10.0
    while len(caller.received) < packets:
        assert loop.time() < deadline, "no greeting"
        await asyncio.sleep(0.02)


async def test_star_in_the_greeting_then_the_pin_opens_the_main_menu(world: Any) -> None:
    audio = ulaw_decode(ulaw_encode(speech_like(0.8, seed=51)))
    await store_message(world, audio)
    await world.upload_greeting(3.0)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate(caller.request(caller_uri="sip:someone@example.org"))
    await greeting_begun(caller)
    start = len(caller.received)
    await caller.send_digit("*")
    await caller.wait_quiet(after=start + 5)
    assert len(caller.audio(start)) < 8000 * 2.5  # the greeting stopped: "enter your PIN"
    assert best_correlation(caller.audio(start), prompt_audio(world, "enter-pin"))[0] > 0.9
    await caller.send_digits(PIN + "#")
    await until_heard(caller, audio)  # the count, the envelope, the message
    heard = caller.audio(start)
    assert where(heard, prompt_audio(world, "you-have")) < where(heard, audio)
    await caller.send_digit("#")  # exit
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "completed" and ended.message_id is None
    assert len(await messages.list_for_user(world.pool, world.alice.id)) == 1  # none recorded
    caller.close()


async def test_the_trusted_owner_needs_no_pin_and_the_escape_can_be_off(world: Any) -> None:
    audio = ulaw_decode(ulaw_encode(speech_like(0.8, seed=53)))
    await store_message(world, audio)
    await world.upload_greeting(3.0)
    await world.start_recorder()
    caller = await world.caller()
    owner = caller.request(caller_uri="sip:alice@example.com", trusted=True)
    reply = await caller.allocate(owner)
    await greeting_begun(caller)
    start = len(caller.received)
    await caller.send_digit("*")
    await caller.wait_quiet(after=start + 5)
    heard = caller.audio(start)
    assert len(heard) < 8000 * 2.5 + len(audio) + 8000 * 2  # no PIN asked, the greeting stopped
    assert where(heard, prompt_audio(world, "you-have")) < where(heard, audio)
    assert best_correlation(heard, prompt_audio(world, "enter-pin"))[0] < 0.9
    await caller.send_digit("#")
    ended = await world.wait_ended(reply.session_id)
    assert ended.message_id is None
    caller.close()
    # owner_escape_digit "" : * does nothing, the greeting plays on and the message is recorded
    for service in world.services:  # only the replica without the escape answers
        await service.stop_accepting()
    await world.start_recorder(owner_escape_digit="")
    caller = await world.caller()
    reply = await caller.allocate(caller.request(caller_uri="sip:alice@example.com", trusted=True))
    await greeting_begun(caller)
    await caller.send_digit("*")
    await caller.wait_quiet(after=len(caller.received) + 5)
    assert len(caller.audio()) > 8000 * 3.0  # the whole greeting and the beep
    await caller.send_audio(speech_like(1.2, seed=52))
    await caller.hangup()
    ended = await world.wait_ended(reply.session_id)
    assert ended.message_id is not None
    assert len(await messages.list_for_user(world.pool, world.alice.id)) == 2
    caller.close()
