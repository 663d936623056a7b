"""Fault: the NATS server restarts (down 3 s) while calls through Kamailio are in progress.

The system runs on a NATS server of its own (the shared one must not be restarted), with
JetStream on disk so the stream survives. Every client loses its connection; the heartbeats of
both recorders stop for longer than ``dead_after``. Nobody may take that for a recorder's death:
no call ended by the agent (``media_lost``), no live recording recovered (``interrupted``), every
message stored once and mailed once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sipum_testing.nats import PrivateNatsServer

from ..e2e.firstcall.system import FirstCallSystem
from ..e2e.firstcall.watch import EventWatch
from .calls import Placed, place_call, sign_up_alice, stored_rows, table

pytestmark = pytest.mark.timeout(180)

CALLS = 4
SPEECH = 6.0
DOWN = 3.0


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateNatsServer]:
    server = PrivateNatsServer(str(tmp_path / "jetstream")).start()
    yield server
    server.stop()


@pytest.fixture
def system_nats_url(private_nats: PrivateNatsServer) -> str:
    return private_nats.url


async def test_nats_restart_with_calls_in_progress(
    system: FirstCallSystem, private_nats: PrivateNatsServer
) -> None:
    await sign_up_alice(system)
    placed: list[Placed] = []
    speaking = [asyncio.Event() for _ in range(CALLS)]
    calls = [
        asyncio.create_task(place_call(system, i, speaking[i], placed, speech_seconds=SPEECH))
        for i in range(CALLS)
    ]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in speaking)), 60)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(private_nats.stop)
    await asyncio.sleep(DOWN)
    await asyncio.to_thread(private_nats.start)
    await asyncio.wait_for(asyncio.gather(*calls), 60)
    watch = await EventWatch(system.backends.nats_url, system.backends.events_prefix).start()
    try:
        rows = await wait_for_rows(system, CALLS, limit=40)
        mails = await asyncio.to_thread(system.smtp.wait_for, CALLS, 60)
        await asyncio.sleep(2.0)
        rows = await stored_rows(system.backends.database_url)
    finally:
        await watch.close()
    mail_ids = [m.message["X-Sipum-Message-Id"] for m in system.smtp.mails]
    stored = len({r["idempotency_key"] for r in rows})
    emailed = len({str(r["id"]) for r in rows} & set(mail_ids))
    doubled = (len(rows) - stored) + (len(mail_ids) - len(set(mail_ids)))
    ended_by_agent = [p for p in placed if p.ended_by == "remote-bye"]
    print(
        table(
            [
                {
                    "fault": f"NATS server restart ({DOWN:.0f} s down) mid-call",
                    "calls": CALLS,
                    "stored": stored,
                    "e-mailed": emailed,
                    "lost": CALLS - min(stored, emailed),
                    "doubled": doubled,
                    "interrupted": sum(1 for r in rows if r["interrupted"]),
                    "calls ended by the agent": len(ended_by_agent),
                }
            ]
        )
    )
    assert ended_by_agent == []  # the callers hung up themselves: nobody took it for a death
    assert stored == CALLS and doubled == 0
    assert not any(r["interrupted"] for r in rows)
    assert emailed == CALLS and len(mails) >= CALLS


async def wait_for_rows(system: FirstCallSystem, count: int, *, limit: float) -> list:  # type: ignore[type-arg]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        rows = await stored_rows(system.backends.database_url)
        if len(rows) >= count:
            return rows
        assert loop.time() < deadline, f"{len(rows)} messages stored within {limit} s"
        await asyncio.sleep(0.2)
