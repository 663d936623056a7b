"""The caller's review after ``#`` over loopback RTP, NATS, PostgreSQL and the blob store:
``2`` plays back what was stored, ``4`` stores it urgent (row, event), ``3`` records again and
only the second take is kept, a hang-up during the review keeps the message, and a crash
during the review leaves a finished recording that recovery stores."""

from __future__ import annotations

import asyncio
import io
import wave
from typing import Any

import numpy as np
import pytest
from sipum.db import messages
from sipum.events import MessageCreated
from sipum_protocol.media.codecs.g711 import ulaw_decode, ulaw_encode
from sipum_testing.rtp_caller import best_correlation, speech_like

from .test_mainmenu import prompt_audio, where

pytestmark = pytest.mark.timeout(60)


def stored_pcm(data: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(data), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


async def record_then_hash(world: Any, caller: Any, sent: np.ndarray) -> float:
    """Record *sent*, press ``#``; seconds from the key going down to the review's first
    packet."""
    await caller.wait_quiet(after=20)  # greeting + beep
    await caller.send_audio(sent)
    start = len(caller.received)
    pressed = asyncio.get_running_loop().time()
    await caller.send_digit("#")
    await caller.wait_quiet(after=start + 5)  # the review's keys, then it waits
    return float(caller.received[start].at - pressed)


async def test_2_plays_back_then_4_stores_it_urgent(world: Any) -> None:
    await world.upload_greeting(0.1)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate()
    sent = speech_like(1.5, seed=41)
    to_review = await record_then_hash(world, caller, sent)
    where(caller.audio(), prompt_audio(world, "review-message"))
    start = len(caller.received)
    pressed = asyncio.get_running_loop().time()
    await caller.send_digit("2")  # listen
    await caller.wait_quiet(after=start + len(sent) // 160)
    to_playback = caller.received[start].at - pressed
    print(f"review latency: # → keys {to_review * 1000:.0f} ms, 2 → playback "
          f"{to_playback * 1000:.0f} ms")  # fmt: skip
    assert to_review < 1.0 and to_playback < 1.0
    heard = caller.audio(start)
    expected = ulaw_decode(ulaw_encode(sent))
    # what was recorded, then the keys again
    assert best_correlation(heard, expected)[0] > 0.95
    assert where(heard, expected) < where(heard, prompt_audio(world, "review-message"))
    assert await messages.list_for_user(world.pool, world.alice.id) == []  # not yet stored
    start = len(caller.received)
    await caller.send_digit("4")  # urgent, send
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "completed" and ended.message_id is not None
    heard = caller.audio(start)
    assert where(heard, prompt_audio(world, "marked-urgent")) < where(
        heard, prompt_audio(world, "message-sent")
    )
    (message,) = await messages.list_for_user(world.pool, world.alice.id)
    assert message.id == ended.message_id and message.urgent
    assert np.array_equal(stored_pcm(await world.blobs.get(message.blob_key)), expected)
    (event,) = [
        MessageCreated.model_validate_json(e) for e in await world.events("message.created")
    ]
    assert event.message_id == message.id and event.urgent
    assert await world.blobs.list_keys("partial/") == []
    caller.close()


async def test_3_records_again_and_only_the_second_take_is_kept(world: Any) -> None:
    await world.upload_greeting(0.1)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate()
    first = speech_like(1.5, seed=42)
    second = speech_like(1.2, seed=43)
    await record_then_hash(world, caller, first)
    start = len(caller.received)
    await caller.send_digit("3")  # record again: a beep
    await caller.wait_quiet(after=start + 5)
    assert await world.blobs.list_keys("partial/") != []  # the new take's manifest
    await caller.send_audio(second)
    await caller.send_digit("#")
    await caller.wait_quiet(after=len(caller.received) + 5)
    await caller.send_digit("1")
    ended = await world.wait_ended(reply.session_id)
    (message,) = await messages.list_for_user(world.pool, world.alice.id)
    assert message.id == ended.message_id and not message.urgent
    pcm = stored_pcm(await world.blobs.get(message.blob_key))
    assert np.array_equal(pcm, ulaw_decode(ulaw_encode(second)))
    caller.close()


async def test_a_hangup_during_the_review_keeps_the_message(world: Any) -> None:
    await world.upload_greeting(0.1)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate()
    sent = speech_like(1.5, seed=44)
    await record_then_hash(world, caller, sent)
    await caller.hangup()
    ended = await world.wait_ended(reply.session_id)
    assert ended.message_id is not None
    (message,) = await messages.list_for_user(world.pool, world.alice.id)
    assert not message.urgent and not message.interrupted
    assert np.array_equal(
        stored_pcm(await world.blobs.get(message.blob_key)), ulaw_decode(ulaw_encode(sent))
    )
    caller.close()


async def test_silence_in_the_review_stores_the_message(world: Any) -> None:
    await world.upload_greeting(0.1)
    await world.start_recorder(digit_timeout_seconds=0.5, menu_repeats=1)
    caller = await world.caller()
    reply = await caller.allocate()
    await record_then_hash(world, caller, speech_like(1.2, seed=45))
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "completed" and ended.message_id is not None
    heard = caller.audio()
    assert where(heard, prompt_audio(world, "review-message")) < where(
        heard, prompt_audio(world, "message-sent")
    )
    caller.close()


async def test_a_crash_during_the_review_leaves_a_finished_message_for_recovery(
    world: Any,
) -> None:
    await world.upload_greeting(0.1)
    service = await world.start_recorder()
    caller = await world.caller()
    await caller.allocate()
    sent = speech_like(1.5, seed=46)
    await record_then_hash(world, caller, sent)
    # the recorder dies while the caller listens to the keys: nothing stored yet, but the spool
    # holds the whole recording and says it ended
    assert await messages.list_for_user(world.pool, world.alice.id) == []
    for task in list(service.work._tasks):  # type: ignore[attr-defined]
        task.cancel()
    caller.close()
    other = await world.start_recorder(recorder_id=service.recorder_id)  # recovers at start
    stored = [*other.recovered, *await other.recover(own_only=True)]
    assert len(stored) == 1
    message = await messages.get(world.pool, stored[0])
    assert message is not None and not message.interrupted
    assert np.array_equal(
        stored_pcm(await world.blobs.get(message.blob_key)), ulaw_decode(ulaw_encode(sent))
    )


async def test_the_review_by_sip_info_digits_records_again_and_sends(world: Any) -> None:
    await world.upload_greeting(0.1)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate()
    await caller.wait_quiet(after=20)
    await caller.send_audio(speech_like(1.2, seed=47))
    start = len(caller.received)
    await caller.info_digit("#")  # SIP INFO, relayed by the agent
    await caller.wait_quiet(after=start + 5)
    assert best_correlation(caller.audio(start), prompt_audio(world, "review-message"))[0] > 0.9
    start = len(caller.received)
    await caller.info_digit("3")
    await caller.wait_quiet(after=start + 5)  # the beep
    second = speech_like(1.3, seed=48)
    await caller.send_audio(second)
    start = len(caller.received)
    await caller.info_digit("#")
    await caller.wait_quiet(after=start + 5)
    await caller.info_digit("1")
    ended = await world.wait_ended(reply.session_id)
    (message,) = await messages.list_for_user(world.pool, world.alice.id)
    assert message.id == ended.message_id
    pcm = stored_pcm(await world.blobs.get(message.blob_key))
    expected = ulaw_decode(ulaw_encode(second))
    assert best_correlation(pcm, expected)[0] > 0.99 and abs(len(pcm) - len(expected)) < 800
    caller.close()


async def test_a_mailbox_without_urgent_allowed_offers_no_4_and_ignores_it(world: Any) -> None:
    """``urgent_allowed`` off for alice (her own setting): the review's offer is the one without
    "press 4"; a 4 makes the offer again, 1 sends — not urgent."""
    from sipum.db import users

    await users.update(world.pool, world.alice.id, urgent_allowed=False)
    await world.upload_greeting(0.1)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate()
    sent = speech_like(1.5, seed=44)
    await record_then_hash(world, caller, sent)
    no_urgent = prompt_audio(world, "review-message-no-urgent")
    assert best_correlation(caller.audio(), no_urgent)[0] > 0.9
    assert best_correlation(caller.audio(), prompt_audio(world, "review-message"))[0] < 0.9
    start = len(caller.received)
    await caller.send_digit("4")  # not a key here: the offer again
    await caller.wait_quiet(after=start + 5)
    assert best_correlation(caller.audio(start), no_urgent)[0] > 0.9
    assert await messages.list_for_user(world.pool, world.alice.id) == []
    await caller.send_digit("1")
    ended = await world.wait_ended(reply.session_id)
    (message,) = await messages.list_for_user(world.pool, world.alice.id)
    assert message.id == ended.message_id and not message.urgent
    caller.close()
