"""Account management (GET/PATCH/DELETE /api/v1/account) on real PostgreSQL, NATS and S3
(moto_server): the changes, the events other services act on, re-authentication, the order of
a deletion, and bounded request bodies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr
from sipum.blobstore import BlobStore, S3BlobStore
from sipum.blobstore.keys import greeting_key, message_key
from sipum.config import ServiceSettings
from sipum.db import domains, greetings, messages, users
from sipum.events import (
    RegistrationChanged,
    UserDeleted,
    UserUpdated,
    stable_event_id,
)
from sipum.runtime import HealthRegistry, ServiceContext
from sipum.security.passwords import digest_credentials
from sipum.security.tokens import sign
from sipum_testing.s3 import ACCESS_KEY, REGION, SECRET_KEY, MotoServer
from sipum_web_api.app import create_app

pytestmark = pytest.mark.timeout(60)
SECRET = "account-test-secret"
DOMAIN = "example.com"


def s3_store(server: MotoServer, bucket: str) -> S3BlobStore:
    return S3BlobStore(
        endpoint=server.endpoint,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        bucket=bucket,
        region=REGION,
    )


class Api:
    """The app in-process (httpx) with its context, as the runtime would build it."""

    def __init__(self, client: httpx.AsyncClient, ctx: ServiceContext, app: Any) -> None:
        self.client = client
        self.ctx = ctx
        self.app = app

    async def signup(self, name: str, pin: str = "2468") -> tuple[users.User, dict[str, str]]:
        r = await self.client.post(
            "/api/v1/signup",
            json={
                "username": name,
                "password": f"{name}-password-1",
                "email": f"{name}@mail.test",
                "display_name": name.title(),
                "pin": pin,
            },
        )
        assert r.status_code == 201, r.text
        token = await self.login(name, f"{name}-password-1")
        assert token is not None
        self.client.cookies.clear()  # every request below says who it is by its bearer token
        user = await users.get_by_address(self.ctx.pool, name, DOMAIN)
        assert user is not None
        return user, {"Authorization": f"Bearer {token}"}

    async def login(self, name: str, password: str) -> str | None:
        r = await self.client.post("/api/v1/login", json={"username": name, "password": password})
        return str(r.json()["access_token"]) if r.status_code == 200 else None


@pytest.fixture
async def api(pg_pool, event_bus, moto_server: MotoServer, s3_bucket: str) -> AsyncIterator[Api]:
    await domains.ensure(pg_pool, DOMAIN)
    blobs = s3_store(moto_server, s3_bucket)
    await blobs.check()
    ctx = ServiceContext(
        settings=ServiceSettings(domain=DOMAIN, secret_key=SecretStr(SECRET)),
        health=HealthRegistry("web-api"),
        pool=pg_pool,
        bus=event_bus,
        blobs=blobs,
    )
    app = create_app(ctx)
    app.state.web.deregister_wait = 0.3  # no registrar-agent here unless a test plays one
    transport = httpx.ASGITransport(app=app, client=("192.0.2.20", 41000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Api(client, ctx, app)
    await blobs.close()


async def collect(bus: Any, model: type, durable: str) -> list[Any]:
    seen: list[Any] = []

    async def on_event(event: Any) -> None:
        seen.append(event)

    await bus.subscribe(model, on_event, durable=durable)
    return seen


async def wait_until(predicate: Callable[[], bool], limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def password_row(pool: Any, user_id: int) -> tuple[str, str, str, str]:
    row = await pool.fetchrow(
        "SELECT password_hash, ha1, ha1b, ha1_sha256 FROM users WHERE id = $1", user_id
    )
    return tuple(row)  # type: ignore[return-value]


async def test_get_and_patch_profile_fields_publish_user_updated(api: Api) -> None:
    updates = await collect(api.ctx.bus, UserUpdated, "acct-upd")
    alice, auth = await api.signup("alice")

    r = await api.client.get("/api/v1/account", headers=auth)
    assert r.status_code == 200
    assert r.json() == {
        "id": alice.id,
        "username": "alice",
        "domain": DOMAIN,
        "address": "alice@example.com",
        "display_name": "Alice",
        "email": "alice@mail.test",
        "has_pin": True,
        "email_attaches_audio": True,  # the domain's default
        "email_audio_format": "wav",
    }
    assert (await api.client.get("/api/v1/account")).status_code == 401
    spec = (await api.client.get("/openapi.json")).json()
    assert set(spec["paths"]["/api/v1/account"]) == {"get", "patch", "delete"}

    r = await api.client.patch(
        "/api/v1/account", headers=auth, json={"display_name": "Alice Liddell"}
    )
    assert r.status_code == 200 and r.json()["display_name"] == "Alice Liddell"
    r = await api.client.patch("/api/v1/account", headers=auth, json={"email": "a@wonder.land"})
    assert r.json()["email"] == "a@wonder.land"
    r = await api.client.patch(
        "/api/v1/account", headers=auth, json={"email_attaches_audio": False}
    )
    assert r.json()["email_attaches_audio"] is False
    effective = await users.effective_settings(api.ctx.pool, alice.id)
    assert effective is not None and effective.email_attaches_audio is False
    r = await api.client.patch("/api/v1/account", headers=auth, json={"email": None})
    assert r.json()["email"] is None  # no more notifications
    r = await api.client.patch("/api/v1/account", headers=auth, json={"pin": "13579"})
    assert r.status_code == 200 and r.json()["has_pin"] is True
    assert "sipum_session" not in r.cookies  # only a password change replaces the session
    assert await users.verify_pin(api.ctx.pool, alice.id, "13579")
    assert not await users.verify_pin(api.ctx.pool, alice.id, "2468")
    # Same value again, and an empty body: nothing changes, nothing is published.
    r = await api.client.patch(
        "/api/v1/account", headers=auth, json={"display_name": "Alice Liddell"}
    )
    assert r.status_code == 200
    assert (await api.client.patch("/api/v1/account", headers=auth, json={})).status_code == 200

    await wait_until(lambda: len(updates) >= 5)
    await asyncio.sleep(0.2)  # nothing more may come
    assert [(e.username, e.domain, e.changed) for e in updates] == [
        ("alice", DOMAIN, ["display_name"]),
        ("alice", DOMAIN, ["email"]),
        ("alice", DOMAIN, ["email_attaches_audio"]),
        ("alice", DOMAIN, ["email"]),
        ("alice", DOMAIN, ["pin"]),
    ]
    assert [(e.display_name, e.email) for e in updates] == [
        ("Alice Liddell", "alice@mail.test"),
        ("Alice Liddell", "a@wonder.land"),
        ("Alice Liddell", "a@wonder.land"),
        ("Alice Liddell", None),
        ("Alice Liddell", None),
    ]
    assert all("13579" not in e.model_dump_json() for e in updates)  # names, never values


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"pin": "12a4"}, "PIN must be 4 to 12 digits"),
        ({"pin": "123"}, "PIN must be 4 to 12 digits"),
        ({"pin": "1234567890123"}, "PIN must be 4 to 12 digits"),
        ({"pin": "１２３４"}, "PIN must be 4 to 12 digits"),  # full-width digits
        ({"pin": None}, "pin cannot be removed"),
        ({"display_name": None}, "display_name cannot be null"),
        ({"display_name": "x" * 129}, "at most 128 characters"),
        ({"email": "not-an-address"}, "should match pattern"),
        ({"password": "new-password-1"}, "Extra inputs are not permitted"),
        ({"new_password": "new-password-1"}, "needs current_password"),
        ({"current_password": "alice-password-1"}, "only needed with new_password"),
        (
            {"new_password": "short", "current_password": "alice-password-1"},
            "at least 8 characters",
        ),
        ({"email_attaches_audio": "maybe"}, "valid boolean"),
    ],
)
async def test_patch_refuses_bad_input_and_changes_nothing(
    api: Api, body: dict[str, Any], why: str
) -> None:
    alice, auth = await api.signup("alice")
    before = await password_row(api.ctx.pool, alice.id)
    r = await api.client.patch("/api/v1/account", headers=auth, json={"display_name": "X", **body})
    assert r.status_code == 422, r.text
    assert why in r.text
    after = await users.get(api.ctx.pool, alice.id)
    assert after is not None and after.display_name == "Alice" and after.email == "alice@mail.test"
    assert await password_row(api.ctx.pool, alice.id) == before
    assert await users.verify_pin(api.ctx.pool, alice.id, "2468")


async def test_password_change_replaces_login_and_sip_credentials(api: Api) -> None:
    updates = await collect(api.ctx.bus, UserUpdated, "acct-pw")
    alice, auth = await api.signup("alice")
    other_session = await api.login("alice", "alice-password-1")  # e.g. a stolen token
    api.client.cookies.clear()
    old = await password_row(api.ctx.pool, alice.id)

    r = await api.client.patch(
        "/api/v1/account",
        headers=auth,
        json={"current_password": "alice-password-1", "new_password": "looking-glass-2"},
    )
    assert r.status_code == 200, r.text
    # Every session issued before the change ends; the caller gets a new cookie.
    new_cookie = r.cookies.get("sipum_session")
    assert new_cookie
    api.client.cookies.clear()
    for token in (auth["Authorization"][7:], other_session):
        bearer = {"Authorization": f"Bearer {token}"}
        assert (await api.client.get("/api/v1/account", headers=bearer)).status_code == 401
    api.client.cookies.set("sipum_session", new_cookie)
    assert (await api.client.get("/api/v1/account")).json()["username"] == "alice"
    api.client.cookies.clear()
    new = await password_row(api.ctx.pool, alice.id)
    creds = digest_credentials("alice", DOMAIN, alice.realm, "looking-glass-2")
    assert new[1:] == (creds.ha1, creds.ha1b, creds.ha1_sha256)  # Kamailio's view reads these
    assert all(n != o for n, o in zip(new, old, strict=True))
    assert new[0].startswith("$argon2id$")
    assert await api.login("alice", "alice-password-1") is None
    fresh = await api.login("alice", "looking-glass-2")
    assert fresh is not None
    r = await api.client.get("/api/v1/account", headers={"Authorization": f"Bearer {fresh}"})
    assert r.status_code == 200
    await wait_until(lambda: len(updates) == 1)
    assert updates[0].changed == ["password"] and updates[0].username == "alice"
    assert "looking-glass" not in updates[0].model_dump_json()


async def test_wrong_current_password_is_403_changes_nothing_and_is_throttled(api: Api) -> None:
    updates = await collect(api.ctx.bus, UserUpdated, "acct-wrong")
    alice, auth = await api.signup("alice")
    before = await password_row(api.ctx.pool, alice.id)
    for _ in range(5):
        r = await api.client.patch(
            "/api/v1/account",
            headers=auth,
            json={
                "current_password": "guess-guess-guess",
                "new_password": "mallory-was-here",
                "pin": "9753",
                "display_name": "Mallory",
            },
        )
        assert r.status_code == 403 and r.json()["detail"] == "the current password is wrong"
    assert await password_row(api.ctx.pool, alice.id) == before
    stored = await users.get(api.ctx.pool, alice.id)
    assert stored is not None and stored.display_name == "Alice"
    assert await users.verify_pin(api.ctx.pool, alice.id, "2468")
    # Locked out like failed logins, even with the right password now — and login too.
    r = await api.client.patch(
        "/api/v1/account",
        headers=auth,
        json={"current_password": "alice-password-1", "new_password": "looking-glass-2"},
    )
    assert r.status_code == 429
    r = await api.client.post(
        "/api/v1/login", json={"username": "alice", "password": "alice-password-1"}
    )
    assert r.status_code == 429
    r = await api.client.request(
        "DELETE", "/api/v1/account", headers=auth, json={"password": "alice-password-1"}
    )
    assert r.status_code == 429
    assert await users.get(api.ctx.pool, alice.id) is not None
    await asyncio.sleep(0.3)
    assert updates == []


async def add_message(ctx: ServiceContext, owner: users.User, data: bytes) -> messages.Message:
    message_id = await messages.allocate_id(ctx.pool)
    key = message_key(owner.domain, owner.username, message_id)
    await ctx.blobs.put(key, data, content_type="audio/wav")
    message, _ = await messages.insert_idempotent(
        ctx.pool,
        owner_id=owner.id,
        idempotency_key=f"acct-{message_id}",
        caller_uri="sip:bob@example.com",
        called_uri=f"sip:{owner.username}@{DOMAIN}",
        duration_ms=1000,
        codec="PCMU",
        size_bytes=len(data),
        blob_key=key,
        message_id=message_id,
    )
    return message


async def add_greeting(ctx: ServiceContext, owner: users.User, kind: str) -> str:
    key = greeting_key(owner.domain, owner.username, kind)
    await ctx.blobs.put(key, b"RIFF-greeting", content_type="audio/wav")
    await greetings.put(ctx.pool, owner.id, kind, key, size_bytes=13)
    return key


async def mailbox_keys(blobs: BlobStore, user: users.User) -> list[str]:
    return await blobs.list_keys(f"messages/{DOMAIN}/{user.username}/") + await blobs.list_keys(
        f"greetings/{DOMAIN}/{user.username}/"
    )


async def test_delete_account_event_first_then_rows_then_blobs(api: Api) -> None:
    ctx = api.ctx
    alice, auth = await api.signup("alice")
    bob, bob_auth = await api.signup("bob")
    alice_messages = [await add_message(ctx, alice, b"RIFF-alice") for _ in range(3)]
    await add_greeting(ctx, alice, "unavailable")
    await add_greeting(ctx, alice, "temporary")
    # A blob no row names (e.g. left by a crash): the deletion sweeps the user's prefixes.
    await ctx.blobs.put(message_key(DOMAIN, "alice", 999_999_999), b"orphan")
    bob_message = await add_message(ctx, bob, b"RIFF-bob")
    bob_greeting = await add_greeting(ctx, bob, "unavailable")
    assert len(await mailbox_keys(ctx.blobs, alice)) == 6

    # The registrar-agent's part, played here: on user.deleted it de-registers (Kamailio
    # checks that request against the row, so the row must still be there) and reports it.
    seen_at_event: list[tuple[UserDeleted, bool, int]] = []

    async def agent(event: UserDeleted) -> None:
        row = await users.get(ctx.pool, alice.id)
        count = await ctx.pool.fetchval(
            "SELECT count(*) FROM messages WHERE owner_id = $1", alice.id
        )
        seen_at_event.append((event, row is not None, count))
        await asyncio.sleep(0.2)  # the de-REGISTER's round trip
        await ctx.bus.publish(
            RegistrationChanged(
                username=event.username,
                domain=event.domain,
                state="unregistered",
                registrar="sip:127.0.0.1",
                status_code=200,
            )
        )

    await ctx.bus.subscribe(UserDeleted, agent, durable="fake-agent")

    def confirmed() -> float:
        sample = REGISTRY.get_sample_value(
            "sipum_web_accounts_deleted_total", {"deregistration": "confirmed"}
        )
        return sample or 0.0

    confirmed_before = confirmed()
    api.app.state.web.deregister_wait = 10.0
    api.client.cookies.set("sipum_session", auth["Authorization"][7:])
    started = time.monotonic()
    r = await api.client.request(
        "DELETE", "/api/v1/account", headers=auth, json={"password": "alice-password-1"}
    )
    elapsed = time.monotonic() - started
    assert r.status_code == 204, r.text
    assert 'sipum_session=""' in r.headers["set-cookie"]  # the browser's cookie is cleared
    # The agent saw the event while alice and her messages were all still there, and the
    # deletion went on as soon as it confirmed (not after the whole 10 s wait).
    assert confirmed() == confirmed_before + 1
    ((event, row_there, count),) = seen_at_event
    assert (event.username, event.domain) == ("alice", DOMAIN)
    assert event.id == stable_event_id("user.deleted", alice.id)
    assert row_there and count == 3
    assert 0.2 <= elapsed < 5.0

    assert await users.get(ctx.pool, alice.id) is None
    for message in alice_messages:
        assert await messages.get(ctx.pool, message.id) is None
    assert await greetings.list_for_user(ctx.pool, alice.id) == []
    assert await mailbox_keys(ctx.blobs, alice) == []
    # Bob's mailbox is untouched.
    assert await messages.get(ctx.pool, bob_message.id) is not None
    assert await ctx.blobs.exists(bob_message.blob_key) and await ctx.blobs.exists(bob_greeting)
    assert (await api.client.get("/api/v1/account", headers=bob_auth)).status_code == 200
    # Alice's token and cookie no longer work, nor does her password.
    assert (await api.client.get("/api/v1/account", headers=auth)).status_code == 401
    api.client.cookies.set("sipum_session", auth["Authorization"][7:])
    assert (await api.client.get("/api/v1/me")).status_code == 401
    api.client.cookies.clear()
    assert (await api.client.get("/api/v1/messages", headers=auth)).status_code == 401
    assert await api.login("alice", "alice-password-1") is None
    # The stream kept exactly one user.deleted, alice's.
    stored = await ctx.bus.js.get_last_msg(ctx.bus.stream, ctx.bus.subjects.event("user.deleted"))
    assert UserDeleted.model_validate_json(stored.data).username == "alice"


async def test_delete_without_agent_waits_bounded_then_deletes(api: Api) -> None:
    alice, auth = await api.signup("alice")
    api.app.state.web.deregister_wait = 0.5
    started = time.monotonic()
    r = await api.client.request(
        "DELETE", "/api/v1/account", headers=auth, json={"password": "alice-password-1"}
    )
    assert r.status_code == 204
    assert 0.5 <= time.monotonic() - started < 3.0
    assert await users.get(api.ctx.pool, alice.id) is None


async def test_delete_needs_the_password_and_touches_only_the_callers_account(api: Api) -> None:
    deleted = await collect(api.ctx.bus, UserDeleted, "acct-del")
    alice, alice_auth = await api.signup("alice")
    bob, bob_auth = await api.signup("bob")
    message = await add_message(api.ctx, alice, b"RIFF-alice")

    for body in ({"password": "wrong-password"}, {"password": "bob-password-1"}):
        r = await api.client.request("DELETE", "/api/v1/account", headers=alice_auth, json=body)
        assert r.status_code == 403
    # Bob's token with Alice's password: it is Bob's account that is asked for, and refused.
    r = await api.client.request(
        "DELETE", "/api/v1/account", headers=bob_auth, json={"password": "alice-password-1"}
    )
    assert r.status_code == 403
    r = await api.client.patch(
        "/api/v1/account",
        headers=bob_auth,
        json={"current_password": "alice-password-1", "new_password": "taken-over-1"},
    )
    assert r.status_code == 403
    # Bob changing his own name changes only his.
    r = await api.client.patch("/api/v1/account", headers=bob_auth, json={"display_name": "B"})
    assert r.json()["username"] == "bob"
    for bad in (None, {}, {"password": 12}, {"password": "x", "extra": 1}):
        r = await api.client.request("DELETE", "/api/v1/account", headers=alice_auth, json=bad)
        assert r.status_code == 422
    r = await api.client.request(
        "DELETE",
        "/api/v1/account",
        headers={**alice_auth, "content-type": "application/json"},
        content=b'{"password": ',
    )
    assert r.status_code == 422
    assert (
        await api.client.request("DELETE", "/api/v1/account", json={"password": "x"})
    ).status_code == 401

    stored_alice = await users.get(api.ctx.pool, alice.id)
    stored_bob = await users.get(api.ctx.pool, bob.id)
    assert stored_alice is not None and stored_alice.display_name == "Alice"
    assert stored_bob is not None and stored_bob.display_name == "B"
    assert await messages.get(api.ctx.pool, message.id) is not None
    assert await api.ctx.blobs.exists(message.blob_key)
    assert await api.login("alice", "alice-password-1") is not None
    await asyncio.sleep(0.3)
    assert deleted == []  # a refused deletion publishes nothing


async def test_blob_store_failure_still_deletes_the_whole_account_in_the_db(
    api: Api, moto_server: MotoServer
) -> None:
    alice, auth = await api.signup("alice")
    message = await add_message(api.ctx, alice, b"RIFF-alice")
    key = await add_greeting(api.ctx, alice, "busy")
    good = api.ctx.blobs
    left_before = REGISTRY.get_sample_value("sipum_web_account_blobs_left_total") or 0.0
    # The web-api's blob store refuses now (its bucket is not there): real S3 errors.
    web = api.app.state.web
    web.blobs = broken = s3_store(moto_server, "no-such-bucket-here")
    try:
        r = await api.client.request(
            "DELETE", "/api/v1/account", headers=auth, json={"password": "alice-password-1"}
        )
    finally:
        await broken.close()
        web.blobs = good
    assert r.status_code == 204
    assert await users.get(api.ctx.pool, alice.id) is None
    assert await messages.get(api.ctx.pool, message.id) is None
    assert await greetings.list_for_user(api.ctx.pool, alice.id) == []
    # The audio is left as unreferenced blobs (logged, counted), nothing half-deleted in the
    # database.
    assert await good.exists(message.blob_key) and await good.exists(key)
    assert REGISTRY.get_sample_value("sipum_web_account_blobs_left_total") == left_before + 2


async def test_request_bodies_are_bounded(api: Api) -> None:
    alice, auth = await api.signup("alice")
    big = {"display_name": "x" * (80 * 1024)}
    r = await api.client.patch("/api/v1/account", headers=auth, json=big)
    assert r.status_code == 413 and "larger than 64 KiB" in r.json()["detail"]

    async def chunked() -> AsyncIterator[bytes]:
        yield b'{"display_name": "'
        for _ in range(100):
            yield b"y" * 1024
        yield b'"}'

    r = await api.client.patch(
        "/api/v1/account",
        headers={**auth, "content-type": "application/json"},
        content=chunked(),
    )
    assert r.status_code == 413
    r = await api.client.post("/api/v1/login", content=b"{" * 70_000)
    assert r.status_code == 413
    stored = await users.get(api.ctx.pool, alice.id)
    assert stored is not None and stored.display_name == "Alice"
    # Within the bound everything works as before.
    r = await api.client.patch("/api/v1/account", headers=auth, json={"display_name": "z" * 128})
    assert r.status_code == 200


async def test_session_tokens_name_the_credentials(api: Api) -> None:
    alice, auth = await api.signup("alice")
    assert (await api.client.get("/api/v1/account", headers=auth)).status_code == 200
    # Signed with the right secret and for the right user, but not naming her credentials
    # (as tokens from before credentials stamps, or made up): refused.
    for claims in ({"uid": alice.id}, {"uid": alice.id, "pw": "0" * 16}):
        token = sign(SECRET, "session", claims, ttl=60)
        r = await api.client.get("/api/v1/account", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401


async def test_the_attachment_format_is_a_setting_of_ones_own(api) -> None:
    alice, auth = await api.signup("alice")
    r = await api.client.patch("/api/v1/account", headers=auth, json={"email_audio_format": "mp3"})
    assert r.status_code == 200 and r.json()["email_audio_format"] == "mp3"
    effective = await users.effective_settings(api.ctx.pool, alice.id)
    assert effective is not None and effective.email_audio_format == "mp3"
    r = await api.client.patch("/api/v1/account", headers=auth, json={"email_audio_format": "ogg"})
    assert r.status_code == 422
    r = await api.client.patch("/api/v1/account", headers=auth, json={"email_audio_format": None})
    assert r.json()["email_audio_format"] == "wav"  # back to the domain's default
