"""Locks whose owner was not told (0020): a new lock is unpublished and untold; the sweep's
``claim_untold`` takes it once its last publish (or failure) is older than the retry interval,
once per interval and replica; ``notified_at`` ends it; a new lock starts over."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
from sipum.db import pin_lockouts

from .test_pin_lockouts import POLICY, T0, make_user

RETRY = timedelta(seconds=10)  # the locks of POLICY last 60 s


async def lock(pool: asyncpg.Pool, user_id: int, at=T0):  # type: ignore[no-untyped-def]
    for i in range(POLICY.max_failures):
        outcome = await pin_lockouts.add_failure(pool, user_id, at + timedelta(seconds=i), POLICY)
    assert outcome.newly_locked
    return outcome.state


async def test_an_untold_lock_is_claimed_once_per_interval_until_told(
    pg_pool: asyncpg.Pool,
) -> None:
    alice = await make_user(pg_pool)
    await make_user(pg_pool, "bob")  # no lock: never claimed
    state = await lock(pg_pool, alice.id)
    last = T0 + timedelta(seconds=2)
    # too early: the recorder's own publish may still be under way
    assert (
        await pin_lockouts.claim_untold(pg_pool, last + timedelta(seconds=9), retry_after=RETRY)
        == []
    )
    [untold] = await pin_lockouts.claim_untold(pg_pool, last + RETRY, retry_after=RETRY)
    assert (untold.user_id, untold.username, untold.domain) == (alice.id, "alice", "example.com")
    assert untold.locked_until == state.locked_until and untold.lockouts == 1
    # claimed: not again within the interval (another replica's sweep), again after it
    again = last + RETRY + timedelta(seconds=5)
    assert await pin_lockouts.claim_untold(pg_pool, again, retry_after=RETRY) == []
    assert len(await pin_lockouts.claim_untold(pg_pool, last + 2 * RETRY, retry_after=RETRY)) == 1
    assert not await pin_lockouts.notified(pg_pool, alice.id, state.locked_until)
    assert state.locked_until is not None
    await pin_lockouts.mark_notified(pg_pool, alice.id, state.locked_until, last + 2 * RETRY)
    assert await pin_lockouts.notified(pg_pool, alice.id, state.locked_until)
    assert await pin_lockouts.claim_untold(pg_pool, last + 4 * RETRY, retry_after=RETRY) == []


async def test_a_published_lock_waits_and_an_expired_one_is_not_claimed(
    pg_pool: asyncpg.Pool,
) -> None:
    alice = await make_user(pg_pool)
    state = await lock(pg_pool, alice.id)
    assert state.locked_until is not None
    published = T0 + timedelta(seconds=20)
    await pin_lockouts.mark_published(pg_pool, alice.id, state.locked_until, published)
    assert await pin_lockouts.claim_untold(pg_pool, T0 + RETRY, retry_after=RETRY) == []
    assert len(await pin_lockouts.claim_untold(pg_pool, published + RETRY, retry_after=RETRY)) == 1
    # the lock is over: nothing to tell any more
    over = state.locked_until + timedelta(seconds=1)
    assert await pin_lockouts.claim_untold(pg_pool, over + RETRY, retry_after=RETRY) == []


async def test_a_new_lock_is_untold_again(pg_pool: asyncpg.Pool) -> None:
    alice = await make_user(pg_pool)
    first = await lock(pg_pool, alice.id)
    assert first.locked_until is not None
    await pin_lockouts.mark_notified(pg_pool, alice.id, first.locked_until, T0)
    second = await lock(pg_pool, alice.id, at=first.locked_until + timedelta(seconds=1))
    assert second.lockouts == 2 and second.locked_until is not None
    assert not await pin_lockouts.notified(pg_pool, alice.id, second.locked_until)
