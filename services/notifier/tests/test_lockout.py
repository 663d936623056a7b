"""``mailbox.locked`` → a notice mailed to the owner (real aiosmtpd, JetStream, PostgreSQL),
retried when the SMTP server fails, nothing without an address; and delivered to a webhook that
subscribed to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sipum.db import users, webhooks
from sipum.events import MailboxLocked

from .test_notifier import start_notifier, wait_for
from .test_webhooks import FAST, receivers  # noqa: F401 - pytest fixture by name


def locked_event(**changes: object) -> MailboxLocked:
    values: dict[str, object] = {
        "username": "alice",
        "domain": "example.com",
        "failures": 5,
        "lockouts": 2,
        "locked_until": datetime.now(UTC) + timedelta(minutes=10),
        "lock_seconds": 600.0,
        "caller_uri": "sip:mallory@evil.test\r\nBcc: x@evil.test",
        "call_id": "c1",
        "recorder_id": "r1",
    }
    values.update(changes)
    return MailboxLocked(**values)  # type: ignore[arg-type]


async def test_lock_notice_is_mailed_to_the_owner_after_a_smtp_failure(world, smtp) -> None:
    box, port = smtp(fail_first=1)
    service = await start_notifier(world, port)
    event = locked_event()
    await world["bus"].publish(event)
    await wait_for(lambda: box.mails, limit=15)
    [mail] = box.mails
    assert mail["To"] == "alice@mail.test"
    assert mail["Subject"] == "Phone access to your mailbox alice@example.com is locked"
    assert mail["Message-ID"] == f"<sipum.locked.{event.id}@example.com>"
    assert mail["Bcc"] is None  # the caller URI's CR LF did not make a header
    body = mail.get_payload(decode=True).decode()
    assert "Hello Alice" in body and "after 5 wrong PINs" in body
    assert "sip:mallory@evil.test" in body and "10 min" in body and "lock number 2" in body
    assert "http://web.test:8000" in body
    assert box.attempts == 2
    await service.stop_accepting()


async def test_no_address_or_no_user_no_mail(world, smtp) -> None:
    box, port = smtp()
    await users.update(world["pool"], world["alice"].id, email=None)
    await users.create(world["pool"], "bob", "example.com", "bob-password-1", email="bob@mail.test")
    service = await start_notifier(world, port)
    await world["bus"].publish(locked_event())
    await world["bus"].publish(locked_event(username="nobody"))
    await world["bus"].publish(locked_event(username="bob"))  # handled after the two above
    await wait_for(lambda: box.mails)
    assert [m["To"] for m in box.mails] == ["bob@mail.test"]
    await service.stop_accepting()


async def test_mailbox_locked_reaches_a_webhook_that_wants_it(world, receivers) -> None:  # noqa: F811
    receiver = receivers("s" * 20).start()
    await webhooks.create(
        world["pool"],
        webhooks.Owner.user(world["alice"].id),
        url=receiver.url,
        events=["mailbox.locked"],
        secret=receiver.secret,
    )
    service = await start_notifier(world, 9, **FAST)
    event = locked_event()
    await world["bus"].publish(world["event"])  # message.created: not subscribed
    await world["bus"].publish(event)
    await wait_for(lambda: receiver.got)
    [got] = receiver.got
    assert got["event"] == "mailbox.locked" and got["key"] == str(event.id)
    assert got["body"]["data"]["failures"] == 5 and receiver.bad_signatures == 0
    await service.stop_accepting()
    await service.drain()
