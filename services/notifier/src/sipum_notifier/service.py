"""The notifier: e-mails a user when a message arrives.

A JetStream durable consumer (``notifier``, shared by every replica) receives
``sipum.evt.message.created``. For each event: claim the notification (table
``notifications``; already sent → ack, being sent by another delivery → retry later, so neither
a redelivery after a lost ack nor two replicas ever mail twice), compose the mail from the
template with signed playback links, attach the WAV when the user's effective setting says so,
hand it to the SMTP server, record it, publish ``sipum.evt.notification.sent``, and only then
ack. When the SMTP server fails, ``sipum.evt.notification.failed`` is published and the handler
raises, so the event is redelivered with backoff (1 s, 5 s, 15 s, 60 s, … up to 10 attempts).
``-e`` turns e-mail off: events are still consumed and acked.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import aiosmtplib
from sipum.db import messages, notifications, users
from sipum.events import MessageCreated, NotificationFailed, NotificationSent, current_delivery
from sipum.runtime import ServiceContext
from sipum.security.tokens import sign_play_link

from sipum_notifier.mail import MailContent, compose, load_template
from sipum_notifier.settings import NotifierSettings

log = logging.getLogger("sipum.misc.notifier")
CONSUMER = "notifier"
MAX_DELIVER = 10


class NotificationInProgress(Exception):
    """Another delivery of the same event holds the claim (the event will be redelivered)."""


class SmtpFailure(Exception):
    """The SMTP server did not accept the mail (the event will be redelivered)."""


class NotifierService:
    name = "notifier"

    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings
        self.template = load_template(settings.email_template)
        self.ctx: ServiceContext | None = None
        self.subscription: object = None

    async def start(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.subscription = await ctx.bus.subscribe(
            MessageCreated, self.handle, durable=CONSUMER, max_deliver=MAX_DELIVER
        )
        if not self.settings.send_email:
            log.info("e-mail is off (-e): events are consumed without mail")

    async def stop_accepting(self) -> None:
        if self.subscription is not None:
            await self.subscription.stop()  # type: ignore[attr-defined]

    async def drain(self) -> None:
        """The event bus lets handlers in flight finish when it closes."""

    # -- one event ------------------------------------------------------------------------

    def links(self, user: users.User, message_id: int) -> tuple[str, str, str, datetime]:
        s = self.settings
        expires = datetime.now(UTC) + timedelta(seconds=s.link_ttl_seconds)
        token = sign_play_link(
            s.secret_key.get_secret_value(), user.id, message_id, ttl=s.link_ttl_seconds
        )
        web = f"{s.public_url.rstrip('/')}/api/v1/messages/{message_id}/audio?token={token}"
        rtsp = f"{s.rtsp_url.rstrip('/')}/{user.username}/inbox/{message_id}.wav?token={token}"
        sip = f"sip:{user.username}-{message_id}-retrieve@{s.sip_retrieve_host or user.domain}"
        return web, rtsp, sip, expires

    async def handle(self, event: MessageCreated) -> None:
        assert self.ctx is not None
        if not self.settings.send_email:
            return
        pool, bus = self.ctx.pool, self.ctx.bus
        user = await users.get_by_address(pool, event.username, event.domain)
        if user is None or not user.email:
            log.info("no e-mail address; nothing to send", extra={"message_id": event.message_id})
            return
        message = await messages.get(pool, event.message_id)
        if message is None or message.owner_id != user.id:
            return  # deleted before we got to it
        claim = await notifications.claim(
            pool, message.id, "email", user.email, stale_after=2 * self.settings.smtp_timeout
        )
        if claim is notifications.Claim.SENT:
            log.info("mail already sent; acking the redelivery", extra={"message_id": message.id})
            return
        if claim is notifications.Claim.BUSY:
            # Another delivery of this event is sending it now: come back later (redelivery
            # with backoff) rather than ack — if that sender dies, its claim goes stale.
            raise NotificationInProgress(f"message {message.id} is being mailed elsewhere")
        try:
            await self._send_claimed(event, user, message)
        except BaseException:
            await notifications.release(pool, message.id, "email")
            raise
        await notifications.mark_sent(pool, message.id, "email")
        await bus.publish(
            NotificationSent(
                username=user.username,
                domain=user.domain,
                message_id=message.id,
                channel="email",
                recipient=user.email,
            )
        )
        log.info("mail sent", extra={"message_id": message.id})

    async def _send_claimed(
        self, event: MessageCreated, user: users.User, message: messages.Message
    ) -> None:
        assert self.ctx is not None and user.email is not None
        pool, bus = self.ctx.pool, self.ctx.bus
        effective = await users.effective_settings(pool, user.id)
        attachment = None
        if effective is not None and effective.email_attaches_audio:
            attachment = await self.ctx.blobs.get(message.blob_key)
        web, rtsp, sip, expires = self.links(user, message.id)
        caller = event.caller_display or message.caller_display_name
        caller = f"{caller} <{message.caller_uri}>" if caller else message.caller_uri
        mail = compose(
            self.template,
            MailContent(
                username=user.username,
                domain=user.domain,
                display_name=user.display_name,
                caller=caller,
                received=message.received_at,
                duration_s=message.duration_ms / 1000,
                web_url=web,
                rtsp_url=rtsp,
                sip_uri=sip,
                links_expire=expires,
                message_id=message.id,
            ),
            sender=self.settings.mail_from,
            recipient=user.email,
            attachment=attachment,
        )
        try:
            await self.send(mail)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            delivery = current_delivery()
            attempt = delivery.num_delivered if delivery else 1
            await bus.publish(
                NotificationFailed(
                    username=user.username,
                    domain=user.domain,
                    message_id=message.id,
                    channel="email",
                    recipient=user.email,
                    error=str(exc)[:300],
                    attempt=attempt,
                    will_retry=attempt < MAX_DELIVER,
                )
            )
            log.warning(
                "SMTP failed; the event will be redelivered",
                extra={"message_id": message.id, "attempt": attempt, "error": str(exc)[:200]},
            )
            raise SmtpFailure(str(exc)) from exc

    async def send(self, mail: object) -> None:
        s = self.settings
        await aiosmtplib.send(
            mail,  # type: ignore[arg-type]
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            start_tls=s.smtp_starttls,
            timeout=s.smtp_timeout,
        )
