"""The main voicemail menu's adapter (mode ``menu``, ``sip:alice-retrieve@…``): the state
machine of ``menu`` driven by the call's media session, PostgreSQL and the event bus.

0. the prompt set of the mailbox's ``prompt_language`` (``MediaSession.use_prompt_language``):
   every prompt of the call, the PIN's included, in it;
1. PIN as in retrieval mode (``retrieve.authenticate``: trusted owner skips it, lockout);
2. a snapshot of the mailbox (``messages.list_for_user``, every folder but the trash is
   offered, at most ``menu_max_messages``);
3. the loop: do what the machine says — mark heard / move (then publish ``message.updated``
   built by ``messages.updated_event``, as the web does), play (prompts, a caller's name
   rendered with the prompt voice, the message's audio from an offset) — and tell it what
   happened: the play ended, a digit interrupted it (and how far it had got), or the wait for
   a digit ran out. The wall clock is read for every input (the envelope says "today" by it).

A digit typed ahead of a play that it would interrupt counts as pressed at the play's start.
Barge-in stops a play when the key goes down (RFC 4733 event start); the digit itself is
delivered when the key comes up, and is taken then (so it does not also cut the next play
short): a key's effect is heard after the key is released.
Forwarding (key ``8``): the domain's mailboxes are read when the call starts (at most
``DIRECTORY_MAX`` enabled users of the owner's domain, never another domain's) and handed to the
machine by their keypad spelling. A forward is a copy: the original (its WAV decoded), after
the owner's optional comment and ``FORWARD_GAP_SECONDS`` of silence (no beep), is stored as a
new message in the target's inbox through the recorder's ``MessageStore`` — blob, row and
``message.created``, so the target is notified as for any message — at the original's sample
rate and codec, the caller being the owner (``sip:<owner>@<domain>``, her display name), marked
``forwarded_from`` the owner's mailbox and urgent if the original is. The idempotency key is ``<session>-forward-<n>`` (the n-th forward of the call). A full target
mailbox (``limits.full_because``) refuses the forward; the original never changes. The copy
passes through the spool (manifest + one chunk) before it is stored, so a replica killed
mid-forward leaves it to recovery, which stores it whole (``ended`` in the manifest: not
flagged interrupted) under the message id already allocated.
A message deleted on the web during the call plays as silence (its blob is gone); moves of
such a message change nothing and publish nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from sipum.blobstore import BlobNotFoundError, greeting_key
from sipum.db import greetings, messages, users
from sipum.events import UserUpdated
from sipum_protocol.media.codecs import resample
from sipum_protocol.media.playback import PcmItem, PlaybackItem
from sipum_protocol.media.recording import RecordingChunk, RecordingSettings, wav_bytes

from sipum_media_recorder.audio import decode_audio
from sipum_media_recorder.limits import full_because
from sipum_media_recorder.menu import (
    Action,
    ChangePin,
    Entry,
    Forward,
    ForwardOutcome,
    Hangup,
    Item,
    MailboxMenu,
    MarkHeard,
    MessageAudio,
    Move,
    Play,
    RecordComment,
    RecordedGreeting,
    RecordGreeting,
    SaveGreeting,
    Spoken,
    mailbox_directory,
)
from sipum_media_recorder.retrieve import EndReason, authenticate, refuse
from sipum_media_recorder.session import ALL_DIGITS, MediaSession
from sipum_media_recorder.spool import PartialRecording, RecordingMeta

log = logging.getLogger("sipum.misc.recorder.menu")

#: After a key interrupted a play (key down), how long to wait for the digit (key up).
KEY_UP_WAIT = 2.0
#: A greeting recorded by phone: at most this long (the web's upload limit), at least this much
#: voice.
GREETING_MAX_SECONDS = 120.0
GREETING_MIN_VOICE_SECONDS = 0.5
#: A comment recorded for a forward: at most this long.
COMMENT_MAX_SECONDS = 60.0
#: Silence between a forward's comment and the original message.
FORWARD_GAP_SECONDS = 0.3
#: At most this many mailboxes of the domain are offered as forward targets.
DIRECTORY_MAX = 10000


def wall_clock() -> datetime:
    return datetime.now(UTC)


def entry_of(message: messages.Message) -> Entry:
    return Entry(
        id=message.id,
        folder=message.folder.value,
        heard=message.heard,
        caller_uri=message.caller_uri,
        caller_display=message.caller_display_name,
        received_at=message.received_at,
        duration_s=message.duration_ms / 1000,
        urgent=message.urgent,
        forwarded_from=message.forwarded_from,
    )


def forwarded_audio(comment: PcmItem | None, original: PcmItem) -> np.ndarray:
    """A forward's audio at the original's rate: the comment (resampled to that rate), then
    ``FORWARD_GAP_SECONDS`` of silence, then the original; the original alone without a
    comment."""
    rate = original.sample_rate
    parts: list[np.ndarray] = []
    if comment is not None:
        said = comment.pcm
        if comment.sample_rate != rate:
            said = resample(said, comment.sample_rate, rate)
        parts += [said.astype(np.int16), np.zeros(round(FORWARD_GAP_SECONDS * rate), np.int16)]
    parts.append(original.pcm.astype(np.int16))
    return np.concatenate(parts)


class MenuCall:
    """One call in the main menu."""

    def __init__(self, session: MediaSession, machine: MailboxMenu) -> None:
        self.session = session
        self.machine = machine
        self.rate = session.prompt_set.rate_for(session.plan.codec)
        self._audio: tuple[int, PcmItem | None] | None = None  # the current message only
        self.record_next: RecordGreeting | None = None
        self.recorded: PcmItem | None = None
        """The greeting just recorded, until it is saved or replaced."""
        self.record_comment_next = False
        self.comment: PcmItem | None = None
        """The comment just recorded for a forward."""
        self.forward_next: Forward | None = None
        self.forwards = 0

    # -- the machine's actions ---------------------------------------------------------------

    async def act(self, actions: list[Action]) -> Play | None:
        """Do the database actions; return the play (at most one, the last action)."""
        svc, owner = self.session.services, self.session.user
        play: Play | None = None
        for action in actions:
            if isinstance(action, MarkHeard):
                updated = await messages.mark_heard(svc.pool, owner.id, action.message_id)
                if updated is not None:
                    await svc.bus.publish(messages.updated_event(owner, updated, ["heard"]))
            elif isinstance(action, Move):
                moved = await messages.move(svc.pool, owner.id, action.message_id, action.folder)
                if moved is not None:
                    await svc.bus.publish(messages.updated_event(owner, moved, ["folder"]))
                log.info(
                    "message moved",
                    extra={
                        "session": self.session.session_id,
                        "message_id": action.message_id,
                        "folder": action.folder,
                    },
                )
            elif isinstance(action, ChangePin):
                await self.change_pin(action.pin)
            elif isinstance(action, SaveGreeting):
                await self.save_greeting(action.kind)
            elif isinstance(action, RecordGreeting):
                self.record_next = action
            elif isinstance(action, RecordComment):
                self.record_comment_next = True
            elif isinstance(action, Forward):
                self.forward_next = action
            elif isinstance(action, Play):
                play = action
            elif isinstance(action, Hangup):
                pass  # the machine is ended; the loop stops
        return play

    async def change_pin(self, pin: str) -> None:
        """The new PIN (the machine checked it); also lifts a phone lockout (``set_pin``).
        ``user.updated`` names the change, as a change on the web does; the PIN is never
        logged."""
        svc, owner = self.session.services, self.session.user
        await users.set_pin(svc.pool, owner.id, pin)
        await svc.bus.publish(
            UserUpdated(
                username=owner.username,
                domain=owner.domain,
                display_name=owner.display_name or None,
                email=owner.email,
                changed=["pin"],
            )
        )
        log.info(
            "PIN changed by phone",
            extra={"session": self.session.session_id, "user": owner.address},
        )

    async def record_greeting(self) -> float | None:
        """Record the owner until ``#``, ``max_silence_seconds`` of silence or
        ``GREETING_MAX_SECONDS``; seconds kept, or None (too little voice, or the call
        ended)."""
        recorded = await self._record(GREETING_MAX_SECONDS)
        if recorded is not None:
            self.recorded = recorded
            return len(recorded.pcm) / recorded.sample_rate
        return None

    async def record_comment(self) -> float | None:
        """The comment of a forward, recorded as a greeting is (at most
        ``COMMENT_MAX_SECONDS``)."""
        self.comment = await self._record(COMMENT_MAX_SECONDS)
        if self.comment is None:
            return None
        return len(self.comment.pcm) / self.comment.sample_rate

    async def _record(self, max_length: float) -> PcmItem | None:
        session = self.session
        settings = session.services.settings
        codec = session.plan.codec
        chunks: list[bytes] = []
        session.clear_digits()
        result = await session.endpoint.record(
            RecordingSettings(
                sample_rate=codec.sample_rate,
                silence_threshold_dbfs=settings.silence_threshold_dbfs,
                max_silence=settings.max_silence_seconds,
                min_voice=GREETING_MIN_VOICE_SECONDS,
                max_length=max_length,
                flush_interval=settings.chunk_seconds,
            ),
            on_chunk=lambda chunk: chunks.append(chunk.pcm),
        )
        if result.digit is not None and session.digits.empty():
            # stopped when the key went down: the digit comes when it is released — take it,
            # or it would act on the menu that follows (a "#" there exits)
            await session.next_digit(KEY_UP_WAIT, ALL_DIGITS)
        session.clear_digits()  # the "#" that ended it
        if session.hung_up.is_set() or result.discarded:
            return None
        pcm = np.frombuffer(b"".join(chunks), dtype="<i2").astype(np.int16)
        return PcmItem(pcm, codec.sample_rate)

    async def forward(self, action: Forward) -> ForwardOutcome:
        """Store the copy in the target's inbox (see the module's docstring)."""
        session = self.session
        svc, owner = session.services, session.user
        target = await users.get_by_address(svc.pool, action.target, owner.domain)
        if target is None or target.disabled or target.domain != owner.domain:
            return "no-mailbox"
        usage = await messages.usage(svc.pool, target.id)
        if usage is not None and full_because(usage) is not None:
            return "full"
        original = await messages.get_for_user(svc.pool, owner.id, action.message_id)
        if original is None:
            return "gone"
        try:
            audio = decode_audio(await svc.blobs.get(original.blob_key))
        except BlobNotFoundError:
            return "gone"
        rate = audio.sample_rate
        comment = self.comment if action.with_comment else None
        pcm = forwarded_audio(comment, audio).astype("<i2").tobytes()
        self.forwards += 1
        meta = RecordingMeta(
            session_id=f"{session.session_id}-forward-{self.forwards}",
            recorder_id=svc.recorder_id,
            owner_id=target.id,
            username=target.username,
            domain=target.domain,
            caller_uri=f"sip:{owner.address}",
            caller_display=owner.display_name or None,
            called_uri=f"sip:{target.address}",
            reason="direct",
            diversion_cause=None,
            call_id=session.request.call_id,
            codec=original.codec,
            sample_rate=rate,
            received_at=wall_clock().isoformat(),
            urgent=original.urgent,  # the copy keeps the caller's mark
            forwarded_from=owner.address,
            ended="completed",  # a whole copy: recovered, it is not "interrupted"
        )
        # Crash safety as for a recording: the copy goes to the spool first (manifest, then its
        # audio in one chunk), so a replica killed before the row is written leaves it for
        # recovery — which stores it whole, with the message id (and so the blob key) the store
        # wrote into the manifest: no row without audio, no blob without its row. (This
        # replica's own recovery pass meeting the spool mid-forward stores the same session
        # id: the row, the blob key and the event id come out the same — idempotent.)
        spool = PartialRecording(svc.blobs, meta)
        spool.add(RecordingChunk(index=0, start=0, pcm=pcm, final=True))
        await spool.finish(upload_rest=True)
        stored = await svc.store.store(meta, pcm, save_meta=spool.write_manifest)
        await spool.remove()
        self.comment = None
        log.info(
            "message forwarded",
            extra={
                "session": session.session_id,
                "message_id": action.message_id,
                "target": target.address,
                "new_message_id": None if stored is None else stored.id,
                "comment": comment is not None,
            },
        )
        return "forwarded" if stored is not None else "gone"

    async def save_greeting(self, kind: str) -> None:
        """The recorded greeting becomes the mailbox's greeting of *kind* — the same blob key and
        row the web's upload writes (``greetings.put``), so either replaces the other."""
        recorded = self.recorded
        if recorded is None:
            return
        svc, owner = self.session.services, self.session.user
        wav = wav_bytes(recorded.pcm, recorded.sample_rate)
        key = greeting_key(owner.domain, owner.username, kind)
        await svc.blobs.put(key, wav, content_type="audio/wav")
        _, replaced = await greetings.put(
            svc.pool,
            owner.id,
            kind,
            key,
            duration_ms=round(1000 * len(recorded.pcm) / recorded.sample_rate),
            size_bytes=len(wav),
        )
        if replaced is not None and replaced != key:
            await svc.blobs.delete(replaced)
        self.recorded = None
        log.info(
            "greeting recorded by phone",
            extra={"session": self.session.session_id, "user": owner.address, "kind": kind},
        )

    async def render(self, items: tuple[Item, ...]) -> list[PlaybackItem]:
        prompts = self.session.prompt_set  # the mailbox's prompt_language
        out: list[PlaybackItem] = []
        names: list[str] = []

        async def flush() -> None:
            if names:
                paths: list[Path] = await prompts.names(names, self.rate)
                out.extend(paths)
                names.clear()

        for item in items:
            if isinstance(item, str):
                names.append(item)
                continue
            await flush()
            if isinstance(item, Spoken):
                out.append(await prompts.spoken(item.text, self.rate))
            elif isinstance(item, RecordedGreeting):
                if self.recorded is not None:
                    out.append(self.recorded)
            else:
                audio = await self.message_audio(item)
                if audio is not None:
                    out.append(audio)
        await flush()
        return out

    async def message_audio(self, item: MessageAudio) -> PcmItem | None:
        if self._audio is None or self._audio[0] != item.message_id:
            self._audio = (item.message_id, await self._load(item.message_id))
        whole = self._audio[1]
        if whole is None:
            return None
        start = round(item.offset * whole.sample_rate)
        return PcmItem(whole.pcm[start:], whole.sample_rate) if start else whole

    async def _load(self, message_id: int) -> PcmItem | None:
        svc = self.session.services
        message = await messages.get_for_user(svc.pool, self.session.user.id, message_id)
        if message is None:
            return None
        try:
            return decode_audio(await svc.blobs.get(message.blob_key))
        except BlobNotFoundError:
            log.warning("message audio is gone", extra={"message_id": message_id})
            return None

    # -- digits ------------------------------------------------------------------------------

    def take_typed_ahead(self, accept: str) -> str | None:
        """The first queued digit in *accept*; queued digits before it are dropped."""
        digits = self.session.digits
        while not digits.empty():
            digit = digits.get_nowait()
            if digit in accept:
                return digit
        return None

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> EndReason:
        session, machine = self.session, self.machine
        timeout = session.services.settings.digit_timeout_seconds
        actions = machine.start(wall_clock())
        while True:
            play = await self.act(actions)
            if machine.ended:
                return "completed"
            if session.hung_up.is_set():
                return "bye"
            if self.record_next is not None:
                self.record_next = None
                seconds = await self.record_greeting()
                if session.hung_up.is_set():
                    return "bye"
                actions = machine.greeting_recorded(wall_clock(), seconds)
                continue
            if self.record_comment_next:
                self.record_comment_next = False
                seconds = await self.record_comment()
                if session.hung_up.is_set():
                    return "bye"
                actions = machine.comment_recorded(wall_clock(), seconds)
                continue
            if self.forward_next is not None:
                action, self.forward_next = self.forward_next, None
                outcome = await self.forward(action)
                actions = machine.forward_done(wall_clock(), outcome)
                continue
            if play is not None:
                items = await self.render(play.items)
                early = self.take_typed_ahead(play.barge_in) if play.barge_in else None
                if early is not None:
                    actions = self._digit(early, position=0.0)
                    continue
                played = await session.play(items, barge_in=play.barge_in)
                if session.hung_up.is_set():
                    return "bye"
                if played is not None and played.interrupted_by:
                    # barge-in acts when the key goes down; the digit itself arrives when it
                    # comes up: take it, so it does not cut the next play short
                    echo = await session.next_digit(KEY_UP_WAIT, ALL_DIGITS)
                    if session.hung_up.is_set():
                        return "bye"
                    pressed = echo or played.interrupted_by
                    actions = self._digit(pressed, position=played.position)
                    continue
                # ran to its end, or stopped by a digit that came by SIP INFO (queued)
                queued = self.take_typed_ahead(play.barge_in) if play.barge_in else None
                if queued is not None and played is not None:
                    actions = self._digit(queued, position=played.position)
                else:
                    actions = machine.play_finished(wall_clock())
                continue
            deadline = machine.deadline
            if deadline is None:  # nothing to play and nothing to wait for: cannot happen
                log.error("main menu stalled", extra={"session": session.session_id})
                return "error"
            wait = min(timeout, max(0.0, (deadline - wall_clock()).total_seconds()))
            digit = await session.next_digit(wait)
            if digit is None:
                if session.hung_up.is_set():
                    return "bye"
                actions = machine.timeout(wall_clock())
            else:
                actions = machine.digit(digit, wall_clock())

    def _digit(self, digit: str, *, position: float) -> list[Action]:
        now = wall_clock()
        actions = self.machine.digit(digit, now, position=position)
        return actions or self.machine.interrupted_without_effect(now)


async def mailbox_time_zone(session: MediaSession) -> str:
    """The zone the envelopes are said in: the mailbox's ``time_zone`` setting when its user or
    domain chose one, else the recorder's ``time_zone``."""
    svc = session.services
    report = await users.settings_report(svc.pool, session.user.id)
    chosen = None if report is None else report.get("time_zone")
    if chosen is not None and chosen.source != "default" and isinstance(chosen.value, str):
        return chosen.value
    return svc.settings.time_zone


async def forward_directory(session: MediaSession) -> dict[str, tuple[str, ...]]:
    """The owner's domain's enabled mailboxes by keypad spelling (the forward targets)."""
    owner = session.user
    rows = await users.list_users(session.services.pool, domain=owner.domain, limit=DIRECTORY_MAX)
    return mailbox_directory([u.username for u in rows if not u.disabled])


async def run_menu(
    session: MediaSession, *, authenticated: bool = False
) -> tuple[EndReason, int | None]:
    """The main menu; ``authenticated``: the PIN was checked already (the access number)."""
    svc = session.services
    # The owner's menu speaks her mailbox's prompt_language, from the PIN prompt on (as the
    # greeting does for her callers); phrases without a translation: the default set's.
    effective = await users.effective_settings(svc.pool, session.user.id)
    session.use_prompt_language(effective.prompt_language if effective else None)
    auth = "ok" if authenticated else await authenticate(session)
    if auth != "ok":
        return await refuse(session, auth), None
    session.clear_digits()
    rows = await messages.list_for_user(
        svc.pool, session.user.id, folder=None, limit=svc.settings.menu_max_messages
    )
    machine = MailboxMenu(
        [entry_of(m) for m in rows if m.folder is not messages.Folder.TRASH],
        zone=ZoneInfo(await mailbox_time_zone(session)),
        digit_timeout=svc.settings.digit_timeout_seconds,
        menu_repeats=svc.settings.menu_repeats,
        newest_first=svc.settings.menu_newest_first,
        username=session.user.username,
        directory=await forward_directory(session),
    )
    log.info(
        "main menu",
        extra={
            "session": session.session_id,
            "user": session.user.address,
            "new": machine.new_count,
            "saved": machine.saved_count,
        },
    )
    return await MenuCall(session, machine).run(), None
