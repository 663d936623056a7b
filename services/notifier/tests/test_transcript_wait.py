"""The e-mail waits briefly for the transcript (real aiosmtpd, NATS JetStream, PostgreSQL).

The transcriber is played by the test: it stores a row in ``transcripts`` and publishes
``message.transcribed`` like the service does, at a chosen moment."""

from __future__ import annotations

import asyncio
import time
import uuid

from sipum.db import messages, transcripts, users
from sipum.events import MessageTranscribed

from .test_notifier import start_notifier, wait_for

TEXT = "hello alice this is bob please call me back tomorrow morning"


def body_of(mail) -> str:
    [text] = [p for p in mail.walk() if p.get_content_type() == "text/plain"]
    return text.get_payload(decode=True).decode()


async def transcribe(world, *, text: str = TEXT) -> None:
    """What the transcriber does after its engine finished: store, then publish."""
    message = world["message"]
    words = [transcripts.Word(w, 0.4 * i, 0.4 * i + 0.3, 0.8) for i, w in enumerate(text.split())]
    assert await transcripts.store(
        world["pool"],
        message.id,
        language="en-US",
        text=text,
        confidence=0.8,
        words=words,
        engine="pocketsphinx",
        engine_version="5.0.4",
        elapsed_ms=900,
    )
    await world["bus"].publish(
        MessageTranscribed(
            username="alice",
            domain="example.com",
            message_id=message.id,
            language="en-US",
            engine="pocketsphinx",
            engine_version="5.0.4",
            chars=len(text),
            words=len(words),
            confidence=0.8,
            elapsed_s=0.9,
        )
    )


async def test_transcript_that_arrives_within_the_wait_is_in_the_mail(world, smtp) -> None:
    box, port = smtp()
    service = await start_notifier(world, port, transcript_wait=8.0)
    started = time.monotonic()
    await world["bus"].publish(world["event"])
    await wait_for(lambda: service.transcripts is not None and service.transcripts.waiting == 1)
    await asyncio.sleep(1.0)
    assert box.mails == []  # still waiting
    await transcribe(world)
    await wait_for(lambda: box.mails)
    took = time.monotonic() - started
    [mail] = box.mails
    body = body_of(mail)
    assert "machine transcript" in body
    assert " ".join(body.split()).count(TEXT) == 1
    assert 1.0 <= took < 6.0, took  # woken by the event, not by the end of the wait
    await service.stop_accepting()
    await service.drain()
    assert service.transcripts.waiting == 0


async def test_transcript_too_late_mail_goes_without_and_only_once(world, smtp) -> None:
    box, port = smtp()
    service = await start_notifier(world, port, transcript_wait=1.5)
    started = time.monotonic()
    await world["bus"].publish(world["event"])
    await wait_for(lambda: box.mails)
    assert 1.4 <= time.monotonic() - started < 6.0
    await transcribe(world)  # too late
    # The event again (another id, as a re-publish would have): no second mail.
    await world["bus"].publish(world["event"].model_copy(update={"id": uuid.uuid4()}))
    await asyncio.sleep(2.5)
    [mail] = box.mails
    body = body_of(mail)
    assert "machine transcript" not in body and "tomorrow" not in body
    assert box.attempts == 1
    await service.stop_accepting()


async def test_transcript_already_stored_is_included_without_waiting(world, smtp) -> None:
    box, port = smtp()
    await transcribe(world)
    service = await start_notifier(world, port, transcript_wait=0.0)
    await world["bus"].publish(world["event"])
    await wait_for(lambda: box.mails)
    assert TEXT in " ".join(body_of(box.mails[0]).split())
    await service.stop_accepting()


async def test_no_wait_when_transcription_is_off_for_the_user(world, smtp) -> None:
    box, port = smtp()
    await users.update(world["pool"], world["alice"].id, transcription_enabled=False)
    service = await start_notifier(world, port, transcript_wait=30.0)
    started = time.monotonic()
    await world["bus"].publish(world["event"])
    await wait_for(lambda: box.mails)
    assert time.monotonic() - started < 5.0
    assert "machine transcript" not in body_of(box.mails[0])
    await service.stop_accepting()


async def test_mails_of_a_burst_wait_side_by_side(world, smtp) -> None:
    """Waiting e-mails do not queue behind each other: the consumer handles several at once
    (``email_concurrency``), and none holds a database connection while it waits."""
    box, port = smtp()
    service = await start_notifier(world, port, transcript_wait=2.0, webhooks=False)
    pool = world["pool"]
    alice = world["alice"]
    events = []
    for _ in range(6):
        message_id = await messages.allocate_id(pool)
        message, _ = await messages.insert_idempotent(
            pool,
            owner_id=alice.id,
            idempotency_key=f"burst-{message_id}",
            caller_uri="sip:bob@example.com",
            caller_display_name="Bob",
            called_uri="sip:alice@example.com",
            duration_ms=3000,
            codec="PCMU",
            size_bytes=204,
            blob_key=world["event"].blob_key,
            message_id=message_id,
        )
        events.append(
            world["event"].model_copy(update={"id": uuid.uuid4(), "message_id": message.id})
        )
    started = time.monotonic()
    for event in events:
        await world["bus"].publish(event)
    await wait_for(lambda: service.transcripts.waiting == 6, limit=5)
    assert pool.get_idle_size() == pool.get_size()  # nobody holds a connection while waiting
    await wait_for(lambda: len(box.mails) == 6, limit=15)
    assert time.monotonic() - started < 6.0  # 6 × 2 s one after the other would be 12 s
    await service.stop_accepting()
