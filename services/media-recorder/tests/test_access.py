"""The voicemail access number (mode ``access``) over loopback RTP: the mailbox number is the
username on the keypad (``alice`` = 25423), then the PIN, then that mailbox's main menu. A
number of no mailbox is answered exactly like a wrong PIN (the PIN asked anyway) and counts
for the call; a wrong PIN for a real mailbox is counted for it across calls (lockout); a locked
mailbox answers like a wrong PIN; ``pin_attempts`` wrong tries end the call."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sipum.db import pin_lockouts, users
from sipum_media_recorder.access import mailbox_for
from sipum_protocol.media.codecs.g711 import ulaw_decode, ulaw_encode
from sipum_testing.rtp_caller import best_correlation, distinct_voice

from .test_mainmenu import prompt_audio, until_heard, where
from .test_retrieve import PIN, store_message

pytestmark = pytest.mark.timeout(60)

ALICE = "25423"


def access_request(caller: Any) -> Any:
    return caller.request(
        mode="access",
        username="voicemail",
        caller_uri="sip:someone@example.org",
        called_uri="sip:voicemail@example.com",
        reason="direct",
    )


async def heard_since(world: Any, caller: Any, start: int, name: str) -> None:
    """Until prompt ``name`` was played after packet ``start`` and the recorder went quiet."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10.0
    needle = prompt_audio(world, name)
    while best_correlation(caller.audio(start), needle)[0] < 0.9:
        assert loop.time() < deadline, f"{name} not played"
        await asyncio.sleep(0.05)
    await caller.wait_quiet(after=len(caller.received) - 1)


async def heard_after(world: Any, caller: Any, start: int) -> Any:
    """What was played from ``start`` until the mailbox number is asked for again."""
    await heard_since(world, caller, start, "enter-mailbox")
    return caller.audio(start)


async def test_mailbox_number_and_pin_open_the_mailboxs_main_menu(world: Any) -> None:
    audio = ulaw_decode(ulaw_encode(distinct_voice(0.8, seed=81)))
    await store_message(world, audio)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate(access_request(caller))
    await until_heard(caller, prompt_audio(world, "enter-mailbox"))
    await caller.send_digits(ALICE + "#")
    await until_heard(caller, prompt_audio(world, "enter-pin"))
    await caller.send_digits(PIN + "#")
    await until_heard(caller, audio)  # the count, the envelope, alice's message
    heard = caller.audio()
    assert (
        where(heard, prompt_audio(world, "enter-mailbox"))
        < where(heard, prompt_audio(world, "enter-pin"))
        < where(heard, prompt_audio(world, "you-have"))
        < where(heard, audio)
    )
    await caller.send_digit("#")
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "completed"
    caller.close()


async def test_a_wrong_number_sounds_like_a_wrong_pin_and_reveals_nothing(world: Any) -> None:
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate(access_request(caller))
    await until_heard(caller, prompt_audio(world, "enter-mailbox"))
    # 1: a number of no mailbox — the PIN is asked anyway, then "wrong PIN"
    await caller.wait_quiet(after=len(caller.received) - 1)
    start = len(caller.received)
    await caller.send_digits("99999#")
    await until_heard(caller, prompt_audio(world, "enter-pin"))
    await caller.send_digits(PIN + "#")
    no_mailbox = await heard_after(world, caller, start)
    # 2: alice's number with a wrong PIN — exactly the same prompts
    start = len(caller.received)
    await caller.send_digits(ALICE + "#")
    await heard_since(world, caller, start, "enter-pin")
    await caller.send_digits("1357#")
    wrong_pin = await heard_after(world, caller, start)
    for heard in (no_mailbox, wrong_pin):
        assert (
            where(heard, prompt_audio(world, "enter-pin"))
            < where(heard, prompt_audio(world, "wrong-pin"))
            < where(heard, prompt_audio(world, "enter-mailbox"))
        )
    assert abs(len(no_mailbox) - len(wrong_pin)) < 8000 * 0.15
    # only alice's wrong PIN counted for alice across calls; the wrong number for nobody
    assert (await pin_lockouts.get(world.pool, world.alice.id)).failures == 1
    # 3: the third try fails too: goodbye, the call ends
    await caller.send_digits("1#")
    await until_heard(caller, prompt_audio(world, "enter-pin"))
    await caller.send_digits("1#")
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "rejected"
    assert best_correlation(caller.audio(), prompt_audio(world, "you-have"))[0] < 0.9
    caller.close()


async def test_a_locked_mailbox_answers_like_a_wrong_pin(world: Any) -> None:
    await world.start_recorder(pin_attempts=1)
    for _ in range(5):  # the default policy: 5 wrong PINs lock
        caller = await world.caller()
        reply = await caller.allocate(access_request(caller))
        await until_heard(caller, prompt_audio(world, "enter-mailbox"))
        await caller.send_digits(ALICE + "#")
        await until_heard(caller, prompt_audio(world, "enter-pin"))
        await caller.send_digits("1357#")
        assert (await world.wait_ended(reply.session_id)).end_reason == "rejected"
        caller.close()
    assert (await pin_lockouts.get(world.pool, world.alice.id)).locked_until is not None
    caller = await world.caller()
    reply = await caller.allocate(access_request(caller))
    await until_heard(caller, prompt_audio(world, "enter-mailbox"))
    await caller.send_digits(ALICE + "#")
    await until_heard(caller, prompt_audio(world, "enter-pin"))
    await caller.send_digits(PIN + "#")  # the right PIN, but locked: no menu, no "locked"
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "rejected"
    heard = caller.audio()
    assert best_correlation(heard, prompt_audio(world, "mailbox-locked"))[0] < 0.9
    assert best_correlation(heard, prompt_audio(world, "you-have"))[0] < 0.9
    caller.close()


async def test_mailbox_numbers_are_keypad_spellings(world: Any) -> None:
    names = {}
    for name in ("alice", "act", "cat", "1001", "bob.smith"):
        names[name] = (
            world.alice
            if name == "alice"
            else await users.create(world.pool, name, "example.com", f"{name}-password-1")
        )
    assert mailbox_for("25423", names) == world.alice
    assert mailbox_for("1001", names) == names["1001"]
    assert mailbox_for("26276484", names) == names["bob.smith"]
    assert mailbox_for("228", names) is None  # act and cat: no number at all
    assert mailbox_for("", names) is None and mailbox_for("999", names) is None
