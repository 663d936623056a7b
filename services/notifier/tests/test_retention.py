"""Delete after e-mail against a real SMTP server (aiosmtpd), NATS and PostgreSQL: the mail
with the audio marks the message, the sweeper deletes row, transcript, audio and peaks after the
window and publishes ``message.deleted``; a failed mail, a mail without the audio, or the
setting off mark nothing; concurrent sweepers delete each message once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sipum.blobstore import message_key, peaks_key
from sipum.db import domains, messages, transcripts, users
from sipum.events import MessageDeleted, NotificationFailed
from sipum.runtime import HealthRegistry, ServiceContext
from sipum_notifier.retention import RetentionSweeper
from sipum_notifier.settings import NotifierSettings

from .test_notifier import WAV, smtp, start_notifier, wait_for, world  # noqa: F401 - fixtures

FAST = {"retention_sweep_interval": 0.2, "webhooks": False}


async def wait_until(check, limit: float = 10.0) -> None:
    for _ in range(int(limit / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def deleted_events(world) -> list[MessageDeleted]:  # noqa: F811
    got: list[MessageDeleted] = []

    async def on_deleted(event: MessageDeleted) -> None:
        got.append(event)

    await world["bus"].subscribe(MessageDeleted, on_deleted, durable=f"t-del-{uuid.uuid4().hex}")
    return got


async def test_mail_with_audio_marks_the_message_and_the_sweeper_deletes_it(world, smtp) -> None:  # noqa: F811
    box, port = smtp()
    pool, blobs, message = world["pool"], world["blobs"], world["message"]
    await users.update(pool, world["alice"].id, delete_after_email=True)
    await blobs.put(peaks_key(message.blob_key), b'{"peaks":[]}')
    await transcripts.store(
        pool, message.id, language="en", text="call me back", confidence=0.9, words=[],
        engine="test", engine_version="1", elapsed_ms=10,
    )  # fmt: skip
    events = await deleted_events(world)
    service = await start_notifier(world, port, delete_after_email_retention=1.5, **FAST)
    before = datetime.now(UTC)
    await world["bus"].publish(world["event"])
    await wait_for(lambda: box.mails)
    [mail] = box.mails
    assert [p for p in mail.walk() if p.get_content_type() == "audio/wav"]
    text = (
        next(p for p in mail.walk() if p.get_content_type() == "text/plain")
        .get_payload(decode=True)
        .decode()
    )
    assert "deleted from the server on" in text

    async def marked() -> bool:
        found = await messages.get(pool, message.id)
        return found is not None and found.expires_at is not None

    await wait_until(marked)
    stored = await messages.get(pool, message.id)
    assert stored is not None and stored.expires_at is not None
    assert before + timedelta(seconds=1.4) <= stored.expires_at
    assert stored.expires_at <= datetime.now(UTC) + timedelta(seconds=1.5)
    # Within the window it is all still there.
    await asyncio.sleep(0.5)
    assert await messages.get(pool, message.id) is not None
    assert await blobs.exists(message.blob_key)

    async def gone() -> bool:
        return await messages.get(pool, message.id) is None

    await wait_until(gone, limit=5)
    assert datetime.now(UTC) >= stored.expires_at
    assert not await blobs.exists(message.blob_key)
    assert not await blobs.exists(peaks_key(message.blob_key))
    assert await transcripts.get(pool, message.id) is None
    await wait_for(lambda: events)
    [event] = events
    assert event.message_id == message.id and event.reason == "expired"
    assert (event.username, event.domain) == ("alice", "example.com")
    await service.stop_accepting()


async def test_nothing_is_deleted_when_the_mail_failed(world, smtp) -> None:  # noqa: F811
    box, port = smtp(fail_first=1000)  # every attempt: 451
    pool, message = world["pool"], world["message"]
    await users.update(pool, world["alice"].id, delete_after_email=True)
    failed: list[NotificationFailed] = []

    async def on_failed(event: NotificationFailed) -> None:
        failed.append(event)

    await world["bus"].subscribe(NotificationFailed, on_failed, durable="t-ret-failed")
    service = await start_notifier(world, port, delete_after_email_retention=0, **FAST)
    await world["bus"].publish(world["event"])
    await wait_for(lambda: failed)
    await asyncio.sleep(1.0)  # several sweeps
    stored = await messages.get(pool, message.id)
    assert stored is not None and stored.expires_at is None and box.mails == []
    assert await world["blobs"].exists(message.blob_key)
    await service.stop_accepting()


async def test_nothing_is_deleted_without_the_audio_or_the_setting(world, smtp) -> None:  # noqa: F811
    box, port = smtp()
    pool, message = world["pool"], world["message"]
    # The setting on, but the attachment over the cap: the mail has only links.
    await users.update(pool, world["alice"].id, delete_after_email=True)
    service = await start_notifier(
        world, port, delete_after_email_retention=0, attachment_max_bytes=10, **FAST
    )
    await world["bus"].publish(world["event"])
    await wait_for(lambda: box.mails)
    await asyncio.sleep(0.6)
    stored = await messages.get(pool, message.id)
    assert stored is not None and stored.expires_at is None
    await service.stop_accepting()
    # The setting off (the domain's default): an attached mail marks nothing either.
    await users.update(pool, world["alice"].id, delete_after_email=None)
    assert not (await users.effective_settings(pool, world["alice"].id)).delete_after_email
    await pool.execute("DELETE FROM notifications")
    box.mails.clear()
    service = await start_notifier(world, port, delete_after_email_retention=0, **FAST)
    await world["bus"].publish(world["event"].model_copy(update={"id": uuid.uuid4()}))
    await wait_for(lambda: box.mails)
    assert [p for p in box.mails[0].walk() if p.get_content_type() == "audio/wav"]
    await asyncio.sleep(0.6)
    stored = await messages.get(pool, message.id)
    assert stored is not None and stored.expires_at is None
    await service.stop_accepting()
    # …and the domain's default on applies to a user without an override.
    domain = await domains.get_by_name(pool, "example.com")
    await domains.update(pool, domain.id, delete_after_email=True)
    assert (await users.effective_settings(pool, world["alice"].id)).delete_after_email


async def test_expiry_keeps_the_earliest_and_only_due_messages_go(world) -> None:  # noqa: F811
    pool, message = world["pool"], world["message"]
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    assert await messages.set_expiry(pool, message.id, t0) == t0
    assert await messages.set_expiry(pool, message.id, t0 + timedelta(days=1)) == t0
    assert await messages.delete_expired(pool, t0 - timedelta(seconds=1)) == []
    [gone] = await messages.delete_expired(pool, t0)
    assert (gone.id, gone.username, gone.domain) == (message.id, "alice", "example.com")
    assert await messages.set_expiry(pool, message.id, t0) is None  # gone


async def test_concurrent_sweepers_delete_each_message_once(world) -> None:  # noqa: F811
    pool, blobs, alice = world["pool"], world["blobs"], world["alice"]
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    ids: list[int] = []
    for i in range(60):
        mid = await messages.allocate_id(pool)
        key = message_key("example.com", "alice", mid)
        await blobs.put(key, WAV)
        m, _ = await messages.insert_idempotent(
            pool, owner_id=alice.id, idempotency_key=f"sweep-{mid}", caller_uri="sip:x@y",
            called_uri="sip:alice@example.com", duration_ms=1000, codec="PCMU",
            size_bytes=len(WAV), blob_key=key, message_id=mid,
        )  # fmt: skip
        await messages.set_expiry(pool, m.id, t0 + timedelta(milliseconds=i))
        ids.append(m.id)
    events = await deleted_events(world)
    settings = NotifierSettings(domain="example.com", retention_sweep_batch=7)
    sweepers = [
        RetentionSweeper(
            settings,
            ServiceContext(
                settings=settings,
                health=HealthRegistry("n"),
                pool=pool,
                bus=world["bus"],
                blobs=blobs,
            ),  # fmt: skip
        )
        for _ in range(3)
    ]
    counts = await asyncio.gather(*(s.sweep(datetime.now(UTC)) for s in sweepers))
    assert sum(counts) == 60
    for mid in ids:
        assert await messages.get(pool, mid) is None
    assert await messages.get(pool, world["message"].id) is not None  # no expiry: kept
    assert await blobs.list_keys("messages/example.com/alice/") == [world["message"].blob_key]
    await wait_for(lambda: len(events) >= 60)
    await asyncio.sleep(0.3)
    assert sorted(e.message_id for e in events) == sorted(ids)  # each announced once


async def test_a_graceful_stop_finishes_the_batch_in_progress(world, tmp_path) -> None:  # noqa: F811
    from sipum.blobstore import FileBlobStore

    class SlowDeletes(FileBlobStore):
        async def delete(self, key: str) -> None:
            await asyncio.sleep(0.1)
            await super().delete(key)

    pool, alice = world["pool"], world["alice"]
    blobs = SlowDeletes(tmp_path / "slow")
    ids = []
    for _ in range(5):
        mid = await messages.allocate_id(pool)
        key = message_key("example.com", "alice", mid)
        await blobs.put(key, WAV)
        await messages.insert_idempotent(
            pool, owner_id=alice.id, idempotency_key=f"stop-{mid}", caller_uri="sip:x@y",
            called_uri="sip:alice@example.com", duration_ms=1000, codec="PCMU",
            size_bytes=len(WAV), blob_key=key, message_id=mid,
        )  # fmt: skip
        await messages.set_expiry(pool, mid, datetime.now(UTC) - timedelta(seconds=1))
        ids.append(mid)
    events = await deleted_events(world)
    settings = NotifierSettings(domain="example.com", retention_sweep_interval=60)
    ctx = ServiceContext(
        settings=settings, health=HealthRegistry("n"), pool=pool, bus=world["bus"], blobs=blobs
    )
    sweeper = RetentionSweeper(settings, ctx)
    await sweeper.start()
    await asyncio.sleep(0.25)  # in the middle of the batch: rows gone, blobs going
    await sweeper.stop()
    assert await blobs.list_keys("messages/") == []  # every blob of the batch went
    await wait_for(lambda: len(events) == 5)
    assert sorted(e.message_id for e in events) == ids
