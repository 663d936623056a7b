"""The administrator's REST API: its own login and token; every admin route refuses a user's
token (403) and no token (401), checked over the OpenAPI document; domains and their defaults,
users and their overrides (effective values follow), resets, quota report, status."""

from __future__ import annotations

import httpx
import pytest
from sipum.db import admins, users
from sipum.events import UserUpdated

from .test_api import add_message, api, signup_and_login  # noqa: F401 - the fixture


async def admin_auth(client: httpx.AsyncClient, pool) -> dict[str, str]:
    await admins.create(pool, "root", "admin-password-1")
    r = await client.post(
        "/api/v1/admin/login", json={"username": "root", "password": "admin-password-1"}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def admin_routes(spec: dict) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        if path.startswith("/api/v1/admin/") and path != "/api/v1/admin/login"
        for method in ops
    ]


async def test_every_admin_route_refuses_user_tokens_and_no_token(api) -> None:  # noqa: F811
    client, ctx = api
    user_token = {"Authorization": f"Bearer {await signup_and_login(client, 'alice')}"}
    client.cookies.clear()
    spec = (await client.get("/openapi.json")).json()
    routes = admin_routes(spec)
    assert len(routes) >= 12, routes
    for method, path in routes:
        concrete = (
            path.replace("{name}", "example.com")
            .replace("{address}", "alice@example.com")
            .replace("{webhook_id}", "1")
        )
        body = {} if method in ("POST", "PATCH") else None
        r = await client.request(method, concrete, headers=user_token, json=body)
        assert r.status_code == 403, (method, path, r.status_code)
        r = await client.request(method, concrete, json=body)
        assert r.status_code == 401, (method, path, r.status_code)
    # and an administrator's token is no user session
    auth = await admin_auth(client, ctx.pool)
    assert (await client.get("/api/v1/messages", headers=auth)).status_code == 401


async def test_wrong_admin_password_is_401_and_throttled(api) -> None:  # noqa: F811
    client, ctx = api
    await admins.create(ctx.pool, "root", "admin-password-1")
    for _ in range(5):
        r = await client.post("/api/v1/admin/login", json={"username": "root", "password": "nope"})
        assert r.status_code == 401
    r = await client.post(
        "/api/v1/admin/login", json={"username": "root", "password": "admin-password-1"}
    )
    assert r.status_code == 429


async def test_defaults_overrides_and_the_effective_value(api, event_namespace) -> None:  # noqa: F811
    client, ctx = api
    auth = await admin_auth(client, ctx.pool)
    updates: list[UserUpdated] = []

    async def on_update(e: UserUpdated) -> None:
        updates.append(e)

    await ctx.bus.subscribe(UserUpdated, on_update, durable="admin-test")
    r = await client.post(
        "/api/v1/admin/domains",
        headers=auth,
        json={"name": "Voice.Test", "ring_timeout_seconds": 5},
    )
    assert (
        r.status_code == 201
        and r.json()["name"] == "voice.test"
        and r.json()["ring_timeout_seconds"] == 5
    )
    assert (
        await client.post("/api/v1/admin/domains", headers=auth, json={"name": "voice.test"})
    ).status_code == 409
    r = await client.post(
        "/api/v1/admin/users", headers=auth,
        json={"address": "carol@voice.test", "password": "carol-password-1", "email": "c@mail.test"},
    )  # fmt: skip
    assert r.status_code == 201 and r.json()["overrides"] == {}
    carol = await users.get_by_address(ctx.pool, "carol", "voice.test")
    assert carol is not None
    r = await client.patch(
        "/api/v1/admin/users/carol@voice.test", headers=auth, json={"ring_timeout_seconds": 20}
    )
    assert r.status_code == 200 and r.json()["overrides"] == {"ring_timeout_seconds": 20}
    assert (await users.effective_settings(ctx.pool, carol.id)).ring_timeout_seconds == 20
    r = await client.patch(
        "/api/v1/admin/users/carol@voice.test", headers=auth, json={"ring_timeout_seconds": None}
    )
    assert r.json()["overrides"] == {}
    assert (await users.effective_settings(ctx.pool, carol.id)).ring_timeout_seconds == 5
    r = await client.patch(
        "/api/v1/admin/domains/voice.test", headers=auth, json={"ring_timeout_seconds": 7}
    )
    assert (
        r.status_code == 200
        and (await users.effective_settings(ctx.pool, carol.id)).ring_timeout_seconds == 7
    )
    # each domain its registrar (domain only: a user cannot have one)
    r = await client.patch(
        "/api/v1/admin/domains/voice.test", headers=auth, json={"registrar": "kam.voice.test:5080"}
    )
    assert r.status_code == 200 and r.json()["registrar"] == "kam.voice.test:5080"
    r = await client.patch(
        "/api/v1/admin/domains/voice.test", headers=auth, json={"registrar": "sips:kam.voice.test"}
    )
    assert r.status_code == 422 and "registrar" in r.text
    r = await client.patch(
        "/api/v1/admin/users/carol@voice.test", headers=auth, json={"registrar": "kam.voice.test"}
    )
    assert r.status_code == 422
    r = await client.patch(
        "/api/v1/admin/domains/voice.test", headers=auth, json={"registrar": None}
    )
    assert r.status_code == 200 and r.json()["registrar"] is None
    # bounds and unknown settings
    for bad in ({"ring_timeout_seconds": 100000}, {"volume": 3}, {"email_audio_format": "ogg"}):
        r = await client.patch("/api/v1/admin/users/carol@voice.test", headers=auth, json=bad)
        assert r.status_code == 422, bad
    assert (
        await client.patch("/api/v1/admin/users/nobody@voice.test", headers=auth, json={})
    ).status_code == 404
    import asyncio

    for _ in range(100):
        if len(updates) >= 2:
            break
        await asyncio.sleep(0.05)
    assert [u.changed for u in updates] == [["ring_timeout_seconds"], ["ring_timeout_seconds"]]


async def test_user_list_search_paging_and_domains_kept_apart(api) -> None:  # noqa: F811
    client, ctx = api
    auth = await admin_auth(client, ctx.pool)
    await client.post("/api/v1/admin/domains", headers=auth, json={"name": "other.test"})
    for address in ("ann@example.com", "bea@example.com", "cid@example.com", "ann@other.test"):
        r = await client.post(
            "/api/v1/admin/users",
            headers=auth,
            json={"address": address, "password": "long-password-1"},
        )
        assert r.status_code == 201
    page = (await client.get("/api/v1/admin/users?domain=example.com&limit=2", headers=auth)).json()
    assert page["total"] == 3 and [u["address"] for u in page["items"]] == [
        "ann@example.com",
        "bea@example.com",
    ]
    page = (
        await client.get("/api/v1/admin/users?domain=example.com&limit=2&offset=2", headers=auth)
    ).json()
    assert [u["address"] for u in page["items"]] == ["cid@example.com"]
    page = (await client.get("/api/v1/admin/users?q=ann", headers=auth)).json()
    assert sorted(u["address"] for u in page["items"]) == ["ann@example.com", "ann@other.test"]
    page = (await client.get("/api/v1/admin/users?q=%25", headers=auth)).json()  # a literal %
    assert page["total"] == 0
    r = await client.delete("/api/v1/admin/domains/other.test", headers=auth)
    assert r.status_code == 409  # it has a user
    r = await client.delete("/api/v1/admin/domains/other.test?with_users=true", headers=auth)
    assert r.status_code == 204
    assert await users.get_by_address(ctx.pool, "ann", "other.test") is None
    assert await users.get_by_address(ctx.pool, "ann", "example.com") is not None


async def test_resets_quota_report_status_and_delete(api) -> None:  # noqa: F811
    client, ctx = api
    auth = await admin_auth(client, ctx.pool)
    await signup_and_login(client, "alice")
    client.cookies.clear()
    alice = await users.get_by_address(ctx.pool, "alice", "example.com")
    await users.update(ctx.pool, alice.id, max_messages=4)
    await add_message(ctx, alice, seconds=1.0)
    await add_message(ctx, alice, seconds=1.0)
    r = await client.post(
        "/api/v1/admin/users/alice@example.com/password",
        headers=auth,
        json={"password": "brand-new-pass-9"},
    )
    assert r.status_code == 204
    assert (
        await users.authenticate(ctx.pool, "alice", "example.com", "brand-new-pass-9") is not None
    )
    assert (
        await client.post(
            "/api/v1/admin/users/alice@example.com/password",
            headers=auth,
            json={"password": "short"},
        )
    ).status_code == 422
    r = await client.post(
        "/api/v1/admin/users/alice@example.com/pin", headers=auth, json={"pin": "8642"}
    )
    assert r.status_code == 204 and await users.verify_pin(ctx.pool, alice.id, "8642")
    [line] = (await client.get("/api/v1/admin/quotas", headers=auth)).json()
    assert (
        line["address"] == "alice@example.com" and line["messages"] == 2 and line["percent"] == 50.0
    )
    status = (await client.get("/api/v1/admin/status", headers=auth)).json()
    assert status["users"] == 1 and status["messages"] == 2 and status["stream_events"] >= 1
    r = await client.delete("/api/v1/admin/users/alice@example.com", headers=auth)
    assert r.status_code == 204
    assert await users.get(ctx.pool, alice.id) is None


@pytest.mark.parametrize("value", ["nocolon", ":password-only", "root:short"])
async def test_bootstrap_admin_refuses_bad_values(pg_pool, value: str) -> None:
    from pydantic import SecretStr
    from sipum.errors import ConfigError
    from sipum_web_api.service import bootstrap_admin

    with pytest.raises(ConfigError, match="bootstrap_admin"):
        await bootstrap_admin(pg_pool, SecretStr(value))
    assert await admins.count(pg_pool) == 0


async def test_bootstrap_admin_only_while_there_is_none(pg_pool) -> None:
    from pydantic import SecretStr
    from sipum_web_api.service import bootstrap_admin

    await bootstrap_admin(pg_pool, SecretStr("root:admin-password-1"))
    await bootstrap_admin(pg_pool, SecretStr("other:admin-password-2"))
    assert await admins.count(pg_pool) == 1
    assert await admins.authenticate(pg_pool, "root", "admin-password-1") is not None
