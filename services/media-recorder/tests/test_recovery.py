"""Recovery of spooled recordings without a call: another replica's stale recording, two
replicas recovering the same one at once, silent leftovers dropped, orphan chunks removed."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import numpy as np
import pytest
from sipum.blobstore import peaks_key
from sipum.db import messages
from sipum_media_recorder.spool import RecordingMeta, chunk_key, manifest_key
from sipum_testing.rtp_caller import speech_like

pytestmark = pytest.mark.timeout(30)


async def spool(world: Any, session_id: str, pcm: np.ndarray, *, recorder: str = "gone") -> None:
    meta = RecordingMeta(
        session_id=session_id,
        recorder_id=recorder,
        owner_id=world.alice.id,
        username="alice",
        domain="example.com",
        caller_uri="sip:bob@example.org",
        caller_display="Bob",
        called_uri="sip:alice@example.com",
        reason="diverted",
        diversion_cause="no-answer",
        call_id=f"{session_id}@test",
        codec="pcmu",
        sample_rate=8000,
        received_at="2026-11-26T05:00:00+00:00",
    )
    await world.blobs.put(manifest_key(session_id), meta.to_json())
    data = pcm.astype("<i2").tobytes()
    for index, start in enumerate(range(0, len(data), 8000)):
        await world.blobs.put(chunk_key(session_id, index), data[start : start + 8000])


async def test_stale_recordings_of_other_replicas_are_stored_once(world: Any) -> None:
    audio = speech_like(2.0, seed=41)
    await spool(world, "sstale", audio)
    await spool(world, "ssilent", np.zeros(16000, dtype=np.int16))
    await world.blobs.put(chunk_key("sorphan", 0), b"\x00\x00" * 100)  # manifest already gone
    # two replicas start together and both find them
    a, b = await asyncio.gather(
        world.start_recorder(recorder_id="rec-a", recovery_grace_seconds=0),
        world.start_recorder(recorder_id="rec-b", recovery_grace_seconds=0),
    )
    stored = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert len(stored) == 1 and sorted(a.recovered + b.recovered) == [stored[0].id] * len(
        a.recovered + b.recovered
    )
    message = stored[0]
    assert message.idempotency_key == "sstale" and message.duration_ms == 2000
    assert message.arrival.value == "diverted" and message.diversion_cause == "no-answer"
    assert message.caller_display_name == "Bob"
    assert len(await world.events("message.created")) == 1
    assert await world.blobs.list_keys("partial/") == []
    # exactly one blob and its peaks under the mailbox (a losing attempt removed its own)
    assert await world.blobs.list_keys("messages/") == sorted(
        [message.blob_key, peaks_key(message.blob_key)]
    )


async def test_recent_recordings_of_other_replicas_wait_for_the_grace_period(world: Any) -> None:
    await spool(world, "sfresh", speech_like(1.5, seed=42))
    service = await world.start_recorder(recorder_id="rec-a", recovery_grace_seconds=30)
    assert service.recovered == []
    assert manifest_key("sfresh") in await world.blobs.list_keys("partial/")
    # 30 s later (file times moved back) the periodic pass takes it
    past = time.time() - 31
    for key in await world.blobs.list_keys("partial/"):
        path = world.blobs.root.joinpath(*key.split("/"))
        os.utime(path, (past, past))
    (message_id,) = await service.recover(own_only=False)
    (message,) = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert message.id == message_id and message.duration_ms == 1500
