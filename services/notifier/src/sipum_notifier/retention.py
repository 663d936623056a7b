"""Delete after e-mail (the old voicemail ``delete`` option): the expiry and its sweeper.

**The expiry.** When a user's effective ``delete_after_email`` is true and the notification
mail *carried the recording* (attachments on and under the size cap), the e-mail path sets the
message's ``expires_at`` to the mail's time + ``delete_after_email_retention`` right after the
transport accepted the mail (:func:`expiry_for`, ``messages.set_expiry``). A mail that failed,
was not sent (no address, ``-e``) or went without the audio sets nothing: the message stays —
deleting it would lose the caller's message.

**The sweeper** (:class:`RetentionSweeper`) runs in every notifier replica: every
``retention_sweep_interval`` it deletes the messages whose ``expires_at`` has passed, in one
statement per batch with ``FOR UPDATE SKIP LOCKED`` (``messages.delete_expired``), so replicas
never take the same row and each expired message is deleted and announced once. For each: the
row goes (its transcript by cascade), then the audio and its waveform peaks, then
``message.deleted`` (``reason: expired``, the event id derived from the message id).

The notifier owns it because it is the service that decides the expiry (after the mail), it
already has the database, the blob store and the bus, and it is a background worker: the
web-api scales with HTTP clients and should not run batch deletions, and the media-recorder is
on the call path.

What a crash loses: during the statement — nothing (it is one transaction; the rows are
deleted by the next sweep); after the commit, before the blobs are deleted — the audio stays as
an unreferenced blob (nothing serves it: every read goes through a row; deleting the mailbox
sweeps its prefix); before ``message.deleted`` is published — the event (the registrar-agent's
MWI count corrects itself with the mailbox's next event; open inbox tabs see it gone on their
next reload; webhooks do not get it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter
from sipum.blobstore import peaks_key
from sipum.db import messages, users
from sipum.events import MessageDeleted, stable_event_id
from sipum.runtime import ServiceContext

from sipum_notifier.settings import NotifierSettings

log = logging.getLogger("sipum.misc.notifier.retention")

EXPIRED = Counter(
    "sipum_messages_expired_total",
    "Messages deleted by the retention sweeper (delete after e-mail)",
)


def expiry_for(
    effective: users.EffectiveSettings | None,
    *,
    audio_attached: bool,
    mailed_at: datetime,
    retention: float,
) -> datetime | None:
    """When a message whose mail was just accepted is to be deleted, or None to keep it."""
    if effective is None or not effective.delete_after_email or not audio_attached:
        return None
    return mailed_at + timedelta(seconds=retention)


class RetentionSweeper:
    def __init__(self, settings: NotifierSettings, ctx: ServiceContext) -> None:
        self.settings = settings
        self.ctx = ctx
        self.task: asyncio.Task[None] | None = None
        self.stopping = asyncio.Event()

    async def start(self) -> None:
        self.task = asyncio.create_task(self.loop(), name="retention-sweeper")

    async def stop(self, grace: float = 10.0) -> None:
        """Let a sweep in progress finish its batch (its rows are deleted: their blobs and
        events must follow), at most ``grace`` seconds; then stop."""
        self.stopping.set()
        if self.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.task), grace)
            except TimeoutError:
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.task
            self.task = None

    async def loop(self) -> None:
        while not self.stopping.is_set():
            try:
                await self.sweep(datetime.now(UTC))
            except Exception:
                log.exception("retention sweep failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.settings.retention_sweep_interval)

    async def sweep(self, now: datetime) -> int:
        """Delete every message expired at ``now``; returns how many this replica deleted."""
        total = 0
        batch = self.settings.retention_sweep_batch
        while True:
            gone = await messages.delete_expired(self.ctx.pool, now, limit=batch)
            for message in gone:
                try:
                    await self._finish(message)
                except Exception:  # the bus: the event is lost, the next message goes on
                    log.exception("could not announce expired message %d", message.id)
            total += len(gone)
            if len(gone) < batch or self.stopping.is_set():
                return total

    async def _finish(self, message: messages.ExpiredMessage) -> None:
        """The row is gone: remove its audio and peaks, then announce it."""
        ids = {"message_id": message.id, "mailbox": f"{message.username}@{message.domain}"}
        for key in (message.blob_key, peaks_key(message.blob_key)):
            try:
                await self.ctx.blobs.delete(key)
            except Exception:
                log.exception("could not delete blob %s of an expired message", key, extra=ids)
        EXPIRED.inc()
        await self.ctx.bus.publish(
            MessageDeleted(
                id=stable_event_id("message.deleted", message.id),
                username=message.username,
                domain=message.domain,
                message_id=message.id,
                blob_key=message.blob_key,
                reason="expired",
            )
        )
        log.info("deleted after e-mail (retention over)", extra=ids)
