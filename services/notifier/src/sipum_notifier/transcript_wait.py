"""The e-mail waits briefly for the transcript: ``TranscriptWaiter``.

The transcriber and the notifier both consume ``message.created``, each through its own
durable consumer, so the transcript of a message usually lands a few seconds after the
notifier started on its e-mail. To put the text into the mail, the notifier waits up to
``transcript_wait`` seconds for it — without holding a database connection meanwhile:

1. register a waiter for the message id (a future), *then*
2. read ``transcripts`` once (the transcript may already be there: a redelivered event, or a
   transcriber faster than the notifier); found → done;
3. await the future, which the one core NATS subscription of the replica on
   ``<prefix>.evt.message.transcribed`` resolves when that message's event passes by (core
   NATS sees every JetStream publish on the subject; nothing is acked or stored for us);
4. read ``transcripts`` again — after the event, or after the time ran out (a last look: an
   event missed during a NATS reconnect costs nothing but the wait).

Registering before the first read closes the race of an event arriving between the read and
the subscription. The wait never raises for a missing transcript: None means "send without".
The event carries no text (events.md): the text is read from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError
from sipum.db import transcripts
from sipum.db.pool import Executor
from sipum.events import EventBus
from sipum.events.models import MessageTranscribed
from sipum.events.subjects import MESSAGE_TRANSCRIBED

log = logging.getLogger("sipum.misc.notifier")

#: At most this many e-mails of one replica wait at once; more wait for the DB only.
MAX_WAITERS = 10_000


class TranscriptWaiter:
    """One replica's watcher of ``message.transcribed``, shared by all its e-mails."""

    def __init__(self, bus: EventBus, db: Executor) -> None:
        self.bus = bus
        self.db = db
        self._waiters: defaultdict[int, set[asyncio.Future[None]]] = defaultdict(set)
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        subject = self.bus.subjects.event(MESSAGE_TRANSCRIBED)
        self._subscription = await self.bus.nc.subscribe(subject, cb=self._on_message)

    async def close(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.set_result(None)  # stop waiting: they read the table once more

    @property
    def waiting(self) -> int:
        """E-mails waiting now (for tests and the log)."""
        return sum(len(f) for f in self._waiters.values())

    async def _on_message(self, msg: Msg) -> None:
        try:
            event = MessageTranscribed.model_validate_json(msg.data)
        except ValidationError:
            return  # not ours to judge: the transcriber's consumers validate it
        for future in self._waiters.get(event.message_id, ()):
            if not future.done():
                future.set_result(None)

    async def wait(self, message_id: int, timeout: float) -> transcripts.Transcript | None:  # noqa: ASYNC109 - the wait is the point
        """The transcript of ``message_id`` if it is stored within ``timeout`` seconds (0: only
        if it is stored now), else None."""
        if timeout <= 0 or self._subscription is None or self.waiting >= MAX_WAITERS:
            return await transcripts.get(self.db, message_id)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[message_id].add(future)
        try:
            found = await transcripts.get(self.db, message_id)
            if found is not None:
                return found
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, timeout)
        finally:
            futures = self._waiters.get(message_id)
            if futures is not None:
                futures.discard(future)
                if not futures:
                    del self._waiters[message_id]
        return await transcripts.get(self.db, message_id)
