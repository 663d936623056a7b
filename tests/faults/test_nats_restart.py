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
from .calls import CallsInProgress, sign_up_alice

pytestmark = pytest.mark.timeout(180)

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
    # no event watch: it would lose its connection too; counted from PostgreSQL and SMTP
    async with CallsInProgress(system, speech_seconds=SPEECH, watch_events=False) as calls:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(private_nats.stop)
        await asyncio.sleep(DOWN)
        await asyncio.to_thread(private_nats.start)
        await calls.ended()
        outcome = await calls.count(mail_limit=60, settle=2.0)
    ended_by_agent = [p for p in outcome.placed if p.ended_by == "remote-bye"]
    outcome.report(
        f"NATS server restart ({DOWN:.0f} s down) mid-call",
        **{"calls ended by the agent": len(ended_by_agent)},
    )
    assert ended_by_agent == []  # the callers hung up themselves: nobody took it for a death
    outcome.assert_none_lost_or_doubled()
