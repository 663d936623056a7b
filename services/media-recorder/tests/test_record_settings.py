"""The settings model in record mode (real RTP, NATS, PostgreSQL): the user's own
``min_message_seconds``, ``max_silence_seconds`` and ``greeting_mode``, read per call — a change
counts from the next call of the same running recorder."""

from __future__ import annotations

import wave
from typing import Any

import numpy as np
import pytest
from sipum.db import domains, messages, users
from sipum_testing.rtp_caller import speech_like

pytestmark = pytest.mark.timeout(60)


async def test_min_message_seconds_of_the_user_and_the_domain(world: Any) -> None:
    await world.upload_greeting(0.1)
    await world.start_recorder()  # min_voice_seconds 1 s, the built-in

    async def call(seconds: float, seed: int) -> int | None:
        caller = await world.caller()
        reply = await caller.allocate()
        await caller.wait_quiet(after=20)
        await caller.send_audio(speech_like(seconds, seed=seed))
        await caller.hangup()
        ended = await world.wait_ended(reply.session_id)
        caller.close()
        return ended.message_id

    # The domain asks for 0.3 s: 0.6 s of voice, discarded under the built-in, is a message.
    await domains.update(world.pool, world.alice.domain_id, min_message_seconds=0.3)
    assert await call(0.6, seed=4) is not None
    # The user's own 2 s wins over the domain's: 1.5 s is discarded.
    await users.update(world.pool, world.alice.id, min_message_seconds=2.0)
    assert await call(1.5, seed=6) is None
    assert len(await messages.list_for_user(world.pool, world.alice.id, "inbox")) == 1


async def test_max_silence_seconds_of_the_user(world: Any) -> None:
    await world.upload_greeting(0.1)
    await world.start_recorder()  # max_silence_seconds 5 s
    await users.update(world.pool, world.alice.id, max_silence_seconds=1.0)
    caller = await world.caller()
    reply = await caller.allocate()
    await caller.wait_quiet(after=20)
    quiet = np.random.default_rng(3).normal(0, 20, 12000).astype(np.int16)  # 1.5 s
    await caller.send_audio(quiet)
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "silence" and ended.message_id is None
    caller.close()


async def test_greeting_mode_system_plays_the_built_in_prompt(world: Any) -> None:
    await world.upload_greeting(0.2)
    await world.start_recorder()

    async def heard_seconds() -> float:
        caller = await world.caller()
        reply = await caller.allocate()
        await caller.wait_quiet(after=25)
        seconds = len(caller.audio()) / 8000
        await caller.hangup()
        await world.wait_ended(reply.session_id)
        caller.close()
        return seconds

    uploaded = await heard_seconds()
    assert 0.55 <= uploaded <= 0.75  # 0.2 s greeting + 0.4 s beep
    await users.update(world.pool, world.alice.id, greeting_mode="system")
    expected = 0.0
    for path in world.prompts.library.prompt_sequence_for("unavailable", rate=8000, number="alice"):
        with wave.open(str(path)) as w:
            expected += w.getnframes() / w.getframerate()
    assert abs(await heard_seconds() - expected) < 0.05
