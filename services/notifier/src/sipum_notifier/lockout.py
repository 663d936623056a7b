"""Telling the owner that phone access to the mailbox was locked (``mailbox.locked``).

The media-recorder publishes ``sipum.evt.mailbox.locked`` when a wrong PIN locks a mailbox's
phone access (``sipum.security.pin_lockout``). A JetStream durable consumer
(``notifier-lockout``, shared by every replica) mails the owner: how many wrong PINs, from
which caller, until when, and how to lift it (a web login or a new PIN). The mail goes through
the same transport as the voicemail mails (SMTP or sendmail); a transport failure raises, so
the event is redelivered with back-off. Delivery is at least once: a redelivery after a lost
ack may mail twice, with the same ``Message-ID`` (mail clients thread or drop it). ``-e`` (no
e-mail) consumes the events without mailing. The consumer starts with events that arrive after
it was first created: turning the notifier on does not mail about old locks.

A mail that went out is noted in the lock's row (``pin_lockouts.notified_at``): the
media-recorder's sweep publishes ``mailbox.locked`` again for a lock in force nobody was told
about (its event was lost, NATS away when the PIN locked it), and a lock already told is
skipped — one notice per lock, however often its event arrives.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from sipum.db import pin_lockouts, users
from sipum.events import MailboxLocked
from sipum.runtime import ServiceContext

from sipum_notifier.errors import ChannelFailure
from sipum_notifier.settings import NotifierSettings
from sipum_notifier.transport import MailTransportError

log = logging.getLogger("sipum.misc.notifier.lockout")
CONSUMER = "notifier-lockout"
MAX_DELIVER = 10


class LockMailFailure(ChannelFailure):
    """The mail transport did not take the lock notice (the event will be redelivered)."""


def _clean(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable()).strip()[:200]


def _duration(seconds: float) -> str:
    total = max(0, round(seconds))
    if total >= 3600 and total % 3600 == 0:
        return f"{total // 3600} h"
    if total >= 60:
        return f"{total // 60} min" if total % 60 == 0 else f"{total // 60} min {total % 60} s"
    return f"{total} s"


def compose_lock_mail(
    event: MailboxLocked, *, display_name: str, sender: str, recipient: str, public_url: str
) -> EmailMessage:
    """The notice for one lock (plain text; the caller URI came from a SIP header: cleaned)."""
    until = event.locked_until.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    caller = _clean(event.caller_uri or "") or "an unknown caller"
    greeting = f"Hello {_clean(display_name)}," if _clean(display_name) else "Hello,"
    body = (
        f"{greeting}\n\n"
        f"phone access to your mailbox {event.mailbox} has been locked after "
        f"{event.failures} wrong PINs; the last one was typed by {caller}.\n\n"
        f"It opens again at {until} (locked for {_duration(event.lock_seconds)}; "
        f"lock number {event.lockouts} in a row — each further lock lasts twice as long).\n\n"
        f"If this was you: signing in at {public_url.rstrip('/')} or setting a new PIN "
        "lifts the lock now.\n"
        "If it was not you: someone is trying to guess your PIN. Set a new one that is hard "
        "to guess (not your number, no runs like 1234 or repeats like 1111).\n"
    )
    mail = EmailMessage()
    mail["Subject"] = f"Phone access to your mailbox {event.mailbox} is locked"
    mail["From"] = sender
    mail["To"] = recipient
    mail["Date"] = format_datetime(event.ts)
    mail["Message-ID"] = f"<sipum.locked.{event.id}@{event.domain}>"
    mail["X-Sipum-Event"] = event.kind
    mail.set_content(body)
    return mail


class LockoutMailer:
    """The ``mailbox.locked`` consumer; *send* is the notifier's mail transport."""

    def __init__(
        self, settings: NotifierSettings, send: Callable[[EmailMessage], Awaitable[None]]
    ) -> None:
        self.settings = settings
        self.send = send
        self.ctx: ServiceContext | None = None
        self.subscription: object = None

    async def start(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.subscription = await ctx.bus.subscribe(
            MailboxLocked, self.handle, durable=CONSUMER, start="new", max_deliver=MAX_DELIVER
        )

    async def stop_accepting(self) -> None:
        if self.subscription is not None:
            await self.subscription.stop()  # type: ignore[attr-defined]

    async def handle(self, event: MailboxLocked) -> None:
        assert self.ctx is not None
        if not self.settings.send_email:
            return
        pool = self.ctx.pool
        user = await users.get_by_address(pool, event.username, event.domain)
        if user is None or not user.email:
            log.info("mailbox locked; no e-mail address to tell", extra={"user": event.mailbox})
            return
        if await pin_lockouts.notified(pool, user.id, event.locked_until):
            # published again by the recorder's sweep (or redelivered) after the notice went
            # out: one e-mail per lock
            log.info("lock notice sent before; skipped", extra={"user": event.mailbox})
            return
        mail = compose_lock_mail(
            event,
            display_name=user.display_name,
            sender=self.settings.mail_from,
            recipient=user.email,
            public_url=self.settings.public_url,
        )
        try:
            await self.send(mail)
        except MailTransportError as exc:
            log.warning(
                "lock notice not sent; the event will be redelivered",
                extra={"user": event.mailbox, "error": str(exc)[:200]},
            )
            raise LockMailFailure(str(exc)) from exc
        # the recorder's sweep stops publishing it again (pin_lockouts.notified_at, 0020)
        await pin_lockouts.mark_notified(pool, user.id, event.locked_until, datetime.now(UTC))
        log.info("lock notice sent", extra={"user": event.mailbox, "lockouts": event.lockouts})
