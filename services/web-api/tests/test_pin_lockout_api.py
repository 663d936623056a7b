"""The phone PIN lockout from the web side: trivial PINs are a 422 at signup and PIN change, a
web login or a new PIN lifts a lockout, the administrator's unlock route lifts it and says what
it was (and refuses user tokens: checked for every admin route in test_admin_api)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sipum.db import pin_lockouts, users
from sipum.security.pin_lockout import LockoutPolicy

from .test_admin_api import admin_auth
from .test_api import api, signup_and_login  # noqa: F401 - the fixture

POLICY = LockoutPolicy(max_failures=2, base_seconds=600)


async def lock(pool, user_id: int) -> None:
    now = datetime.now(UTC)
    await pin_lockouts.add_failure(pool, user_id, now, POLICY)
    outcome = await pin_lockouts.add_failure(pool, user_id, now, POLICY)
    assert outcome.newly_locked


async def test_trivial_pins_are_refused_with_a_clear_422(api) -> None:  # noqa: F811
    client, ctx = api
    for pin, why in [("1111", "repeated"), ("1234", "consecutive"), ("4711", "mailbox number")]:
        r = await client.post(
            "/api/v1/signup",
            json={"username": "bob4711", "password": "bob-password-1", "pin": pin},
        )
        assert r.status_code == 422 and why in r.json()["detail"], (pin, r.text)
    token = await signup_and_login(client, "alice")
    auth = {"Authorization": f"Bearer {token}"}
    r = await client.patch("/api/v1/account", headers=auth, json={"pin": "9876"})
    assert r.status_code == 422 and "consecutive" in r.json()["detail"]
    alice = await users.get_by_address(ctx.pool, "alice", "example.com")
    assert alice is not None and await users.verify_pin(ctx.pool, alice.id, "2468")


async def test_web_login_and_pin_change_lift_a_lockout(api) -> None:  # noqa: F811
    client, ctx = api
    token = await signup_and_login(client, "alice")
    alice = await users.get_by_address(ctx.pool, "alice", "example.com")
    assert alice is not None
    await lock(ctx.pool, alice.id)
    r = await client.post("/api/v1/login", json={"username": "alice", "password": "nope-nope-1"})
    assert r.status_code == 401
    assert (await pin_lockouts.get(ctx.pool, alice.id)).locked(datetime.now(UTC))
    r = await client.post(
        "/api/v1/login", json={"username": "alice", "password": "alice-password-1"}
    )
    assert r.status_code == 200
    assert not (await pin_lockouts.get(ctx.pool, alice.id)).locked(datetime.now(UTC))
    await lock(ctx.pool, alice.id)
    r = await client.patch(
        "/api/v1/account", headers={"Authorization": f"Bearer {token}"}, json={"pin": "5820"}
    )
    assert r.status_code == 200, r.text
    state = await pin_lockouts.get(ctx.pool, alice.id)
    assert not state.locked(datetime.now(UTC)) and state.lockouts == 0


async def test_admin_unlock(api) -> None:  # noqa: F811
    client, ctx = api
    await signup_and_login(client, "alice")
    client.cookies.clear()
    alice = await users.get_by_address(ctx.pool, "alice", "example.com")
    assert alice is not None
    await lock(ctx.pool, alice.id)
    auth = await admin_auth(client, ctx.pool)
    r = await client.post("/api/v1/admin/users/alice@example.com/unlock", headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["address"] == "alice@example.com" and body["was_locked"] and body["lockouts"] == 1
    until = datetime.fromisoformat(body["locked_until"])
    assert timedelta(seconds=500) < until - datetime.now(UTC) <= timedelta(seconds=600)
    assert not (await pin_lockouts.get(ctx.pool, alice.id)).locked(datetime.now(UTC))
    r = await client.post("/api/v1/admin/users/alice@example.com/unlock", headers=auth)
    assert r.json()["was_locked"] is False and r.json()["locked_until"] is None
    r = await client.post("/api/v1/admin/users/nobody@example.com/unlock", headers=auth)
    assert r.status_code == 404
