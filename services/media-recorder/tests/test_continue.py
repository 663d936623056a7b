"""A call moved from a replica that died to another one (``continue_session_id``): the survivor
takes the spooled recording over — one message with the audio from before the crash first and
what is said after the move appended, flagged ``interrupted`` only when audio was lost — and its
recovery sweep does not store the same recording a second time."""

from __future__ import annotations

import asyncio
import io
import signal
import time
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sipum.db import messages
from sipum.events import MessageCreated
from sipum_media_recorder.spool import RecordingMeta, chunk_key, manifest_key
from sipum_protocol.media.codecs.g711 import ulaw_decode, ulaw_encode
from sipum_testing.rtp_caller import best_correlation, speech_like

from .test_crash_recovery import first_call, prompt_dir, recorder_process  # noqa: F401

pytestmark = pytest.mark.timeout(60)


async def stored_pcm(world: Any, message: messages.Message) -> np.ndarray:
    with wave.open(io.BytesIO(await world.blobs.get(message.blob_key))) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


async def spool_of(
    world: Any, session_id: str, pcm: np.ndarray, *, recorder: str, started: datetime, **kw: Any
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
        reason="forked",
        diversion_cause=None,
        call_id=f"{session_id}@test",
        codec="pcmu",
        sample_rate=8000,
        received_at=started.isoformat(),
        **kw,
    )
    await world.blobs.put(manifest_key(session_id), meta.to_json())
    data = pcm.astype("<i2").tobytes()
    for index, start in enumerate(range(0, len(data), 4000)):
        await world.blobs.put(chunk_key(session_id, index), data[start : start + 4000])


async def test_sigkill_then_continue_on_the_survivor_is_one_message_with_both_parts(
    world: Any,
    pg_dsn: str,
    tmp_path: Path,
    prompt_dir: Path,  # noqa: F811
) -> None:
    """crashy holds the call and is SIGKILLed 2 s into 6 s of speech; once its heartbeats
    stopped (what the agent waits for) the call is continued on the survivor and the caller's
    RTP goes there. Product defaults for chunks, hold-back and the move grace."""
    await world.upload_greeting(0.1)
    log = tmp_path / "recorder.log"
    proc = recorder_process(world, pg_dsn, prompt_dir, log, SIPUM_RECORDER_ID="crashy")
    caller = await world.caller()
    loop = asyncio.get_running_loop()
    try:
        reply = await first_call(caller, proc, log)
        survivor = await world.start_recorder(
            recorder_id="survivor", chunk_seconds=0.3, hold_back_seconds=0.1
        )
        await caller.wait_quiet(after=20)
        sent = speech_like(6.0, seed=51)
        speech_started = loop.time()
        sender = asyncio.create_task(caller.send_audio(sent))
        await asyncio.sleep(2.0)
        proc.send_signal(signal.SIGKILL)
        killed = loop.time()
        proc.wait(5)
        while not survivor.liveness.presumed_gone("crashy"):
            await asyncio.sleep(0.02)
            assert loop.time() - killed < 5
        moved = await caller.bus.allocate_media(
            caller.request(continue_session_id=reply.session_id), timeout=5
        )
        caller.use_reply(moved)  # the caller's RTP goes to the survivor from the next packet
        resumed = loop.time()
        assert moved.session_id == reply.session_id and moved.recorder_id == "survivor"
        await sender
        await asyncio.sleep(0.3)
        await caller.hangup()
        ended = await world.wait_ended(reply.session_id)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert ended.message_id is not None
    (message,) = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert message.id == ended.message_id and message.idempotency_key == reply.session_id
    assert message.interrupted  # the caller spoke into the dead replica for a while
    pcm = await stored_pcm(world, message)
    expected = ulaw_decode(ulaw_encode(sent))
    said_before = int((killed - speech_started) * 8000)
    gap_s = resumed - killed
    # the first part: exactly what was said, from the start, up to at most 0.5 s before the kill
    head = pcm[: said_before - 4000]
    assert np.array_equal(head, expected[: len(head)])
    # the part after the move: speech said after the move is in the message
    after_at = int((resumed - speech_started + 0.5) * 8000)
    score, where = best_correlation(pcm.astype(np.float64), expected[after_at : after_at + 8000])
    assert score > 0.9 and where > said_before - 4000, (score, where)
    total_s = len(sent) / 8000
    lost_s = total_s - len(pcm) / 8000
    print(
        f"\ncontinued after SIGKILL: gap {gap_s:.2f} s, stored {len(pcm) / 8000:.2f} s of "
        f"{total_s:.2f} s said, lost {lost_s:.2f} s"
    )
    assert lost_s <= gap_s + 0.6, (lost_s, gap_s)
    # the survivor's recovery later finds nothing: 0 doubled
    await asyncio.sleep(max(0.0, killed + 3.2 - loop.time()))
    assert await survivor.recover(own_only=False) == []
    assert survivor.recovered == []
    assert len(await messages.list_for_user(world.pool, world.alice.id, "inbox")) == 1
    (data,) = await world.events("message.created")
    assert MessageCreated.model_validate_json(data).interrupted is True
    assert await world.blobs.list_keys("partial/") == []
    caller.close()


async def test_a_continue_without_lost_audio_is_not_interrupted(world: Any) -> None:
    before = speech_like(2.0, seed=52)
    started = datetime.now(UTC) - timedelta(seconds=2.0)
    await spool_of(world, "smoved", before, recorder="rec-gone", started=started)
    survivor = await world.start_recorder(recorder_id="survivor")
    caller = await world.caller()
    reply = await caller.allocate(caller.request(continue_session_id="smoved"))
    assert reply.session_id == "smoved"
    manifest = RecordingMeta.from_json(await world.blobs.get(manifest_key("smoved")))
    assert manifest.recorder_id == "survivor"  # taken over before the reply
    assert manifest.lost_seconds < 0.2
    after = speech_like(1.5, seed=53)
    await caller.send_audio(after)
    await asyncio.sleep(0.3)
    await caller.hangup()
    ended = await world.wait_ended("smoved")
    (message,) = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert message.id == ended.message_id and message.idempotency_key == "smoved"
    assert not message.interrupted
    assert message.received_at == started  # the message began on the gone replica
    pcm = await stored_pcm(world, message)
    assert np.array_equal(pcm[: len(before)], before)  # the spooled part first, unchanged
    score, where = best_correlation(
        pcm.astype(np.float64), ulaw_decode(ulaw_encode(after))[4000:12000]
    )
    assert score > 0.9 and where >= len(before), (score, where)
    assert 3.3 <= len(pcm) / 8000 <= 4.3
    await asyncio.sleep(max(0.0, 3.2 - (time.time() - started.timestamp() - 2.0)))
    assert await survivor.recover(own_only=False) == []
    assert len(await world.events("message.created")) == 1
    assert await world.blobs.list_keys("partial/") == []
    caller.close()


async def test_a_gone_replicas_recording_waits_for_the_move_grace(world: Any) -> None:
    """The sweep of a replica that is gone leaves a fresh recording alone for the move grace;
    a call that was never moved is stored after it (flagged interrupted)."""
    await spool_of(
        world,
        "snotmoved",
        speech_like(1.5, seed=54),
        recorder="rec-never",
        started=datetime.now(UTC) - timedelta(seconds=2),
    )
    loop = asyncio.get_running_loop()
    written = loop.time()
    service = await world.start_recorder(recorder_id="rec-a", recovery_move_grace_seconds=2.5)
    while not service.recovered:
        await asyncio.sleep(0.02)
        assert loop.time() - written < 6
    took = loop.time() - written
    assert took >= 2.4, took  # not at presumed_gone (1.5 s), but after the grace
    (message,) = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert message.idempotency_key == "snotmoved" and message.interrupted


async def test_a_recording_that_had_ended_is_stored_at_once_when_continued(world: Any) -> None:
    """The caller was in the review (the manifest says the recording ended): the new replica
    stores it as it is, not interrupted, and ends the session."""
    before = speech_like(2.0, seed=55)
    await spool_of(
        world, "sreview", before, recorder="rec-gone", started=datetime.now(UTC), ended="completed"
    )
    await world.start_recorder(recorder_id="survivor")
    caller = await world.caller()
    await caller.allocate(caller.request(continue_session_id="sreview"))
    ended = await world.wait_ended("sreview")
    assert ended.end_reason == "completed"
    (message,) = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert message.id == ended.message_id and not message.interrupted
    assert message.duration_ms == 2000
    caller.close()


async def test_only_a_recording_can_be_continued(world: Any) -> None:
    await world.start_recorder(recorder_id="survivor")
    caller = await world.caller()
    from sipum.events import RemoteError

    with pytest.raises(RemoteError) as raised:
        await caller.allocate(caller.request(mode="menu", continue_session_id="sx", trusted=True))
    assert raised.value.code == "unsupported"
    caller.close()


async def test_a_continue_that_fails_after_the_takeover_is_recovered_by_this_replica(
    world: Any,
) -> None:
    """The manifest already names us when the allocation fails (here: the request names a
    mailbox that does not exist): nobody else would recover it now, so we do, at once."""
    from sipum.events import RemoteError

    await spool_of(
        world,
        "sfails",
        speech_like(1.5, seed=56),
        recorder="rec-gone",
        started=datetime.now(UTC) - timedelta(seconds=1.5),
    )
    service = await world.start_recorder(recorder_id="survivor")
    caller = await world.caller()
    with pytest.raises(RemoteError) as raised:
        await caller.allocate(caller.request(continue_session_id="sfails", username="nobody"))
    assert raised.value.code == "not_found"
    loop = asyncio.get_running_loop()
    refused = loop.time()
    while not service.recovered:
        await asyncio.sleep(0.02)
        assert loop.time() - refused < 3, "not recovered"
    (message,) = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert message.idempotency_key == "sfails" and message.interrupted
    caller.close()


def gate_chunk_gets(world: Any, monkeypatch: pytest.MonkeyPatch, session_id: str) -> Any:
    """Holds the GETs of *session_id*'s chunks until ``gate.open`` is set; ``gate.fail`` more
    of them fail first (the store away)."""
    real_get = world.blobs.get

    class Gate:
        open = asyncio.Event()
        fail = 0
        gets = 0

    async def get(key: str, *args: Any, **kw: Any) -> bytes:
        if key.startswith(f"partial/{session_id}-"):
            await Gate.open.wait()
            Gate.gets += 1
            if Gate.fail > 0:
                Gate.fail -= 1
                raise OSError("blob store away")
        return await real_get(key, *args, **kw)

    monkeypatch.setattr(world.blobs, "get", get)
    return Gate


async def test_the_continue_is_answered_before_the_spooled_chunks_are_fetched(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reply needs the manifest and the listing only; the chunks come while the new part
    is recorded and are joined in front of it."""
    before = speech_like(2.0, seed=57)
    started = datetime.now(UTC) - timedelta(seconds=2.0)
    await spool_of(world, "searly", before, recorder="rec-gone", started=started)
    gate = gate_chunk_gets(world, monkeypatch, "searly")
    await world.start_recorder(recorder_id="survivor")
    caller = await world.caller()
    reply = await asyncio.wait_for(caller.allocate(caller.request(continue_session_id="searly")), 5)
    assert reply.session_id == "searly" and gate.gets == 0  # answered, nothing fetched yet
    manifest = RecordingMeta.from_json(await world.blobs.get(manifest_key("searly")))
    assert manifest.recorder_id == "survivor"
    assert manifest.lost_seconds < 0.2  # the spooled duration from the listed sizes
    after = speech_like(1.5, seed=58)
    await caller.send_audio(after)
    gate.open.set()
    await asyncio.sleep(0.3)
    await caller.hangup()
    ended = await world.wait_ended("searly")
    (message,) = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert message.id == ended.message_id and not message.interrupted
    pcm = await stored_pcm(world, message)
    assert np.array_equal(pcm[: len(before)], before)
    score, where = best_correlation(
        pcm.astype(np.float64), ulaw_decode(ulaw_encode(after))[4000:12000]
    )
    assert score > 0.9 and where >= len(before), (score, where)
    assert await world.blobs.list_keys("partial/") == []
    caller.close()


async def test_a_spooled_audio_that_cannot_be_fetched_is_left_for_recovery_with_the_new(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old chunks' fetch fails for good (every retry): the new part is not lost — the
    recording stays in the spool, ours, and our recovery stores both parts once the store
    answers again."""
    before = speech_like(2.0, seed=59)
    started = datetime.now(UTC) - timedelta(seconds=2.0)
    await spool_of(world, "snofetch", before, recorder="rec-gone", started=started)
    gate = gate_chunk_gets(world, monkeypatch, "snofetch")
    gate.fail = 10_000
    service = await world.start_recorder(recorder_id="survivor")
    caller = await world.caller()
    await caller.allocate(caller.request(continue_session_id="snofetch"))
    gate.open.set()
    after = speech_like(1.5, seed=60)
    await caller.send_audio(after)
    await asyncio.sleep(0.3)
    await caller.hangup()
    ended = await world.wait_ended("snofetch")
    assert ended.end_reason == "error" and ended.message_id is None
    assert await messages.list_for_user(world.pool, world.alice.id, "inbox") == []
    manifest = RecordingMeta.from_json(await world.blobs.get(manifest_key("snofetch")))
    assert manifest.recorder_id == "survivor" and manifest.ended == "bye"
    gate.fail = 0  # the store is back
    loop = asyncio.get_running_loop()
    back = loop.time()
    while not service.recovered:
        await asyncio.sleep(0.05)
        assert loop.time() - back < 5, "not recovered"
    (message,) = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert message.idempotency_key == "snofetch"
    pcm = await stored_pcm(world, message)
    assert np.array_equal(pcm[: len(before)], before)
    score, where = best_correlation(
        pcm.astype(np.float64), ulaw_decode(ulaw_encode(after))[4000:12000]
    )
    assert score > 0.9 and where >= len(before), (score, where)
    caller.close()


@pytest.mark.parametrize(("spooled_voice", "stored"), [(0.7, True), (0.0, False)])
async def test_min_voice_counts_the_spooled_voice(
    world: Any, spooled_voice: float, stored: bool
) -> None:
    """min_voice_seconds (1 s) is checked on the whole message once the old audio is in:
    0.7 s spooled + 0.7 s after the move is kept; silence spooled + 0.7 s is discarded."""
    spooled = (
        speech_like(spooled_voice, seed=61)
        if spooled_voice
        else np.zeros(int(0.7 * 8000), dtype=np.int16)
    )
    started = datetime.now(UTC) - timedelta(seconds=0.7)
    await spool_of(world, "svoice", spooled, recorder="rec-gone", started=started)
    await world.start_recorder(recorder_id="survivor", min_voice_seconds=1.0)
    caller = await world.caller()
    await caller.allocate(caller.request(continue_session_id="svoice"))
    await caller.send_audio(speech_like(0.7, seed=62))
    await asyncio.sleep(0.3)
    await caller.hangup()
    ended = await world.wait_ended("svoice")
    found = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert (ended.message_id is not None) is stored
    assert len(found) == (1 if stored else 0)
    assert await world.blobs.list_keys("partial/") == []
    caller.close()
