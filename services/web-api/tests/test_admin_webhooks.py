"""A domain's webhooks through the admin API: create (secret once), list, delete, delivery log,
test event; a user's token cannot reach them (403, also in test_admin_api's walk over every
admin route) and a user cannot see or delete them through their own API; the rows are domain
endpoints, which the notifier's fan-out matches for every mailbox of the domain."""

from __future__ import annotations

import json

from sipum.db import domains, webhooks

from .test_admin_api import admin_auth
from .test_api import api, signup_and_login  # noqa: F401 - the fixture

PUBLIC = "https://93.184.216.34/hooks/domain"


async def test_domain_webhooks_lifecycle(api) -> None:  # noqa: F811
    client, ctx = api
    user_auth = {"Authorization": f"Bearer {await signup_and_login(client, 'alice')}"}
    client.cookies.clear()
    auth = await admin_auth(client, ctx.pool)
    base = "/api/v1/admin/domains/example.com/webhooks"
    r = await client.post(base, json={"url": PUBLIC, "events": ["message.created"]}, headers=auth)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_") and created["events"] == ["message.created"]
    domain = await domains.get_by_name(ctx.pool, "example.com")
    row = await ctx.pool.fetchrow(
        "SELECT user_id, domain_id FROM webhooks WHERE id = $1", created["id"]
    )
    assert row["user_id"] is None and row["domain_id"] == domain.id
    listed = (await client.get(base, headers=auth)).json()
    assert [w["id"] for w in listed] == [created["id"]] and "secret" not in listed[0]
    # The test event and the delivery log.
    r = await client.post(f"{base}/{created['id']}/test", headers=auth)
    assert r.status_code == 202
    [log] = (await client.get(f"{base}/{created['id']}/deliveries", headers=auth)).json()
    assert log["id"] == r.json()["delivery_id"] and log["event"] == "webhook.test"
    assert log["state"] == "pending"
    body = json.loads(await ctx.pool.fetchval("SELECT body FROM webhook_deliveries"))
    assert body["data"] == {"webhook_id": created["id"], "domain": "example.com"}
    # A user neither sees it nor reaches it, with their own API or the admin one.
    assert (await client.get("/api/v1/webhooks", headers=user_auth)).json() == []
    for method, path in [
        ("DELETE", f"/api/v1/webhooks/{created['id']}"),
        ("GET", f"/api/v1/webhooks/{created['id']}/deliveries"),
        ("POST", f"/api/v1/webhooks/{created['id']}/test"),
    ]:
        assert (await client.request(method, path, headers=user_auth)).status_code == 404
    for method, path in [
        ("GET", base),
        ("POST", base),
        ("DELETE", f"{base}/{created['id']}"),
        ("GET", f"{base}/{created['id']}/deliveries"),
    ]:
        body_json = {"url": PUBLIC} if method == "POST" else None
        r = await client.request(method, path, headers=user_auth, json=body_json)
        assert r.status_code == 403, (method, path)
    assert len(await webhooks.list_for(ctx.pool, webhooks.Owner.domain(domain.id))) == 1
    # Delete.
    assert (await client.delete(f"{base}/{created['id']}", headers=auth)).status_code == 204
    assert (await client.get(base, headers=auth)).json() == []
    assert (await client.delete(f"{base}/{created['id']}", headers=auth)).status_code == 404


async def test_domain_webhooks_refuse_bad_input_and_other_owners(api) -> None:  # noqa: F811
    client, ctx = api
    user_auth = {"Authorization": f"Bearer {await signup_and_login(client, 'alice')}"}
    client.cookies.clear()
    auth = await admin_auth(client, ctx.pool)
    base = "/api/v1/admin/domains/example.com/webhooks"
    for body, why in [
        ({"url": "http://127.0.0.1:9/"}, "loopback"),
        ({"url": "http://169.254.169.254/"}, "link-local"),
        ({"url": PUBLIC, "events": ["user.deleted"]}, "user.deleted"),
        ({"url": PUBLIC, "events": []}, "none given"),
    ]:
        r = await client.post(base, json=body, headers=auth)
        assert r.status_code == 422 and why in r.json()["detail"], (body, r.text)
    r = await client.post(
        "/api/v1/admin/domains/nowhere.test/webhooks", json={"url": PUBLIC}, headers=auth
    )
    assert r.status_code == 404
    # A user's own endpoint is not the domain's: the admin routes answer 404 for it.
    mine = (await client.post("/api/v1/webhooks", json={"url": PUBLIC}, headers=user_auth)).json()
    client.cookies.clear()
    assert (await client.delete(f"{base}/{mine['id']}", headers=auth)).status_code == 404
    assert (await client.get(f"{base}/{mine['id']}/deliveries", headers=auth)).status_code == 404
    # Another domain's endpoint is not reachable under this domain's path.
    other = await domains.ensure(ctx.pool, "other.test")
    theirs = await webhooks.create(
        ctx.pool, webhooks.Owner.domain(other.id), url=PUBLIC, events=["message.created"]
    )
    assert (await client.delete(f"{base}/{theirs.id}", headers=auth)).status_code == 404
    r = await client.get("/api/v1/admin/domains/other.test/webhooks", headers=auth)
    assert [w["id"] for w in r.json()] == [theirs.id]
    # The per-domain limit.
    for _ in range(10):
        assert (await client.post(base, json={"url": PUBLIC}, headers=auth)).status_code == 201
    r = await client.post(base, json={"url": PUBLIC}, headers=auth)
    assert r.status_code == 409
