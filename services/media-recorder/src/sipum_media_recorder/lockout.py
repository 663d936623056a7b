"""The PIN lockout as the retrieval flows use it: is the mailbox locked, count a wrong PIN
(publishing ``mailbox.locked`` when that locks it), forget the failures after a right PIN.

The rules are ``sipum.security.pin_lockout``; the count lives in PostgreSQL
(``sipum.db.pin_lockouts``), so every replica sees every other replica's failures. ``now`` is
this replica's wall clock, read once per action.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime

from sipum.db import pin_lockouts, users
from sipum.events import MailboxLocked
from sipum.events.models import stable_event_id
from sipum.security.pin_lockout import LockoutPolicy

from sipum_media_recorder.session import MediaSession

log = logging.getLogger("sipum.misc.recorder.lockout")


def wall_clock() -> datetime:
    return datetime.now(UTC)


async def is_locked(session: MediaSession) -> bool:
    state = await pin_lockouts.get(session.services.pool, session.user.id)
    now = wall_clock()
    if state.locked(now):
        log.warning(
            "mailbox locked; PIN not asked",
            extra={
                "session": session.session_id,
                "user": session.user.address,
                "seconds_left": round(state.remaining_seconds(now)),
                "caller": session.request.caller_uri,
            },
        )
        return True
    return False


async def policy_for(session: MediaSession) -> LockoutPolicy:
    """The recorder's lockout policy with the mailbox's domain's ``pin_lockout_failures``
    setting, when the domain chose one (read at the failure: a change counts at once)."""
    policy = session.services.settings.lockout_policy
    effective = await users.effective_settings(session.services.pool, session.user.id)
    if effective is not None and effective.pin_lockout_failures is not None:
        policy = dataclasses.replace(policy, max_failures=effective.pin_lockout_failures)
    return policy


async def count_failure(session: MediaSession) -> bool:
    """Count one wrong PIN; True if the mailbox is locked now (by this failure or another)."""
    svc = session.services
    policy = await policy_for(session)
    now = wall_clock()
    outcome = await pin_lockouts.add_failure(svc.pool, session.user.id, now, policy)
    state = outcome.state
    if outcome.newly_locked:
        assert state.locked_until is not None
        log.warning(
            "mailbox locked after wrong PINs",
            extra={
                "session": session.session_id,
                "user": session.user.address,
                "failures": outcome.failures_in_window,
                "lockouts": state.lockouts,
                "locked_until": state.locked_until.isoformat(),
                "caller": session.request.caller_uri,
            },
        )
        await svc.bus.publish(
            MailboxLocked(
                # one event per lock, whoever retries publishing it
                id=stable_event_id(
                    "mailbox.locked", f"{session.user.id}:{state.locked_until.isoformat()}"
                ),
                username=session.user.username,
                domain=session.user.domain,
                failures=outcome.failures_in_window,
                lockouts=state.lockouts,
                locked_until=state.locked_until,
                lock_seconds=policy.lock_seconds(state.lockouts),
                caller_uri=session.request.caller_uri or None,
                call_id=session.request.call_id,
                recorder_id=svc.recorder_id,
            )
        )
    return state.locked(now)


async def forget_failures(session: MediaSession) -> None:
    await pin_lockouts.clear(session.services.pool, session.user.id)
