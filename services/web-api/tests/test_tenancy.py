"""Disabling a mailbox, and several domains served at once: a user of one domain never sees
another's messages, settings or users — even a user of the same name; administrators are
global (one admin API over every domain)."""

from __future__ import annotations

import httpx
from sipum.db import domains, users
from sipum.security.tokens import sign_play_link

from .test_admin_api import admin_auth
from .test_api import SECRET, add_message, api  # noqa: F401 - the fixture


async def signup(client: httpx.AsyncClient, address: str) -> dict[str, str]:
    name, _, domain = address.partition("@")
    password = f"{name}-{domain}-password"
    r = await client.post(
        "/api/v1/signup", json={"username": name, "domain": domain, "password": password}
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/login", json={"username": address, "password": password})
    assert r.status_code == 200, r.text
    client.cookies.clear()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def test_a_disabled_user_cannot_sign_in_until_enabled(api) -> None:  # noqa: F811
    client, ctx = api
    auth = await signup(client, "dora@example.com")
    dora = await users.get_by_address(ctx.pool, "dora", "example.com")
    assert dora is not None
    message = await add_message(ctx, dora)
    link = sign_play_link(SECRET, dora.id, message.id, ttl=600)
    admin = await admin_auth(client, ctx.pool)
    r = await client.post("/api/v1/admin/users/dora@example.com/disable", headers=admin)
    assert r.status_code == 200 and r.json()["disabled"] is True, r.text

    r = await client.post(
        "/api/v1/login", json={"username": "dora", "password": "dora-example.com-password"}
    )
    assert r.status_code == 403 and r.json() == {"detail": "this account is disabled"}
    client.cookies.clear()
    # a wrong password still says only that (nothing about the account's state)
    r = await client.post("/api/v1/login", json={"username": "dora", "password": "wrong-one"})
    assert r.status_code == 401
    assert (await client.get("/api/v1/messages", headers=auth)).status_code == 403
    assert (await client.get("/api/v1/settings", headers=auth)).status_code == 403
    r = await client.get(f"/api/v1/messages/{message.id}/audio", params={"token": link})
    assert r.status_code == 403
    # nothing was deleted
    listed = (await client.get("/api/v1/admin/users?q=dora", headers=admin)).json()["items"]
    assert [u["disabled"] for u in listed] == [True]

    r = await client.post("/api/v1/admin/users/dora@example.com/enable", headers=admin)
    assert r.status_code == 200 and r.json()["disabled"] is False
    r = await client.get("/api/v1/messages", headers=auth)
    assert r.status_code == 200 and [m["id"] for m in r.json()["items"]] == [message.id]
    r = await client.get(f"/api/v1/messages/{message.id}/audio", params={"token": link})
    assert r.status_code == 200
    r = await client.post("/api/v1/admin/users/nobody@example.com/disable", headers=admin)
    assert r.status_code == 404 and r.json() == {"detail": "no user nobody@example.com"}


async def test_domains_are_isolated(api) -> None:  # noqa: F811
    client, ctx = api
    await domains.create(ctx.pool, "a.example", ring_timeout_seconds=5)
    await domains.create(ctx.pool, "b.example", ring_timeout_seconds=25)
    in_a = await signup(client, "sam@a.example")
    in_b = await signup(client, "sam@b.example")  # the same name, another domain
    sam_a = await users.get_by_address(ctx.pool, "sam", "a.example")
    sam_b = await users.get_by_address(ctx.pool, "sam", "b.example")
    assert sam_a is not None and sam_b is not None and sam_a.id != sam_b.id
    m_a = await add_message(ctx, sam_a)
    m_b = await add_message(ctx, sam_b)

    # each sees their own mailbox only
    for auth, mine, theirs in ((in_a, m_a, m_b), (in_b, m_b, m_a)):
        listed = (await client.get("/api/v1/messages", headers=auth)).json()["items"]
        assert [m["id"] for m in listed] == [mine.id]
        assert (await client.get(f"/api/v1/messages/{theirs.id}", headers=auth)).status_code == 404
        r = await client.get(f"/api/v1/messages/{theirs.id}/audio", headers=auth)
        assert r.status_code == 404
        r = await client.patch(f"/api/v1/messages/{theirs.id}", headers=auth, json={"heard": True})
        assert r.status_code == 404
        r = await client.delete(f"/api/v1/messages/{theirs.id}", headers=auth)
        assert r.status_code == 404
    # a playback link of one domain's user opens only that message
    link = sign_play_link(SECRET, sam_a.id, m_a.id, ttl=600)
    r = await client.get(f"/api/v1/messages/{m_b.id}/audio", params={"token": link})
    assert r.status_code == 404

    # settings: each domain's defaults, each user's own values
    await client.patch("/api/v1/settings", headers=in_a, json={"time_zone": "Europe/Oslo"})
    got_a = {
        i["key"]: i for i in (await client.get("/api/v1/settings", headers=in_a)).json()["items"]
    }
    got_b = {
        i["key"]: i for i in (await client.get("/api/v1/settings", headers=in_b)).json()["items"]
    }
    assert (got_a["ring_timeout_seconds"]["value"], got_b["ring_timeout_seconds"]["value"]) == (
        5,
        25,
    )
    assert (got_a["time_zone"]["value"], got_b["time_zone"]["value"]) == ("Europe/Oslo", "UTC")

    # users: a user's token never lists anybody; the admin API is global, filtered by domain
    assert (await client.get("/api/v1/admin/users", headers=in_a)).status_code == 403
    me = (await client.get("/api/v1/me", headers=in_b)).json()
    assert (me["username"], me["domain"]) == ("sam", "b.example")
    admin = await admin_auth(client, ctx.pool)
    only_a = (await client.get("/api/v1/admin/users?domain=a.example", headers=admin)).json()
    assert [u["address"] for u in only_a["items"]] == ["sam@a.example"]
    everyone = (await client.get("/api/v1/admin/users?q=sam", headers=admin)).json()
    assert sorted(u["address"] for u in everyone["items"]) == ["sam@a.example", "sam@b.example"]
    # a password of one domain's sam is not the other's
    r = await client.post(
        "/api/v1/login", json={"username": "sam@b.example", "password": "sam-a.example-password"}
    )
    assert r.status_code == 401
