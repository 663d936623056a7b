"""A lock whose ``mailbox.locked`` never got out (real PostgreSQL and NATS): the sweep
(``lockout.announce_untold``) publishes it with the lock's own event id once the retry interval
has passed, not again within it, and never once the owner was told (``notified_at``); a lock
published by the call itself waits a full interval; a lock still under way is left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sipum.db import pin_lockouts
from sipum.events import MailboxLocked
from sipum_media_recorder import lockout

pytestmark = pytest.mark.timeout(60)

RETRY = 30.0


async def locked(world: Any, at: datetime, policy: Any) -> Any:
    for i in range(policy.max_failures):
        outcome = await pin_lockouts.add_failure(
            world.pool, world.alice.id, at + timedelta(seconds=i), policy
        )
    assert outcome.newly_locked
    return outcome.state


async def published(world: Any) -> list[MailboxLocked]:
    return [MailboxLocked.model_validate_json(e) for e in await world.events("mailbox.locked")]


async def test_the_sweep_publishes_an_untold_lock_until_the_owner_is_told(world: Any) -> None:
    settings = world.settings(lockout_announce_retry_seconds=RETRY, pin_lockout_failures=3)
    policy = settings.lockout_policy
    t0 = datetime.now(UTC) - timedelta(seconds=2 * RETRY)
    state = await locked(world, t0, policy)  # the call's own publish was lost: nothing out

    async def sweep(at: datetime) -> int:
        return await lockout.announce_untold(
            pool=world.pool, bus=world.bus, settings=settings, recorder_id="r-sweep", now=at
        )

    assert await sweep(t0 + timedelta(seconds=RETRY - 1)) == 0  # the call may still publish
    now = t0 + timedelta(seconds=RETRY + 3)
    assert await sweep(now) == 1
    [event] = await published(world)
    assert event.id == lockout.locked_event_id(world.alice.id, state.locked_until)
    assert (event.username, event.domain, event.lockouts) == ("alice", "example.com", 1)
    assert event.locked_until == state.locked_until and event.failures == 3
    assert event.lock_seconds == policy.lock_seconds(1) and event.recorder_id == "r-sweep"
    assert await sweep(now + timedelta(seconds=RETRY / 2)) == 0  # within the interval
    # still untold an interval later: published again, the same event (JetStream drops it
    # within its duplicate window: the stream holds one)
    assert await sweep(now + timedelta(seconds=RETRY + 1)) == 1
    assert len(await published(world)) == 1
    await pin_lockouts.mark_notified(world.pool, world.alice.id, state.locked_until, now)
    assert await sweep(now + timedelta(seconds=3 * RETRY)) == 0


async def test_a_lock_published_by_its_call_is_not_repeated_while_fresh(world: Any) -> None:
    settings = world.settings(lockout_announce_retry_seconds=RETRY, pin_lockout_failures=2)
    t0 = datetime.now(UTC)
    state = await locked(world, t0, settings.lockout_policy)
    await pin_lockouts.mark_published(world.pool, world.alice.id, state.locked_until, t0)
    assert (
        await lockout.announce_untold(
            pool=world.pool, bus=world.bus, settings=settings, recorder_id="r",
            now=t0 + timedelta(seconds=RETRY - 1),
        )
        == 0
    )  # fmt: skip
    assert await published(world) == []
