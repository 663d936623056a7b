"""The blob store goes away during a call (a restart, a network blip): the recording goes on,
the spool keeps the audio for its next put, and the finished message is stored once the store
is back — with the manifest written late, nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import io
import wave
from typing import Any

import numpy as np
import pytest
from sipum.blobstore import FileBlobStore
from sipum.db import messages
from sipum_protocol.media.codecs.g711 import ulaw_decode, ulaw_encode
from sipum_testing.rtp_caller import speech_like

pytestmark = pytest.mark.timeout(60)


class OutageStore(FileBlobStore):
    """The test's filesystem store, with writes refused while ``down`` (as a store that does not
    answer: the put raises)."""

    down = False
    refused = 0

    async def put(self, key: str, data: Any, **kw: Any) -> Any:
        if self.down:
            self.refused += 1
            raise ConnectionError("blob store unavailable")
        return await super().put(key, data, **kw)


async def test_blob_store_down_from_before_the_call_until_after_the_hang_up(world: Any) -> None:
    await world.upload_greeting(0.1)
    store = OutageStore(world.blobs.root)
    world.blobs = store
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate()
    await caller.wait_quiet(after=20)
    store.down = True  # the manifest and every chunk of this recording fail at first
    sent = speech_like(2.0, seed=61)
    await caller.send_audio(sent)
    await caller.hangup()
    await asyncio.sleep(3.0)  # the store is down for 3 s past the hang-up
    assert await messages.list_for_user(world.pool, world.alice.id, "inbox") == []
    assert store.refused >= 3
    store.down = False
    ended = await world.wait_ended(reply.session_id, limit=20)
    assert ended.end_reason == "bye" and ended.message_id is not None
    (message,) = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert message.id == ended.message_id and not message.interrupted
    with wave.open(io.BytesIO(await store.get(message.blob_key))) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    expected = ulaw_decode(ulaw_encode(sent))
    assert abs(len(pcm) - len(expected)) <= 320 * 3
    assert np.array_equal(pcm[:8000], expected[:8000])
    assert await store.list_keys("partial/") == []
    assert len(await world.events("message.created")) == 1
    caller.close()


async def test_manifest_written_late_is_what_recovery_finds(world: Any) -> None:
    """Down when the recording starts, back during it: the manifest is written before the next
    chunk, so a crash after that leaves a recoverable recording (not orphan chunks)."""
    await world.upload_greeting(0.1)
    store = OutageStore(world.blobs.root)
    world.blobs = store
    service = await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate()
    await caller.wait_quiet(after=20)
    store.down = True
    sender = asyncio.create_task(caller.send_audio(speech_like(3.0, seed=62)))
    await asyncio.sleep(1.0)
    store.down = False
    await asyncio.sleep(1.0)
    keys = await store.list_keys("partial/")
    assert f"partial/{reply.session_id}.json" in keys
    assert any(k.endswith(".pcm") for k in keys)
    await sender
    await caller.hangup()
    ended = await world.wait_ended(reply.session_id)
    assert ended.message_id is not None
    (message,) = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert 2700 <= message.duration_ms <= 3300  # nothing of the outage second is missing
    assert service.recovered == []
    caller.close()
