"""Mailbox limits on a call (real RTP, NATS, PostgreSQL, filesystem blob store): a full mailbox
hears "the mailbox is full" and nothing is recorded; one below the limit still records; a nearly
used quota cuts the message to fit; a user's override beats the domain default. Plus the
length rule itself (``limits``), as plain functions."""

from __future__ import annotations

import asyncio
import logging
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sipum.db import domains, messages, users
from sipum.db.messages import MailboxUsage
from sipum_media_recorder.limits import (
    WAV_HEADER_BYTES,
    full_because,
    max_recording_length,
    seconds_that_fit,
)
from sipum_protocol.media.codecs.g711 import ulaw_decode, ulaw_encode
from sipum_testing.rtp_caller import best_correlation, speech_like

pytestmark = pytest.mark.timeout(60)


# -- the rules -------------------------------------------------------------------------------


def usage(messages: int = 0, used: int = 0, max_messages: int = 100, quota: int = 10**9) -> Any:
    return MailboxUsage(messages=messages, bytes=used, max_messages=max_messages, quota_bytes=quota)


def test_full_by_count_or_by_bytes() -> None:
    assert full_because(usage(messages=2, max_messages=3)) is None
    assert full_because(usage(messages=3, max_messages=3)) == "messages"
    assert full_because(usage(messages=0, max_messages=0)) == "messages"
    assert full_because(usage(used=999, quota=1000)) is None
    assert full_because(usage(used=1000, quota=1000)) == "bytes"
    assert full_because(usage(used=1200, quota=1000)) == "bytes"  # already over (overflow rule)


def test_seconds_that_fit_count_the_header_and_whole_samples() -> None:
    assert seconds_that_fit(WAV_HEADER_BYTES + 16000, 8000) == 1.0
    assert seconds_that_fit(WAV_HEADER_BYTES + 16001, 8000) == 1.0
    assert seconds_that_fit(WAV_HEADER_BYTES + 16000, 16000) == 0.5  # G.722: 32 kB a second
    assert seconds_that_fit(10, 8000) == 0.0


def test_max_recording_length_takes_the_lowest_limit() -> None:
    room = WAV_HEADER_BYTES + 2 * 8000 * 30  # 30 s at 8 kHz
    # the user's limit is lower than the quota's
    limit = max_recording_length(max_message_seconds=20, usage=usage(quota=room), sample_rate=8000)
    assert (limit.seconds, limit.by_quota) == (20.0, False)
    # the quota's is lower
    limit = max_recording_length(max_message_seconds=60, usage=usage(quota=room), sample_rate=8000)
    assert (limit.seconds, limit.by_quota) == (30.0, True)
    # the same bytes hold half as long at 16 kHz
    limit = max_recording_length(max_message_seconds=60, usage=usage(quota=room), sample_rate=16000)
    assert limit.seconds == 15.0
    # the request's own limit
    limit = max_recording_length(
        max_message_seconds=60, usage=usage(quota=room), sample_rate=8000, request_max_seconds=10
    )
    assert (limit.seconds, limit.by_quota) == (10.0, False)
    # almost no room left: the minimum
    limit = max_recording_length(
        max_message_seconds=60,
        usage=usage(used=room - 100, quota=room),
        sample_rate=8000,
        min_seconds=5,
    )
    assert (limit.seconds, limit.by_quota) == (5.0, True)
    # the minimum never makes a message longer than the user's limit
    limit = max_recording_length(
        max_message_seconds=3,
        usage=usage(used=room - 100, quota=room),
        sample_rate=8000,
        min_seconds=5,
    )
    assert (limit.seconds, limit.by_quota) == (3.0, False)
    # without usage (no such row) only the length limits apply, at least 1 s
    assert max_recording_length(max_message_seconds=60, usage=None, sample_rate=8000).seconds == 60
    limit = max_recording_length(
        max_message_seconds=60, usage=None, sample_rate=8000, request_max_seconds=0.2
    )
    assert limit.seconds == 1.0


# -- on a call -------------------------------------------------------------------------------


async def put_messages(world: Any, count: int, size: int = 1000, folder: str = "inbox") -> None:
    """*count* stored messages of *size* bytes each (rows only: the limits read the rows)."""
    for _ in range(count):
        message_id = await messages.allocate_id(world.pool)
        await messages.insert_idempotent(
            world.pool,
            owner_id=world.alice.id,
            idempotency_key=f"earlier-{message_id}",
            caller_uri="sip:carol@example.org",
            called_uri="sip:alice@example.com",
            duration_ms=1000,
            codec="pcmu",
            size_bytes=size,
            blob_key=f"messages/example.com/alice/{message_id}.wav",
            message_id=message_id,
        )
        if folder != "inbox":
            await messages.move(world.pool, world.alice.id, message_id, folder)


def prompt_pcm(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


async def call_full_mailbox(world: Any) -> None:
    """A call to a full mailbox: the caller hears "full" + "bye" and nothing else, the session
    ends with ``mailbox_full`` on its own, and nothing is stored."""
    rows_before = await messages.list_for_user(world.pool, world.alice.id, None)
    caller = await world.caller()
    reply = await caller.allocate()
    # the caller talks anyway: none of it may be kept
    talking = asyncio.create_task(caller.send_audio(speech_like(3.0, seed=9)))
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "mailbox_full" and ended.message_id is None
    await caller.wait_quiet()
    talking.cancel()
    heard = caller.audio()
    lib = world.prompts.library
    full = prompt_pcm(lib.path("mailbox-full", 8000))
    bye = prompt_pcm(lib.path("goodbye", 8000))
    # what was played is exactly the two prompts (no greeting, no beep) …
    assert abs(len(heard) - len(full) - len(bye)) <= 160 * 2, len(heard)
    score, at = best_correlation(heard, ulaw_decode(ulaw_encode(full)))
    assert score > 0.99 and at <= 160
    score, _ = best_correlation(heard, ulaw_decode(ulaw_encode(bye)))
    assert score > 0.99
    # … and no message: no new row, no blob, no event, no spool
    assert await messages.list_for_user(world.pool, world.alice.id, None) == rows_before
    assert await world.blobs.list_keys("messages/") == []
    assert await world.blobs.list_keys("partial/") == []
    assert await world.events("message.created") == []
    caller.close()


async def leave_message(world: Any, seconds: float = 1.5, *, seed: int = 1) -> Any:
    caller = await world.caller()
    reply = await caller.allocate()
    await caller.wait_quiet(after=20)
    await caller.send_audio(speech_like(seconds, seed=seed))
    await caller.hangup()
    ended = await world.wait_ended(reply.session_id)
    caller.close()
    return ended


def logged(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == message]


async def test_a_mailbox_at_its_message_limit_is_full_and_records_nothing(
    world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sipum.misc.recorder.record")
    await users.update(world.pool, world.alice.id, max_messages=3)
    # every folder counts: the trash still holds its audio
    await put_messages(world, 2)
    await put_messages(world, 1, folder="trash")
    await world.upload_greeting(0.1)
    await world.start_recorder()
    await call_full_mailbox(world)
    (record,) = logged(caplog, "mailbox full; nothing will be recorded")
    assert record.__dict__["full"] == "messages"
    assert (record.__dict__["messages"], record.__dict__["max_messages"]) == (3, 3)
    assert record.__dict__["mailbox"] == "alice@example.com"


async def test_one_below_the_limit_records_then_the_next_caller_finds_it_full(
    world: Any,
) -> None:
    await users.update(world.pool, world.alice.id, max_messages=3)
    await put_messages(world, 2)
    await world.upload_greeting(0.1)
    await world.start_recorder()
    ended = await leave_message(world)
    assert ended.end_reason == "bye" and ended.message_id is not None
    usage = await messages.usage(world.pool, world.alice.id)
    assert usage is not None and usage.messages == 3 and usage.full
    events = await world.events("message.created")
    assert len(events) == 1
    blobs_before = await world.blobs.list_keys("messages/")
    rows_before = await messages.list_for_user(world.pool, world.alice.id, None)
    # the next caller: full
    caller = await world.caller()
    reply = await caller.allocate()
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "mailbox_full" and ended.message_id is None
    await caller.wait_quiet()
    caller.close()
    assert await messages.list_for_user(world.pool, world.alice.id, None) == rows_before
    assert await world.blobs.list_keys("messages/") == blobs_before
    assert len(await world.events("message.created")) == 1  # still only the first call's


async def test_a_nearly_used_quota_cuts_the_message_to_fit(
    world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sipum.misc.recorder.record")
    await put_messages(world, 2, size=5000)
    # room for 44 header bytes + 2.0 s of 8 kHz 16-bit audio, and one byte too few for more
    room = WAV_HEADER_BYTES + 2 * 8000 * 2 + 1
    await users.update(world.pool, world.alice.id, quota_bytes=10_000 + room)
    await world.upload_greeting(0.1)
    await world.start_recorder(quota_min_message_seconds=1.0)
    caller = await world.caller()
    reply = await caller.allocate()
    await caller.wait_quiet(after=20)
    sender = asyncio.create_task(caller.send_audio(speech_like(4.0, seed=5)))
    ended = await world.wait_ended(reply.session_id)
    sender.cancel()
    caller.close()
    assert ended.end_reason == "max_length" and ended.message_id is not None
    message = await messages.get_for_user(world.pool, world.alice.id, ended.message_id)
    assert message is not None
    assert message.duration_ms == 2000
    assert message.size_bytes == WAV_HEADER_BYTES + 32000
    assert len(await world.blobs.get(message.blob_key)) == message.size_bytes
    usage = await messages.usage(world.pool, world.alice.id)
    assert usage is not None and usage.bytes == usage.quota_bytes - 1 and not usage.full
    (record,) = logged(caplog, "message length limited by the quota")
    assert record.__dict__["max_length_s"] == 2.0


async def test_the_quota_minimum_when_almost_nothing_is_left(world: Any) -> None:
    await put_messages(world, 1, size=5000)
    # 0.25 s of room, but a caller still gets quota_min_message_seconds
    await users.update(world.pool, world.alice.id, quota_bytes=5000 + WAV_HEADER_BYTES + 4000)
    await world.upload_greeting(0.1)
    await world.start_recorder(quota_min_message_seconds=1.5)
    caller = await world.caller()
    reply = await caller.allocate()
    await caller.wait_quiet(after=20)
    sender = asyncio.create_task(caller.send_audio(speech_like(3.0, seed=7)))
    ended = await world.wait_ended(reply.session_id)
    sender.cancel()
    caller.close()
    assert ended.end_reason == "max_length" and ended.message_id is not None
    message = await messages.get_for_user(world.pool, world.alice.id, ended.message_id)
    assert message is not None and message.duration_ms == 1500
    # over the quota now (by the rule's bound at most), so the next caller finds it full
    usage = await messages.usage(world.pool, world.alice.id)
    assert usage is not None and usage.full
    assert usage.bytes - usage.quota_bytes <= 2 * 8000 * 1.5
    await call_full_mailbox_after_a_message(world)


async def call_full_mailbox_after_a_message(world: Any) -> None:
    caller = await world.caller()
    reply = await caller.allocate()
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "mailbox_full" and ended.message_id is None
    await caller.wait_quiet()
    caller.close()


async def test_the_users_override_beats_the_domain_default(
    world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    domain = await domains.get_by_name(world.pool, "example.com")
    assert domain is not None
    await domains.update(world.pool, domain.id, max_messages=1)
    await put_messages(world, 1)
    await world.upload_greeting(0.1)
    await world.start_recorder()
    caplog.set_level(logging.INFO, logger="sipum.misc.recorder.record")
    # full by the domain's default
    await call_full_mailbox(world)
    # the user's own limit is higher: the call records
    await users.update(world.pool, world.alice.id, max_messages=5)
    ended = await leave_message(world, seed=3)
    assert ended.end_reason == "bye" and ended.message_id is not None
    # the domain's quota is ample (50 MiB), the user's own is used up: full again
    usage = await messages.usage(world.pool, world.alice.id)
    assert usage is not None and usage.quota_bytes == 52_428_800 and not usage.full
    await users.update(world.pool, world.alice.id, quota_bytes=usage.bytes)
    await call_full_mailbox_after_a_message(world)
    full = logged(caplog, "mailbox full; nothing will be recorded")
    assert [r.__dict__["full"] for r in full] == ["messages", "bytes"]
    # and back to the domain's default: records again
    await users.update(world.pool, world.alice.id, quota_bytes=None)
    ended = await leave_message(world, seed=4)
    assert ended.end_reason == "bye" and ended.message_id is not None
