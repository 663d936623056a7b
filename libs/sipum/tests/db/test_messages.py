"""Messages and greetings on a real PostgreSQL: idempotent insert, isolation, folders, counts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sipum.db import domains, greetings, messages, users
from sipum.db.errors import IdempotencyConflictError
from sipum.db.greetings import GreetingKind
from sipum.db.messages import Arrival, Folder
from sipum.db.users import User
from sipum.events import MessageUpdated


async def _two_users(pool: asyncpg.Pool) -> tuple[User, User]:
    await domains.create(pool, "example.com", max_messages=3, quota_bytes=10_000)
    alice = await users.create(pool, "alice", "example.com", "alice password")
    bob = await users.create(pool, "bob", "example.com", "bob password")
    return alice, bob


async def _store(
    pool: asyncpg.Pool, owner: User, key: str, **extra: object
) -> tuple[messages.Message, bool]:
    fields: dict[str, object] = {
        "caller_uri": "sip:carol@example.net",
        "caller_display_name": "Carol",
        "called_uri": f"sip:{owner.address}",
        "duration_ms": 4250,
        "codec": "PCMU",
        "size_bytes": 1000,
        "blob_key": f"messages/{owner.address}/{key}.wav",
    }
    fields.update(extra)
    return await messages.insert_idempotent(
        pool,
        owner_id=owner.id,
        idempotency_key=key,
        **fields,  # type: ignore[arg-type]
    )


async def test_updated_event_describes_the_message_as_it_is_now(pg_pool: asyncpg.Pool) -> None:
    alice, _ = await _two_users(pg_pool)
    stored, _ = await _store(pg_pool, alice, "session-u")
    moved = await messages.move(pg_pool, alice.id, stored.id, Folder.SAVED)
    assert moved is not None
    changed = ["folder"]
    event = messages.updated_event(alice, moved, changed)
    changed.append("heard")  # the event keeps its own list
    assert isinstance(event, MessageUpdated)
    assert (event.username, event.domain, event.message_id) == ("alice", "example.com", stored.id)
    assert (event.folder, event.heard, event.changed) == ("saved", False, ["folder"])
    assert MessageUpdated.model_validate_json(event.to_json()) == event


async def test_insert_is_idempotent_even_concurrently(pg_pool: asyncpg.Pool) -> None:
    alice, bob = await _two_users(pg_pool)
    first, created = await _store(pg_pool, alice, "session-1", arrival="forked")
    assert created and first.id >= 10000 and first.arrival is Arrival.FORKED
    assert first.folder is Folder.INBOX and not first.heard and first.duration_seconds == 4.25
    again, created_again = await _store(pg_pool, alice, "session-1", duration_ms=1)
    assert not created_again and again == first

    results = await asyncio.gather(*(_store(pg_pool, alice, "session-2") for _ in range(5)))
    assert sum(created for _, created in results) == 1
    assert len({m.id for m, _ in results}) == 1
    assert await pg_pool.fetchval("SELECT count(*) FROM messages") == 2

    with pytest.raises(IdempotencyConflictError):
        await _store(pg_pool, bob, "session-1")


async def test_preallocated_id_and_diversion(pg_pool: asyncpg.Pool) -> None:
    alice, _ = await _two_users(pg_pool)
    message_id = await messages.allocate_id(pg_pool)
    stored, _ = await _store(
        pg_pool,
        alice,
        "s-div",
        message_id=message_id,
        arrival=Arrival.DIVERTED,
        diversion_cause="user-busy",
        diverted_from="sip:alice@example.com",
    )
    assert stored.id == message_id and stored.diversion_cause == "user-busy"
    with pytest.raises(asyncpg.CheckViolationError):  # a cause only makes sense when diverted
        await _store(pg_pool, alice, "s-bad", arrival="direct", diversion_cause="no-answer")


async def test_other_users_ids_behave_as_missing(pg_pool: asyncpg.Pool) -> None:
    alice, bob = await _two_users(pg_pool)
    msg, _ = await _store(pg_pool, alice, "s1")
    assert await messages.get_for_user(pg_pool, alice.id, msg.id) == msg
    assert await messages.get_for_user(pg_pool, bob.id, msg.id) is None
    assert await messages.mark_heard(pg_pool, bob.id, msg.id) is None
    assert await messages.move(pg_pool, bob.id, msg.id, "trash") is None
    assert await messages.delete(pg_pool, bob.id, msg.id) is None
    assert await messages.list_for_user(pg_pool, bob.id, None) == []
    unchanged = await messages.get_for_user(pg_pool, alice.id, msg.id)
    assert unchanged == msg


async def test_folders_heard_counts_and_usage(pg_pool: asyncpg.Pool) -> None:
    alice, _ = await _two_users(pg_pool)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    stored = [
        (await _store(pg_pool, alice, f"s{i}", received_at=base + timedelta(minutes=i)))[0]
        for i in range(3)
    ]
    listed = await messages.list_for_user(pg_pool, alice.id, Folder.INBOX)
    assert [m.id for m in listed] == [m.id for m in reversed(stored)]  # newest first
    page = await messages.list_for_user(pg_pool, alice.id, "inbox", limit=1, offset=1)
    assert [m.id for m in page] == [stored[1].id]

    heard = await messages.mark_heard(pg_pool, alice.id, stored[0].id)
    assert heard is not None and heard.heard
    moved = await messages.move(pg_pool, alice.id, stored[1].id, Folder.SAVED)
    assert moved is not None and moved.folder is Folder.SAVED
    await messages.move(pg_pool, alice.id, stored[2].id, "trash")
    with pytest.raises(ValueError):
        await messages.move(pg_pool, alice.id, stored[2].id, "spam")

    counts = await messages.counts(pg_pool, alice.id)
    assert (counts.inbox.total, counts.inbox.unheard) == (1, 0)
    assert (counts.saved.total, counts.saved.unheard) == (1, 1)
    assert (counts.trash.total, counts.trash.unheard) == (1, 1)
    assert (counts.new, counts.old) == (1, 1)

    usage = await messages.usage(pg_pool, alice.id)
    assert usage is not None
    assert (usage.messages, usage.bytes, usage.max_messages) == (3, 3000, 3) and usage.full

    emptied = await messages.empty_trash(pg_pool, alice.id)
    assert [m.id for m in emptied] == [stored[2].id]
    deleted = await messages.delete(pg_pool, alice.id, stored[0].id)
    assert deleted is not None and deleted.blob_key == stored[0].blob_key
    usage = await messages.usage(pg_pool, alice.id)
    assert usage is not None and (usage.messages, usage.full) == (1, False)


async def test_greetings_put_replace_and_choice_for_call(pg_pool: asyncpg.Pool) -> None:
    alice, bob = await _two_users(pg_pool)
    g, replaced = await greetings.put(pg_pool, alice.id, "unavailable", "g/a/u1", duration_ms=900)
    assert replaced is None and g.kind is GreetingKind.UNAVAILABLE
    g2, replaced = await greetings.put(pg_pool, alice.id, GreetingKind.UNAVAILABLE, "g/a/u2")
    assert replaced == "g/a/u1" and g2.id == g.id and g2.blob_key == "g/a/u2"
    await greetings.put(pg_pool, alice.id, "busy", "g/a/b")
    assert (await greetings.for_call(pg_pool, alice.id)).blob_key == "g/a/u2"  # type: ignore[union-attr]
    assert (await greetings.for_call(pg_pool, alice.id, busy=True)).blob_key == "g/a/b"  # type: ignore[union-attr]

    now = datetime(2026, 6, 1, tzinfo=UTC)
    await greetings.put(pg_pool, alice.id, "temporary", "g/a/t", expires_at=now + timedelta(days=1))
    chosen = await greetings.for_call(pg_pool, alice.id, busy=True, now=now)
    assert chosen is not None and chosen.kind is GreetingKind.TEMPORARY
    later = await greetings.for_call(pg_pool, alice.id, now=now + timedelta(days=2))
    assert later is not None and later.kind is GreetingKind.UNAVAILABLE

    assert await greetings.get(pg_pool, bob.id, "unavailable") is None
    assert await greetings.for_call(pg_pool, bob.id) is None
    assert [x.kind for x in await greetings.list_for_user(pg_pool, alice.id)] == [
        "busy",
        "temporary",
        "unavailable",
    ]
    removed = await greetings.delete(pg_pool, alice.id, "busy")
    assert removed is not None and removed.blob_key == "g/a/b"
    assert await greetings.delete(pg_pool, alice.id, "busy") is None
    with pytest.raises(ValueError):
        await greetings.get(pg_pool, alice.id, "holiday")


async def test_interrupted_flag_is_stored_and_read_back(pg_pool: asyncpg.Pool) -> None:
    alice, _ = await _two_users(pg_pool)
    plain, _ = await _store(pg_pool, alice, "session-plain")
    cut, _ = await _store(pg_pool, alice, "session-cut", interrupted=True)
    assert plain.interrupted is False and cut.interrupted is True
    again, created = await _store(pg_pool, alice, "session-cut")  # a retry keeps the first row
    assert not created and again.interrupted is True
    fetched = await messages.get(pg_pool, cut.id)
    assert fetched is not None and fetched.interrupted is True


async def test_urgent_flag_is_stored_and_read_back(pg_pool: asyncpg.Pool) -> None:
    alice, _ = await _two_users(pg_pool)
    plain, _ = await _store(pg_pool, alice, "session-plain")
    urgent, _ = await _store(pg_pool, alice, "session-urgent", urgent=True)
    assert plain.urgent is False and urgent.urgent is True
    fetched = await messages.get(pg_pool, urgent.id)
    assert fetched is not None and fetched.urgent is True
    listed = await messages.list_for_user(pg_pool, alice.id)
    assert {m.id: m.urgent for m in listed} == {plain.id: False, urgent.id: True}
