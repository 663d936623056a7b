"""A forwarded copy over loopback RTP: ``8`` from alice's menu to bob keeps the original's
urgent mark and names alice (``forwarded_from``: row and ``message.created``); bob's own menu
then says "Urgent." and "Forwarded message from alice" in the copy's envelope."""

from __future__ import annotations

from typing import Any

import pytest
from sipum.db import messages, users
from sipum.events import MessageCreated
from sipum_protocol.media.codecs.g711 import ulaw_decode, ulaw_encode
from sipum_testing.rtp_caller import best_correlation, speech_like

from .test_mainmenu import menu_request, prompt_audio, until_heard, where
from .test_retrieve import store_message

pytestmark = pytest.mark.timeout(60)


async def test_a_forwarded_copy_keeps_urgent_and_names_its_mailbox(world: Any) -> None:
    original = ulaw_decode(ulaw_encode(speech_like(1.0, seed=50)))
    message = await store_message(world, original)
    await world.pool.execute("UPDATE messages SET urgent = true WHERE id = $1", message.id)
    bob = await users.create(world.pool, "bob", "example.com", "bob-password-1")
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate(menu_request(caller))
    await caller.wait_quiet(0.5, after=len(original) // 160)  # in the message menu
    heard = caller.audio()
    # alice's own envelope: "Message 1. Urgent. Received … from …" before the audio
    assert where(heard, prompt_audio(world, "envelope-urgent")) < where(heard, original)
    for keys in ("8", "262#"):  # forward, to b-o-b
        start = len(caller.received)
        await caller.send_digits(keys)
        await caller.wait_quiet(0.4, after=start)
    await caller.send_digit("2")  # without a comment
    await until_heard(caller, prompt_audio(world, "message-forwarded"))
    await caller.send_digit("#")
    assert (await world.wait_ended(reply.session_id)).end_reason == "completed"
    caller.close()

    [copy] = await messages.list_for_user(world.pool, bob.id, folder=None)
    assert copy.urgent and copy.forwarded_from == "alice@example.com"
    [created] = [
        MessageCreated.model_validate_json(e) for e in await world.events("message.created")
    ]
    assert created.message_id == copy.id and created.urgent
    assert created.forwarded_from == "alice@example.com"
    original_row = await messages.get(world.pool, message.id)
    assert original_row is not None and original_row.forwarded_from is None

    # bob's menu: the copy's envelope has both marks, then the audio
    caller = await world.caller()
    reply = await caller.allocate(
        menu_request(
            caller,
            username="bob",
            caller_uri="sip:bob@example.com",
            called_uri="sip:bob-retrieve@example.com",
        )
    )
    await caller.wait_quiet(0.5, after=len(original) // 160)
    heard = caller.audio()
    t_urgent = where(heard, prompt_audio(world, "envelope-urgent"))
    t_forwarded = where(heard, prompt_audio(world, "forwarded-from"))
    t_audio = where(heard, original)
    assert t_urgent < t_forwarded < t_audio
    assert best_correlation(heard, original)[0] > 0.99
    await caller.send_digit("#")
    assert (await world.wait_ended(reply.session_id)).end_reason == "completed"
    caller.close()
