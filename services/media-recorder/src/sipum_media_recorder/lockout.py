"""The PIN lockout as the retrieval flows use it: is the mailbox locked, count a wrong PIN
(publishing ``mailbox.locked`` when that locks it), forget the failures after a right PIN.

The rules are ``sipum.security.pin_lockout``; the count lives in PostgreSQL
(``sipum.db.pin_lockouts``), so every replica sees every other replica's failures. ``now`` is
this replica's wall clock, read once per action.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

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
        event = MailboxLocked(
            # one event per lock, whoever retries publishing it
            id=locked_event_id(session.user.id, state.locked_until),
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
        try:
            await svc.bus.publish(event)
        except Exception:
            # NATS away: the lock holds all the same (it is in PostgreSQL); the sweep
            # (announce_untold) publishes it again until the owner has been told
            log.warning(
                "mailbox.locked not published; the sweep will retry",
                extra={"session": session.session_id, "user": session.user.address},
                exc_info=True,
            )
        else:
            await pin_lockouts.mark_published(svc.pool, session.user.id, state.locked_until, now)
    return state.locked(now)


def locked_event_id(user_id: int, locked_until: datetime) -> Any:
    """One ``mailbox.locked`` id per lock, whoever (re-)publishes it: JetStream drops a
    duplicate within its window, the notifier one it has told (``notified_at``)."""
    return stable_event_id("mailbox.locked", f"{user_id}:{locked_until.isoformat()}")


async def announce_untold(
    *, pool: Any, bus: Any, settings: Any, recorder_id: str, now: datetime | None = None
) -> int:
    """One pass of the sweep: publish ``mailbox.locked`` again for every lock in force whose
    owner was not told yet and whose last publish is older than
    ``lockout_announce_retry_seconds`` (``pin_lockouts.claim_untold``; one replica takes each).
    Returns how many were published."""
    now = now or wall_clock()
    untold = await pin_lockouts.claim_untold(
        pool, now, retry_after=timedelta(seconds=settings.lockout_announce_retry_seconds)
    )
    published = 0
    for lock in untold:
        policy = settings.lockout_policy
        effective = await users.effective_settings(pool, lock.user_id)
        if effective is not None and effective.pin_lockout_failures is not None:
            policy = dataclasses.replace(policy, max_failures=effective.pin_lockout_failures)
        try:
            await bus.publish(
                MailboxLocked(
                    id=locked_event_id(lock.user_id, lock.locked_until),
                    username=lock.username,
                    domain=lock.domain,
                    failures=policy.max_failures,
                    lockouts=lock.lockouts,
                    locked_until=lock.locked_until,
                    lock_seconds=policy.lock_seconds(lock.lockouts),
                    recorder_id=recorder_id,
                )
            )
        except Exception as exc:
            log.warning(
                "mailbox.locked still not published",
                extra={"user": f"{lock.username}@{lock.domain}", "error": str(exc)[:200]},
            )
            continue
        published += 1
        log.info(
            "mailbox.locked published again (owner not told yet)",
            extra={"user": f"{lock.username}@{lock.domain}", "lockouts": lock.lockouts},
        )
    return published


async def forget_failures(session: MediaSession) -> None:
    await pin_lockouts.clear(session.services.pool, session.user.id)
