"""A copy forwarded by phone says where it came from: ``forwarded_from`` in the message JSON
(the list and the single message); a message a caller left has ``null``."""

from __future__ import annotations

from sipum.db import users

from .test_api import add_message, api, signup_and_login  # noqa: F401 - the fixture


async def test_the_message_json_names_the_mailbox_a_copy_was_forwarded_from(api) -> None:  # noqa: F811
    client, ctx = api
    token = await signup_and_login(client, "bob")
    client.cookies.clear()
    bob = await users.get_by_address(ctx.pool, "bob", "example.com")
    assert bob is not None
    left = await add_message(ctx, bob)
    copy = await add_message(ctx, bob, urgent=True)
    await ctx.pool.execute(
        "UPDATE messages SET forwarded_from = 'alice@example.com' WHERE id = $1", copy.id
    )
    auth = {"Authorization": f"Bearer {token}"}
    page = (await client.get("/api/v1/messages", headers=auth)).json()
    marks = {m["id"]: (m["forwarded_from"], m["urgent"]) for m in page["items"]}
    assert marks == {left.id: (None, False), copy.id: ("alice@example.com", True)}
    one = (await client.get(f"/api/v1/messages/{copy.id}", headers=auth)).json()
    assert one["forwarded_from"] == "alice@example.com"
