"""Waveform peaks through the API (stored at record time or computed on first request and
stored then, only for the owner, gone with the message) and the delete-after-e-mail mark
(``expires_at`` in the message JSON; the setting through the admin API)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from sipum.blobstore import peaks_key
from sipum.db import messages, users
from sipum_protocol.media.recording import Peaks, compute_peaks, wav_bytes

from .test_admin_api import admin_auth
from .test_api import add_message, api, signup_and_login  # noqa: F401 - the fixture


async def test_peaks_are_computed_once_and_served_to_the_owner_only(api) -> None:  # noqa: F811
    client, ctx = api
    auth = {"Authorization": f"Bearer {await signup_and_login(client, 'alice')}"}
    bob = {"Authorization": f"Bearer {await signup_and_login(client, 'bob')}"}
    client.cookies.clear()
    alice = await users.get_by_address(ctx.pool, "alice", "example.com")
    message = await add_message(ctx, alice)
    # A known signal in place of the fixture's audio: 0.5 s at half scale, then 0.5 s silence.
    tone = np.full(4000, 16384, dtype=np.int16) * np.where(np.arange(4000) % 2, 1, -1)
    pcm = np.concatenate([tone.astype(np.int16), np.zeros(4000, dtype=np.int16)])
    await ctx.blobs.put(message.blob_key, wav_bytes(pcm, 8000))
    meta = (await client.get(f"/api/v1/messages/{message.id}", headers=auth)).json()
    assert meta["peaks_url"] == f"/api/v1/messages/{message.id}/peaks"
    assert not await ctx.blobs.exists(peaks_key(message.blob_key))  # an "older" message
    r = await client.get(meta["peaks_url"], headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sample_rate"] == 8000 and body["samples"] == 8000 and body["duration_s"] == 1.0
    assert len(body["peaks"]) == 400
    assert body["peaks"][:200] == [0.5] * 200 and body["peaks"][200:] == [0.0] * 200
    assert "max-age" in r.headers["cache-control"]
    # …and stored next to the audio, so the next request reads it instead of the WAV.
    stored = Peaks.from_json(await ctx.blobs.get(peaks_key(message.blob_key)))
    assert stored == compute_peaks(pcm, 8000)
    await ctx.blobs.put(message.blob_key, wav_bytes(np.zeros(800, dtype=np.int16), 8000))
    assert (await client.get(meta["peaks_url"], headers=auth)).json()["peaks"][0] == 0.5
    # Another mailbox's message, none at all, no session.
    assert (await client.get(meta["peaks_url"], headers=bob)).status_code == 404
    assert (await client.get("/api/v1/messages/99999999/peaks", headers=auth)).status_code == 404
    assert (await client.get(meta["peaks_url"])).status_code == 401
    # A broken stored file is recomputed from the audio.
    await ctx.blobs.put(peaks_key(message.blob_key), b"not json")
    assert (await client.get(meta["peaks_url"], headers=auth)).json()["peaks"] == [0.0] * 400
    # Deleting the message deletes its peaks too.
    assert (await client.delete(f"/api/v1/messages/{message.id}", headers=auth)).status_code == 204
    assert not await ctx.blobs.exists(peaks_key(message.blob_key))


async def test_expires_at_marks_a_message_deleted_after_email(api) -> None:  # noqa: F811
    client, ctx = api
    auth = {"Authorization": f"Bearer {await signup_and_login(client, 'alice')}"}
    alice = await users.get_by_address(ctx.pool, "alice", "example.com")
    kept, mailed = await add_message(ctx, alice), await add_message(ctx, alice)
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=24)
    await messages.set_expiry(ctx.pool, mailed.id, when)
    page = (await client.get("/api/v1/messages", headers=auth)).json()
    by_id = {m["id"]: m for m in page["items"]}
    assert by_id[kept.id]["expires_at"] is None
    assert datetime.fromisoformat(by_id[mailed.id]["expires_at"]) == when
    one = (await client.get(f"/api/v1/messages/{mailed.id}", headers=auth)).json()
    assert datetime.fromisoformat(one["expires_at"]) == when


async def test_delete_after_email_is_a_domain_default_and_a_user_override(api) -> None:  # noqa: F811
    client, ctx = api
    await signup_and_login(client, "alice")
    client.cookies.clear()
    auth = await admin_auth(client, ctx.pool)
    alice = await users.get_by_address(ctx.pool, "alice", "example.com")
    assert not (await users.effective_settings(ctx.pool, alice.id)).delete_after_email
    r = await client.patch(
        "/api/v1/admin/domains/example.com", headers=auth, json={"delete_after_email": True}
    )
    assert r.status_code == 200 and r.json()["delete_after_email"] is True
    assert (await users.effective_settings(ctx.pool, alice.id)).delete_after_email
    r = await client.patch(
        "/api/v1/admin/users/alice@example.com", headers=auth, json={"delete_after_email": False}
    )
    assert r.status_code == 200 and r.json()["overrides"] == {"delete_after_email": False}
    assert not (await users.effective_settings(ctx.pool, alice.id)).delete_after_email
    r = await client.patch(
        "/api/v1/admin/users/alice@example.com", headers=auth, json={"delete_after_email": "x"}
    )
    assert r.status_code == 422
