"""Record mode over loopback with real RTP, real NATS, PostgreSQL and a filesystem blob store:
greeting + beep heard, the caller's audio stored bit-exact after µ-law, exactly one message and
one event under retries, ``#``, silence, the mailbox's own length limit."""

from __future__ import annotations

import asyncio
import io
import json
import wave
from typing import Any

import numpy as np
import pytest
from sipum.db import messages
from sipum.events import MessageCreated, RemoteError
from sipum_protocol.media.codecs.g711 import ulaw_decode, ulaw_encode
from sipum_testing.rtp_caller import best_correlation, correlation, speech_like

pytestmark = pytest.mark.timeout(40)


def wav_pcm(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


def dominant_frequency(pcm: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(float)))
    return float(np.argmax(spectrum) * rate / len(pcm))


async def stored_messages(world: Any) -> list[messages.Message]:
    return await messages.list_for_user(world.pool, world.alice.id, "inbox")


async def test_greeting_beep_then_message_stored_once(world: Any) -> None:
    await world.upload_greeting(0.2)
    service = await world.start_recorder()
    caller = await world.caller()
    request = caller.request()
    # the agent retries an allocation it got no answer to: same session, same port
    first, again = await asyncio.gather(caller.allocate(request), caller.allocate(request))
    assert first.session_id == again.session_id and first.answer_sdp == again.answer_sdp
    assert first.recorder_id == service.recorder_id
    assert "m=audio" in first.answer_sdp and " RTP/AVP 0 101" in first.answer_sdp
    assert caller.remote is not None and caller.remote[0] == "127.0.0.1"

    greeting_packets = await caller.wait_quiet(after=25)
    heard = caller.audio()
    # 0.2 s greeting (600 Hz) + 0.4 s beep (1 kHz): both heard, in that order
    assert 0.55 <= len(heard) / 8000 <= 0.75, greeting_packets
    assert abs(dominant_frequency(heard[:1600]) - 600) < 10
    assert abs(dominant_frequency(heard[-3000:]) - 1000) < 10

    sent = speech_like(2.0)
    await caller.send_audio(sent)
    await caller.hangup()
    await caller.hangup()  # a retried hang-up changes nothing
    ended = await world.wait_ended(first.session_id)
    assert ended.end_reason == "bye" and ended.message_id is not None
    assert ended.call_id == caller.call_id

    rows = await stored_messages(world)
    assert [m.id for m in rows] == [ended.message_id]
    message = rows[0]
    assert message.idempotency_key == first.session_id
    assert message.caller_uri == "sip:bob@example.org" and message.arrival.value == "forked"
    assert abs(message.duration_ms - 2000) <= 60
    pcm, rate = wav_pcm(await world.blobs.get(message.blob_key))
    assert rate == 8000
    expected = ulaw_decode(ulaw_encode(sent))
    assert correlation(pcm, expected) > 0.99
    assert abs(len(pcm) - len(expected)) <= 160 * 3
    # the waveform peaks were stored next to the audio, computed from the stored samples
    from sipum.blobstore import peaks_key
    from sipum_protocol.media.recording import Peaks, compute_peaks

    stored_peaks = Peaks.from_json(await world.blobs.get(peaks_key(message.blob_key)))
    assert stored_peaks == compute_peaks(pcm, 8000) and stored_peaks.samples == len(pcm)
    assert len(stored_peaks.peaks) == 400 and max(stored_peaks.peaks) > 0.05

    # a late retry of the allocation is refused, never a second call or message
    with pytest.raises(RemoteError) as err:
        await caller.allocate(request)
    assert err.value.code == "bad_request"
    events = [MessageCreated.model_validate_json(e) for e in await world.events("message.created")]
    assert [(e.message_id, e.session_id) for e in events] == [(message.id, first.session_id)]
    assert events[0].blob_key == message.blob_key and events[0].duration_s == pytest.approx(
        message.duration_ms / 1000
    )
    assert await world.blobs.list_keys("partial/") == []  # the spool is cleaned up
    caller.close()


async def test_a_g722_call_is_stored_at_16_khz(world: Any) -> None:
    from sipum_protocol.media.codecs import create_decoder, create_encoder

    await world.upload_greeting(0.1)
    await world.start_recorder()
    caller = await world.caller()
    caller.codec = "G722"
    reply = await caller.allocate()
    assert " RTP/AVP 9 101" in reply.answer_sdp
    await caller.wait_quiet(after=20)
    sent = speech_like(1.5, seed=6, rate=16000)
    await caller.send_audio(sent)
    await caller.hangup()
    ended = await world.wait_ended(reply.session_id)
    assert ended.message_id is not None
    (message,) = await stored_messages(world)
    assert message.codec == "g722"
    pcm, rate = wav_pcm(await world.blobs.get(message.blob_key))
    assert rate == 16000
    # the recorder's decoder saw the same stream from its start: the same samples
    expected = create_decoder("G722").decode(create_encoder("G722").encode(sent))
    assert abs(len(pcm) - len(expected)) <= 320 * 3
    assert correlation(pcm, expected) > 0.99
    caller.close()


async def test_hash_ends_the_recording_and_the_tone_is_cut_off(world: Any) -> None:
    await world.upload_greeting(0.1)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate()
    await caller.wait_quiet(after=20)
    sent = speech_like(1.5, seed=2)
    await caller.send_audio(sent)
    await caller.send_digit("#")
    await caller.wait_quiet(after=len(caller.received) + 5)  # the review's keys
    await caller.send_digit("1")  # send it
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "completed" and ended.message_id is not None
    (message,) = await stored_messages(world)
    assert not message.urgent
    pcm, _ = wav_pcm(await world.blobs.get(message.blob_key))
    expected = ulaw_decode(ulaw_encode(sent))
    assert len(pcm) == len(expected)  # cut where the digit began
    assert np.array_equal(pcm, expected)
    caller.close()


async def test_silence_only_leaves_no_message(world: Any) -> None:
    await world.upload_greeting(0.1)
    await world.start_recorder(max_silence_seconds=1.0)
    caller = await world.caller()
    reply = await caller.allocate()
    await caller.wait_quiet(after=20)
    # very quiet noise (below the silence threshold) — the phone keeps sending
    quiet = np.random.default_rng(3).normal(0, 20, 12000).astype(np.int16)
    await caller.send_audio(quiet)
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "silence" and ended.message_id is None
    assert await stored_messages(world) == []
    assert await world.events("message.created") == []
    assert await world.blobs.list_keys("partial/") == []
    caller.close()


async def test_under_a_second_of_voice_is_discarded(world: Any) -> None:
    await world.upload_greeting(0.1)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate()
    await caller.wait_quiet(after=20)
    await caller.send_audio(speech_like(0.6, seed=4))
    await caller.hangup()
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "bye" and ended.message_id is None
    assert await stored_messages(world) == []
    caller.close()


async def test_the_mailbox_limit_stops_a_long_message(world: Any) -> None:
    from sipum.db import users

    await users.update(world.pool, world.alice.id, max_message_seconds=2)
    await world.upload_greeting(0.1)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate()
    await caller.wait_quiet(after=20)
    sender = asyncio.create_task(caller.send_audio(speech_like(3.0, seed=5)))
    ended = await world.wait_ended(reply.session_id)
    sender.cancel()
    assert ended.end_reason == "max_length" and ended.message_id is not None
    (message,) = await stored_messages(world)
    assert message.duration_ms == 2000
    caller.close()


async def test_hangup_during_the_greeting_records_nothing(world: Any) -> None:
    await world.upload_greeting(2.0)
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate()
    await asyncio.sleep(0.3)
    await caller.hangup()
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "bye" and ended.message_id is None
    assert len(caller.audio()) / 8000 < 1.0  # the greeting stopped
    assert await stored_messages(world) == []
    assert await world.blobs.list_keys("partial/") == []
    caller.close()


async def test_default_prompt_when_no_greeting_was_uploaded(world: Any) -> None:
    await world.start_recorder()
    caller = await world.caller()
    reply = await caller.allocate()
    await caller.wait_quiet()
    heard = caller.audio()
    lib = world.prompts.library
    expected_seconds = 0.0
    for path in lib.prompt_sequence_for("unavailable", rate=8000, number="alice"):
        with wave.open(str(path)) as w:
            expected_seconds += w.getnframes() / w.getframerate()
    assert abs(len(heard) / 8000 - expected_seconds) < 0.05
    score, _ = best_correlation(heard, ulaw_decode(ulaw_encode(_beep(lib))))
    assert score > 0.99
    await caller.hangup()
    await world.wait_ended(reply.session_id)
    caller.close()


def _beep(lib: object) -> np.ndarray:
    path = lib.path("beep", 8000)  # type: ignore[attr-defined]
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def test_manifest_is_json() -> None:
    from sipum_media_recorder.spool import RecordingMeta

    meta = RecordingMeta(
        session_id="s1",
        recorder_id="r",
        owner_id=1,
        username="alice",
        domain="example.com",
        caller_uri="sip:bob@x",
        caller_display=None,
        called_uri="sip:alice@example.com",
        reason="direct",
        diversion_cause=None,
        call_id="c",
        codec="pcmu",
        sample_rate=8000,
        received_at="2026-11-26T05:00:00+00:00",
    )
    assert RecordingMeta.from_json(meta.to_json()) == meta
    assert json.loads(meta.to_json())["message_id"] is None
