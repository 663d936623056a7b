"""Transcripts through the REST API: ``transcript`` in a message, ``?q=`` full-text search
(real PostgreSQL with the migrations' GIN index, NATS, a filesystem blob store)."""

from __future__ import annotations

from sipum.db import transcripts, users

from .test_api import add_message, api, signup_and_login  # noqa: F401 - api is a fixture


async def transcribe(ctx, message_id: int, text: str, *, language: str = "en-US") -> None:
    words = [
        transcripts.Word(w, round(0.5 * i, 3), round(0.5 * i + 0.4, 3), 0.7)
        for i, w in enumerate(text.split())
    ]
    assert await transcripts.store(
        ctx.pool,
        message_id,
        language=language,
        text=text,
        confidence=0.7,
        words=words,
        engine="pocketsphinx",
        engine_version="5.0.4",
        elapsed_ms=800,
    )


async def test_message_carries_its_transcript_with_word_times(api) -> None:  # noqa: F811
    client, ctx = api
    token = await signup_and_login(client, "alice")
    auth = {"Authorization": f"Bearer {token}"}
    alice = await users.get_by_address(ctx.pool, "alice", "example.com")
    with_text = await add_message(ctx, alice, seconds=2.0)
    without = await add_message(ctx, alice)
    await transcribe(ctx, with_text.id, "please call me back tomorrow")

    r = await client.get(f"/api/v1/messages/{with_text.id}", headers=auth)
    assert r.status_code == 200
    t = r.json()["transcript"]
    assert t["text"] == "please call me back tomorrow" and t["language"] == "en-US"
    assert t["engine"] == "pocketsphinx" and t["engine_version"] == "5.0.4"
    assert t["confidence"] == 0.7
    assert [w["word"] for w in t["words"]] == ["please", "call", "me", "back", "tomorrow"]
    assert t["words"][4] == {"word": "tomorrow", "start": 2.0, "end": 2.4, "confidence": 0.7}
    r = await client.get(f"/api/v1/messages/{without.id}", headers=auth)
    assert r.status_code == 200 and r.json()["transcript"] is None
    # The list carries them too (what the inbox page shows).
    r = await client.get("/api/v1/messages", headers=auth)
    by_id = {m["id"]: m["transcript"] for m in r.json()["items"]}
    assert by_id[without.id] is None and by_id[with_text.id]["text"].endswith("tomorrow")


async def test_search_finds_own_transcripts_only(api) -> None:  # noqa: F811
    client, ctx = api
    alice_auth = {"Authorization": f"Bearer {await signup_and_login(client, 'alice')}"}
    bob_auth = {"Authorization": f"Bearer {await signup_and_login(client, 'bob')}"}
    alice = await users.get_by_address(ctx.pool, "alice", "example.com")
    bob = await users.get_by_address(ctx.pool, "bob", "example.com")
    dentist = await add_message(ctx, alice)
    plumber = await add_message(ctx, alice)
    saved = await add_message(ctx, alice, folder="saved")
    bobs = await add_message(ctx, bob)
    await transcribe(ctx, dentist.id, "this is the dentist about your appointment on monday")
    await transcribe(ctx, plumber.id, "the plumber calling about the leaking pipe appointments")
    await transcribe(ctx, saved.id, "the dentist again")
    await transcribe(ctx, bobs.id, "the dentist for bob about the appointment")

    async def ids(auth, query: str, **params) -> tuple[list[int], int]:
        r = await client.get("/api/v1/messages", params={"q": query, **params}, headers=auth)
        assert r.status_code == 200, r.text
        return [m["id"] for m in r.json()["items"]], r.json()["total"]

    assert await ids(alice_auth, "dentist") == ([dentist.id], 1)  # inbox only; not Bob's
    assert await ids(alice_auth, "dentist", folder="saved") == ([saved.id], 1)
    # Stemmed: "appointment" finds "appointments"; the better match first.
    found, total = await ids(alice_auth, "appointment monday or pipe")
    assert total == 2 and set(found) == {dentist.id, plumber.id}
    assert await ids(alice_auth, '"leaking pipe"') == ([plumber.id], 1)
    assert await ids(alice_auth, "appointment -plumber") == ([dentist.id], 1)
    assert await ids(alice_auth, "bob") == ([], 0)  # Bob's transcript never matches for Alice
    assert await ids(bob_auth, "dentist") == ([bobs.id], 1)
    assert await ids(bob_auth, "plumber") == ([], 0)
    # Paging: total counts all matches.
    assert await ids(alice_auth, "appointment", limit=1) == ([dentist.id], 2) or (
        await ids(alice_auth, "appointment", limit=1)
    ) == ([plumber.id], 2)
    page2, total2 = await ids(alice_auth, "appointment", limit=1, offset=1)
    assert total2 == 2 and len(page2) == 1
    # Bounded input.
    r = await client.get("/api/v1/messages", params={"q": "x" * 201}, headers=alice_auth)
    assert r.status_code == 422
    r = await client.get("/api/v1/messages", params={"q": ""}, headers=alice_auth)
    assert r.status_code == 422
    # Nonsense syntax is no error: websearch_to_tsquery never raises.
    assert await ids(alice_auth, '" -or ( & !') == ([], 0)


async def test_search_query_uses_the_gin_index(api) -> None:  # noqa: F811
    """The query's match is the indexed expression: over a mailbox of 3000 transcribed
    messages, the plan of ``search_messages`` finds the rare word through the GIN index
    ``transcripts_search`` rather than through the mailbox's messages (sequential scans off,
    as a table this small is cheaper to read whole)."""
    _, ctx = api
    carol = await users.create(ctx.pool, "carol", "example.com", "carol-password-1")
    message = await add_message(ctx, carol)
    await transcribe(ctx, message.id, "the rare word zanzibar is said here")
    await ctx.pool.execute(
        """INSERT INTO messages (id, owner_id, idempotency_key, caller_uri, called_uri,
                                 duration_ms, codec, size_bytes, blob_key)
           SELECT nextval('message_id_seq'), owner_id, 'bulk-' || g, caller_uri, called_uri,
                  duration_ms, codec, size_bytes, blob_key
           FROM messages, generate_series(1, 3000) g WHERE id = $1""",
        message.id,
    )
    await ctx.pool.execute(
        """INSERT INTO transcripts (message_id, language, text, engine, engine_version,
                                    elapsed_ms)
           SELECT id, 'en-US', 'please call me back about order number ' || id,
                  'pocketsphinx', '5', 1
           FROM messages WHERE idempotency_key LIKE 'bulk-%'"""
    )
    await ctx.pool.execute("ANALYZE messages")
    # What autovacuum does in production: move the new entries from GIN's pending list into
    # the index proper (the planner prices a long pending list as expensive).
    await ctx.pool.execute("VACUUM ANALYZE transcripts")
    async with ctx.pool.acquire() as conn, conn.transaction():
        # 3000 short rows still fit a sequential scan's budget; the index must be the way.
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = await conn.fetch(
            "EXPLAIN " + _search_sql(), carol.id, "zanzibar", "en-US", "inbox", 50, 0
        )
    text = "\n".join(row[0] for row in plan)
    assert "Bitmap Index Scan on transcripts_search" in text, text
    page = await transcripts.search_messages(ctx.pool, carol.id, "zanzibar")
    assert [m.id for m in page.messages] == [message.id] and page.total == 1
    page = await transcripts.search_messages(ctx.pool, carol.id, "order", limit=10)
    assert len(page.messages) == 10 and page.total == 3000


def _search_sql() -> str:
    """The SQL ``search_messages`` runs, taken from its source (so the test explains the
    very query the API runs, not a copy of it)."""
    import inspect
    import re

    source = inspect.getsource(transcripts.search_messages)
    sql = re.search(r'f"""(.*?)"""', source, re.S)
    assert sql is not None
    return sql.group(1).replace("{_MESSAGE_COLUMNS}", transcripts._MESSAGE_COLUMNS)
