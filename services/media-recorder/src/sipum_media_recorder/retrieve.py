"""Retrieval mode (``sip:alice-67212-retrieve@…``): PIN, the message, the menu.

* PIN: asked unless the request is ``trusted`` *and* the caller URI is the mailbox itself. The
  registrar-agent sets ``trusted`` only when a P-Asserted-Identity (RFC 3325) naming the owner
  came from one of its configured trusted proxy addresses; the recorder double-checks that the
  caller URI it was given is the owner's. The PIN is typed as digits ending with ``#`` (``*``
  starts over); ``pin_attempts`` (3) wrong PINs end the call with "Goodbye" — the message is
  never played. A user without a PIN cannot retrieve by phone unless trusted. Wrong PINs are
  also counted per mailbox across calls (``lockout``): too many lock phone access for a while.
* The message is played (and marked heard), then the menu: ``1`` replay, ``7`` delete (moved
  to the trash, like the web inbox's first delete), ``9`` save (moved to ``saved``), ``#`` end.
  Menu digits interrupt prompts and the message (barge-in); without an answer the menu is
  offered ``menu_repeats`` times, then the call ends.
"""

from __future__ import annotations

import logging
from typing import Literal

from sipum.db import messages, users

from sipum_media_recorder import lockout
from sipum_media_recorder.audio import decode_audio
from sipum_media_recorder.session import ALL_DIGITS, MediaSession

log = logging.getLogger("sipum.misc.recorder.retrieve")

EndReason = Literal["bye", "completed", "rejected", "error"]
MENU_DIGITS = "179#"
MAX_PIN_LENGTH = 20


def sip_user_host(uri: str) -> tuple[str, str] | None:
    """``("alice", "example.com")`` from ``"Alice" <sip:alice@Example.com;transport=tcp>``."""
    text = uri.strip()
    if "<" in text:
        text = text.split("<", 1)[1].split(">", 1)[0]
    scheme, sep, rest = text.partition(":")
    if not sep or scheme.lower() not in ("sip", "sips", "tel"):
        return None
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    user, at, host = rest.rpartition("@")
    if not at or not user:
        return None
    return user, host.split(":", 1)[0].lower()


def caller_is_owner(caller_uri: str, user: users.User) -> bool:
    found = sip_user_host(caller_uri)
    return found is not None and found[0] == user.username and found[1] == user.domain.lower()


async def read_pin(session: MediaSession) -> str | None:
    """Digits up to ``#``; None if nothing was typed before the timeout."""
    timeout = session.services.settings.digit_timeout_seconds
    typed = ""
    while True:
        digit = await session.next_digit(timeout)
        if digit is None:
            return typed or None
        if digit == "#":
            return typed
        if digit == "*":
            typed = ""
        elif digit.isdigit() and len(typed) < MAX_PIN_LENGTH:
            typed += digit


Auth = Literal["ok", "wrong", "locked", "gone"]


async def authenticate(session: MediaSession) -> Auth:
    """The trusted owner, or the PIN within ``pin_attempts`` tries — unless the mailbox's phone
    access is locked (``lockout``): then the PIN is not asked at all. Every wrong PIN typed is
    counted for the mailbox across calls and replicas; the one that reaches the limit locks it
    (``mailbox.locked``) and ends this call too. A right PIN forgets the failures."""
    svc = session.services
    if session.request.trusted and caller_is_owner(session.request.caller_uri, session.user):
        return "ok"
    if await lockout.is_locked(session):
        return "locked"
    attempts = svc.settings.pin_attempts
    for attempt in range(1, attempts + 1):
        await session.prompt("enter-pin", barge_in=ALL_DIGITS)
        pin = await read_pin(session)
        if session.hung_up.is_set():
            return "gone"
        if pin and await users.verify_pin(svc.pool, session.user.id, pin):
            await lockout.forget_failures(session)
            return "ok"
        log.info(
            "wrong PIN",
            extra={"session": session.session_id, "user": session.user.address, "attempt": attempt},
        )
        if pin and await lockout.count_failure(session):
            return "locked"
        if attempt < attempts:
            await session.prompt("wrong-pin", barge_in=ALL_DIGITS)
    return "wrong"


async def refuse(session: MediaSession, auth: Auth) -> EndReason:
    """End a call whose PIN check failed: "locked" + "Goodbye", or "Goodbye"."""
    if auth == "gone" or session.ended_by_caller:
        return "bye"
    if auth == "locked":
        await session.prompt("mailbox-locked", "goodbye")
    else:
        await session.prompt("goodbye")
    return "rejected"


async def run_retrieve(session: MediaSession) -> tuple[EndReason, int | None]:
    svc = session.services
    message = session.message
    assert message is not None
    # the mailbox's prompt_language, as in the main menu (the PIN prompt included)
    effective = await users.effective_settings(svc.pool, session.user.id)
    session.use_prompt_language(effective.prompt_language if effective else None)
    auth = await authenticate(session)
    if auth != "ok":
        return await refuse(session, auth), None
    session.clear_digits()
    item = decode_audio(await svc.blobs.get(message.blob_key))
    owner = session.user

    async def publish_update(updated: messages.Message, changed: list[str]) -> None:
        await svc.bus.publish(messages.updated_event(owner, updated, changed))

    await session.play([item], barge_in=MENU_DIGITS)
    if not message.heard:
        updated = await messages.mark_heard(svc.pool, owner.id, message.id)
        if updated is not None:
            await publish_update(updated, ["heard"])
    unanswered = 0
    while not session.hung_up.is_set():
        if session.digits.empty():
            await session.prompt(
                "menu-replay", "menu-delete", "menu-save", "menu-end", barge_in=MENU_DIGITS
            )
        digit = await session.next_digit(svc.settings.digit_timeout_seconds, MENU_DIGITS)
        if digit is None:
            if session.hung_up.is_set():
                break
            unanswered += 1
            if unanswered >= svc.settings.menu_repeats:
                await session.prompt("goodbye")
                return "completed", message.id
            continue
        unanswered = 0
        if digit == "1":
            await session.play([item], barge_in=MENU_DIGITS)
        elif digit in "79":
            folder = messages.Folder.TRASH if digit == "7" else messages.Folder.SAVED
            moved = await messages.move(svc.pool, owner.id, message.id, folder)
            if moved is not None:
                await publish_update(moved, ["folder"])
            await session.prompt("message-deleted" if digit == "7" else "message-saved", "goodbye")
            return "completed", message.id
        else:  # '#'
            await session.prompt("goodbye")
            return "completed", message.id
    return "bye", message.id
