"""The notifier: e-mails a user when a message arrives, and runs the notify command.

A JetStream durable consumer (``notifier``, shared by every replica) receives
``sipum.evt.message.created``. For each event: claim the notification (table
``notifications``; already sent → ack, being sent by another delivery → retry later, so neither
a redelivery after a lost ack nor two replicas ever mail twice), compose the mail from the
template with signed playback links, attach the WAV when the user's effective setting says so,
hand it to the SMTP server, record it, publish ``sipum.evt.notification.sent``, and only then
ack. When the SMTP server fails, ``sipum.evt.notification.failed`` is published and the handler
raises, so the event is redelivered with backoff (1 s, 5 s, 15 s, 60 s, … up to 10 attempts).
``-e`` turns e-mail off: events are still consumed and acked. The mail leaves by SMTP or by
a local sendmail (``-m``, ``sipum_notifier.transport``).

With a notify command (``-k``), a second durable consumer (``notifier-command``) runs it for
every new message, claimed under the channel ``command`` in the same table: a failing or slow
command is retried on its own schedule and never delays or repeats the e-mail, and vice versa.
That consumer starts with the events that arrive after it is first created: turning ``-k`` on
does not run the command for every message already in the stream.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, tzinfo
from email.message import EmailMessage
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sipum.db import messages, notifications, users
from sipum.events import MessageCreated, NotificationFailed, NotificationSent, current_delivery
from sipum.events.models import Channel
from sipum.runtime import ServiceContext
from sipum.security.tokens import sign_play_link

from sipum_notifier.audio import Attachment, AudioFormatError, attachment
from sipum_notifier.command import run_notify_command
from sipum_notifier.errors import ChannelFailure
from sipum_notifier.lockout import LockoutMailer
from sipum_notifier.mail import MailContent, compose, load_template
from sipum_notifier.retention import RetentionSweeper, expiry_for
from sipum_notifier.settings import NotifierSettings
from sipum_notifier.transcript_wait import TranscriptWaiter
from sipum_notifier.transport import MailTransport, MailTransportError, mail_transport
from sipum_notifier.webhooks.dispatcher import WebhookDispatcher

log = logging.getLogger("sipum.misc.notifier")
CONSUMER = "notifier"
COMMAND_CONSUMER = "notifier-command"
MAX_DELIVER = 10


class NotificationInProgress(Exception):
    """Another delivery of the same event holds the claim (the event will be redelivered)."""


class SmtpFailure(ChannelFailure):
    """The mail transport (SMTP server or sendmail) did not take the mail (the event will be
    redelivered)."""


class NotifierService:
    name = "notifier"

    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings
        self.template = load_template(settings.email_template)
        self.transport: MailTransport = mail_transport(settings)
        self.ctx: ServiceContext | None = None
        self.subscription: object = None
        self.command_subscription: object = None
        self.webhooks: WebhookDispatcher | None = None
        self.sweeper: RetentionSweeper | None = None
        self.transcripts: TranscriptWaiter | None = None
        self.lockout = LockoutMailer(settings, lambda mail: self.send(mail))

    async def start(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        if self.settings.send_email:
            self.transcripts = TranscriptWaiter(ctx.bus, ctx.pool)
            await self.transcripts.start()
        self.subscription = await ctx.bus.subscribe(
            MessageCreated,
            self.handle,
            durable=CONSUMER,
            max_deliver=MAX_DELIVER,
            concurrency=self.settings.email_concurrency,
        )
        if not self.settings.send_email:
            log.info("e-mail is off (-e): events are consumed without mail")
        if self.settings.notify_command:
            self.command_subscription = await ctx.bus.subscribe(
                MessageCreated,
                self.handle_command,
                durable=COMMAND_CONSUMER,
                start="new",
                max_deliver=MAX_DELIVER,
                ack_wait=max(30.0, 2 * self.settings.notify_timeout),
            )
        if self.settings.webhooks:
            self.webhooks = WebhookDispatcher(self.settings, ctx)
            await self.webhooks.start()
        self.sweeper = RetentionSweeper(self.settings, ctx)  # delete after e-mail
        await self.sweeper.start()
        await self.lockout.start(ctx)  # mailbox.locked → the owner (sipum_notifier.lockout)

    async def stop_accepting(self) -> None:
        for subscription in (self.subscription, self.command_subscription):
            if subscription is not None:
                await subscription.stop()  # type: ignore[attr-defined]
        await self.lockout.stop_accepting()
        if self.webhooks is not None:
            await self.webhooks.stop_accepting()
        if self.sweeper is not None:
            await self.sweeper.stop()

    async def drain(self) -> None:
        """The event bus lets handlers in flight finish when it closes; webhook requests in
        flight finish within their time limit."""
        if self.webhooks is not None:
            await self.webhooks.drain()
        if self.transcripts is not None:
            await self.transcripts.close()

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
        pool = self.ctx.pool
        user = await users.get_by_address(pool, event.username, event.domain)
        if user is None or not user.email:
            log.info("no e-mail address; nothing to send", extra={"message_id": event.message_id})
            return
        message = await messages.get(pool, event.message_id)
        if message is None or message.owner_id != user.id:
            return  # deleted before we got to it
        effective = await users.effective_settings(pool, user.id)
        if effective is not None and not effective.email_notifications:
            log.info("e-mail notifications off", extra={"message_id": event.message_id})
            return
        await self._deliver_claimed(
            event,
            message.id,
            channel="email",
            recipient=user.email,
            stale_after=2 * self.settings.smtp_timeout + self.settings.transcript_wait,
            act=lambda: self._send_claimed(event, user, message),
        )

    async def _deliver_claimed(
        self,
        event: MessageCreated,
        message_id: int,
        *,
        channel: Channel,
        recipient: str,
        stale_after: float,
        act: Callable[[], Awaitable[object]],
    ) -> None:
        """Deliver one notification at most once per channel: claim it, act, record it as sent,
        publish ``notification.sent``; a failure of the channel publishes ``notification.failed``
        and raises, releasing the claim, so the event is redelivered with backoff."""
        assert self.ctx is not None
        pool, bus = self.ctx.pool, self.ctx.bus
        claim = await notifications.claim(
            pool, message_id, channel, recipient, stale_after=stale_after
        )
        if claim is notifications.Claim.SENT:
            log.info(
                "already delivered; acking the redelivery",
                extra={"message_id": message_id, "channel": channel},
            )
            return
        if claim is notifications.Claim.BUSY:
            # Another delivery of this event is doing it now: come back later (redelivery
            # with backoff) rather than ack — if that one dies, its claim goes stale.
            raise NotificationInProgress(f"message {message_id}: {channel} in progress elsewhere")
        try:
            outcome = await act()
        except ChannelFailure as exc:
            await notifications.release(pool, message_id, channel)
            delivery = current_delivery()
            attempt = delivery.num_delivered if delivery else 1
            await bus.publish(
                NotificationFailed(
                    username=event.username,
                    domain=event.domain,
                    message_id=message_id,
                    channel=channel,
                    recipient=recipient,
                    error=str(exc)[:300],
                    attempt=attempt,
                    will_retry=attempt < MAX_DELIVER,
                )
            )
            log.warning(
                "delivery failed; the event will be redelivered",
                extra={
                    "message_id": message_id,
                    "channel": channel,
                    "attempt": attempt,
                    "error": str(exc)[:200],
                },
            )
            raise
        except BaseException:
            await notifications.release(pool, message_id, channel)
            raise
        await notifications.mark_sent(pool, message_id, channel)
        await bus.publish(
            NotificationSent(
                username=event.username,
                domain=event.domain,
                message_id=message_id,
                channel=channel,
                recipient=recipient,
            )
        )
        log.info(
            "delivered",
            extra={"message_id": message_id, "channel": channel, "output": str(outcome)[-100:]},
        )

    async def _send_claimed(
        self, event: MessageCreated, user: users.User, message: messages.Message
    ) -> None:
        assert self.ctx is not None and user.email is not None
        pool = self.ctx.pool
        effective = await users.effective_settings(pool, user.id)
        transcript = await self._transcript(message.id, effective)  # waits; before the audio
        audio: Attachment | None = None
        too_large = False
        if effective is not None and effective.email_attaches_audio:
            stored = await self.ctx.blobs.get(message.blob_key)
            try:
                audio = attachment(stored, effective.email_audio_format)
            except AudioFormatError as exc:
                log.warning("attaching the WAV as it is: %s", exc, extra={"message_id": message.id})
                audio = attachment(stored, "wav")
            if len(audio.data) > self.settings.attachment_max_bytes:
                audio, too_large = None, True
        # Delete after e-mail: only when this mail carries the recording (else it would be lost).
        deleted_at = expiry_for(
            effective,
            audio_attached=audio is not None,
            mailed_at=datetime.now(UTC),
            retention=self.settings.delete_after_email_retention,
        )
        web, rtsp, sip, expires = self.links(user, message.id)
        zone = local_zone(effective.time_zone if effective is not None else "UTC")
        caller = event.caller_display or message.caller_display_name
        caller = f"{caller} <{message.caller_uri}>" if caller else message.caller_uri
        mail = compose(
            self.template,
            MailContent(
                username=user.username,
                domain=user.domain,
                display_name=user.display_name,
                caller=caller,
                received=message.received_at.astimezone(zone),
                duration_s=message.duration_ms / 1000,
                web_url=web,
                rtsp_url=rtsp,
                sip_uri=sip,
                links_expire=expires.astimezone(zone),
                message_id=message.id,
                transcript=transcript,
                interrupted=message.interrupted,
                urgent=message.urgent,
            ),
            # The domain's sender (setting mail_from), else the notifier's.
            sender=(effective.mail_from if effective else None) or self.settings.mail_from,
            recipient=user.email,
            attachment=audio,
            attachment_too_large=too_large,
            deleted_at=deleted_at,
        )
        try:
            await self.send(mail)
        except MailTransportError as exc:
            raise SmtpFailure(str(exc)) from exc
        if deleted_at is not None:  # the mail with the audio is out: keep it until then only
            await messages.set_expiry(pool, message.id, deleted_at)

    async def _transcript(
        self, message_id: int, effective: users.EffectiveSettings | None
    ) -> str | None:
        """The transcript's text for the mail, waited for up to ``transcript_wait``; None when
        transcription is off for the user, or nothing arrived in time."""
        if self.transcripts is None or effective is None or not effective.transcription_enabled:
            return None
        found = await self.transcripts.wait(message_id, self.settings.transcript_wait)
        log.info(
            "transcript included" if found is not None else "no transcript in time",
            extra={"message_id": message_id},
        )
        return None if found is None else found.text

    async def send(self, mail: EmailMessage) -> None:
        await self.transport.send(mail)

    # -- the notify command ---------------------------------------------------------------

    async def handle_command(self, event: MessageCreated) -> None:
        """Run the notify command once for ``event`` (claimed like the e-mail)."""
        assert self.ctx is not None and self.settings.notify_command is not None
        path = self.settings.notify_command
        message = await messages.get(self.ctx.pool, event.message_id)
        if message is None:
            return  # deleted before we got to it
        effective = await users.effective_settings(self.ctx.pool, message.owner_id)
        if effective is not None and not effective.command_notifications:
            log.info("command notifications off", extra={"message_id": event.message_id})
            return
        await self._deliver_claimed(
            event,
            message.id,
            channel="command",
            recipient=path,
            stale_after=2 * self.settings.notify_timeout,
            act=lambda: run_notify_command(
                path,
                event,
                time_limit=self.settings.notify_timeout,
                output_limit=self.settings.notify_output_limit,
            ),
        )


def local_zone(name: str) -> tzinfo:
    """The time zone of a user's notifications (setting ``time_zone``); UTC if it is unknown
    here (a zone removed from this machine's tz database since it was chosen)."""
    try:
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        log.warning("unknown time zone %r; using UTC", name)
        return UTC
