"""PIN lockout across calls over loopback RTP: wrong PINs on one recorder replica and then on
another add up; the call that reaches the limit hears "locked" and ``mailbox.locked`` is
published once; the next call is not even asked for the PIN (the right one does not help); a new
PIN lifts the lock; a right PIN forgets the failures."""

from __future__ import annotations

import wave
from typing import Any

import numpy as np
import pytest
from sipum.db import messages, pin_lockouts, users
from sipum.events import MailboxLocked
from sipum_protocol.media.codecs.g711 import ulaw_decode, ulaw_encode
from sipum_testing.rtp_caller import best_correlation, speech_like

from .test_retrieve import PIN, retrieve_request, store_message

pytestmark = pytest.mark.timeout(60)

LOCKOUT = {"pin_attempts": 2, "pin_lockout_failures": 3, "pin_lockout_base_seconds": 120}


def prompt_audio(world: Any, name: str) -> np.ndarray:
    path = world.prompts.library.path(name, 8000)
    with wave.open(str(path), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return ulaw_decode(ulaw_encode(pcm))


async def call(world: Any, message: messages.Message, pins: list[str]) -> tuple[Any, Any]:
    """One retrieval call typing *pins* (each after the recorder went quiet); returns the
    caller (audio received) and the session's ``ended``."""
    caller = await world.caller()
    reply = await caller.allocate(retrieve_request(caller, message))
    for pin in pins:
        await caller.wait_quiet(after=len(caller.received))
        await caller.send_digits(pin + "#")
    ended = await world.wait_ended(reply.session_id)
    caller.close()
    return caller, ended


async def test_lockout_adds_up_across_calls_and_replicas(world: Any) -> None:
    audio = ulaw_decode(ulaw_encode(speech_like(1.0, seed=21)))
    message = await store_message(world, audio)
    locked_prompt = prompt_audio(world, "mailbox-locked")
    first = await world.start_recorder(recorder_id="replica-a", **LOCKOUT)

    # call 1 on replica A: two wrong PINs (the per-call limit), not locked yet
    caller, ended = await call(world, message, ["1357", "9753"])
    assert ended.end_reason == "rejected"
    assert best_correlation(caller.audio(), locked_prompt)[0] < 0.5
    assert (await pin_lockouts.get(world.pool, world.alice.id)).failures == 2
    await first.stop_accepting()
    await first.drain()

    # call 2 on replica B: one more wrong PIN is the third → locked, told so
    await world.start_recorder(recorder_id="replica-b", **LOCKOUT)
    caller, ended = await call(world, message, ["8642"])
    assert ended.end_reason == "rejected"
    assert best_correlation(caller.audio(), locked_prompt)[0] > 0.9
    [event] = [MailboxLocked.model_validate_json(e) for e in await world.events("mailbox.locked")]
    assert (event.username, event.failures, event.lockouts) == ("alice", 3, 1)
    assert event.lock_seconds == 120 and event.recorder_id == "replica-b"
    assert event.caller_uri == "sip:carol@example.org"

    # call 3: the right PIN does not help — it is not even asked; the message is not played
    caller = await world.caller()
    reply = await caller.allocate(retrieve_request(caller, message))
    await caller.send_digits(PIN + "#")
    ended = await world.wait_ended(reply.session_id)
    caller.close()
    heard = caller.audio()
    assert ended.end_reason == "rejected"
    score, where = best_correlation(heard, locked_prompt)
    assert score > 0.9 and where < 8000 * 0.1  # "locked" comes first: no PIN prompt
    assert best_correlation(heard, audio)[0] < 0.5
    stored = await messages.get(world.pool, message.id)
    assert stored is not None and not stored.heard
    assert len(await world.events("mailbox.locked")) == 1

    # a new PIN (web or admin) lifts it: the next call plays the message
    assert await users.set_pin(world.pool, world.alice.id, "5820")
    caller = await world.caller()
    reply = await caller.allocate(retrieve_request(caller, message))
    await caller.wait_quiet()
    start = len(caller.received)
    await caller.send_digits("5820#")
    await caller.wait_quiet(0.4, after=start + len(audio) // 160)
    assert best_correlation(caller.audio(start), audio)[0] > 0.99
    await caller.send_digit("#")
    assert (await world.wait_ended(reply.session_id)).end_reason == "completed"
    caller.close()


async def test_a_right_pin_forgets_earlier_failures(world: Any) -> None:
    audio = ulaw_decode(ulaw_encode(speech_like(0.5, seed=22)))
    message = await store_message(world, audio)
    await world.start_recorder(**LOCKOUT)
    await call(world, message, ["1357", "9753"])
    assert (await pin_lockouts.get(world.pool, world.alice.id)).failures == 2
    caller = await world.caller()
    reply = await caller.allocate(retrieve_request(caller, message))
    await caller.wait_quiet()
    await caller.send_digits(PIN + "#")
    await caller.wait_quiet(0.4, after=len(caller.received) + len(audio) // 160)
    await caller.send_digit("#")
    assert (await world.wait_ended(reply.session_id)).end_reason == "completed"
    caller.close()
    state = await pin_lockouts.get(world.pool, world.alice.id)
    assert state.failures == 0 and state.lockouts == 0


async def test_the_domains_pin_lockout_failures_setting_wins(world: Any) -> None:
    """The domain's ``pin_lockout_failures`` (2) overrides the recorder's (3): the second wrong
    PIN already locks, and the event says so."""
    from sipum.accounts import admin

    audio = ulaw_decode(ulaw_encode(speech_like(0.5, seed=23)))
    message = await store_message(world, audio)
    await admin.update_domain(world.pool, world.alice.domain, pin_lockout_failures=2)
    await world.start_recorder(**LOCKOUT)
    caller, ended = await call(world, message, ["1357", "9753"])
    assert ended.end_reason == "rejected"
    assert best_correlation(caller.audio(), prompt_audio(world, "mailbox-locked"))[0] > 0.9
    state = await pin_lockouts.get(world.pool, world.alice.id)
    assert state.lockouts == 1
    [event] = [MailboxLocked.model_validate_json(e) for e in await world.events("mailbox.locked")]
    assert (event.failures, event.lockouts) == (2, 1)
