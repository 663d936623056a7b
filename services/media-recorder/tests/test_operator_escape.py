"""``0`` to the mailbox's operator (``transfer.py``): over loopback RTP with a fake
registrar-agent serving ``<p>.call.<session_id>.transfer`` on the test's NATS namespace.

At the greeting: the request names the operator URI and the call, "please hold" is heard, a
``transferred`` reply ends the session ``transferred`` with nothing recorded. After the beep:
the message recorded before ``0`` is stored (correlated) and the session ends ``transferred``
with its id. A failed transfer: "cannot transfer", a beep and the recording goes on — one
message holding both parts. No agent answering: the same. A mailbox without ``operator_uri``:
``0`` is an ordinary key (no request, the greeting plays on, the message is recorded)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from sipum.blobstore import FileBlobStore
from sipum.db import messages
from sipum.events import CallTransferReply, CallTransferRequest, SessionHangup
from sipum_media_recorder.audio import decode_audio
from sipum_protocol.media.codecs.g711 import ulaw_decode, ulaw_encode
from sipum_testing.rtp_caller import best_correlation, distinct_voice, speech_like

from .test_mainmenu import prompt_audio, until_heard, where
from .test_owner_escape import greeting_begun

pytestmark = pytest.mark.timeout(60)

OPERATOR = "sip:operator@example.com"


class FakeAgent:
    """Answers transfer requests like the registrar-agent: ``outcome``; on ``transferred`` it
    also sends the session's hang-up (its BYE after the NOTIFY sipfrag 200)."""

    def __init__(self, world: Any, outcome: str, status: int | None = None) -> None:
        self.world = world
        self.outcome = outcome
        self.status = status
        self.requests: list[CallTransferRequest] = []
        self.subscription: Any = None

    async def serve(self, session_id: str) -> None:
        async def handle(request: CallTransferRequest) -> CallTransferReply:
            self.requests.append(request)
            await asyncio.sleep(0.3)  # the REFER, 202, NOTIFYs
            if self.outcome == "transferred":
                asyncio.get_running_loop().call_later(
                    0.05,
                    lambda: asyncio.ensure_future(
                        self.world.bus.send_command(SessionHangup(session_id=session_id))
                    ),
                )
            return CallTransferReply(outcome=self.outcome, status_code=self.status)  # type: ignore[arg-type]

        self.subscription = await self.world.bus.serve_transfer(session_id, handle)
        await self.world.bus.nc.flush()


async def with_operator(world: Any, uri: str | None = OPERATOR) -> None:
    await world.pool.execute(
        "UPDATE users SET operator_uri = $1 WHERE id = $2", uri, world.alice.id
    )


async def stored_audio(world: Any, message_id: int) -> np.ndarray:
    blobs: FileBlobStore = world.blobs
    message = await messages.get(world.pool, message_id)
    assert message is not None
    return decode_audio(await blobs.get(message.blob_key)).pcm


async def test_0_at_the_greeting_transfers_and_records_nothing(world: Any) -> None:
    await with_operator(world)
    await world.upload_greeting(3.0)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate()
    agent = FakeAgent(world, "transferred")
    await agent.serve(reply.session_id)
    await greeting_begun(caller)
    start = len(caller.received)
    await caller.send_digit("0")
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "transferred" and ended.message_id is None
    (request,) = agent.requests
    assert request.target_uri == OPERATOR and request.call_id == caller.call_id
    assert request.timeout_s == 30.0
    heard = caller.audio(start)
    assert len(heard) < 8000 * 2.0  # the greeting stopped
    assert best_correlation(heard, prompt_audio(world, "transferring"))[0] > 0.9
    assert await messages.list_for_user(world.pool, world.alice.id) == []
    caller.close()


async def test_0_after_the_beep_keeps_the_message_and_transfers(world: Any) -> None:
    await with_operator(world)
    await world.upload_greeting(0.3)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate()
    agent = FakeAgent(world, "transferred")
    await agent.serve(reply.session_id)
    await caller.wait_quiet(after=10)  # greeting + beep
    speech = ulaw_decode(ulaw_encode(speech_like(1.5, seed=71)))
    await caller.send_audio(speech)
    await caller.send_digit("0")
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "transferred" and ended.message_id is not None
    assert len(agent.requests) == 1
    stored = await stored_audio(world, ended.message_id)
    assert best_correlation(stored, speech)[0] > 0.99
    assert len(stored) < len(speech) + 8000 * 0.6  # no tone, no hold prompt in it
    caller.close()


async def test_a_failed_transfer_says_so_and_the_recording_goes_on(world: Any) -> None:
    await with_operator(world)
    await world.upload_greeting(0.3)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate()
    agent = FakeAgent(world, "failed", 486)
    await agent.serve(reply.session_id)
    await caller.wait_quiet(after=10)
    first = ulaw_decode(ulaw_encode(distinct_voice(1.2, seed=72)))
    second = ulaw_decode(ulaw_encode(distinct_voice(1.2, seed=73)))
    await caller.send_audio(first)
    start = len(caller.received)
    await caller.send_digit("0")
    await until_heard(caller, prompt_audio(world, "cannot-transfer"))
    await caller.wait_quiet(after=start + 5)  # "cannot transfer" + the beep
    heard = caller.audio(start)
    assert where(heard, prompt_audio(world, "transferring")) < where(
        heard, prompt_audio(world, "cannot-transfer")
    )
    await caller.send_audio(second)
    await caller.send_digit("0")  # one attempt a call: now an ordinary key (a tone)
    await caller.hangup()
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "bye" and ended.message_id is not None
    assert len(agent.requests) == 1
    stored = await stored_audio(world, ended.message_id)
    assert best_correlation(stored, first)[0] > 0.99  # both parts in one message
    assert best_correlation(stored, second)[0] > 0.99
    assert where(stored, first) < where(stored, second)
    assert len(await messages.list_for_user(world.pool, world.alice.id)) == 1
    caller.close()


async def test_no_agent_answering_is_a_failed_transfer(world: Any) -> None:
    await with_operator(world)
    await world.upload_greeting(3.0)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate()  # nobody serves the transfer subject
    await greeting_begun(caller)
    await caller.send_digit("0")
    await until_heard(caller, prompt_audio(world, "cannot-transfer"))
    await caller.wait_quiet(after=len(caller.received) + 5)
    speech = ulaw_decode(ulaw_encode(speech_like(1.2, seed=74)))
    await caller.send_audio(speech)
    await caller.hangup()
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "bye" and ended.message_id is not None
    assert best_correlation(await stored_audio(world, ended.message_id), speech)[0] > 0.99
    caller.close()


async def test_without_an_operator_uri_0_is_an_ordinary_key(world: Any) -> None:
    await with_operator(world, None)
    await world.upload_greeting(2.0)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate()
    agent = FakeAgent(world, "transferred")
    await agent.serve(reply.session_id)
    await greeting_begun(caller)
    await caller.send_digit("0")
    await caller.wait_quiet(after=len(caller.received) + 5)
    assert len(caller.audio()) > 8000 * 2.2  # the whole greeting and the beep
    speech = ulaw_decode(ulaw_encode(speech_like(1.2, seed=75)))
    await caller.send_audio(speech)
    await caller.send_digit("0")  # after the beep too: recorded on, not a stop key
    await caller.send_audio(speech)
    await caller.hangup()
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "bye" and ended.message_id is not None
    assert agent.requests == []
    assert len(await stored_audio(world, ended.message_id)) > 2 * len(speech)
    caller.close()
