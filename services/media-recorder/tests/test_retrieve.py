"""Retrieval mode over loopback: PIN and menu by RFC 4733 digits, the message's audio received
back as RTP and compared, three wrong PINs end the call without playing it, a trusted owner
skips the PIN."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sipum.blobstore import message_key
from sipum.db import messages
from sipum.events import MessageUpdated
from sipum_protocol.media.codecs.g711 import ulaw_decode, ulaw_encode
from sipum_protocol.media.recording import wav_bytes
from sipum_testing.rtp_caller import best_correlation, speech_like

pytestmark = pytest.mark.timeout(40)

PIN = "2468"


async def store_message(world: Any, pcm: np.ndarray) -> messages.Message:
    message_id = await messages.allocate_id(world.pool)
    key = message_key("example.com", "alice", message_id)
    wav = wav_bytes(pcm, 8000)
    await world.blobs.put(key, wav, content_type="audio/wav")
    message, _ = await messages.insert_idempotent(
        world.pool,
        owner_id=world.alice.id,
        idempotency_key=f"test-{message_id}",
        caller_uri="sip:bob@example.org",
        called_uri="sip:alice@example.com",
        duration_ms=round(len(pcm) / 8),
        codec="pcmu",
        size_bytes=len(wav),
        blob_key=key,
        message_id=message_id,
    )
    return message


def retrieve_request(caller: Any, message: messages.Message, **fields: Any) -> Any:
    values: dict[str, Any] = {
        "mode": "retrieve",
        "message_id": message.id,
        "caller_uri": "sip:carol@example.org",
        "called_uri": f"sip:alice-{message.id}-retrieve@example.com",
        "reason": "direct",
    }
    values.update(fields)
    return caller.request(**values)


async def test_correct_pin_plays_the_message_then_9_saves_it(world: Any) -> None:
    audio = ulaw_decode(ulaw_encode(speech_like(1.5, seed=11)))
    message = await store_message(world, audio)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate(retrieve_request(caller, message))
    await caller.wait_quiet()  # "enter your PIN"
    before_pin = len(caller.received)
    await caller.send_digits(PIN + "#")
    # the message, then the menu; then the recorder waits for a choice
    await caller.wait_quiet(0.4, after=before_pin + len(audio) // 160)
    score, _ = best_correlation(caller.audio(before_pin), audio)
    assert score > 0.99
    await caller.send_digit("9")
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "completed" and ended.message_id == message.id
    stored = await messages.get(world.pool, message.id)
    assert stored is not None and stored.heard and stored.folder.value == "saved"
    updates = [MessageUpdated.model_validate_json(e) for e in await world.events("message.updated")]
    assert [(u.message_id, u.changed, u.folder) for u in updates] == [
        (message.id, ["heard"], "inbox"),
        (message.id, ["folder"], "saved"),
    ]
    caller.close()


async def test_wrong_pin_three_times_ends_the_call_unplayed(world: Any) -> None:
    audio = ulaw_decode(ulaw_encode(speech_like(1.5, seed=12)))
    message = await store_message(world, audio)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate(retrieve_request(caller, message))
    for _ in range(3):
        await caller.wait_quiet(after=len(caller.received))
        await caller.send_digits("1357#")
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "rejected" and ended.message_id is None
    heard = caller.audio()
    assert len(heard) > 0  # prompts were played…
    score, _ = best_correlation(heard, audio) if len(heard) >= len(audio) else (0.0, -1)
    assert score < 0.5  # …but not the message
    stored = await messages.get(world.pool, message.id)
    assert stored is not None and not stored.heard
    caller.close()


async def test_trusted_owner_skips_the_pin_and_7_moves_to_trash(world: Any) -> None:
    audio = ulaw_decode(ulaw_encode(speech_like(1.0, seed=13)))
    message = await store_message(world, audio)
    await world.start_recorder()
    caller = await world.caller()
    request = retrieve_request(caller, message, trusted=True, caller_uri="sip:alice@example.com")
    reply = await caller.allocate(request)
    await caller.wait_quiet(0.4, after=len(audio) // 160)  # message + menu, no PIN asked
    score, where = best_correlation(caller.audio(), audio)
    assert score > 0.99 and where < 8000 * 0.1  # the message comes first
    await caller.send_digit("7")
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "completed"
    stored = await messages.get(world.pool, message.id)
    assert stored is not None and stored.folder.value == "trash"
    caller.close()


async def test_trusted_flag_for_another_caller_still_asks_for_the_pin(world: Any) -> None:
    audio = ulaw_decode(ulaw_encode(speech_like(1.0, seed=14)))
    message = await store_message(world, audio)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate(retrieve_request(caller, message, trusted=True))
    await caller.wait_quiet()
    assert len(caller.audio()) / 8000 < 0.9  # a short prompt, not the 1 s message
    start = len(caller.received)
    await caller.send_digits(PIN + "#")
    await caller.wait_quiet(0.4, after=start + len(audio) // 160)
    # replay with 1 (by SIP INFO this time), then end with #
    start = len(caller.received)
    await caller.info_digit("1")
    await caller.wait_quiet(0.4, after=start + len(audio) // 160)
    score, _ = best_correlation(caller.audio(start), audio)
    assert score > 0.99
    await caller.send_digit("#")
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "completed"
    caller.close()
