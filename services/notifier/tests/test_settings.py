"""The settings model in the notifier, with a real SMTP server, NATS and PostgreSQL: the
domain's sender, the user's time zone and the notification channels the user turned off."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

from sipum.db import domains, users
from sipum.events import NotificationSent

from .test_channels import collector, script
from .test_notifier import start_notifier, wait_for


async def test_domain_sender_and_user_time_zone(world, smtp) -> None:
    box, port = smtp()
    alice = world["alice"]
    await domains.update(world["pool"], alice.domain_id, mail_from="Voicemail <vm@example.com>")
    await users.update(world["pool"], alice.id, time_zone="Asia/Tokyo")
    service = await start_notifier(world, port, mail_from="sipum <default@site.test>")
    await world["bus"].publish(world["event"])
    await wait_for(lambda: box.mails)
    [mail] = box.mails
    assert mail["From"] == "Voicemail <vm@example.com>"
    body = next(p for p in mail.walk() if p.get_content_type() == "text/plain")
    text = body.get_payload(decode=True).decode()
    received = world["message"].received_at
    local = received.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M JST")
    assert local in text
    await service.stop_accepting()

    # Without a sender of the domain's own: the notifier's.
    await domains.update(world["pool"], alice.domain_id, mail_from=None)
    await world["pool"].execute("DELETE FROM notifications")
    box.mails.clear()
    service = await start_notifier(world, port, mail_from="sipum <default@site.test>")
    await world["bus"].publish(world["event"].model_copy(update={"id": uuid.uuid4()}))
    await wait_for(lambda: box.mails)
    assert box.mails[0]["From"] == "sipum <default@site.test>"
    await service.stop_accepting()


async def test_channels_the_user_turned_off(world, smtp, tmp_path: Path) -> None:
    box, port = smtp()
    out = tmp_path / "ran"
    command = script(tmp_path, "notify", f"open({str(out)!r}, 'a').write('ran\\n')")
    sent: list[NotificationSent] = []
    await world["bus"].subscribe(NotificationSent, collector(sent, NotificationSent), durable="t-s")
    await users.update(world["pool"], world["alice"].id, email_notifications=False)
    service = await start_notifier(world, port, notify_command=str(command))
    await world["bus"].publish(world["event"])
    await wait_for(lambda: {s.channel for s in sent} == {"command"})
    await asyncio.sleep(1.0)
    assert box.mails == [] and out.read_text() == "ran\n"
    await service.stop_accepting()

    # The next message after the change: e-mail on, command off — no restart in between.
    await users.update(
        world["pool"], world["alice"].id, email_notifications=None, command_notifications=False
    )
    await world["pool"].execute("DELETE FROM notifications")
    service = await start_notifier(world, port, notify_command=str(command))
    await world["bus"].publish(world["event"].model_copy(update={"id": uuid.uuid4()}))
    await wait_for(lambda: box.mails)
    await asyncio.sleep(1.0)
    assert len(box.mails) == 1 and out.read_text() == "ran\n"
    await service.stop_accepting()
