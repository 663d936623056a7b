"""The main menu over loopback RTP (mode ``menu``): the count, then each message's envelope and
its audio in listening order, the key map driving real database moves and ``message.updated``
events, and the PIN for an untrusted caller."""

from __future__ import annotations

import asyncio
import wave
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sipum.db import domains, greetings, messages, users
from sipum.events import MessageCreated, MessageUpdated, UserUpdated
from sipum_media_recorder.audio import decode_audio
from sipum_protocol.media.codecs.g711 import ulaw_decode, ulaw_encode
from sipum_testing.rtp_caller import best_correlation, speech_like

from .test_retrieve import PIN, store_message

pytestmark = pytest.mark.timeout(60)


def prompt_audio(world: Any, name: str) -> np.ndarray:
    with wave.open(str(world.prompts.library.path(name, 8000)), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return ulaw_decode(ulaw_encode(pcm))


def menu_request(caller: Any, **fields: Any) -> Any:
    values: dict[str, Any] = {
        "mode": "menu",
        "caller_uri": "sip:alice@example.com",
        "called_uri": "sip:alice-retrieve@example.com",
        "reason": "direct",
        "trusted": True,
    }
    values.update(fields)
    return caller.request(**values)


async def until_heard(caller: Any, needle: np.ndarray, limit: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while best_correlation(caller.audio(), needle)[0] < 0.9:
        assert loop.time() < deadline, "never heard it"
        await asyncio.sleep(0.05)


def where(heard: np.ndarray, needle: np.ndarray) -> int:
    score, at = best_correlation(heard, needle)
    assert score > 0.9, score
    return at


async def test_count_envelope_audio_in_order_then_7_deletes(world: Any) -> None:
    old = ulaw_decode(ulaw_encode(speech_like(0.8, seed=31)))
    new = ulaw_decode(ulaw_encode(speech_like(0.8, seed=32)))
    saved = await store_message(world, old)
    await messages.move(world.pool, world.alice.id, saved.id, "saved")
    first = await store_message(world, new)
    await world.pool.execute(  # first was received before saved: still new ones come first
        "UPDATE messages SET received_at = $2 WHERE id = $1",
        first.id,
        datetime.now(UTC) - timedelta(hours=1),
    )
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate(menu_request(caller))
    # count + envelope + audio + "menu", then the recorder waits
    await caller.wait_quiet(0.5, after=len(new) // 160)
    heard = caller.audio()
    t_count = where(heard, prompt_audio(world, "you-have"))
    t_envelope = where(heard, prompt_audio(world, "received"))
    t_audio = where(heard, new)
    t_menu = where(heard, prompt_audio(world, "message-menu"))
    assert t_count < t_envelope < t_audio < t_menu
    assert best_correlation(heard, new)[0] > 0.99
    # 7: to the trash, "deleted", then the next (saved) message's envelope and audio
    start = len(caller.received)
    await caller.send_digit("7")
    await caller.wait_quiet(0.5, after=start + len(old) // 160)
    heard = caller.audio(start)
    assert where(heard, prompt_audio(world, "message-deleted")) < where(heard, old)
    stored = await messages.get(world.pool, first.id)
    assert stored is not None and stored.folder.value == "trash" and stored.heard
    await caller.send_digit("#")  # in the message menu: exit
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "completed"
    updates = [MessageUpdated.model_validate_json(e) for e in await world.events("message.updated")]
    assert [(u.message_id, u.changed, u.folder) for u in updates] == [
        (first.id, ["heard"], "inbox"),
        (first.id, ["folder"], "trash"),
        (saved.id, ["heard"], "saved"),  # saved but never heard: heard now
    ]
    caller.close()


async def test_untrusted_caller_gives_the_pin_and_9_saves_then_barge_in_skips(world: Any) -> None:
    audio = ulaw_decode(ulaw_encode(speech_like(6.0, seed=33)))
    message = await store_message(world, audio)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate(menu_request(caller, trusted=False, caller_uri="sip:x@y.org"))
    await caller.wait_quiet()  # "enter your PIN"
    await caller.send_digits(PIN + "#")
    await until_heard(caller, audio[:4000])  # the message's first half second has played
    # while the audio plays: # jumps 3 s ahead, so its middle is never heard
    start = len(caller.received)
    await caller.send_digit("#")
    await caller.wait_quiet(0.5, after=start + 10)
    after = caller.audio(start)
    assert best_correlation(after, audio[-3200:])[0] > 0.9, len(after)  # the end is heard…
    # …but 3 s fewer: at most the 6 s less the 3 s skipped, less what played before the key
    assert len(after) < 8000 * 3.0, len(after) / 8000
    await caller.send_digit("9")
    await caller.wait_quiet(0.5, after=len(caller.received))
    stored = await messages.get(world.pool, message.id)
    assert stored is not None and stored.folder.value == "saved" and stored.heard
    await caller.send_digit("#")  # end menu: exit
    assert (await world.wait_ended(reply.session_id)).end_reason == "completed"
    caller.close()


async def test_a_sip_info_digit_interrupts_the_audio_6_goes_to_the_next(world: Any) -> None:
    first_audio = ulaw_decode(ulaw_encode(speech_like(5.0, seed=34)))
    second_audio = ulaw_decode(ulaw_encode(speech_like(0.8, seed=35)))
    first = await store_message(world, first_audio)
    await world.pool.execute(
        "UPDATE messages SET received_at = $2 WHERE id = $1",
        first.id,
        datetime.now(UTC) - timedelta(hours=1),
    )
    second = await store_message(world, second_audio)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate(menu_request(caller))
    await until_heard(caller, first_audio[:4000])
    start = len(caller.received)
    await caller.info_digit("6")  # by SIP INFO (the agent's .dtmf), not RFC 4733
    await caller.wait_quiet(0.5, after=start + len(second_audio) // 160)
    after = caller.audio(start)
    assert best_correlation(after, second_audio)[0] > 0.99
    assert len(after) < 8000 * 4  # the first message's other 4 s were not played
    for message in (first, second):
        stored = await messages.get(world.pool, message.id)
        assert stored is not None and stored.heard and stored.folder.value == "inbox"
    await caller.send_digit("#")
    assert (await world.wait_ended(reply.session_id)).end_reason == "completed"
    caller.close()


async def test_pin_changed_by_phone_in_the_mailbox_options(world: Any) -> None:
    audio = ulaw_decode(ulaw_encode(speech_like(0.5, seed=36)))
    await store_message(world, audio)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate(menu_request(caller))
    await caller.wait_quiet(0.5, after=len(audio) // 160)  # in the message menu
    for keys in ("0", "5", "1111#", "5820#", "5820#"):
        start = len(caller.received)
        await caller.send_digits(keys)
        await caller.wait_quiet(0.4, after=start)
    assert await users.verify_pin(world.pool, world.alice.id, "5820")
    assert not await users.verify_pin(world.pool, world.alice.id, PIN)
    await caller.send_digits("*#")  # back to the message menu, exit
    assert (await world.wait_ended(reply.session_id)).end_reason == "completed"
    [event] = [UserUpdated.model_validate_json(e) for e in await world.events("user.updated")]
    assert event.username == "alice" and event.changed == ["pin"]
    caller.close()


async def test_a_greeting_recorded_by_phone_is_what_the_next_caller_hears(world: Any) -> None:
    await store_message(world, ulaw_decode(ulaw_encode(speech_like(0.5, seed=37))))
    spoken = ulaw_decode(ulaw_encode(speech_like(1.5, seed=38)))
    await world.start_recorder()
    owner = await world.caller()
    reply = await owner.allocate(menu_request(owner))
    await owner.wait_quiet(0.5, after=40)  # in the message menu
    start = len(owner.received)
    await owner.send_digits("01")  # options, record the unavailable greeting
    await owner.wait_quiet(0.3, after=start)  # "speak after the tone" + beep
    await owner.send_audio(spoken)
    await owner.send_digit("#")
    start = len(owner.received)
    await owner.wait_quiet(0.4, after=start)  # the review menu
    await owner.send_digit("2")  # listen: the recording comes back
    await owner.wait_quiet(0.4, after=start + len(spoken) // 160)
    assert best_correlation(owner.audio(start), spoken)[0] > 0.95
    await owner.send_digit("1")  # keep it
    await owner.wait_quiet(0.4, after=len(owner.received))
    stored = await greetings.get(world.pool, world.alice.id, "unavailable")
    assert stored is not None and abs(stored.duration_ms - 1500) < 400
    await owner.send_digits("**#")  # options → back → exit
    assert (await world.wait_ended(reply.session_id)).end_reason == "completed"
    owner.close()
    # the next caller gets that greeting (then the beep)
    caller = await world.caller()
    reply = await caller.allocate()
    await caller.wait_quiet(0.4, after=len(spoken) // 160)
    assert best_correlation(caller.audio(), spoken)[0] > 0.95
    await caller.hangup()
    await world.wait_ended(reply.session_id)
    caller.close()


async def test_8_forwards_to_bob_with_a_comment_first_and_3_pauses(world: Any) -> None:
    original = ulaw_decode(ulaw_encode(speech_like(1.0, seed=40)))
    comment = ulaw_decode(ulaw_encode(speech_like(1.5, seed=41)))
    message = await store_message(world, original)
    bob = await users.create(world.pool, "bob", "example.com", "bob-password-1")
    await domains.ensure(world.pool, "other.org")
    other_bob = await users.create(world.pool, "bob", "other.org", "bob-password-1")
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate(menu_request(caller))
    await caller.wait_quiet(0.5, after=len(original) // 160)  # in the message menu
    for keys in ("8", "262#", "1"):  # forward, to b-o-b, record a comment
        start = len(caller.received)
        await caller.send_digits(keys)
        await caller.wait_quiet(0.4, after=start)
    await caller.send_audio(comment)
    start = len(caller.received)
    await caller.send_digit("#")
    await until_heard(caller, prompt_audio(world, "message-forwarded"))
    await caller.wait_quiet(0.4, after=start)
    [copy] = await messages.list_for_user(world.pool, bob.id, folder=None)
    assert copy.folder.value == "inbox" and not copy.heard
    assert copy.caller_uri == "sip:alice@example.com"
    assert await messages.list_for_user(world.pool, other_bob.id, folder=None) == []
    pcm = decode_audio(await world.blobs.get(copy.blob_key)).pcm
    assert where(pcm, comment) < where(pcm, original)
    assert where(pcm, comment) < 8000 * 0.5  # the comment comes first
    assert best_correlation(pcm, original)[0] > 0.99
    assert abs(copy.duration_ms - (1000 + 300 + 1500)) < 600
    created = [MessageCreated.model_validate_json(e) for e in await world.events("message.created")]
    assert [(c.username, c.domain, c.message_id) for c in created] == [
        ("bob", "example.com", copy.id)
    ]
    # the original is untouched
    stored = await messages.get(world.pool, message.id)
    assert stored is not None and stored.folder.value == "inbox"
    # 3 pauses the audio: silence until 3 again, then the rest of it
    long_audio = ulaw_decode(ulaw_encode(speech_like(3.0, seed=42)))
    await caller.send_digits("#")  # exit this call
    assert (await world.wait_ended(reply.session_id)).end_reason == "completed"
    caller.close()
    [forwarded] = await messages.list_for_user(world.pool, bob.id, folder=None)
    await messages.move(world.pool, world.alice.id, message.id, "trash")
    await store_message(world, long_audio)
    caller = await world.caller()
    reply = await caller.allocate(menu_request(caller))
    await until_heard(caller, long_audio[:4000])
    await caller.send_digit("3")
    start = len(caller.received)
    await caller.wait_quiet(0.3, after=start)  # "paused"
    paused_at = len(caller.received)
    await asyncio.sleep(1.0)
    assert len(caller.received) - paused_at < 10  # nothing (but a stray packet) while paused
    await caller.send_digit("3")
    await caller.wait_quiet(0.5, after=len(caller.received) + 20)
    resumed = caller.audio(paused_at)
    # the rest is heard, from where it stopped (at least 0.5 s in), not from the start: the
    # last half second (at 2.5 s in the message) comes at most 2 s into what followed
    assert where(resumed, long_audio[-4000:]) <= 8000 * 2.0 + 800
    await caller.send_digit("#")
    assert (await world.wait_ended(reply.session_id)).end_reason == "completed"
    assert forwarded.id == copy.id
    caller.close()
