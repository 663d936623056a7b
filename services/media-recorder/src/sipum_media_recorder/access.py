"""The voicemail access number (``sip:voicemail@<domain>``, mode ``access``): which mailbox,
then its PIN, then that mailbox's main menu.

**The mailbox number.** sipum's usernames are names (``alice``, ``bob.smith``), and users have
no separate extension column, so the mailbox number is the username typed on the keypad —
the same spelling the main menu's forward uses (``menu.keypad_digits``, ITU-T E.161:
``alice`` = ``25423``; a numeric username such as ``1001`` is its own number). Only the
enabled mailboxes of the called domain count. A username that is the very digits typed wins;
otherwise two names spelled alike (``act``/``cat``) are no number at all (like one that
matches nobody).

**Nothing about which mailboxes exist leaks.** After the number the PIN is asked in every case;
a number that names no mailbox, a wrong PIN and a locked mailbox get the same answer ("Wrong
PIN. Please try again.", after ``pin_attempts`` tries "Goodbye"), and a number of no mailbox
costs the same PIN hashing time (``users.verify_no_pin``). A wrong number counts like a wrong
PIN for the call (``pin_attempts`` in all). A wrong PIN for a real mailbox is counted for it
across calls and replicas (``lockout``) exactly as on its own menu URI; a locked mailbox is
told apart only by the owner's e-mail (``mailbox.locked``), never on the phone here — that
would tell a caller the mailbox exists, and would let a locked mailbox's PIN be tried on.
A right PIN forgets the failures and opens the mailbox's main menu (``mainmenu.run_menu``)
without asking again. Nobody is trusted here: the PIN is always asked.
"""

from __future__ import annotations

import logging

from sipum.db import users

from sipum_media_recorder import lockout
from sipum_media_recorder.mainmenu import DIRECTORY_MAX, run_menu
from sipum_media_recorder.menu import mailbox_directory
from sipum_media_recorder.retrieve import EndReason, read_pin
from sipum_media_recorder.session import ALL_DIGITS, MediaSession

log = logging.getLogger("sipum.misc.recorder.access")


def mailbox_for(number: str, mailboxes: dict[str, users.User]) -> users.User | None:
    """The one mailbox whose keypad spelling is ``number`` (see the module doc), or None."""
    if not number:
        return None
    exact = mailboxes.get(number)
    if exact is not None:
        return exact
    names = mailbox_directory(list(mailboxes)).get(number, ())
    return mailboxes[names[0]] if len(names) == 1 else None


async def run_access(session: MediaSession) -> tuple[EndReason, int | None]:
    svc = session.services
    access = session.user  # users.access_number: no mailbox yet
    rows = await users.list_users(svc.pool, domain=access.domain, limit=DIRECTORY_MAX)
    mailboxes = {u.username: u for u in rows if not u.disabled}
    attempts = svc.settings.pin_attempts
    for attempt in range(1, attempts + 1):
        await session.prompt("enter-mailbox", barge_in=ALL_DIGITS)
        number = await read_pin(session)
        if session.hung_up.is_set():
            return "bye", None
        await session.prompt("enter-pin", barge_in=ALL_DIGITS)
        pin = await read_pin(session)
        if session.hung_up.is_set():
            return "bye", None
        target = mailbox_for(number or "", mailboxes)
        if target is None:
            if pin:
                await users.verify_no_pin(pin)
        else:
            session.user = target
            if await lockout.is_locked(session):
                if pin:
                    await users.verify_no_pin(pin)  # answered like a wrong PIN (module doc)
            elif pin and await users.verify_pin(svc.pool, target.id, pin):
                await lockout.forget_failures(session)
                log.info(
                    "access number: mailbox opened",
                    extra={"session": session.session_id, "user": target.address},
                )
                session.clear_digits()
                return await run_menu(session, authenticated=True)
            elif pin:
                await lockout.count_failure(session)
            session.user = access
        log.info(
            "access number: wrong mailbox number or PIN",
            extra={"session": session.session_id, "attempt": attempt},
        )
        if attempt < attempts:
            await session.prompt("wrong-pin", barge_in=ALL_DIGITS)
    if session.ended_by_caller:
        return "bye", None
    await session.prompt("goodbye")
    return "rejected", None
