"""Record mode: greeting, beep, the caller's message, stored once.

0. The mailbox's room (``limits``): if it holds ``max_messages`` messages or ``quota_bytes``
   bytes, the caller hears "The mailbox is full …" + "Goodbye", nothing is recorded and the
   session ends with ``mailbox_full``.
1. The greeting: the user's uploaded one (``greetings.for_call``: an unexpired temporary
   greeting, the busy one for a call diverted on busy, else the unavailable one) followed by
   the beep; without one, the default prompt — "The person at <recorded name | display name |
   number> is not available. Please leave a message after the tone." + beep.
2. Recording (``sipum_protocol.media.recording``) until hang-up, ``#``, ``max_silence_seconds`` of
   silence or the maximum length — the user's effective ``max_message_seconds``, lowered by the
   request's ``max_duration_s`` if given and to what the quota still holds. Chunks go to the blob store as they come
   (``spool.PartialRecording``).
3. Less than ``min_voice_seconds`` of non-silent audio: discarded, nothing stored. Otherwise
   ``store.MessageStore`` writes blob, row and event, idempotently.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Literal

from sipum.db import greetings, messages, users
from sipum_protocol.media.playback import PlaybackItem
from sipum_protocol.media.recording import RecordingSettings, StopReason

from sipum_media_recorder import metrics
from sipum_media_recorder.audio import decode_audio
from sipum_media_recorder.limits import (
    DEFAULT_MAX_MESSAGE_SECONDS,
    FullBecause,
    LengthLimit,
    full_because,
    max_recording_length,
)
from sipum_media_recorder.session import MediaSession
from sipum_media_recorder.settings import MediaRecorderSettings
from sipum_media_recorder.spool import PartialRecording, RecordingMeta

log = logging.getLogger("sipum.misc.recorder.record")

EndReason = Literal["bye", "max_length", "silence", "completed", "mailbox_full", "error"]

#: Diversion reasons (RFC 5806 ``reason=``) and RFC 4458 ``cause=`` values meaning "busy".
BUSY_CAUSES = frozenset({"user-busy", "busy", "486", "600"})

_STORE_BACKOFF_MAX = 5.0


async def greeting_items(
    session: MediaSession, effective: users.EffectiveSettings | None = None
) -> list[PlaybackItem]:
    """What to play before the beep (the beep included). The setting ``greeting_mode``
    ``system`` skips the user's uploaded greetings and recorded name: the built-in prompt."""
    svc = session.services
    # The mailbox's prompt_language picks the prompt set (phrases without a translation: the
    # default set's).
    prompts = svc.prompts.language(effective.prompt_language if effective else None)
    rate = prompts.rate_for(session.plan.codec)
    user = session.user
    busy = (session.request.diversion_cause or "").lower() in BUSY_CAUSES
    beep = await prompts.names(["beep"], rate)
    uploaded = effective is None or effective.greeting_mode != "system"
    greeting = await greetings.for_call(svc.pool, user.id, busy=busy) if uploaded else None
    if greeting is not None:
        try:
            return [decode_audio(await svc.blobs.get(greeting.blob_key)), *beep]
        except Exception:
            log.exception("cannot play greeting %s; using the default prompt", greeting.blob_key)
    name_greeting = await greetings.get(svc.pool, user.id, "name") if uploaded else None
    if name_greeting is not None:
        try:
            name = decode_audio(await svc.blobs.get(name_greeting.blob_key))
            head = await prompts.names(["person-at"], rate)
            tail = await prompts.names(["is-not-available", "leave-message", "beep"], rate)
            return [*head, name, *tail]
        except Exception:
            log.exception("cannot play recorded name %s", name_greeting.blob_key)
    if user.display_name.strip():
        return list(await prompts.sequence("unavailable", rate, name=user.display_name))
    return list(await prompts.sequence("unavailable", rate, number=user.username))


async def mailbox_limits(
    session: MediaSession, effective: users.EffectiveSettings | None
) -> tuple[FullBecause | None, LengthLimit]:
    """Whether the mailbox is full, and the maximum length of a message recorded now."""
    svc = session.services
    user_id = session.user.id
    usage = await messages.usage(svc.pool, user_id)
    limit = max_recording_length(
        max_message_seconds=(
            effective.max_message_seconds if effective is not None else DEFAULT_MAX_MESSAGE_SECONDS
        ),
        usage=usage,
        sample_rate=session.plan.codec.sample_rate,
        request_max_seconds=session.request.max_duration_s,
        min_seconds=svc.settings.quota_min_message_seconds,
    )
    because = None if usage is None else full_because(usage)
    if because is not None or limit.by_quota:
        assert usage is not None
        extra: dict[str, object] = {
            "session": session.session_id,
            "mailbox": session.user.address,
            "messages": usage.messages,
            "max_messages": usage.max_messages,
            "bytes": usage.bytes,
            "quota_bytes": usage.quota_bytes,
        }
        if because is not None:
            log.info("mailbox full; nothing will be recorded", extra={**extra, "full": because})
        else:
            extra["max_length_s"] = round(limit.seconds, 2)
            log.info("message length limited by the quota", extra=extra)
    return because, limit


def silence_rules(
    effective: users.EffectiveSettings | None, settings: MediaRecorderSettings
) -> tuple[float, float]:
    """``(max_silence, min_voice)``: the user's effective ``max_silence_seconds`` and
    ``min_message_seconds``, else the recorder's own settings (their built-ins)."""
    max_silence = settings.max_silence_seconds
    min_voice = settings.min_voice_seconds
    if effective is not None:
        if effective.max_silence_seconds is not None:
            max_silence = effective.max_silence_seconds
        if effective.min_message_seconds is not None:
            min_voice = effective.min_message_seconds
    return max_silence, min_voice


def end_reason(session: MediaSession, reason: StopReason) -> EndReason:
    if reason is StopReason.SILENCE:
        return "silence"
    if reason is StopReason.MAX_LENGTH:
        return "max_length"
    if reason is StopReason.DTMF or session.stopped_by_digit_command:
        return "completed"
    return "completed" if session.hangup_reason == "shutdown" else "bye"


async def run_record(session: MediaSession) -> tuple[EndReason, int | None]:
    svc = session.services
    settings = svc.settings
    # Everything that needs the database or the disk happens before the greeting, so the
    # recording starts the instant the beep ends: callers start talking right away.
    # The user's settings as they are now (sipum.db.settings): a change counts from this call.
    effective = await users.effective_settings(svc.pool, session.user.id)
    full, limit = await mailbox_limits(session, effective)
    if full is not None:
        # In the mailbox's prompt_language, like the greeting.
        prompts = svc.prompts.language(effective.prompt_language if effective else None)
        rate = prompts.rate_for(session.plan.codec)
        await session.play(await prompts.names(["mailbox-full", "goodbye"], rate))
        return "mailbox_full", None
    items = await greeting_items(session, effective)
    codec = session.plan.codec
    max_silence, min_voice = silence_rules(effective, settings)
    recording_settings = RecordingSettings(
        sample_rate=codec.sample_rate,
        silence_threshold_dbfs=settings.silence_threshold_dbfs,
        max_silence=max_silence,
        min_voice=min_voice,
        max_length=limit.seconds,
        flush_interval=settings.chunk_seconds,
        hold_back=settings.hold_back_seconds,
    )
    await session.play(items)
    if session.hung_up.is_set():
        return ("completed" if session.hangup_reason == "shutdown" else "bye"), None
    request = session.request
    meta = RecordingMeta(
        session_id=session.session_id,
        recorder_id=svc.recorder_id,
        owner_id=session.user.id,
        username=session.user.username,
        domain=session.user.domain,
        caller_uri=request.caller_uri,
        caller_display=request.caller_display,
        called_uri=request.called_uri,
        reason=request.reason,
        diversion_cause=request.diversion_cause,
        call_id=request.call_id,
        codec=codec.name.lower(),
        sample_rate=codec.sample_rate,
        received_at=datetime.now(UTC).isoformat(),
    )
    spool = PartialRecording(svc.blobs, meta)
    try:
        result = await session.endpoint.record(recording_settings, on_chunk=spool.add)
    except asyncio.CancelledError:
        spool.abandon()  # killed hard: what is uploaded stays for recovery
        raise
    except Exception:
        await spool.finish(upload_rest=True)  # what was recorded stays for recovery
        raise
    reason = end_reason(session, result.reason)
    log.info(
        "recording ended",
        extra={
            "session": session.session_id,
            "reason": reason,
            "duration_s": round(result.duration, 2),
            "voiced_s": round(result.voiced_duration, 2),
            "discarded": result.discarded,
        },
    )
    if result.discarded:
        metrics.RECORDINGS_DISCARDED.inc()
        await spool.remove()
        return reason, None
    pcm = b"".join(spool.pcm)
    # The blob store or the database may be away for a while (a restart, a network blip): the
    # message is only in memory (and, up to the last chunk, in the spool), so keep trying for
    # store_retry_seconds with back-off before leaving it to recovery.
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + settings.store_retry_seconds
    attempt = 0
    while True:
        attempt += 1
        try:
            with metrics.STORE_SECONDS.time():
                message = await svc.store.store(meta, pcm, save_meta=spool.write_manifest)
            if message is not None:
                metrics.MESSAGES_STORED.labels("call").inc()
            break
        except Exception:
            log.exception("storing the message failed (attempt %d)", attempt)
            delay = min(_STORE_BACKOFF_MAX, 0.5 * 2 ** (attempt - 1))
            if loop.time() + delay > give_up_at:
                # leave the whole recording in the spool: recovery stores it later (as a
                # finished message, not an interrupted one)
                await spool.finish(upload_rest=True)
                meta.ended = reason
                try:
                    await spool.write_manifest()
                except Exception:
                    log.exception("cannot mark %s as ended in its manifest", meta.session_id)
                return "error", None
            await asyncio.sleep(delay)
    await spool.remove()
    return reason, None if message is None else message.id
