"""The notifier against a real SMTP server (aiosmtpd), NATS JetStream and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import email
import socket
import uuid
from email.message import Message
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from sipum.blobstore import FileBlobStore
from sipum.blobstore.keys import message_key
from sipum.db import domains, messages, users
from sipum.events import MessageCreated, NotificationFailed, NotificationSent
from sipum.runtime import HealthRegistry, ServiceContext
from sipum.security.tokens import verify
from sipum_notifier.service import NotificationInProgress, NotifierService
from sipum_notifier.settings import NotifierSettings

SECRET = "notifier-test-secret"
WAV = b"RIFF" + bytes(200)


class Mailbox:
    """aiosmtpd handler: keeps accepted mails; answers 451 to the first ``fail_first``."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.attempts = 0
        self.mails: list[Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's name
        self.attempts += 1
        if self.attempts <= self.fail_first:
            return "451 4.3.0 try again later"
        self.mails.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    servers: list[Controller] = []

    def start(fail_first: int = 0) -> tuple[Mailbox, int]:
        box = Mailbox(fail_first)
        port = free_port()
        controller = Controller(box, hostname="127.0.0.1", port=port)
        controller.start()
        servers.append(controller)
        return box, port

    yield start
    for controller in servers:
        controller.stop()


@pytest.fixture
async def world(pg_pool, event_bus, tmp_path: Path):
    await domains.ensure(pg_pool, "example.com")
    alice = await users.create(
        pg_pool,
        "alice",
        "example.com",
        "alice-password-1",
        email="alice@mail.test",
        display_name="Alice",
    )
    blobs = FileBlobStore(tmp_path / "blobs")
    message_id = await messages.allocate_id(pg_pool)
    key = message_key("example.com", "alice", message_id)
    await blobs.put(key, WAV)
    message, _ = await messages.insert_idempotent(
        pg_pool,
        owner_id=alice.id,
        idempotency_key=f"n-{message_id}",
        caller_uri="sip:bob@example.com",
        caller_display_name="Bob",
        called_uri="sip:alice@example.com",
        duration_ms=5200,
        codec="PCMU",
        size_bytes=len(WAV),
        blob_key=key,
        message_id=message_id,
    )
    event = MessageCreated(
        username="alice",
        domain="example.com",
        message_id=message.id,
        caller_uri="sip:bob@example.com",
        caller_display="Bob",
        called_uri="sip:alice@example.com",
        received_at=message.received_at,
        duration_s=5.2,
        codec="PCMU",
        size=len(WAV),
        blob_key=key,
    )
    return {
        "pool": pg_pool,
        "bus": event_bus,
        "blobs": blobs,
        "alice": alice,
        "message": message,
        "event": event,
    }


async def start_notifier(world, port: int, **overrides) -> NotifierService:
    # No transcriber runs here: without this every mail would wait the full transcript_wait
    # (test_transcript_wait.py sets it).
    overrides.setdefault("transcript_wait", 0.0)
    settings = NotifierSettings(
        smtp_host="127.0.0.1",
        smtp_port=port,
        secret_key=SecretStr(SECRET),
        domain="example.com",
        public_url="http://web.test:8000",
        rtsp_url="rtsp://rtsp.test:8554",
        **overrides,
    )
    service = NotifierService(settings)
    ctx = ServiceContext(
        settings=settings,
        health=HealthRegistry("notifier"),
        pool=world["pool"],
        bus=world["bus"],
        blobs=world["blobs"],
    )
    await service.start(ctx)
    return service


async def wait_for(predicate, limit: float = 10.0) -> None:
    for _ in range(int(limit / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_mail_with_working_links(world, smtp) -> None:
    box, port = smtp()
    sent: list[NotificationSent] = []

    async def on_sent(event: NotificationSent) -> None:
        sent.append(event)

    await world["bus"].subscribe(NotificationSent, on_sent, durable="t-sent")
    service = await start_notifier(world, port)
    await world["bus"].publish(world["event"])
    await wait_for(lambda: box.mails and sent)
    [mail] = box.mails
    message = world["message"]
    assert (
        mail["To"] == "alice@mail.test"
        and "Bob" in mail["Subject"]
        and "0:05" not in mail["Subject"]
    )
    assert mail["Message-ID"] == f"<sipum.voicemail.{message.id}@example.com>"
    [text] = [p for p in mail.walk() if p.get_content_type() == "text/plain"]
    body = text.get_payload(decode=True).decode()
    assert "Hello Alice" in body and "5 s" in body
    assert "cut off" not in body  # only for interrupted messages
    web = next(line.split()[-1] for line in body.splitlines() if "browser:" in line)
    rtsp = next(line.split()[-1] for line in body.splitlines() if "media player:" in line)
    assert web.startswith(f"http://web.test:8000/api/v1/messages/{message.id}/audio?token=")
    assert rtsp.startswith(f"rtsp://rtsp.test:8554/alice/inbox/{message.id}.wav?token=")
    claims = verify(SECRET, "play", parse_qs(urlsplit(rtsp).query)["token"][0])
    assert claims["uid"] == world["alice"].id and claims["mid"] == message.id
    assert f"sip:alice-{message.id}-retrieve@example.com" in body
    assert sent[0].message_id == message.id and sent[0].recipient == "alice@mail.test"
    await service.stop_accepting()


async def test_attachment_only_when_the_user_wants_it(world, smtp) -> None:
    box, port = smtp()
    await users.update(world["pool"], world["alice"].id, email_attaches_audio=False)
    service = await start_notifier(world, port)
    await world["bus"].publish(world["event"])
    await wait_for(lambda: box.mails)
    assert not box.mails[0].is_multipart()  # plain text, no audio
    await service.stop_accepting()
    box.mails.clear()
    await world["pool"].execute("DELETE FROM notifications")
    await users.update(world["pool"], world["alice"].id, email_attaches_audio=True)
    service = await start_notifier(world, port)
    # A new event id: JetStream drops a re-publish of the same id as a duplicate.
    await world["bus"].publish(world["event"].model_copy(update={"id": uuid.uuid4()}))
    await wait_for(lambda: box.mails)
    [mail] = box.mails
    parts = [p for p in mail.walk() if p.get_content_type() == "audio/wav"]
    assert len(parts) == 1 and parts[0].get_payload(decode=True) == WAV
    assert parts[0].get_filename() == f"voicemail-{world['message'].id}.wav"
    await service.stop_accepting()


async def test_mail_of_an_interrupted_message_says_the_call_was_cut_off(world, smtp) -> None:
    box, port = smtp()
    message = world["message"]
    await world["pool"].execute("UPDATE messages SET interrupted = true WHERE id = $1", message.id)
    service = await start_notifier(world, port)
    await world["bus"].publish(world["event"].model_copy(update={"interrupted": True}))
    await wait_for(lambda: box.mails)
    [mail] = box.mails
    [text] = [p for p in mail.walk() if p.get_content_type() == "text/plain"]
    body = text.get_payload(decode=True).decode()
    assert "The call was cut off by a failure of the voicemail system" in body
    await service.stop_accepting()


async def test_smtp_failure_is_retried_and_mail_sent_once(world, smtp) -> None:
    box, port = smtp(fail_first=2)
    failures: list[NotificationFailed] = []

    async def on_failed(event: NotificationFailed) -> None:
        failures.append(event)

    await world["bus"].subscribe(NotificationFailed, on_failed, durable="t-failed")
    service = await start_notifier(world, port)
    await world["bus"].publish(world["event"])
    await wait_for(lambda: box.mails, limit=20)  # retries after 1 s and 5 s
    assert box.attempts == 3 and len(box.mails) == 1
    await wait_for(lambda: len(failures) == 2)
    assert [f.attempt for f in failures] == [1, 2] and all(f.will_retry for f in failures)
    # A redelivered event (lost ack) and a second publish of the same message: no second mail.
    # (If the consumer's last attempt is still between SMTP and its bookkeeping, the direct
    # call finds the claim busy and would be redelivered: no mail either way.)
    with contextlib.suppress(NotificationInProgress):
        await service.handle(world["event"])
    await world["bus"].publish(world["event"].model_copy(update={"id": uuid.uuid4()}))
    await asyncio.sleep(1.0)
    assert len(box.mails) == 1
    await service.stop_accepting()


async def test_email_off_with_e_flag(world, smtp) -> None:
    box, port = smtp()
    service = await start_notifier(world, port, send_email=False)
    await world["bus"].publish(world["event"])
    await asyncio.sleep(1.0)
    assert box.mails == [] and box.attempts == 0
    await service.stop_accepting()


def test_e_flag_parses_to_send_email_false() -> None:
    from sipum.config import load_settings
    from sipum_notifier.settings import add_arguments, apply_arguments

    settings = load_settings(
        NotifierSettings,
        ["-e"],
        prog="sipum-notifier",
        description="t",
        add_arguments=add_arguments,
        apply_arguments=apply_arguments,
    )
    assert settings.send_email is False
    assert load_settings(
        NotifierSettings,
        [],
        prog="sipum-notifier",
        description="t",
        add_arguments=add_arguments,
        apply_arguments=apply_arguments,
    ).send_email


def test_bad_template_is_a_config_error(tmp_path: Path) -> None:
    from sipum.errors import ConfigError
    from sipum_notifier.mail import load_template

    bad = tmp_path / "email.tmp"
    bad.write_text("Subject: {{ caller\n")
    with pytest.raises(ConfigError, match="email_template"):
        load_template(str(bad))
    with pytest.raises(ConfigError, match="cannot read"):
        load_template(str(tmp_path / "missing.tmp"))


async def test_concurrent_deliveries_send_one_mail(world, smtp) -> None:
    box, port = smtp()
    service = await start_notifier(world, port, send_email=False)  # consumer idle: drive handle
    service.settings.send_email = True
    gate = asyncio.Event()
    real_send = service.send

    async def slow_send(mail: object) -> None:
        await gate.wait()
        await real_send(mail)

    service.send = slow_send  # type: ignore[method-assign]
    first = asyncio.create_task(service.handle(world["event"]))
    await asyncio.sleep(0.3)
    with pytest.raises(NotificationInProgress):  # the second delivery backs off
        await service.handle(world["event"])
    gate.set()
    await first
    await service.handle(world["event"])  # afterwards: already sent, acked silently
    assert len(box.mails) == 1
    await service.stop_accepting()


async def test_stale_claim_of_a_crashed_sender_is_taken_over(world) -> None:
    from sipum.db import notifications as n

    pool, mid = world["pool"], world["message"].id
    assert await n.claim(pool, mid, "email", "a@x", stale_after=60) is n.Claim.GRANTED
    assert await n.claim(pool, mid, "email", "a@x", stale_after=60) is n.Claim.BUSY
    await pool.execute("UPDATE notifications SET claimed_at = now() - interval '2 minutes'")
    assert await n.claim(pool, mid, "email", "a@x", stale_after=60) is n.Claim.GRANTED
    await n.mark_sent(pool, mid, "email")
    assert await n.claim(pool, mid, "email", "a@x", stale_after=0) is n.Claim.SENT
    await n.release(pool, mid, "email")  # releases only unsent claims
    assert await n.already_sent(pool, mid, "email")


async def test_mail_of_an_urgent_message_says_so_and_is_flagged(world, smtp) -> None:
    box, port = smtp()
    message = world["message"]
    await world["pool"].execute("UPDATE messages SET urgent = true WHERE id = $1", message.id)
    service = await start_notifier(world, port)
    await world["bus"].publish(world["event"].model_copy(update={"urgent": True}))
    await wait_for(lambda: box.mails)
    [mail] = box.mails
    assert mail["Subject"].startswith("Urgent voicemail from")
    assert mail["Importance"] == "high" and mail["X-Priority"] == "1"
    [text] = [p for p in mail.walk() if p.get_content_type() == "text/plain"]
    assert "The caller marked it urgent." in text.get_payload(decode=True).decode()
    await service.stop_accepting()
