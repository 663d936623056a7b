"""The transcriber: turns every new voice message into text.

A JetStream durable consumer (``transcriber``, shared by every replica, so they form one queue
group) receives ``sipum.evt.message.created``. For each event: skip it if the message is gone,
already transcribed (a redelivery: the event is published again under its stable id, in case
the first run crashed between storing and publishing) or its owner's effective
``transcription_enabled`` is off; fetch the WAV from the blob store; hand it to an idle engine
process (``sipum_transcriber.worker``) with the time limit; store the transcript
(``sipum.db.transcripts.store``, one row per message whatever happens twice); publish
``sipum.evt.message.transcribed`` with ``stable_event_id`` and only then ack.

A failure or a time-out raises, so JetStream redelivers the event (1 s, 5 s, …) up to
``transcriber_max_attempts`` times; then the bus gives up on it. Nothing else waits on a
transcription: the notifier and the MWI consume the same event through consumers of their own.
The text is never logged — only ids, lengths and timings.
"""

from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import Counter, Histogram
from sipum.blobstore import BlobNotFoundError
from sipum.db import messages, transcripts, users
from sipum.events import MessageCreated, MessageTranscribed, current_delivery, stable_event_id
from sipum.runtime import ServiceContext

from sipum_transcriber.audio import AudioError, decode_wav
from sipum_transcriber.engines import UnsupportedLanguage
from sipum_transcriber.settings import TranscriberSettings
from sipum_transcriber.worker import EngineWorker, TranscriptionFailed, TranscriptionTimeout

log = logging.getLogger("sipum.misc.transcriber")
CONSUMER = "transcriber"
# Redelivery delays after a failure; a time-out already took the time limit.
RETRY_DELAYS = (5.0, 30.0, 120.0)

OUTCOMES = Counter(
    "sipum_transcriptions_total",
    "Messages handled by the transcriber, by outcome",
    ["outcome"],
)
ENGINE_SECONDS = Histogram(
    "sipum_transcription_engine_seconds",
    "Engine time of one transcription",
    buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 60, 120, 300),
)
LATENCY = Histogram(
    "sipum_transcription_latency_seconds",
    "From the message's arrival to its transcript stored",
    buckets=(0.5, 1, 2, 5, 10, 20, 60, 120, 600),
)


def _attempt() -> int:
    """Which delivery of the event this is (1 outside the bus: a direct call, a tool)."""
    try:
        return current_delivery().num_delivered
    except RuntimeError:
        return 1


class TranscriberService:
    name = "transcriber"

    def __init__(self, settings: TranscriberSettings) -> None:
        self.settings = settings
        self.ctx: ServiceContext | None = None
        self.workers: list[EngineWorker] = []
        self.idle: asyncio.Queue[EngineWorker] = asyncio.Queue()
        self.subscription: object = None

    async def start(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        s = self.settings
        spec = s.engine_spec()
        self.workers = [EngineWorker(spec) for _ in range(s.transcriber_concurrency)]
        try:
            await asyncio.gather(*(worker.start() for worker in self.workers))
        except BaseException:
            for worker in self.workers:
                worker.kill()
            raise
        for worker in self.workers:
            self.idle.put_nowait(worker)
        first = self.workers[0]
        log.info(
            "engine loaded",
            extra={
                "engine": first.engine_name,
                "version": first.engine_version,
                "processes": len(self.workers),
            },
        )
        self.subscription = await ctx.bus.subscribe(
            MessageCreated,
            self.handle,
            durable=CONSUMER,
            ack_wait=s.transcriber_ack_wait,
            max_deliver=s.transcriber_max_attempts,
            retry_delays=RETRY_DELAYS,
            max_ack_pending=s.transcriber_max_pending,
            concurrency=s.transcriber_concurrency,
        )

    async def stop_accepting(self) -> None:
        if self.subscription is not None:
            await self.subscription.stop()  # type: ignore[attr-defined]

    async def drain(self) -> None:
        """The job in flight finished in ``stop_accepting``; the engine processes end."""
        await asyncio.gather(*(worker.close() for worker in self.workers))

    # -- one event ------------------------------------------------------------------------

    async def handle(self, event: MessageCreated) -> None:
        assert self.ctx is not None
        pool, ids = self.ctx.pool, {"message_id": event.message_id}
        message = await messages.get(pool, event.message_id)
        if message is None:
            OUTCOMES.labels("gone").inc()
            log.info("message gone before its transcription", extra=ids)
            return
        existing = await transcripts.get(pool, message.id)
        if existing is not None:
            OUTCOMES.labels("duplicate").inc()
            log.info("already transcribed; acking the redelivery", extra=ids)
            await self.publish(event, existing)
            return
        effective = await users.effective_settings(pool, message.owner_id)
        if effective is None or not effective.transcription_enabled:
            OUTCOMES.labels("disabled").inc()
            log.info("transcription is off for this mailbox", extra=ids)
            return
        language = effective.transcription_language or self.settings.transcription_language
        try:
            pcm, rate = decode_wav(await self.ctx.blobs.get(message.blob_key))
        except BlobNotFoundError:
            OUTCOMES.labels("gone").inc()
            log.info("audio gone before its transcription", extra=ids)
            return
        except AudioError as exc:
            OUTCOMES.labels("bad_audio").inc()
            log.warning("cannot transcribe this audio: %s", exc, extra=ids)
            return
        audio_s = len(pcm) / 2 / rate
        worker = await self.idle.get()
        started = time.monotonic()
        try:
            log.info(
                "transcribing",
                extra={**ids, "audio_s": round(audio_s, 2), "language": language,
                       "attempt": _attempt(), "engine_pid": worker.pid},
            )  # fmt: skip
            result = await worker.transcribe(
                pcm, rate, language, time_limit=self.settings.transcriber_time_limit
            )
        except UnsupportedLanguage as exc:
            OUTCOMES.labels("unsupported_language").inc()
            log.warning("not transcribed: %s", exc, extra=ids)
            return
        except (TranscriptionTimeout, TranscriptionFailed) as exc:
            outcome = "timeout" if isinstance(exc, TranscriptionTimeout) else "failed"
            OUTCOMES.labels(outcome).inc()
            log.warning("transcription %s: %s", outcome, exc, extra=ids)
            raise
        finally:
            self.idle.put_nowait(worker)
        elapsed = time.monotonic() - started
        ENGINE_SECONDS.observe(elapsed)
        created = await transcripts.store(
            pool,
            message.id,
            language=result.language,
            text=result.text,
            confidence=result.confidence,
            words=[transcripts.Word(w.word, w.start, w.end, w.confidence) for w in result.words],
            engine=worker.engine_name,
            engine_version=worker.engine_version,
            elapsed_ms=round(elapsed * 1000),
        )
        stored = await transcripts.get(pool, message.id)
        if stored is None:
            OUTCOMES.labels("gone").inc()
            log.info("message deleted while it was transcribed", extra=ids)
            return
        if created:
            OUTCOMES.labels("stored").inc()
            LATENCY.observe(max(0.0, time.time() - message.received_at.timestamp()))
        log.info(
            "transcript stored",
            extra={**ids, "chars": len(stored.text), "words": len(stored.words),
                   "engine_s": round(elapsed, 2), "rtf": round(elapsed / max(audio_s, 0.01), 3)},
        )  # fmt: skip
        await self.publish(event, stored)

    async def publish(self, event: MessageCreated, stored: transcripts.Transcript) -> None:
        assert self.ctx is not None
        await self.ctx.bus.publish(
            MessageTranscribed(
                id=stable_event_id("message.transcribed", stored.message_id),
                username=event.username,
                domain=event.domain,
                message_id=stored.message_id,
                language=stored.language,
                engine=stored.engine,
                engine_version=stored.engine_version,
                chars=len(stored.text),
                words=len(stored.words),
                confidence=stored.confidence,
                elapsed_s=stored.elapsed_ms / 1000,
            )
        )
