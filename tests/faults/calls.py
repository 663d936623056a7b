"""What the fault tests share: alice's mailbox, callers through Kamailio, counting from outside."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg
import httpx

from ..e2e.firstcall.audio import known_audio
from ..e2e.firstcall.phone import Caller, RtpPeer, wait_event
from ..e2e.firstcall.system import FirstCallSystem
from ..e2e.firstcall.watch import EventWatch, set_ring_timeout

SPEECH_SECONDS = 4.0


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
    system: FirstCallSystem,
    index: int,
    speaking: asyncio.Event,
    out: list[Placed],
    *,
    speech_seconds: float = SPEECH_SECONDS,
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
                rtp.send_audio(known_audio(speech_seconds, seed=100 + index))
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


def table(rows: list[dict[str, object]]) -> str:
    """The fault table (markdown), one row per fault."""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n" + "\n".join(lines)
