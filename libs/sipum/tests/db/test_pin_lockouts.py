"""PIN failures in a real PostgreSQL: counted per mailbox, concurrent failures all counted with
exactly one lock, lifted by a new PIN or by ``clear``, gone with the user; trivial PINs refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sipum.db import domains, pin_lockouts, users
from sipum.security.passwords import WeakSecretError
from sipum.security.pin_lockout import LockoutPolicy

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
POLICY = LockoutPolicy(max_failures=3, window_seconds=600, base_seconds=60, max_seconds=3600)


async def make_user(pool: asyncpg.Pool, name: str = "alice") -> users.User:
    await domains.ensure(pool, "example.com")
    return await users.create(pool, name, "example.com", "long enough 1", pin="2468")


async def test_failures_lock_after_the_limit_and_a_new_pin_lifts_it(pg_pool: asyncpg.Pool) -> None:
    alice = await make_user(pg_pool)
    bob = await make_user(pg_pool, "bob")
    for i in range(2):
        outcome = await pin_lockouts.add_failure(
            pg_pool, alice.id, T0 + timedelta(seconds=i), POLICY
        )
        assert not outcome.newly_locked
    await pin_lockouts.add_failure(pg_pool, bob.id, T0, POLICY)  # another mailbox: its own count
    outcome = await pin_lockouts.add_failure(pg_pool, alice.id, T0 + timedelta(seconds=5), POLICY)
    assert outcome.newly_locked and outcome.failures_in_window == 3
    state = await pin_lockouts.get(pg_pool, alice.id)
    assert state.locked(T0 + timedelta(seconds=64)) and not state.locked(T0 + timedelta(seconds=65))
    assert state.lockouts == 1
    assert (await pin_lockouts.get(pg_pool, bob.id)).failures == 1
    assert await users.set_pin(pg_pool, alice.id, "5820")
    assert not (await pin_lockouts.get(pg_pool, alice.id)).locked(T0)
    assert (await pin_lockouts.get(pg_pool, alice.id)).lockouts == 0
    assert await pin_lockouts.clear(pg_pool, bob.id)
    assert not await pin_lockouts.clear(pg_pool, bob.id)


async def test_concurrent_failures_are_all_counted_and_lock_once(pg_pool: asyncpg.Pool) -> None:
    alice = await make_user(pg_pool)
    policy = LockoutPolicy(max_failures=8, window_seconds=600, base_seconds=60)
    outcomes = await asyncio.gather(
        *(pin_lockouts.add_failure(pg_pool, alice.id, T0, policy) for _ in range(10))
    )
    assert sum(o.newly_locked for o in outcomes) == 1
    state = await pin_lockouts.get(pg_pool, alice.id)
    assert state.lockouts == 1 and state.failures == 2  # the two after the lock, counted


async def test_row_goes_with_the_user_and_trivial_pins_are_refused(pg_pool: asyncpg.Pool) -> None:
    alice = await make_user(pg_pool)
    await pin_lockouts.add_failure(pg_pool, alice.id, T0, POLICY)
    with pytest.raises(WeakSecretError, match="consecutive"):
        await users.set_pin(pg_pool, alice.id, "1234")
    assert (await pin_lockouts.get(pg_pool, alice.id)).failures == 1  # a refused PIN lifts nothing
    with pytest.raises(WeakSecretError, match="repeated"):
        await users.create(pg_pool, "carol", "example.com", "long enough 1", pin="7777")
    with pytest.raises(WeakSecretError, match="mailbox number"):
        await users.create(pg_pool, "4711", "example.com", "long enough 1", pin="4711")
    await pg_pool.execute("DELETE FROM users WHERE id = $1", alice.id)
    assert await pg_pool.fetchval("SELECT count(*) FROM pin_lockouts") == 0
