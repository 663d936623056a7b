"""Fault injection, one fault at a time, with calls in progress through Kamailio (issue 15).

The whole system as processes (``tests/e2e/firstcall/system.py``) with **two** media-recorder
replicas. ``CALLS`` callers dial alice through Kamailio at once; each waits for the greeting and
the beep, then speaks ``SPEECH_SECONDS`` of known audio and hangs up. ``KILL_AFTER`` seconds
into the speech the replica holding the most calls is killed with SIGKILL. Then, counted from
outside (PostgreSQL rows, the SMTP server's mails, the events on NATS):

* expected = calls placed; stored = messages (one per call, by session); e-mailed = mails (one per
  message); lost = expected − stored; doubled = extra rows or mails for one call;
* the killed replica's calls: ended by the agent with BYE within 2 s (+ the proxy hop) of the
  kill, their messages stored by the survivor, flagged ``interrupted``, at most 0.5 s of the
  speech said before the kill missing; the survivor's calls: whole messages, not interrupted.

A table is printed (``pytest -s``). Bounded: about 40 s on a loaded 2-core machine.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from sipum_testing.postgres import dsn_for, temporary_database
from sipum_testing.s3 import ACCESS_KEY, REGION, SECRET_KEY, MotoServer, unique_bucket

from ..e2e.firstcall.audio import known_audio
from ..e2e.firstcall.fixtures import _delete_stream
from ..e2e.firstcall.phone import Caller, RtpPeer, wait_event
from ..e2e.firstcall.system import Backends, FirstCallSystem, start_system
from ..e2e.firstcall.watch import EventWatch, set_ring_timeout

pytestmark = pytest.mark.timeout(180)

CALLS = 6
SPEECH_SECONDS = 4.0
KILL_AFTER = 2.0
RECORDERS = {"e2e-recorder": "media-recorder", "e2e-recorder-2": "media-recorder-2"}


@pytest.fixture
def system(
    pg_admin_dsn: str, pg_template: str, nats_url: str, moto_server: MotoServer
) -> Iterator[FirstCallSystem]:
    token = uuid.uuid4().hex[:16]
    prefix, stream = f"t{token}", f"TEST_{token}"
    with (
        temporary_database(pg_admin_dsn, template=pg_template) as database,
        unique_bucket(moto_server) as bucket,
    ):
        backends = Backends(
            database_url=dsn_for(pg_admin_dsn, database),
            nats_url=nats_url,
            events_prefix=prefix,
            events_stream=stream,
            s3_endpoint=moto_server.endpoint,
            s3_bucket=bucket,
            s3_access_key=ACCESS_KEY,
            s3_secret_key=SECRET_KEY,
            s3_region=REGION,
        )
        running = start_system(backends, recorders=2)
        try:
            yield running
        finally:
            codes = running.stop()
            _delete_stream(nats_url, prefix, stream)
        killed = [name for name, code in codes.items() if code == -signal.SIGKILL]
        assert len(killed) == 1, codes  # the one we killed …
        assert all(code == 0 for name, code in codes.items() if name not in killed), codes


@dataclass
class Placed:
    index: int
    call_id: str
    speech_start: float = 0.0
    """``time.monotonic()`` when its first RTP packet of speech left."""
    ended_at: float = 0.0
    ended_by: str = ""
    """``remote-bye`` (the agent hung up) or ``local-bye`` (the caller did)."""


async def sign_up_alice(system: FirstCallSystem) -> None:
    async with httpx.AsyncClient(base_url=system.web_url, timeout=10) as http:
        response = await http.post(
            "/api/v1/signup",
            json={
                "username": "alice",
                "password": "alice-password-1",
                "email": "alice@mail.test",
                "pin": "2468",
                "display_name": "Alice",
            },
        )
        assert response.status_code == 201, response.text
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    agent = f"127.0.0.1:{system.agent_sip_port}"
    while not any(agent in c.address for c in system.kamailio.lookup("alice")):
        assert loop.time() < deadline, "alice's voicemail contact was never registered"
        await asyncio.sleep(0.2)
    await set_ring_timeout(system.backends.database_url, "alice", 1)


async def place_call(
    system: FirstCallSystem, index: int, speaking: asyncio.Event, out: list[Placed]
) -> None:
    rtp = await RtpPeer().open()
    try:
        async with Caller(user=f"caller{index}", domain=system.domain) as caller:
            record = caller.invite(f"sip:alice@{system.domain}", system.proxy, rtp.offer())
            placed = Placed(index, record.call.call_id)
            out.append(placed)
            await wait_event(record.answered, 30, f"call {index} answered", caller)
            assert record.call.remote_sdp is not None
            rtp.use_answer(record.call.remote_sdp)
            await rtp.wait_quiet(quiet=0.3, after=25, limit=40)  # greeting, beep
            placed.speech_start = time.monotonic()
            speaking.set()
            sender = asyncio.create_task(
                rtp.send_audio(known_audio(SPEECH_SECONDS, seed=100 + index))
            )
            ended = asyncio.create_task(record.ended.wait())
            await asyncio.wait({sender, ended}, return_when=asyncio.FIRST_COMPLETED)
            sender.cancel()
            if not record.ended.is_set():
                record.call.hangup(caller.endpoint.now())
            await wait_event(record.ended, 10, f"call {index} ended", caller)
            placed.ended_at = time.monotonic()
            placed.ended_by = record.end_reason or ""
    finally:
        rtp.close()


async def test_sigkill_of_a_media_recorder_with_calls_in_progress(
    system: FirstCallSystem,
) -> None:
    await sign_up_alice(system)
    watch = await EventWatch(system.backends.nats_url, system.backends.events_prefix).start()
    try:
        placed: list[Placed] = []
        speaking = [asyncio.Event() for _ in range(CALLS)]
        calls = [
            asyncio.create_task(place_call(system, i, speaking[i], placed)) for i in range(CALLS)
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in speaking)), 60)
        # which replica holds which call (call.answered names the recorder)
        answered = {e.data["call_id"]: e.data for e in watch.of("call.answered")}
        holders = [answered[p.call_id]["recorder_id"] for p in placed]
        victim = max(RECORDERS, key=holders.count)
        await asyncio.sleep(
            max(0.0, max(p.speech_start for p in placed) + KILL_AFTER - time.monotonic())
        )
        system.services[RECORDERS[victim]].proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*calls), 60)
        created = await wait_for_count(watch, "message.created", CALLS, limit=20)
        mails = await asyncio.to_thread(system.smtp.wait_for, CALLS, 40)
        await asyncio.sleep(1.0)  # anything doubled would arrive now
        rows = await stored_rows(system.backends.database_url)
    finally:
        await watch.close()

    sessions = {p.call_id: answered[p.call_id]["session_id"] for p in placed}
    on_victim = [p for p in placed if answered[p.call_id]["recorder_id"] == victim]
    by_session: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        by_session.setdefault(row["idempotency_key"], []).append(row)
    mail_ids = [m.message["X-Sipum-Message-Id"] for m in system.smtp.mails]
    stored = sum(1 for p in placed if by_session.get(sessions[p.call_id]))
    doubled_rows = sum(max(0, len(v) - 1) for v in by_session.values()) + max(0, len(rows) - CALLS)
    doubled_mails = len(mail_ids) - len(set(mail_ids))
    emailed = len({str(r["id"]) for r in rows} & set(mail_ids))
    interrupted = [r for r in rows if r["interrupted"]]
    bye_after = [p.ended_at - killed_at for p in on_victim]
    speech_lost = []
    for p in on_victim:
        (row,) = by_session[sessions[p.call_id]]
        said = min(SPEECH_SECONDS, killed_at - p.speech_start)
        speech_lost.append(said - row["duration_ms"] / 1000)

    print(
        "\n| fault | calls | on killed | stored | e-mailed | lost | doubled | interrupted "
        "| BYE after kill (max) | speech lost (max) |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| SIGKILL media-recorder | {CALLS} | {len(on_victim)} | {stored} | {emailed} "
        f"| {CALLS - stored} | {doubled_rows + doubled_mails} | {len(interrupted)} "
        f"| {max(bye_after):.2f} s | {max(speech_lost):.2f} s |"
    )
    assert len(created) == CALLS
    assert stored == CALLS and doubled_rows == 0  # 0 lost, 0 doubled
    assert emailed == CALLS and doubled_mails == 0 and len(mails) == CALLS
    assert {sessions[p.call_id] for p in on_victim} == {r["idempotency_key"] for r in interrupted}
    for p in on_victim:
        assert p.ended_by == "remote-bye"  # the agent ended it, the caller did not have to
    assert max(bye_after) <= 2.5, bye_after  # 2 s + the proxy hop and a loaded machine
    assert max(speech_lost) <= 0.5, speech_lost
    for p in placed:
        if p not in on_victim:
            (row,) = by_session[sessions[p.call_id]]
            assert not row["interrupted"] and abs(row["duration_ms"] / 1000 - SPEECH_SECONDS) < 0.3
    cut_off = [m for m in system.smtp.mails if "cut off" in m.message.get_body().get_content()]
    assert len(cut_off) == len(on_victim)


async def wait_for_count(watch: EventWatch, kind: str, count: int, *, limit: float) -> list:  # type: ignore[type-arg]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while len(watch.of(kind)) < count:
        assert loop.time() < deadline, f"{len(watch.of(kind))} {kind} within {limit} s"
        await asyncio.sleep(0.1)
    return watch.of(kind)


async def stored_rows(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return list(
            await conn.fetch(
                "SELECT m.id, m.idempotency_key, m.duration_ms, m.interrupted FROM messages m"
                " JOIN users u ON u.id = m.owner_id WHERE u.username = 'alice'"
            )
        )
    finally:
        await conn.close()
