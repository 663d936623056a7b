"""Record mode: greeting, beep, the caller's message, stored once.

0. The mailbox's room (``limits``): if it holds ``max_messages`` messages or ``quota_bytes``
   bytes, the caller hears "The mailbox is full …" + "Goodbye", nothing is recorded and the
   session ends with ``mailbox_full``.
1. The greeting: the user's uploaded one (``greetings.for_call``: an unexpired temporary
   greeting, the busy one for a call diverted on busy, else the unavailable one) followed by
   the beep; without one, the default prompt — "The person at <recorded name | display name |
   number> is not available. Please leave a message after the tone." + beep.
   ``owner_escape_digit`` (``*``) during the greeting: the mailbox's main menu instead
   (``mainmenu.run_menu``: PIN unless the trusted owner), nothing recorded.
2. Recording (``sipum_protocol.media.recording``) until hang-up, ``#``, ``max_silence_seconds`` of
   silence or the maximum length — the user's effective ``max_message_seconds``, lowered by the
   request's ``max_duration_s`` if given and to what the quota still holds. Chunks go to the blob store as they come
   (``spool.PartialRecording``).
3. Less than ``min_voice_seconds`` of non-silent audio: discarded, nothing stored. Otherwise
   ``store.MessageStore`` writes blob, row and event, idempotently — after ``#``, once the
   caller's review (``review``: 1 send, 2 listen, 3 record again, 4 urgent where the
   mailbox's ``urgent_allowed`` says so) says so; silence
   or a hang-up in the review stores it too.

A call moved here from a replica that died (``session.spooled``, :func:`continue_recording`)
skips 0-1: the audio the gone replica spooled comes first, the recording goes on at once (the
maximum length less what is spooled, the minimum of voice less what the spooled audio holds)
and the one message holds both, flagged ``interrupted`` only when audio was lost in the move
(``RecordingMeta.lost_seconds``). A recording that had already ended (the caller was in the
review) is stored as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from sipum.db import greetings, messages, users
from sipum_protocol.media.playback import PcmItem, PlaybackItem
from sipum_protocol.media.recording import RecordingSession, RecordingSettings, StopReason

from sipum_media_recorder import metrics
from sipum_media_recorder.audio import decode_audio
from sipum_media_recorder.limits import (
    DEFAULT_MAX_MESSAGE_SECONDS,
    FullBecause,
    LengthLimit,
    full_because,
    max_recording_length,
)
from sipum_media_recorder.mainmenu import run_menu
from sipum_media_recorder.review import (
    REVIEW_KEYS,
    CallerReview,
    PlayPrompts,
    PlayRecording,
    Rerecord,
    Store,
)
from sipum_media_recorder.session import MediaSession
from sipum_media_recorder.settings import MediaRecorderSettings
from sipum_media_recorder.spool import (
    LOST_AUDIO_SECONDS,
    PART_SIZE,
    PartialRecording,
    RecordingMeta,
    Spooled,
)
from sipum_media_recorder.transfer import operator_target, to_operator

log = logging.getLogger("sipum.misc.recorder.record")

EndReason = Literal[
    "bye", "max_length", "silence", "completed", "mailbox_full", "rejected", "error", "transferred"
]

#: Diversion reasons (RFC 5806 ``reason=``) and RFC 4458 ``cause=`` values meaning "busy".
BUSY_CAUSES = frozenset({"user-busy", "busy", "486", "600"})

_STORE_BACKOFF_MAX = 5.0
#: After a key interrupted a play (key down), how long to wait for the digit (key up).
KEY_UP_WAIT = 2.0


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
    if session.spooled is not None:
        return await continue_recording(session, session.spooled)
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
    escape = settings.owner_escape_digit
    # 0 to the operator (transfer.py): only for a mailbox with an operator_uri, once a call
    operator = operator_target(settings, effective)
    op_digit = settings.operator_digit if operator else ""
    keys = escape + op_digit
    played = await session.play(items, barge_in=keys)
    if session.hung_up.is_set():
        return ("completed" if session.hangup_reason == "shutdown" else "bye"), None
    pressed = played.interrupted_by if played is not None else None
    if pressed:
        await session.next_digit(KEY_UP_WAIT, pressed)  # the key's up (RFC 4733 end)
    else:
        pressed = take_queued(session, keys)
    if escape and pressed == escape:
        # the owner calling her own number: her main menu (PIN unless trusted)
        session.clear_digits()
        log.info("owner escape to the main menu", extra={"session": session.session_id})
        return await run_menu(session)
    if op_digit and pressed == op_digit:
        assert operator is not None
        session.clear_digits()
        gone = await to_operator(session, operator)
        if gone is not None:
            return gone, None
        operator = None  # not transferred: the greeting's beep, then the message as usual
        await session.prompt("beep")
        if session.hung_up.is_set():
            return "bye", None
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
    return await record_message(session, meta, recording_settings, operator=operator)


async def record_message(
    session: MediaSession,
    meta: RecordingMeta,
    recording_settings: RecordingSettings,
    *,
    resumed: PartialRecording | None = None,
    resumed_settings: RecordingSettings | None = None,
    resumed_min_voice: float | None = None,
    operator: str | None = None,
) -> tuple[EndReason, int | None]:
    """Steps 2-3: record, review, store (``resumed``: the first round goes on from a spool
    that already holds a gone replica's audio, or is still fetching it (``spool.before``):
    then ``resumed_min_voice`` is the minimum of voice of the whole message, checked when the
    round ended and the audio is in; ``operator``: where ``operator_digit`` during the
    recording transfers the caller, once)."""
    svc = session.services
    while True:
        min_voice_total: float | None = None
        if resumed is not None:
            spool, round_settings = resumed, resumed_settings or recording_settings
            min_voice_total, resumed_min_voice = resumed_min_voice, None
            resumed = None
        else:
            spool, round_settings = PartialRecording(svc.blobs, meta), recording_settings
        op_digit = svc.settings.operator_digit if operator else ""
        round_settings = replace(round_settings, stop_digits="#" + op_digit)
        try:
            result = await session.endpoint.record(round_settings, on_chunk=spool.add)
        except asyncio.CancelledError:
            spool.abandon()  # killed hard: what is uploaded stays for recovery
            raise
        except Exception:
            await spool.finish(upload_rest=True)  # what was recorded stays for recovery
            if spool.before is not None:
                spool.before.cancel()
            raise
        reason = end_reason(session, result.reason)
        voice_needed = round_settings.min_voice  # of this round's own voice
        if spool.before is not None:
            # the gone replica's audio, fetched while this part was recorded, goes in front
            try:
                before = await spool.join_before()
            except Exception:
                log.exception("cannot fetch the spooled audio of %s", session.session_id)
                return await leave_for_recovery(spool, meta, reason)
            if min_voice_total is not None:
                voiced = result.voiced_duration + voiced_seconds(
                    before, meta.sample_rate, svc.settings.silence_threshold_dbfs
                )
                result = replace(result, discarded=voiced < min_voice_total)
                voice_needed = max(0.0, min_voice_total - voiced + result.voiced_duration)
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
        stopper = result.digit or (
            session.command_stop_digit if session.stopped_by_digit_command else None
        )
        if operator and op_digit and stopper == op_digit and not session.hung_up.is_set():
            # 0 after the beep: what was recorded is kept (stored once transferred; a crash
            # meanwhile leaves a finished recording for recovery)
            outcome = await operator_escape(session, spool, meta, operator, result.discarded)
            if outcome is not None:
                return outcome
            # not transferred: the recording goes on after a beep, into the same message (the
            # next part of the spool, as a moved recording does; its limits less this take)
            operator = None
            resumed = PartialRecording(
                svc.blobs, meta, pcm=list(spool.pcm), first_index=spool.first_index + PART_SIZE
            )
            have = sum(len(p) for p in spool.pcm) / 2 / meta.sample_rate
            resumed_settings = replace(
                round_settings,
                min_voice=max(0.0, voice_needed - result.voiced_duration),
                max_length=max(1.0, round_settings.max_length - have),
            )
            meta.ended = None
            session.stopped_by_digit_command = False
            session.command_stop_digit = None
            continue
        if result.discarded:
            metrics.RECORDINGS_DISCARDED.inc()
            await spool.remove()
            return reason, None
        if not offers_review(session, result.reason):
            return await store_recording(session, spool, meta, reason)
        outcome = await caller_review(session, spool, meta, reason)
        if outcome is not None:
            return outcome
        # 3: record again — what was recorded is gone, the same session (idempotency key)
        # records anew after a beep
        await spool.remove()
        meta = replace(meta, received_at=datetime.now(UTC).isoformat(), message_id=None)
        meta.ended = None
        meta.urgent = False
        meta.lost_seconds = 0.0  # the moved recording is gone: nothing of it is lost
        session.clear_digits()
        await session.prompt("beep")
        if session.hung_up.is_set():
            return "bye", None
        session.stopped_by_digit_command = False
        session.command_stop_digit = None


async def operator_escape(
    session: MediaSession,
    spool: PartialRecording,
    meta: RecordingMeta,
    operator: str,
    discarded: bool,
) -> tuple[EndReason, int | None] | None:
    """``0`` during the recording: transfer to ``operator``, keeping the message. The result
    of the session when the caller is gone (transferred or hung up), or None to record on."""
    await spool.finish(upload_rest=True)
    meta.ended = "completed"
    try:
        await spool.write_manifest()
    except Exception:
        log.exception("cannot mark %s as ended in its manifest", meta.session_id)
    gone: EndReason | None = await to_operator(session, operator)
    if gone is None:
        session.clear_digits()
        await session.prompt("beep")
        if session.hung_up.is_set():
            gone = "bye"  # hung up after "cannot transfer": the message as recorded so far
    if gone is None:
        return None
    if discarded:
        metrics.RECORDINGS_DISCARDED.inc()
        await spool.remove()
        return gone, None
    return await store_recording(session, spool, meta, gone)


async def continue_recording(
    session: MediaSession, spooled: Spooled
) -> tuple[EndReason, int | None]:
    """The recording of a gone replica, taken over (see the module doc)."""
    svc = session.services
    settings = svc.settings
    meta = spooled.meta
    if spooled.taken_over is not None:
        # done before the reply, so before the caller's audio comes here: no delay
        with contextlib.suppress(Exception):
            await asyncio.shield(spooled.taken_over)
    # the spooled audio (still being fetched) goes in front of ours, not uploaded again
    spool = PartialRecording(svc.blobs, meta, first_index=spooled.next_index, before=spooled)
    if meta.ended is not None:
        # It had ended (the caller was in the review): all of it is spooled; store it.
        return await store_recording(session, spool, meta, meta.ended)  # type: ignore[arg-type]
    effective = await users.effective_settings(svc.pool, session.user.id)
    _full, limit = await mailbox_limits(session, effective)
    max_silence, min_voice = silence_rules(effective, settings)
    have = spooled.seconds
    recording_settings = RecordingSettings(
        sample_rate=meta.sample_rate,
        silence_threshold_dbfs=settings.silence_threshold_dbfs,
        max_silence=max_silence,
        min_voice=min_voice,
        max_length=limit.seconds,
        flush_interval=settings.chunk_seconds,
        hold_back=settings.hold_back_seconds,
    )
    # The voice in the spooled audio is not known before its fetch: the engine does not
    # discard this round, record_message checks the whole message's voice when it ended.
    resumed_settings = replace(
        recording_settings, min_voice=0.0, max_length=max(1.0, limit.seconds - have)
    )
    log.info(
        "recording continued",
        extra={
            "session": session.session_id,
            "spooled_s": round(have, 2),
            "lost_s": meta.lost_seconds,
            "from_recorder": spooled.meta.recorder_id,
        },
    )
    return await record_message(
        session,
        meta,
        recording_settings,
        resumed=spool,
        resumed_settings=resumed_settings,
        resumed_min_voice=min_voice,
    )


def voiced_seconds(pcm: bytes, sample_rate: int, threshold_dbfs: float) -> float:
    """Non-silent audio in *pcm* by the recording engine's own measure."""
    if not pcm:
        return 0.0
    seconds = len(pcm) / 2 / sample_rate
    engine = RecordingSession(
        RecordingSettings(
            sample_rate=sample_rate,
            silence_threshold_dbfs=threshold_dbfs,
            max_silence=seconds + 1.0,
            min_voice=0.0,
            max_length=seconds + 1.0,
            hold_back=0.0,
        ),
        now=0.0,
    )
    engine.feed(pcm, now=0.0)
    engine.hangup(now=0.0)
    assert engine.result is not None
    return engine.result.voiced_duration


def offers_review(session: MediaSession, reason: StopReason) -> bool:
    """``#`` ended the recording (RFC 4733 or SIP INFO) and the caller is still there."""
    by_key = reason is StopReason.DTMF or session.stopped_by_digit_command
    return by_key and not session.hung_up.is_set()


async def caller_review(
    session: MediaSession, spool: PartialRecording, meta: RecordingMeta, reason: EndReason
) -> tuple[EndReason, int | None] | None:
    """The review after ``#`` (``review.CallerReview``); the stored result, or None for "record
    again".

    Before the first key is offered the whole recording is in the blob store and its manifest
    says it ended (``meta.ended``): a crash during the review leaves a finished message that
    recovery stores (not flagged interrupted). ``4`` rewrites the manifest with ``urgent``
    before storing."""
    svc = session.services
    await spool.finish(upload_rest=True)
    meta.ended = reason
    try:
        await spool.write_manifest()
    except Exception:
        log.exception("cannot mark %s as ended in its manifest", meta.session_id)
    codec = session.plan.codec
    pcm = np.frombuffer(b"".join(spool.pcm), dtype="<i2").astype(np.int16)
    recorded = PcmItem(pcm, codec.sample_rate)
    # The mailbox's settings as they are now: its prompt_language (as the greeting) and
    # whether its callers may mark a message urgent (urgent_allowed: else no key 4).
    effective = await users.effective_settings(svc.pool, session.user.id)
    prompts = svc.prompts.language(effective.prompt_language if effective else None)
    rate = prompts.rate_for(codec)
    loop = asyncio.get_running_loop()
    machine = CallerReview(
        digit_timeout=svc.settings.digit_timeout_seconds,
        repeats=svc.settings.menu_repeats,
        urgent_allowed=effective is None or effective.urgent_allowed,
    )
    session.clear_digits()  # the "#" that ended the recording
    stored: tuple[EndReason, int | None] | None = None
    actions = machine.start(loop.time())
    while True:
        for action in actions:
            if isinstance(action, Rerecord):
                return None
            if isinstance(action, Store):
                if action.urgent:
                    meta.urgent = True
                    try:
                        await spool.write_manifest()
                    except Exception:
                        log.exception("cannot mark %s urgent in its manifest", meta.session_id)
                stored = await store_recording(session, spool, meta, reason)
                log.info(
                    "caller review ended",
                    extra={"session": session.session_id, "urgent": action.urgent},
                )
        if machine.ended:
            assert stored is not None
            return stored
        play = actions[-1] if actions else None
        if session.hung_up.is_set():
            actions = machine.hangup(loop.time())
            if not actions:  # stored before the hang-up (during the closing prompt)
                return stored if stored is not None else ("bye", None)
            continue
        if isinstance(play, (PlayPrompts, PlayRecording)):
            if isinstance(play, PlayPrompts):
                items: list[PlaybackItem] = list(await prompts.names(play.names, rate))
            else:
                items = [recorded]
            early = take_queued(session, play.barge_in)
            if early is not None:
                actions = machine.digit(early, loop.time())
                continue
            played = await session.play(items, barge_in=play.barge_in)
            if session.hung_up.is_set():
                continue
            pressed = played.interrupted_by if played is not None else None
            if pressed:
                # barge-in stops the play at key down; the digit itself comes at key up
                await session.next_digit(KEY_UP_WAIT, pressed)
            else:
                pressed = take_queued(session, play.barge_in)  # a digit by SIP INFO
            if pressed:
                actions = machine.digit(pressed, loop.time())
            else:
                actions = machine.play_finished(loop.time())
            continue
        deadline = machine.deadline
        if deadline is None:
            log.error("caller review stalled", extra={"session": session.session_id})
            actions = machine.hangup(loop.time())
            continue
        # the keys of the offer, and the others that make it again (REVIEW_KEYS: a 4 where
        # urgent is not allowed is such a key)
        digit = await session.next_digit(max(0.0, deadline - loop.time()), REVIEW_KEYS + "#*0")
        if digit is None:
            actions = (
                machine.hangup(loop.time())
                if session.hung_up.is_set()
                else machine.timeout(loop.time())
            )
        else:
            actions = machine.digit(digit, loop.time())


def take_queued(session: MediaSession, accept: str) -> str | None:
    """The first queued digit in *accept* (others before it are dropped)."""
    if not accept:
        return None
    while not session.digits.empty():
        digit = session.digits.get_nowait()
        if digit in accept:
            return digit
    return None


async def store_recording(
    session: MediaSession, spool: PartialRecording, meta: RecordingMeta, reason: EndReason
) -> tuple[EndReason, int | None]:
    """Store what *spool* holds as the message (retrying while the store is away)."""
    svc = session.services
    settings = svc.settings
    try:
        await spool.join_before()  # a continued recording that had ended: its spooled audio
    except Exception:
        log.exception("cannot fetch the spooled audio of %s", session.session_id)
        return await leave_for_recovery(spool, meta, reason)
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
            lost = meta.lost_seconds > LOST_AUDIO_SECONDS  # moved from a dead replica
            with metrics.STORE_SECONDS.time():
                message = await svc.store.store(
                    meta, pcm, save_meta=spool.write_manifest, interrupted=lost
                )
            if message is not None:
                metrics.MESSAGES_STORED.labels("call").inc()
                if lost:
                    metrics.MESSAGES_INTERRUPTED.inc()
            break
        except Exception:
            log.exception("storing the message failed (attempt %d)", attempt)
            delay = min(_STORE_BACKOFF_MAX, 0.5 * 2 ** (attempt - 1))
            if loop.time() + delay > give_up_at:
                return await leave_for_recovery(spool, meta, reason)
            await asyncio.sleep(delay)
    await spool.remove()
    return reason, None if message is None else message.id


async def leave_for_recovery(
    spool: PartialRecording, meta: RecordingMeta, reason: EndReason
) -> tuple[EndReason, int | None]:
    """Storing failed for good: the whole recording is left in the spool (ours uploaded, a
    gone replica's where it was) marked ended; recovery stores it later (as a finished
    message, not an interrupted one, unless audio was lost in a move)."""
    await spool.finish(upload_rest=True)
    if spool.before is not None:
        spool.before.cancel()
    meta.ended = reason
    try:
        await spool.write_manifest()
    except Exception:
        log.exception("cannot mark %s as ended in its manifest", meta.session_id)
    return "error", None
