"""MWI subscription dialogs in a real PostgreSQL (migration 0017): stored, refreshed, CSeq only
upwards, listed while unexpired with their mailbox, deleted, swept, gone with the user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from sipum.db import domains, mwi_subscriptions, users
from sipum.db.mwi_subscriptions import DialogKey, StoredSubscription

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


async def make_user(pool: asyncpg.Pool, name: str) -> users.User:
    await domains.ensure(pool, "example.com")
    return await users.create(pool, name, "example.com", "long enough 1")


def stored(user: users.User, n: int, *, expires_in: float = 600) -> StoredSubscription:
    return StoredSubscription(
        key=DialogKey(f"call-{n}@phone", f"ours{n}", f"theirs{n}"),
        user_id=user.id,
        event_id=None if n % 2 else f"id{n}",
        local_uri=f"<sip:{user.username}@example.com>",
        remote_uri=f"<sip:{user.username}@example.com>",
        remote_target=f"sip:{user.username}@10.0.0.{n}:5060",
        route_set=("<sip:10.0.0.1;lr>", "<sip:10.0.0.2;lr>"),
        local_seq=None,
        remote_seq=7,
        peer_transport="UDP",
        peer_host="10.0.0.1",
        peer_port=5060,
        expires_at=T0 + timedelta(seconds=expires_in),
        agent_id="agent-0",
    )


async def test_store_refresh_and_cseq_only_upwards(pg_pool: asyncpg.Pool) -> None:
    alice = await make_user(pg_pool, "alice")
    sub = stored(alice, 1)
    await mwi_subscriptions.save(pg_pool, sub)
    got = await mwi_subscriptions.get(pg_pool, sub.key)
    assert got == sub and got.username == "alice" and got.domain == "example.com"
    assert list(got.route_set) == ["<sip:10.0.0.1;lr>", "<sip:10.0.0.2;lr>"]

    later = T0 + timedelta(seconds=1200)
    assert await mwi_subscriptions.refresh(
        pg_pool,
        sub.key,
        expires_at=later,
        remote_seq=9,
        remote_target="sip:alice@10.0.0.9:5062",
        agent_id="agent-1",
    )
    assert await mwi_subscriptions.advance_local_seq(pg_pool, sub.key, 40, "agent-1")
    assert await mwi_subscriptions.advance_local_seq(pg_pool, sub.key, 12, "agent-0")  # stale
    got = await mwi_subscriptions.get(pg_pool, sub.key)
    assert got is not None
    assert (got.expires_at, got.remote_seq, got.remote_target) == (
        later,
        9,
        "sip:alice@10.0.0.9:5062",
    )
    assert got.local_seq == 40 and got.agent_id == "agent-0"
    # a late refresh with an older CSeq does not move remote_seq back
    await mwi_subscriptions.refresh(
        pg_pool, sub.key, expires_at=later, remote_seq=8, remote_target="x", agent_id="a"
    )
    assert (await mwi_subscriptions.get(pg_pool, sub.key)).remote_seq == 9  # type: ignore[union-attr]
    unknown = DialogKey("nope", "a", "b")
    assert not await mwi_subscriptions.advance_local_seq(pg_pool, unknown, 1, "a")
    assert not await mwi_subscriptions.refresh(
        pg_pool, unknown, expires_at=later, remote_seq=1, remote_target="x", agent_id="a"
    )


async def test_active_listing_delete_and_sweep(pg_pool: asyncpg.Pool) -> None:
    alice = await make_user(pg_pool, "alice")
    bob = await make_user(pg_pool, "bob")
    subs = [stored(alice, 1), stored(bob, 2, expires_in=30), stored(alice, 3, expires_in=-1)]
    for sub in subs:
        await mwi_subscriptions.save(pg_pool, sub)
    active = await mwi_subscriptions.list_active(pg_pool, T0)
    assert [s.key for s in active] == [subs[0].key, subs[1].key]  # the third ran out
    assert [s.username for s in active] == ["alice", "bob"]
    later = await mwi_subscriptions.list_active(pg_pool, T0 + timedelta(seconds=30))
    assert [s.key for s in later] == [subs[0].key]
    # saving the same dialog again replaces it (a second 200 for the same dialog)
    await mwi_subscriptions.save(pg_pool, stored(alice, 1, expires_in=5))
    assert len(await mwi_subscriptions.list_active(pg_pool, T0)) == 2
    assert await mwi_subscriptions.delete_expired(pg_pool, T0 + timedelta(seconds=10)) == 2
    assert await mwi_subscriptions.delete(pg_pool, subs[1].key)
    assert not await mwi_subscriptions.delete(pg_pool, subs[1].key)
    assert await mwi_subscriptions.list_active(pg_pool, T0) == []


async def test_rows_go_with_the_user(pg_pool: asyncpg.Pool) -> None:
    alice = await make_user(pg_pool, "alice")
    await mwi_subscriptions.save(pg_pool, stored(alice, 1))
    await pg_pool.execute("DELETE FROM users WHERE id = $1", alice.id)
    assert await mwi_subscriptions.list_active(pg_pool, T0) == []
