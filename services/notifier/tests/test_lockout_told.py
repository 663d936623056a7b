"""One notice per lock (real aiosmtpd, JetStream, PostgreSQL): the notifier notes the mail in
the lock's row (``notified_at``), so the same lock arriving again — re-published by the
recorder's sweep after JetStream's duplicate window, or redelivered — mails nobody twice; a new
lock is told again."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sipum.db import pin_lockouts
from sipum.security.pin_lockout import LockoutPolicy

from .test_lockout import locked_event
from .test_notifier import start_notifier, wait_for

POLICY = LockoutPolicy(max_failures=2, window_seconds=600, base_seconds=600, max_seconds=3600)


async def test_a_lock_is_told_once_however_often_it_arrives(world, smtp) -> None:
    box, port = smtp()
    pool, alice = world["pool"], world["alice"]
    now = datetime.now(UTC)
    for i in range(2):
        outcome = await pin_lockouts.add_failure(pool, alice.id, now + timedelta(seconds=i), POLICY)
    state = outcome.state
    assert outcome.newly_locked and state.locked_until is not None
    service = await start_notifier(world, port)
    first = locked_event(locked_until=state.locked_until)
    await world["bus"].publish(first)
    await wait_for(lambda: box.mails, limit=15)
    for _ in range(40):  # the row is written right after the mail went out
        if await pin_lockouts.notified(pool, alice.id, state.locked_until):
            break
        await asyncio.sleep(0.05)
    assert await pin_lockouts.notified(pool, alice.id, state.locked_until)
    # the same lock again under another event id (beyond the duplicate window)
    await world["bus"].publish(first.model_copy(update={"id": uuid.uuid4()}))
    # and a later, new lock: told (the consumer handles one event at a time, in order: the
    # repeat above was handled before it)
    later = now + timedelta(seconds=700)
    for i in range(2):
        outcome = await pin_lockouts.add_failure(
            pool, alice.id, later + timedelta(seconds=i), POLICY
        )
    assert outcome.newly_locked and outcome.state.locked_until is not None
    await world["bus"].publish(locked_event(locked_until=outcome.state.locked_until, lockouts=2))
    await wait_for(lambda: len(box.mails) >= 2, limit=15)
    await asyncio.sleep(0.5)
    assert len(box.mails) == 2
    assert "lock number 2" in box.mails[1].get_payload(decode=True).decode()
    await service.stop_accepting()
