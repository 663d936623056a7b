"""``RecorderWatch`` on a test's own nats-server: a recorder that stops beating is reported
within 2 s; a NATS server restart (everyone's heartbeats stop for a while) ends no call."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sipum.events import EventBus, RecorderHeartbeat
from sipum_registrar_agent.recorders import RecorderWatch
from sipum_testing.nats import PrivateNatsServer

pytestmark = pytest.mark.timeout(60)


async def beat(bus: EventBus, recorder_id: str, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await bus.publish_heartbeat(
                RecorderHeartbeat(recorder_id=recorder_id, interval_s=0.5, dead_after_s=1.5)
            )
        except Exception:
            pass  # server away: the client buffers or refuses; beat again
        await asyncio.sleep(0.5)


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    srv = PrivateNatsServer(str(tmp_path / "js")).start()
    yield srv
    srv.stop()


async def test_gone_within_2s_but_a_nats_restart_ends_nothing(server: PrivateNatsServer) -> None:
    agent_bus = await EventBus.connect(server.url, "agent")
    recorder_bus = await EventBus.connect(server.url, "recorder")
    lost: list[str] = []
    gone: list[str] = []

    def on_lost(call: str, recorder_id: str) -> None:
        lost.append(call)
        gone.append(recorder_id)

    watch: RecorderWatch[str] = RecorderWatch(agent_bus, on_lost=on_lost, unknown_after=2.0)
    await watch.start()
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    beaters = [
        asyncio.create_task(beat(recorder_bus, "rec-a", stop_a)),
        asyncio.create_task(beat(recorder_bus, "rec-b", stop_b)),
    ]
    loop = asyncio.get_running_loop()
    try:
        await asyncio.sleep(1.0)
        watch.watch("call-a", "rec-a")
        watch.watch("call-b", "rec-b")
        # the server restarts: 3 s without any heartbeat (longer than dead_after)
        server.stop()
        await asyncio.sleep(3.0)
        server.start()
        await asyncio.sleep(5.0)  # both clients reconnect (every 2 s), the beats resume
        assert lost == [], "a NATS restart ended calls"
        assert agent_bus.is_connected and recorder_bus.is_connected
        # now rec-b really dies
        stop_b.set()
        died = loop.time()
        while not lost:
            await asyncio.sleep(0.02)
            assert loop.time() - died < 4
        assert lost == ["call-b"] and gone == ["rec-b"]
        assert loop.time() - died <= 2.0
        assert watch.others_alive("rec-b") == ["rec-a"]  # where a moved call can go
        await asyncio.sleep(1.0)
        assert lost == ["call-b"]  # rec-a lives on
    finally:
        stop_a.set()
        stop_b.set()
        for task in beaters:
            task.cancel()
        await watch.close()
        await agent_bus.close(drain=False)
        await recorder_bus.close(drain=False)
