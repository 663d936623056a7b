"""Users and domains on a real PostgreSQL: hashing, HA1, overrides, the Kamailio view."""

from __future__ import annotations

import hashlib

import asyncpg
import pytest
from sipum.db import domains, users
from sipum.db.errors import (
    DomainInUseError,
    DomainNotFoundError,
    InvalidUsernameError,
    UserExistsError,
)
from sipum.security.passwords import WeakSecretError


async def test_domain_defaults_and_update(pg_pool: asyncpg.Pool) -> None:
    domain = await domains.create(pg_pool, "Example.COM", quota_bytes=1000, max_messages=3)
    assert domain.name == "example.com" and domain.realm == "example.com"
    assert (domain.quota_bytes, domain.max_messages, domain.ring_timeout_seconds) == (1000, 3, 10)
    changed = await domains.update(pg_pool, domain.id, ring_timeout_seconds=25)
    assert changed is not None and changed.ring_timeout_seconds == 25
    assert (await domains.ensure(pg_pool, "example.com")).id == domain.id
    assert await domains.get_by_name(pg_pool, "EXAMPLE.com") == changed
    with pytest.raises(TypeError):
        await domains.update(pg_pool, domain.id, name="evil.example")
    with pytest.raises(asyncpg.CheckViolationError):
        await domains.update(pg_pool, domain.id, quota_bytes=-1)


async def test_create_user_stores_hashes_and_ha1_never_plaintext(pg_pool: asyncpg.Pool) -> None:
    await domains.create(pg_pool, "example.com")
    alice = await users.create(
        pg_pool, "Alice", "example.com", "correct horse", email="a@example.com", pin="4711"
    )
    assert alice.address == "alice@example.com" and alice.has_pin
    assert alice.ha1 == hashlib.md5(b"alice:example.com:correct horse").hexdigest()
    assert alice.ha1b == hashlib.md5(b"alice@example.com:example.com:correct horse").hexdigest()
    assert alice.ha1_sha256 == hashlib.sha256(b"alice:example.com:correct horse").hexdigest()
    assert "correct horse" not in repr(alice) and alice.ha1 not in repr(alice)
    row = await pg_pool.fetchrow("SELECT * FROM users WHERE id = $1", alice.id)
    stored = " ".join(str(v) for v in row.values())
    assert "correct horse" not in stored and "4711" not in stored
    assert row["password_hash"].startswith("$argon2id$")
    assert row["pin_hash"].startswith("$argon2id$")

    assert await users.verify_password(pg_pool, alice.id, "correct horse")
    assert not await users.verify_password(pg_pool, alice.id, "wrong horse!")
    assert await users.verify_pin(pg_pool, alice.id, "4711")
    assert not await users.verify_pin(pg_pool, alice.id, "4712")
    assert (await users.authenticate(pg_pool, "ALICE", "example.com", "correct horse")) == alice
    assert await users.authenticate(pg_pool, "alice", "example.com", "nope nope") is None
    assert await users.authenticate(pg_pool, "nobody", "example.com", "correct horse") is None


async def test_kamailio_subscriber_view_exposes_ha1_only(pg_pool: asyncpg.Pool) -> None:
    await domains.create(pg_pool, "example.com")
    bob = await users.create(pg_pool, "bob", "example.com", "hunter22hunter")
    row = await pg_pool.fetchrow(
        "SELECT username, domain, password, ha1, ha1b, ha1_sha256 FROM kamailio_subscriber"
        " WHERE username = $1 AND domain = $2",
        "bob",
        "example.com",
    )
    assert row is not None
    assert row["password"] == ""
    assert (row["ha1"], row["ha1b"], row["ha1_sha256"]) == (bob.ha1, bob.ha1b, bob.ha1_sha256)


async def test_set_password_recomputes_ha1_and_pin_can_be_removed(pg_pool: asyncpg.Pool) -> None:
    await domains.create(pg_pool, "example.com")
    carol = await users.create(pg_pool, "carol", "example.com", "first password", pin="5820")
    assert await users.set_password(pg_pool, carol.id, "second password")
    after = await users.get(pg_pool, carol.id)
    assert after is not None
    assert after.ha1 == hashlib.md5(b"carol:example.com:second password").hexdigest()
    assert await users.verify_password(pg_pool, carol.id, "second password")
    assert not await users.verify_password(pg_pool, carol.id, "first password")
    assert await users.set_pin(pg_pool, carol.id, None)
    assert not await users.verify_pin(pg_pool, carol.id, "5820")
    assert not (await users.get(pg_pool, carol.id)).has_pin  # type: ignore[union-attr]
    assert not await users.set_password(pg_pool, 999_999, "whatever123")


async def test_create_rejects_duplicates_bad_names_and_weak_secrets(pg_pool: asyncpg.Pool) -> None:
    await domains.create(pg_pool, "example.com")
    await users.create(pg_pool, "dave", "example.com", "long enough")
    with pytest.raises(UserExistsError):
        await users.create(pg_pool, "DAVE", "example.com", "long enough")
    with pytest.raises(DomainNotFoundError):
        await users.create(pg_pool, "dave", "elsewhere.example", "long enough")
    for bad in ("da@ve", "da ve", "dave-67212-retrieve", "dave-retrieve", ""):
        with pytest.raises(InvalidUsernameError):
            await users.create(pg_pool, bad, "example.com", "long enough")
    with pytest.raises(WeakSecretError):
        await users.create(pg_pool, "erin", "example.com", "short")
    with pytest.raises(WeakSecretError):
        await users.create(pg_pool, "erin", "example.com", "long enough", pin="12a4")
    # The database enforces the username rule too, for writers that bypass this module.
    with pytest.raises(asyncpg.CheckViolationError):
        await pg_pool.execute(
            "INSERT INTO users (domain_id, username, password_hash, ha1, ha1b, ha1_sha256)"
            " SELECT id, 'x-1-retrieve', '', '', '', '' FROM domains LIMIT 1"
        )
    with pytest.raises(asyncpg.CheckViolationError):  # the main-menu URI (migration 0009)
        await pg_pool.execute(
            "INSERT INTO users (domain_id, username, password_hash, ha1, ha1b, ha1_sha256)"
            " SELECT id, 'x-retrieve', '', '', '', '' FROM domains LIMIT 1"
        )


async def test_overrides_and_effective_settings(pg_pool: asyncpg.Pool) -> None:
    domain = await domains.create(pg_pool, "example.com", ring_timeout_seconds=10, quota_bytes=500)
    erin = await users.create(pg_pool, "erin", "example.com", "long enough", ring_timeout_seconds=4)
    eff = await users.effective_settings(pg_pool, erin.id)
    assert eff is not None and (eff.ring_timeout_seconds, eff.quota_bytes) == (4, 500)
    await domains.update(pg_pool, domain.id, quota_bytes=900, ring_timeout_seconds=20)
    eff = await users.effective_settings(pg_pool, erin.id)
    assert eff is not None and (eff.ring_timeout_seconds, eff.quota_bytes) == (4, 900)
    updated = await users.update(
        pg_pool,
        erin.id,
        ring_timeout_seconds=None,
        display_name="Erin E.",
        email_attaches_audio=False,
    )
    assert updated is not None and updated.display_name == "Erin E."
    eff = await users.effective_settings(pg_pool, erin.id)
    assert eff is not None
    assert (eff.ring_timeout_seconds, eff.email_attaches_audio) == (20, False)
    with pytest.raises(TypeError):
        await users.update(pg_pool, erin.id, password_hash="x")
    assert await users.update(pg_pool, 424242, display_name="ghost") is None


async def test_list_and_delete_user_and_domain(pg_pool: asyncpg.Pool) -> None:
    a = await domains.create(pg_pool, "a.example")
    await domains.create(pg_pool, "b.example")
    u1 = await users.create(pg_pool, "zed", "a.example", "long enough")
    await users.create(pg_pool, "amy", "a.example", "long enough")
    await users.create(pg_pool, "bo", "b.example", "long enough")
    assert [u.address for u in await users.list_users(pg_pool)] == [
        "amy@a.example",
        "zed@a.example",
        "bo@b.example",
    ]
    assert [u.username for u in await users.list_users(pg_pool, domain="a.example", limit=1)] == [
        "amy"
    ]
    await pg_pool.execute(
        "INSERT INTO messages (owner_id, caller_uri, called_uri, duration_ms, codec, size_bytes,"
        " blob_key, idempotency_key) VALUES ($1, 'sip:x@y', 'sip:zed@a.example', 1, 'pcmu', 1,"
        " 'k/1', 'i1')",
        u1.id,
    )
    with pytest.raises(DomainInUseError):
        await domains.delete(pg_pool, a.id)
    assert await users.delete(pg_pool, u1.id) == ["k/1"]
    assert await users.delete(pg_pool, u1.id) is None
    assert await users.get(pg_pool, u1.id) is None
    assert await pg_pool.fetchval("SELECT count(*) FROM messages") == 0


async def test_access_number_is_no_mailbox_and_verify_no_pin_is_always_false(
    pg_pool: asyncpg.Pool,
) -> None:
    domain = await domains.ensure(pg_pool, "example.com")
    access = users.access_number("voicemail", domain.name, domain.id)
    assert (access.id, access.address, access.has_pin, access.disabled) == (
        0,
        "voicemail@example.com",
        False,
        False,
    )
    assert await users.get(pg_pool, access.id) is None  # not a row
    assert await users.effective_settings(pg_pool, access.id) is None
    assert not await users.verify_pin(pg_pool, access.id, "2468")
    assert await users.verify_no_pin("2468") is False
