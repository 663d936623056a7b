"""Two replicas' ``ReplicaLiveness`` on a test's own nats-server: a NATS server restart is
nobody's death (no recovery of live recordings); a replica whose heartbeats really stop is
reported gone within its ``dead_after``; a clean stop is no death."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sipum.events import EventBus
from sipum_media_recorder.liveness import ReplicaLiveness
from sipum_testing.nats import PrivateNatsServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    srv = PrivateNatsServer(str(tmp_path / "js")).start()
    yield srv
    srv.stop()


async def replica(url: str, rid: str, gone: list[tuple[str, str]]) -> ReplicaLiveness:
    bus = await EventBus.connect(url, rid)
    live = ReplicaLiveness(
        bus,
        recorder_id=rid,
        interval=0.5,
        misses=3,
        sessions=lambda: 0,
        on_gone=lambda other: gone.append((rid, other)),
    )
    await live.start()
    return live


async def test_restart_is_no_death_a_real_one_is_seen(server: PrivateNatsServer) -> None:
    gone: list[tuple[str, str]] = []
    a = await replica(server.url, "rec-a", gone)
    b = await replica(server.url, "rec-b", gone)
    c = await replica(server.url, "rec-c", gone)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.sleep(1.0)
        assert a.alive("rec-b") and b.alive("rec-a")
        server.stop()
        await asyncio.sleep(3.0)
        assert not a.presumed_gone("rec-b")  # cut off ourselves: nothing can be concluded
        server.start()
        await asyncio.sleep(5.0)
        assert gone == [], "a NATS restart was taken for replicas dying"
        assert a.alive("rec-b") and b.alive("rec-a")
        # rec-c stops cleanly: no death; then rec-b dies (its beats stop, as under SIGKILL)
        await c.stop(final=True)
        await b._beats.stop()  # its beats stop, nothing more said (as under SIGKILL)
        died = loop.time()
        while ("rec-a", "rec-b") not in gone:
            await asyncio.sleep(0.02)
            assert loop.time() - died < 4
        assert loop.time() - died <= 2.0
        assert ("rec-a", "rec-c") not in gone
        assert a.presumed_gone("rec-b")
    finally:
        for live in (a, b, c):
            await live.stop(final=True)
            await live.bus.close(drain=False)
