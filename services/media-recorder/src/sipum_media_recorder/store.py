"""Storing a finished recording as a message, idempotently.

The steps, each safe to repeat (a retry after a crash at any point ends with one blob, one row
and one event):

1. the message id: the one in the manifest if an earlier attempt allocated it, else a new one
   from ``message_id_seq`` — written to the manifest *before* the blob, so a retry overwrites
   the same blob key instead of leaving an orphan;
2. the WAV under ``messages/<domain>/<user>/<id>.wav`` (a put replaces), then its waveform
   peaks next to it (``<id>.peaks.json``, for the inbox). The peaks are best effort: if they
   cannot be stored the message goes on without them (the web-api computes them when first
   asked), so they can never cost a caller's message;
3. the row, with ``idempotency_key`` = the session id (``messages.insert_idempotent``: a second
   insert for the session returns the first row). If another attempt won with another id,
   our blob is deleted;
4. ``message.created`` built from the stored row, with the event id derived from the message id
   (``stable_event_id``), so JetStream drops a re-publish within its duplicate window.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sipum.blobstore import BlobStore, message_key, peaks_key
from sipum.db import messages
from sipum.db.errors import IdempotencyConflictError
from sipum.events import EventBus, MessageCreated, stable_event_id
from sipum_protocol.media.recording import compute_peaks, wav_bytes

from sipum_media_recorder.spool import RecordingMeta

log = logging.getLogger("sipum.misc.recorder.store")


class MessageStore:
    def __init__(self, *, pool: Any, blobs: BlobStore, bus: EventBus) -> None:
        self.pool = pool
        self.blobs = blobs
        self.bus = bus

    async def store(
        self,
        meta: RecordingMeta,
        pcm: bytes,
        *,
        save_meta: Callable[[], Awaitable[None]] | None = None,
        interrupted: bool = False,
    ) -> messages.Message | None:
        """Store *pcm* (16-bit mono at ``meta.sample_rate``) as the session's message and
        publish ``message.created``. None if the message was stored before and has since been
        deleted by its owner (nothing to do). ``interrupted``: recovered from a recorder that
        died mid-call (flagged in the row and the event)."""
        pool = self.pool
        if meta.message_id is None:
            meta.message_id = await messages.allocate_id(pool)
            if save_meta is not None:
                await save_meta()
        key = message_key(meta.domain, meta.username, meta.message_id)
        wav = wav_bytes(pcm, meta.sample_rate)
        await self.blobs.put(key, wav, content_type="audio/wav")
        await self.store_peaks(key, pcm, meta.sample_rate)
        samples = len(pcm) // 2
        diverted = meta.reason == "diverted"
        try:
            message, created = await messages.insert_idempotent(
                pool,
                owner_id=meta.owner_id,
                idempotency_key=meta.session_id,
                caller_uri=meta.caller_uri,
                caller_display_name=meta.caller_display or "",
                called_uri=meta.called_uri,
                duration_ms=round(samples * 1000 / meta.sample_rate),
                codec=meta.codec,
                size_bytes=len(wav),
                blob_key=key,
                arrival=meta.reason,
                diversion_cause=meta.diversion_cause if diverted else None,
                received_at=meta.received_datetime,
                message_id=meta.message_id,
                interrupted=interrupted,
                urgent=meta.urgent,
                forwarded_from=meta.forwarded_from,
            )
        except IdempotencyConflictError:
            log.info("message of session %s was stored and deleted since", meta.session_id)
            await self.blobs.delete(key)
            await self.blobs.delete(peaks_key(key))
            return None
        if message.blob_key != key:
            await self.blobs.delete(key)
            await self.blobs.delete(peaks_key(key))
        if not created:
            log.info(
                "message of session %s already stored (id %d); publishing again",
                meta.session_id,
                message.id,
            )
        await self.publish_created(meta, message)
        return message

    async def store_peaks(self, key: str, pcm: bytes, sample_rate: int) -> None:
        """The waveform peaks next to the audio; a failure is logged, never raised."""
        try:
            # ~13 ms for 180 s at 16 kHz: off the event loop that carries other calls' RTP
            peaks = await asyncio.to_thread(compute_peaks, pcm, sample_rate)
            await self.blobs.put(peaks_key(key), peaks.to_json(), content_type="application/json")
        except Exception:
            log.warning("could not store the waveform peaks of %s", key, exc_info=True)

    async def publish_created(self, meta: RecordingMeta, message: messages.Message) -> None:
        await self.bus.publish(
            MessageCreated(
                id=stable_event_id("message.created", message.id),
                ts=message.created_at,
                username=meta.username,
                domain=meta.domain,
                message_id=message.id,
                folder=message.folder.value,
                caller_uri=message.caller_uri,
                caller_display=message.caller_display_name or None,
                called_uri=message.called_uri,
                received_at=message.received_at,
                duration_s=message.duration_ms / 1000,
                codec=message.codec,
                size=message.size_bytes,
                blob_key=message.blob_key,
                reason=message.arrival.value,
                diversion_cause=message.diversion_cause,
                call_id=meta.call_id,
                session_id=meta.session_id,
                interrupted=message.interrupted,
                urgent=message.urgent,
                forwarded_from=message.forwarded_from,
            )
        )
