"""The REST API on real PostgreSQL, NATS and a filesystem blob store (httpx in-process)."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sipum.blobstore import FileBlobStore
from sipum.blobstore.keys import message_key
from sipum.config import ServiceSettings
from sipum.db import domains, messages, users
from sipum.events import MessageDeleted, MessageUpdated, UserCreated
from sipum.runtime import HealthRegistry, ServiceContext
from sipum.security.tokens import sign
from sipum_web_api.app import create_app

SECRET = "web-test-secret"


def wav(seconds: float = 1.0) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(range(256)) * int(seconds * 8000 * 2 / 256))
    return out.getvalue()


@pytest.fixture
async def api(pg_pool, event_bus, tmp_path: Path):
    await domains.ensure(pg_pool, "example.com")
    settings = ServiceSettings(domain="example.com", secret_key=SecretStr(SECRET))
    ctx = ServiceContext(
        settings=settings,
        health=HealthRegistry("web-api"),
        pool=pg_pool,
        bus=event_bus,
        blobs=FileBlobStore(tmp_path / "blobs"),
    )
    app = create_app(ctx)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.10", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client, ctx


async def add_message(
    ctx,
    owner: users.User,
    *,
    seconds: float = 1.0,
    folder: str = "inbox",
    interrupted: bool = False,
    urgent: bool = False,
) -> messages.Message:
    message_id = await messages.allocate_id(ctx.pool)
    key = message_key(owner.domain, owner.username, message_id)
    data = wav(seconds)
    await ctx.blobs.put(key, data)
    message, _ = await messages.insert_idempotent(
        ctx.pool,
        owner_id=owner.id,
        idempotency_key=f"t-{message_id}",
        caller_uri="sip:bob@example.com",
        caller_display_name="Bob",
        called_uri=f"sip:{owner.username}@example.com",
        duration_ms=int(seconds * 1000),
        codec="PCMU",
        size_bytes=len(data),
        blob_key=key,
        message_id=message_id,
        interrupted=interrupted,
        urgent=urgent,
    )
    if folder != "inbox":
        message = await messages.move(ctx.pool, owner.id, message.id, folder)
    return message


async def signup_and_login(client: httpx.AsyncClient, name: str) -> str:
    r = await client.post(
        "/api/v1/signup",
        json={
            "username": name,
            "password": f"{name}-password-1",
            "email": f"{name}@mail.test",
            "pin": "2468",
        },
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/login", json={"username": name, "password": f"{name}-password-1"}
    )
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


async def test_signup_publishes_event_and_login_sets_cookie(api, event_namespace) -> None:
    client, ctx = api
    received: list[UserCreated] = []

    async def on_user(event: UserCreated) -> None:
        received.append(event)

    await ctx.bus.subscribe(UserCreated, on_user, durable="web-test")
    r = await client.post(
        "/api/v1/signup",
        json={"username": "Alice", "password": "alice-password-1", "display_name": "Alice A"},
    )
    assert r.status_code == 201
    assert r.json()["address"] == "alice@example.com" and r.json()["has_pin"] is False
    stored = await users.get_by_address(ctx.pool, "alice", "example.com")
    assert stored is not None and stored.ha1 and "alice-password-1" not in repr(stored)
    assert (
        await client.post(
            "/api/v1/signup", json={"username": "alice", "password": "another-password"}
        )
    ).status_code == 409
    assert (
        await client.post("/api/v1/signup", json={"username": "carol", "password": "short"})
    ).status_code == 422
    assert (
        await client.post(
            "/api/v1/signup",
            json={"username": "dave", "password": "dave-password-1", "domain": "elsewhere.org"},
        )
    ).status_code == 404

    r = await client.post(
        "/api/v1/login", json={"username": "alice@example.com", "password": "alice-password-1"}
    )
    assert r.status_code == 200 and "sipum_session" in r.cookies
    cookie_me = await client.get("/api/v1/me")  # the cookie jar now holds the session
    assert cookie_me.status_code == 200 and cookie_me.json()["username"] == "alice"

    import asyncio

    for _ in range(50):
        if received:
            break
        await asyncio.sleep(0.05)
    assert [(e.username, e.domain, e.display_name) for e in received] == [
        ("alice", "example.com", "Alice A")
    ]


async def test_wrong_password_and_throttle(api) -> None:
    client, _ = api
    await client.post("/api/v1/signup", json={"username": "erin", "password": "erin-password-1"})
    for _ in range(5):
        r = await client.post(
            "/api/v1/login", json={"username": "erin", "password": "nope-nope-nope"}
        )
        assert r.status_code == 401 and r.json()["detail"] == "wrong user name or password"
    r = await client.post("/api/v1/login", json={"username": "erin", "password": "erin-password-1"})
    assert r.status_code == 429  # locked out even with the right password until the window passes
    assert (await client.get("/api/v1/me")).status_code == 401
    assert (
        await client.get("/api/v1/me", headers={"Authorization": "Bearer forged.token"})
    ).status_code == 401


async def test_mailbox_isolation_paging_and_actions(api) -> None:
    client, ctx = api
    alice_token = await signup_and_login(client, "alice")
    bob_token = await signup_and_login(client, "bob")
    client.cookies.clear()
    alice = await users.get_by_address(ctx.pool, "alice", "example.com")
    bob = await users.get_by_address(ctx.pool, "bob", "example.com")
    mine = [
        await add_message(ctx, alice, seconds=0.5, interrupted=i == 4, urgent=i == 3)
        for i in range(5)
    ]
    theirs = await add_message(ctx, bob)
    as_alice = {"Authorization": f"Bearer {alice_token}"}
    as_bob = {"Authorization": f"Bearer {bob_token}"}

    page = (await client.get("/api/v1/messages?limit=2&offset=0", headers=as_alice)).json()
    assert page["total"] == 5 and page["unheard"] == 5 and len(page["items"]) == 2
    assert [m["id"] for m in page["items"]] == [mine[4].id, mine[3].id]  # newest first
    # a message recovered after the recorder died mid-call says so
    assert [m["interrupted"] for m in page["items"]] == [True, False]
    assert [m["urgent"] for m in page["items"]] == [False, True]  # the caller pressed 4
    page2 = (await client.get("/api/v1/messages?limit=2&offset=4", headers=as_alice)).json()
    assert [m["id"] for m in page2["items"]] == [mine[0].id]
    assert (await client.get("/api/v1/messages?limit=500", headers=as_alice)).status_code == 422

    # Another user's message is "not found", never "forbidden", for every operation.
    for method, suffix, body in [
        ("GET", "", None),
        ("GET", "/audio", None),
        ("PATCH", "", {"heard": True}),
        ("DELETE", "", None),
    ]:
        r = await client.request(
            method, f"/api/v1/messages/{theirs.id}{suffix}", headers=as_alice, json=body
        )
        assert r.status_code == 404, (method, suffix, r.status_code)
    assert (await client.get(f"/api/v1/messages/{theirs.id}", headers=as_bob)).status_code == 200

    updated = (
        await client.patch(
            f"/api/v1/messages/{mine[0].id}",
            headers=as_alice,
            json={"heard": True, "folder": "saved"},
        )
    ).json()
    assert updated["heard"] is True and updated["folder"] == "saved"
    assert (await client.get("/api/v1/messages?folder=saved", headers=as_alice)).json()[
        "total"
    ] == 1
    assert (
        await client.patch(
            f"/api/v1/messages/{mine[0].id}", headers=as_alice, json={"folder": "spam"}
        )
    ).status_code == 422

    assert (
        await client.delete(f"/api/v1/messages/{mine[1].id}", headers=as_alice)
    ).status_code == 204
    assert not await ctx.blobs.exists(mines_key := mine[1].blob_key), mines_key
    assert (await client.get(f"/api/v1/messages/{mine[1].id}", headers=as_alice)).status_code == 404
    assert await ctx.blobs.exists(theirs.blob_key)


async def test_audio_ranges_and_play_token(api) -> None:
    client, ctx = api
    token = await signup_and_login(client, "alice")
    client.cookies.clear()
    alice = await users.get_by_address(ctx.pool, "alice", "example.com")
    message = await add_message(ctx, alice, seconds=1.0)
    data = await ctx.blobs.get(message.blob_key)
    auth = {"Authorization": f"Bearer {token}"}

    whole = await client.get(f"/api/v1/messages/{message.id}/audio", headers=auth)
    assert whole.status_code == 200 and whole.content == data
    assert (
        whole.headers["content-type"] == "audio/wav" and whole.headers["accept-ranges"] == "bytes"
    )
    part = await client.get(
        f"/api/v1/messages/{message.id}/audio", headers={**auth, "Range": "bytes=100-199"}
    )
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = await client.get(
        f"/api/v1/messages/{message.id}/audio", headers={**auth, "Range": "bytes=-10"}
    )
    assert tail.status_code == 206 and tail.content == data[-10:]
    beyond = await client.get(
        f"/api/v1/messages/{message.id}/audio", headers={**auth, "Range": f"bytes={len(data)}-"}
    )
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"

    link = sign(SECRET, "play", {"uid": alice.id, "mid": message.id}, ttl=60)
    assert (await client.get(f"/api/v1/messages/{message.id}/audio?token={link}")).content == data
    other = sign(SECRET, "play", {"uid": alice.id, "mid": message.id + 1}, ttl=60)
    assert (
        await client.get(f"/api/v1/messages/{message.id}/audio?token={other}")
    ).status_code == 404
    assert (
        await client.get(f"/api/v1/messages/{message.id}/audio?token=bad.token")
    ).status_code == 401
    assert (await client.get(f"/api/v1/messages/{message.id}/audio")).status_code == 401


async def test_events_for_updates_and_deletes(api) -> None:
    client, ctx = api
    token = await signup_and_login(client, "alice")
    alice = await users.get_by_address(ctx.pool, "alice", "example.com")
    message = await add_message(ctx, alice)
    seen: list[object] = []

    async def on_event(event: object) -> None:
        seen.append(event)

    await ctx.bus.subscribe(MessageUpdated, on_event, durable="web-upd")
    await ctx.bus.subscribe(MessageDeleted, on_event, durable="web-del")
    auth = {"Authorization": f"Bearer {token}"}
    await client.patch(f"/api/v1/messages/{message.id}", headers=auth, json={"heard": True})
    await client.delete(f"/api/v1/messages/{message.id}", headers=auth)
    import asyncio

    for _ in range(60):
        if len(seen) >= 2:
            break
        await asyncio.sleep(0.05)
    kinds = sorted(type(e).__name__ for e in seen)
    assert kinds == ["MessageDeleted", "MessageUpdated"]


async def test_inbox_page_and_openapi(api) -> None:
    client, _ = api
    page = await client.get("/")
    assert (
        page.status_code == 200
        and "sipum voicemail" in page.text
        and "/api/v1/messages" in page.text
    )
    spec = (await client.get("/openapi.json")).json()
    for path in (
        "/api/v1/signup",
        "/api/v1/login",
        "/api/v1/messages",
        "/api/v1/messages/{message_id}/audio",
    ):
        assert path in spec["paths"]
    # The typed dependencies (pool, bus, secret, current user, …) are no request parameters.
    audio = spec["paths"]["/api/v1/messages/{message_id}/audio"]["get"]
    assert [p["name"] for p in audio["parameters"]] == ["message_id", "token"]
    patch = spec["paths"]["/api/v1/messages/{message_id}"]["patch"]
    assert [p["name"] for p in patch["parameters"]] == ["message_id"]


def test_app_needs_every_connection_it_serves_with(tmp_path: Path) -> None:
    settings = ServiceSettings(domain="example.com", secret_key=SecretStr(SECRET))
    ctx = ServiceContext(
        settings=settings, health=HealthRegistry("web-api"), blobs=FileBlobStore(tmp_path)
    )
    with pytest.raises(RuntimeError, match="PostgreSQL"):
        create_app(ctx)
