"""``/api/v1/settings``: every setting with its effective value and source; the user changes the
overridable ones within bounds (422 with the uniform error otherwise, nothing changed) and
returns one to the default; each change announced as ``user.updated``; OpenAPI has the models."""

from __future__ import annotations

import asyncio

import httpx
from sipum.db import domains, settings, users
from sipum.events import UserUpdated

from .test_api import api, signup_and_login  # noqa: F401 - the fixture


async def login(client: httpx.AsyncClient, name: str) -> dict[str, str]:
    token = await signup_and_login(client, name)
    client.cookies.clear()
    return {"Authorization": f"Bearer {token}"}


def by_key(body: dict) -> dict[str, dict]:
    return {item["key"]: item for item in body["items"]}


async def test_get_shows_every_setting_with_its_source(api) -> None:  # noqa: F811
    client, ctx = api
    auth = await login(client, "alice")
    domain = await domains.get_by_name(ctx.pool, "example.com")
    assert domain is not None
    await domains.update(ctx.pool, domain.id, ring_timeout_seconds=7, time_zone="Europe/Berlin")
    r = await client.get("/api/v1/settings", headers=auth)
    assert r.status_code == 200, r.text
    got = by_key(r.json())
    assert list(got) == list(settings.SETTINGS)
    ring = got["ring_timeout_seconds"]
    assert (ring["value"], ring["source"], ring["default"], ring["overridable"]) == (
        7, "domain", 7, True,
    )  # fmt: skip
    assert (ring["minimum"], ring["maximum"], ring["type"]) == (0, 300, "integer")
    assert got["time_zone"]["source"] == "domain"
    assert (got["greeting_mode"]["value"], got["greeting_mode"]["source"]) == ("auto", "default")
    assert got["greeting_mode"]["choices"] == ["auto", "system"]
    assert got["quota_bytes"]["overridable"] is False
    assert got["min_message_seconds"]["value"] is None
    assert "min_voice_seconds" in got["min_message_seconds"]["builtin_note"]
    assert (await client.get("/api/v1/settings")).status_code == 401


async def test_patch_then_delete(api, event_namespace) -> None:  # noqa: F811
    client, ctx = api
    auth = await login(client, "alice")
    updates: list[UserUpdated] = []

    async def on_update(e: UserUpdated) -> None:
        updates.append(e)

    await ctx.bus.subscribe(UserUpdated, on_update, durable="settings-test")
    r = await client.patch(
        "/api/v1/settings",
        headers=auth,
        json={"ring_timeout_seconds": 20, "time_zone": "Asia/Tokyo", "greeting_mode": "system"},
    )
    assert r.status_code == 200, r.text
    got = by_key(r.json())
    assert (got["ring_timeout_seconds"]["value"], got["ring_timeout_seconds"]["source"]) == (
        20, "user",
    )  # fmt: skip
    assert got["ring_timeout_seconds"]["default"] == 10  # the domain's, which it overrides
    alice = await users.get_by_address(ctx.pool, "alice", "example.com")
    assert alice is not None
    effective = await users.effective_settings(ctx.pool, alice.id)
    assert effective is not None
    assert (effective.ring_timeout_seconds, effective.time_zone) == (20, "Asia/Tokyo")
    for _ in range(50):
        if updates:
            break
        await asyncio.sleep(0.05)
    assert [u.changed for u in updates] == [["greeting_mode", "ring_timeout_seconds", "time_zone"]]
    assert updates[0].username == "alice"

    # the same values again: nothing changed, nothing published
    r = await client.patch("/api/v1/settings", headers=auth, json={"ring_timeout_seconds": 20})
    assert r.status_code == 200

    r = await client.delete("/api/v1/settings/ring_timeout_seconds", headers=auth)
    assert r.status_code == 200, r.text
    assert (r.json()["value"], r.json()["source"]) == (10, "domain")
    # null in a PATCH is the same as DELETE
    r = await client.patch("/api/v1/settings", headers=auth, json={"time_zone": None})
    assert by_key(r.json())["time_zone"]["source"] == "default"
    await asyncio.sleep(0.3)
    assert [u.changed for u in updates][1:] == [["ring_timeout_seconds"], ["time_zone"]]


async def test_refusals_are_422_with_the_uniform_error_and_change_nothing(api) -> None:  # noqa: F811
    client, ctx = api
    auth = await login(client, "alice")
    cases = [
        ({"ring_timeout_seconds": 301}, "ring_timeout_seconds: 0 to 300"),
        ({"ring_timeout_seconds": "20"}, "ring_timeout_seconds: a number"),
        ({"quota_bytes": 10**12}, "quota_bytes is set by the administrator"),
        ({"pin_min_length": 4}, "pin_min_length is set by the administrator"),
        ({"mail_from": "me@evil.example"}, "mail_from is set by the administrator"),
        ({"no_such_thing": 1}, "not a setting: no_such_thing"),
        ({"time_zone": "Mars/Base"}, "time_zone: an IANA time zone"),
        # one bad value next to a good one: neither is stored
        ({"ring_timeout_seconds": 25, "email_audio_format": "ogg"}, "one of wav, mp3"),
        ([1, 2], "a JSON object"),
    ]
    for body, detail in cases:
        r = await client.patch("/api/v1/settings", headers=auth, json=body)
        assert r.status_code == 422, (body, r.text)
        assert list(r.json()) == ["detail"] and detail in r.json()["detail"], (body, r.text)
    r = await client.patch(
        "/api/v1/settings", headers={**auth, "Content-Type": "application/json"}, content=b"{nope"
    )
    assert r.status_code == 422 and r.json() == {"detail": "the body is not JSON"}
    r = await client.delete("/api/v1/settings/quota_bytes", headers=auth)
    assert r.status_code == 422 and "administrator" in r.json()["detail"]
    r = await client.delete("/api/v1/settings/bogus", headers=auth)
    assert r.status_code == 404 and r.json() == {"detail": "not a setting: bogus"}
    got = by_key((await client.get("/api/v1/settings", headers=auth)).json())
    assert all(item["source"] != "user" for item in got.values())


async def test_a_user_sees_only_their_own_settings(api) -> None:  # noqa: F811
    client, ctx = api
    alice = await login(client, "alice")
    bob = await login(client, "bob")
    await client.patch("/api/v1/settings", headers=alice, json={"ring_timeout_seconds": 30})
    got = by_key((await client.get("/api/v1/settings", headers=bob)).json())
    assert got["ring_timeout_seconds"]["value"] == 10


async def test_openapi_describes_the_settings_routes(api) -> None:  # noqa: F811
    client, _ = api
    spec = (await client.get("/openapi.json")).json()
    ops = spec["paths"]["/api/v1/settings"]
    assert ops["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SettingsOut"
    }
    patch_schema = ops["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(patch_schema["properties"]) == set(settings.USER_SETTABLE)
    assert ops["patch"]["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"
    }
    assert "delete" in spec["paths"]["/api/v1/settings/{key}"]
    assert "SettingOut" in spec["components"]["schemas"]


async def test_urgent_allowed_set_by_the_owner_and_by_the_administrator(api) -> None:  # noqa: F811
    """``urgent_allowed`` (true by default): the owner turns it off for her mailbox; the
    administrator turns it off for a domain, the owner's own value still wins over that."""
    from .test_admin_api import admin_auth

    client, ctx = api
    auth = await login(client, "alice")
    got = by_key((await client.get("/api/v1/settings", headers=auth)).json())
    assert (got["urgent_allowed"]["value"], got["urgent_allowed"]["source"]) == (True, "default")
    assert got["urgent_allowed"]["overridable"] is True
    r = await client.patch("/api/v1/settings", headers=auth, json={"urgent_allowed": False})
    assert r.status_code == 200, r.text
    assert by_key(r.json())["urgent_allowed"]["value"] is False
    alice = await users.get_by_address(ctx.pool, "alice", "example.com")
    assert alice is not None
    effective = await users.effective_settings(ctx.pool, alice.id)
    assert effective is not None and effective.urgent_allowed is False
    assert (
        await client.patch("/api/v1/settings", headers=auth, json={"urgent_allowed": "no"})
    ).status_code == 422
    # the administrator: the domain off, alice's own back to the domain's, then on for her
    admin = await admin_auth(client, ctx.pool)
    r = await client.patch(
        "/api/v1/admin/domains/example.com", headers=admin, json={"urgent_allowed": False}
    )
    assert r.status_code == 200 and r.json()["urgent_allowed"] is False, r.text
    await client.delete("/api/v1/settings/urgent_allowed", headers=auth)
    effective = await users.effective_settings(ctx.pool, alice.id)
    assert effective is not None and effective.urgent_allowed is False  # the domain's
    r = await client.patch(
        "/api/v1/admin/users/alice@example.com", headers=admin, json={"urgent_allowed": True}
    )
    assert r.status_code == 200 and r.json()["overrides"] == {"urgent_allowed": True}, r.text
    effective = await users.effective_settings(ctx.pool, alice.id)
    assert effective is not None and effective.urgent_allowed is True
