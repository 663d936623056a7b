"""The webhooks REST API: create (secret once), list, delete, delivery log, test event; another
user's endpoint is invisible; URLs into internal networks are refused when saved."""

from __future__ import annotations

import json

from sipum.db import webhooks

from .test_api import api, signup_and_login  # noqa: F401 - the fixture

PUBLIC = "https://93.184.216.34/hooks/sipum"


async def test_create_list_delete_and_the_secret_only_once(api) -> None:  # noqa: F811
    client, ctx = api
    token = await signup_and_login(client, "alice")
    auth = {"Authorization": f"Bearer {token}"}
    r = await client.post("/api/v1/webhooks", json={"url": PUBLIC}, headers=auth)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 30
    assert created["events"] == sorted(webhooks.WEBHOOK_EVENTS)
    listed = (await client.get("/api/v1/webhooks", headers=auth)).json()
    assert [w["id"] for w in listed] == [created["id"]] and "secret" not in listed[0]
    r = await client.delete(f"/api/v1/webhooks/{created['id']}", headers=auth)
    assert r.status_code == 204
    assert (await client.get("/api/v1/webhooks", headers=auth)).json() == []
    assert (
        await client.delete(f"/api/v1/webhooks/{created['id']}", headers=auth)
    ).status_code == 404


async def test_internal_urls_and_bad_events_are_422(api) -> None:  # noqa: F811
    client, _ = api
    auth = {"Authorization": f"Bearer {await signup_and_login(client, 'alice')}"}
    for url, why in [
        ("http://127.0.0.1:8222/", "loopback"),
        ("http://localhost/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://user:pw@93.184.216.34/", "credentials"),
        ("file:///etc/passwd", "only http"),
    ]:
        r = await client.post("/api/v1/webhooks", json={"url": url}, headers=auth)
        assert r.status_code == 422 and why in r.json()["detail"], (url, r.text)
    r = await client.post(
        "/api/v1/webhooks", json={"url": PUBLIC, "events": ["user.deleted"]}, headers=auth
    )
    assert r.status_code == 422 and "user.deleted" in r.json()["detail"]
    client.cookies.clear()  # the login also set a session cookie
    assert (await client.post("/api/v1/webhooks", json={"url": PUBLIC})).status_code == 401


async def test_another_users_webhook_is_not_found(api) -> None:  # noqa: F811
    client, _ = api
    alice = {"Authorization": f"Bearer {await signup_and_login(client, 'alice')}"}
    bob = {"Authorization": f"Bearer {await signup_and_login(client, 'bob')}"}
    hook = (await client.post("/api/v1/webhooks", json={"url": PUBLIC}, headers=alice)).json()
    for method, path in [
        ("DELETE", f"/api/v1/webhooks/{hook['id']}"),
        ("GET", f"/api/v1/webhooks/{hook['id']}/deliveries"),
        ("POST", f"/api/v1/webhooks/{hook['id']}/test"),
    ]:
        assert (await client.request(method, path, headers=bob)).status_code == 404
    assert (await client.get("/api/v1/webhooks", headers=bob)).json() == []
    assert len((await client.get("/api/v1/webhooks", headers=alice)).json()) == 1


async def test_test_event_is_queued_and_shows_in_the_log(api) -> None:  # noqa: F811
    client, ctx = api
    auth = {"Authorization": f"Bearer {await signup_and_login(client, 'alice')}"}
    hook = (await client.post("/api/v1/webhooks", json={"url": PUBLIC}, headers=auth)).json()
    r = await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=auth)
    assert r.status_code == 202
    [log] = (await client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=auth)).json()
    assert log["id"] == r.json()["delivery_id"] and log["event"] == "webhook.test"
    assert log["state"] == "pending" and log["attempts"] == 0
    body = json.loads(await ctx.pool.fetchval("SELECT body FROM webhook_deliveries"))
    assert body["type"] == "webhook.test" and body["data"]["mailbox"] == "alice@example.com"


async def test_at_most_ten_per_mailbox(api) -> None:  # noqa: F811
    client, _ = api
    auth = {"Authorization": f"Bearer {await signup_and_login(client, 'alice')}"}
    for _ in range(10):
        r = await client.post("/api/v1/webhooks", json={"url": PUBLIC}, headers=auth)
        assert r.status_code == 201
    r = await client.post("/api/v1/webhooks", json={"url": PUBLIC}, headers=auth)
    assert r.status_code == 409
