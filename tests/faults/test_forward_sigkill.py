"""Fault: SIGKILL of the media-recorder in the middle of a forward (main menu key ``8``).

The whole system as processes (two recorder replicas) through Kamailio. Alice calls her main
menu (``sip:alice-retrieve@…``) from an RTP phone, types the PIN, listens to her message, and
forwards it to bob without a comment (``8``, ``2 6 2 #``, ``2``). The forward is a copy stored
by the recorder's ``MessageStore``: the WAV (and its peaks) put in the blob store, then bob's
row inserted, then ``message.created``. The code has no fault point of its own between those
steps, so the replica holding the call is killed with SIGKILL at a different moment after the
``2`` in each of ``TRIES`` tries (spread over the time the copy takes, with a random jitter),
then restarted.

Afterwards, counted from outside (PostgreSQL, the blob store): bob has either no copy or a
complete one — a row whose blob exists and is the original's audio (correlated > 0.99, the same
length) — never a row without audio; alice's original (row and blob bytes) is untouched. A blob
stored without its row would be an orphan (invisible to bob, storage only): the copy goes
through the spool first (manifest + audio), so recovery stores a copy killed mid-way whole,
under the blob key already written — none may be left. A table is printed (``pytest -s``)."""

from __future__ import annotations

import asyncio
import random
import signal
import types
import wave

import asyncpg
import httpx
import numpy as np
import pytest
from sipum.blobstore import BlobNotFoundError, open_blob_store
from sipum_media_recorder.audio import decode_audio
from sipum_protocol.media.prompts import PromptLibrary
from sipum_testing.rtp_caller import best_correlation

from ..e2e.firstcall.audio import known_audio, through_ulaw
from ..e2e.firstcall.phone import Caller, RtpPeer, wait_event
from ..e2e.firstcall.system import REPO, FirstCallSystem
from ..e2e.firstcall.watch import EventWatch
from ..e2e.test_main_menu import store_message
from .calls import sign_up_alice, table

pytestmark = pytest.mark.timeout(300)

#: when, after the "2" key goes down, the holder is killed (seconds): the key comes up (and the
#: forward starts) at 0.12 s, the copy takes some tens of ms — a spread over that time, each with
#: a random jitter of up to 15 ms
KILL_DELAYS = (0.11, 0.13, 0.15, 0.18, 0.25)
TRIES = len(KILL_DELAYS)
RECORDERS = {"e2e-recorder": "media-recorder", "e2e-recorder-2": "media-recorder-2"}
PIN = "2468"


def blob_store(system: FirstCallSystem):  # type: ignore[no-untyped-def]
    b = system.backends
    return open_blob_store(
        types.SimpleNamespace(
            s3_endpoint=b.s3_endpoint, s3_access_key=b.s3_access_key,
            s3_secret_key=b.s3_secret_key, s3_bucket=b.s3_bucket, s3_region=b.s3_region,
        )
    )  # fmt: skip


async def bob_rows(system: FirstCallSystem) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(system.backends.database_url, timeout=10)
    try:
        return list(
            await conn.fetch(
                "SELECT m.id, m.blob_key, m.duration_ms, m.forwarded_from, m.idempotency_key"
                " FROM messages m JOIN users u ON u.id = m.owner_id WHERE u.username = 'bob'"
                " ORDER BY m.id"
            )
        )
    finally:
        await conn.close()


def prompt_pcm(name: str) -> np.ndarray:
    """A prompt of the recorder's own set (``var/prompts``) as a PCMU phone hears it."""
    library = PromptLibrary(REPO / "var" / "prompts")
    with wave.open(str(library.path(name, 8000)), "rb") as w:
        return through_ulaw(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"))


async def until_heard(rtp: RtpPeer, needle: np.ndarray, *, since: int, limit: float) -> None:
    """Wait until the audio received from packet *since* on holds *needle*."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        heard = rtp.audio(since)
        if len(heard) >= len(needle) and best_correlation(heard, needle)[0] > 0.9:
            return
        assert loop.time() < deadline, f"not heard within {limit} s"
        await asyncio.sleep(0.2)


async def forward_and_kill(
    system: FirstCallSystem, watch: EventWatch, audio: np.ndarray, delay: float, killed: set[str]
) -> str:
    """One call: PIN, listen, 8 262# 2, SIGKILL of the holder *delay* s after the 2; returns
    the killed service's key."""
    comment_menu = (await asyncio.to_thread(prompt_pcm, "forward-comment-menu"))[: 8000 * 2]
    rtp = await RtpPeer().open()
    try:
        async with Caller(user="alice-phone", domain=system.domain) as caller:
            record = caller.invite(f"sip:alice-retrieve@{system.domain}", system.proxy, rtp.offer())
            await wait_event(record.answered, 30, "menu call answered", caller)
            assert record.call.remote_sdp is not None
            rtp.use_answer(record.call.remote_sdp)
            await rtp.wait_quiet(quiet=0.4, limit=20)  # "Please enter your PIN"
            await rtp.send_digits(PIN + "#")
            mark = len(rtp.received)
            await until_heard(rtp, audio, since=mark, limit=40)  # count, envelope, the message
            mark = len(rtp.received)
            await rtp.send_digits("8262#")  # forward, to b-o-b (typed ahead: kept)
            await until_heard(rtp, comment_menu, since=mark, limit=40)  # "Forward to bob. …"
            answered = {e.data["call_id"]: e.data for e in watch.of("call.answered")}
            victim = RECORDERS[answered[record.call.call_id]["recorder_id"]]
            # without a comment: the copy is stored as the key comes up
            key = asyncio.create_task(rtp.send_digits("2"))
            await asyncio.sleep(delay)
            killed.add(victim)
            system.services[victim].proc.send_signal(signal.SIGKILL)
            await key
            await asyncio.to_thread(system.services[victim].proc.wait, 10)
            # the agent sees the heartbeats stop and ends the call (BYE)
            await wait_event(record.ended, 20, "the call ended after the kill", caller)
    finally:
        rtp.close()
    return victim


async def test_sigkill_of_the_media_recorder_during_a_forward(
    system: FirstCallSystem, killed: set[str]
) -> None:
    await sign_up_alice(system)
    async with httpx.AsyncClient(base_url=system.web_url, timeout=10) as http:
        r = await http.post(
            "/api/v1/signup",
            json={"username": "bob", "password": "bob-password-1", "email": "bob@mail.test"},
        )
        assert r.status_code == 201, r.text
    audio = through_ulaw(known_audio(2.0, seed=77))
    original_id = await store_message(system, "alice", audio)
    blobs = blob_store(system)
    conn = await asyncpg.connect(system.backends.database_url)
    try:
        original = await conn.fetchrow(
            "SELECT folder, blob_key, size_bytes, duration_ms FROM messages WHERE id = $1",
            original_id,
        )
    finally:
        await conn.close()
    original_bytes = await blobs.get(original["blob_key"])
    watch = await EventWatch(system.backends.nats_url, system.backends.events_prefix).start()
    results: list[dict[str, object]] = []
    try:
        jitter = random.Random()
        for attempt, planned in enumerate(KILL_DELAYS):
            delay = planned + jitter.uniform(0.0, 0.015)
            before = await bob_rows(system)
            keys_before = set(await blobs.list_keys(f"messages/{system.domain}/bob/"))
            try:
                victim = await forward_and_kill(system, watch, audio, delay, killed)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{system.diagnostics(40)}") from exc
            await asyncio.to_thread(system.restart, victim)
            # a copy left in the spool is stored by recovery (the survivor, or the restarted
            # replica at start-up): wait until no manifest is left. A chunk without its
            # manifest (killed between the two deletes of the spool's removal, after the copy
            # was stored) is garbage the recovery pass deletes after recovery_grace_seconds.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while manifests := [
                k for k in await blobs.list_keys("partial/") if k.endswith(".json")
            ]:
                assert loop.time() < deadline, manifests
                await asyncio.sleep(0.2)
            leftovers = [k for k in await blobs.list_keys("partial/") if k.endswith(".pcm")]
            await asyncio.sleep(1.0)  # anything in flight elsewhere would land now
            rows = await bob_rows(system)
            new = rows[len(before) :]
            assert len(new) <= 1, new  # one forward, at most one copy
            complete = 0
            recovered = {
                entry.get("message_id")
                for k in RECORDERS.values()
                for entry in system.services[k].logged("interrupted recording stored")
            }
            for row in new:
                try:
                    stored = decode_audio(await blobs.get(row["blob_key"])).pcm
                except BlobNotFoundError:
                    raise AssertionError(f"a row without audio: {dict(row)}") from None
                assert best_correlation(stored, audio)[0] > 0.99
                assert abs(len(stored) - len(audio)) <= 160
                assert row["forwarded_from"] == f"alice@{system.domain}"
                complete += 1
            keys_after = set(await blobs.list_keys(f"messages/{system.domain}/bob/"))
            wavs = {k for k in keys_after - keys_before if k.endswith(".wav")}
            orphans = wavs - {r["blob_key"] for r in new}
            results.append(
                {
                    "try": attempt + 1,
                    "killed after 2 went down": f"{delay * 1000:.0f} ms",
                    "replica": victim,
                    "copy": (
                        "none"
                        if not complete
                        else "complete, by recovery"
                        if new[0]["id"] in recovered
                        else "complete"
                    ),
                    "rows without audio": 0,
                    "orphan blobs": len(orphans),
                    "spool chunks left (collected later)": len(leftovers),
                }
            )
            assert not orphans, orphans
    finally:
        await watch.close()
    print(table(results))
    # the original: untouched, row and bytes
    conn = await asyncpg.connect(system.backends.database_url)
    try:
        after = await conn.fetchrow(
            "SELECT folder, blob_key, size_bytes, duration_ms FROM messages WHERE id = $1",
            original_id,
        )
    finally:
        await conn.close()
    assert dict(after) == dict(original)
    assert await blobs.get(original["blob_key"]) == original_bytes
