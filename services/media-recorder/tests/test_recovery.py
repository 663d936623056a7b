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
from sipum.events import MessageCreated, RecorderHeartbeat
from sipum_media_recorder.spool import RecordingMeta, chunk_key, manifest_key
from sipum_testing.rtp_caller import speech_like

pytestmark = pytest.mark.timeout(30)


async def spool(
    world: Any,
    session_id: str,
    pcm: np.ndarray,
    *,
    recorder: str = "gone",
    ended: str | None = None,
) -> None:
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
        ended=ended,
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


async def test_a_living_replicas_recording_waits_for_the_grace_period(world: Any) -> None:
    """A replica that beats is alive: its recent recording may be a live call, left alone;
    untouched for ``recovery_grace_seconds`` it is a leftover (e.g. a failed store)."""
    await spool(world, "sfresh", speech_like(1.5, seed=42), recorder="rec-live")
    beating = asyncio.create_task(beat(world, "rec-live", seconds=60))
    try:
        service = await world.start_recorder(recorder_id="rec-a", recovery_grace_seconds=30)
        await asyncio.sleep(service.liveness.dead_after + 0.5)  # past the start-up look
        assert service.recovered == []
        assert service.liveness.alive("rec-live")
        assert manifest_key("sfresh") in await world.blobs.list_keys("partial/")
        # 30 s later (file times moved back) the periodic pass takes it
        past = time.time() - 31
        for key in await world.blobs.list_keys("partial/"):
            path = world.blobs.root.joinpath(*key.split("/"))
            os.utime(path, (past, past))
        (message_id,) = await service.recover(own_only=False)
    finally:
        beating.cancel()
    (message,) = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert message.id == message_id and message.duration_ms == 1500
    assert message.interrupted  # no end reason in its manifest: cut off


async def beat(world: Any, recorder_id: str, *, seconds: float, interval: float = 0.5) -> None:
    """Heartbeats of a replica that is not really there (the test plays it)."""
    for _ in range(round(seconds / interval)):
        await world.bus.publish_heartbeat(
            RecorderHeartbeat(
                recorder_id=recorder_id, interval_s=interval, dead_after_s=3 * interval
            )
        )
        await asyncio.sleep(interval)


async def test_a_replica_that_stops_beating_is_recovered_at_once(world: Any) -> None:
    await spool(world, "sdies", speech_like(1.5, seed=43), recorder="rec-dies")
    beating = asyncio.create_task(beat(world, "rec-dies", seconds=60))
    service = await world.start_recorder(recorder_id="rec-a", recovery_grace_seconds=3600)
    await asyncio.sleep(2.0)
    assert service.recovered == [] and service.liveness.alive("rec-dies")
    beating.cancel()
    stopped = asyncio.get_running_loop().time()
    while not service.recovered:
        await asyncio.sleep(0.02)
        assert asyncio.get_running_loop().time() - stopped < 5, "not recovered within 5 s"
    took = asyncio.get_running_loop().time() - stopped
    assert 1.0 <= took <= 2.5, took  # dead_after (1.5 s) after its last beat, plus the store
    (message,) = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert message.idempotency_key == "sdies" and message.interrupted
    (data,) = await world.events("message.created")
    event = MessageCreated.model_validate_json(data)
    assert event.interrupted is True and event.message_id == message.id


async def test_a_replica_never_heard_from_is_recovered_after_one_dead_after(world: Any) -> None:
    await spool(world, "sunheard", speech_like(1.2, seed=44), recorder="rec-never")
    started = asyncio.get_running_loop().time()
    service = await world.start_recorder(recorder_id="rec-a", recovery_grace_seconds=3600)
    assert service.recovered == []  # at start it may still be alive: listen first
    while not service.recovered:
        await asyncio.sleep(0.02)
        assert asyncio.get_running_loop().time() - started < 5
    (message,) = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert message.idempotency_key == "sunheard"


async def test_a_short_cut_off_fragment_with_voice_is_kept_and_flagged(world: Any) -> None:
    """0.4 s of voice: under ``min_voice_seconds`` (1 s) but the caller was cut off."""
    audio = np.concatenate([speech_like(0.4, seed=45), np.zeros(4000, dtype=np.int16)])
    await spool(world, "sshort", audio)
    await spool(
        world, "sblip", np.concatenate([speech_like(0.1, seed=46), np.zeros(8000, dtype=np.int16)])
    )
    service = await world.start_recorder(recorder_id="gone")  # "its own" at start-up
    (message_id,) = service.recovered
    (message,) = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert message.id == message_id and message.idempotency_key == "sshort"
    assert message.interrupted and 400 <= message.duration_ms <= 900
    assert await world.blobs.list_keys("partial/") == []  # the 0.1 s blip was dropped


async def test_a_finished_recording_whose_store_failed_is_not_interrupted(world: Any) -> None:
    await spool(world, "sended", speech_like(0.5, seed=47), ended="bye")
    service = await world.start_recorder(recorder_id="gone")
    # a finished recording keeps the normal minimum (1 s of voice): 0.5 s is dropped
    assert service.recovered == []
    await spool(world, "sended2", speech_like(1.5, seed=48), ended="completed")
    (message_id,) = await service.recover(own_only=True)
    (message,) = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert message.id == message_id and not message.interrupted
