"""``ShardWatch`` (the asyncio side of the takeover) of two agents on a test's own nats-server:
nothing taken while both beat, a NATS server restart (everyone silent for 3 s, longer than
``dead_after``) takes nothing, an agent whose beats stop has its shard taken within
``dead_after`` + one interval, a ``stopping`` agent's at once, and a returning one gets it back
once it says ``up``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sipum.events import EventBus
from sipum_registrar_agent.shard_watch import ShardWatch
from sipum_registrar_agent.takeover import ShardTakeover
from sipum_testing.nats import PrivateNatsServer

pytestmark = pytest.mark.timeout(60)

INTERVAL, DEAD_AFTER = 0.25, 1.0


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    srv = PrivateNatsServer(str(tmp_path / "js")).start()
    yield srv
    srv.stop()


class Agent:
    def __init__(self, bus: EventBus, shard: int) -> None:
        self.actions: list[tuple[str, int]] = []
        self.own_free = 0
        self.ready = True
        self.watch = ShardWatch(
            bus,
            ShardTakeover(
                agent_id=f"agent-{shard}",
                shard_index=shard,
                shard_count=2,
                dead_after=DEAD_AFTER,
                contact=f"127.0.0.1:{5070 + shard}",
            ),
            interval=INTERVAL,
            ready=lambda: self.ready,
            on_take=lambda k: self.actions.append(("take", k)),
            on_release=lambda k, deregister: self.actions.append(
                ("release" if deregister else "forget", k)
            ),
            on_own_shard_free=self._free,
        )

    def _free(self) -> None:
        self.own_free += 1


async def until(predicate: object, limit: float, what: str) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():  # type: ignore[operator]
        assert loop.time() - start < limit, f"not within {limit} s: {what}"
        await asyncio.sleep(0.02)
    return loop.time() - start


async def test_takeover_over_nats_and_a_restart_takes_nothing(server: PrivateNatsServer) -> None:
    bus0 = await EventBus.connect(server.url, "agent-0")
    bus1 = await EventBus.connect(server.url, "agent-1")
    zero, one = Agent(bus0, 0), Agent(bus1, 1)
    try:
        await zero.watch.start()
        await one.watch.start()
        await asyncio.sleep(DEAD_AFTER + 1.0)
        assert zero.actions == [] and one.actions == []
        assert zero.own_free == 1 and one.own_free == 1  # nobody else serves their shards
        assert zero.watch.state == "up" and one.watch.state == "up"

        server.stop()  # 3 s without any heartbeat: longer than dead_after
        await asyncio.sleep(3.0)
        server.start()
        await asyncio.sleep(5.0)  # both clients reconnect (every 2 s), the beats resume
        assert zero.actions == [] and one.actions == [], "a NATS restart moved shards"
        assert bus0.is_connected and bus1.is_connected

        # agent 0's beats stop (as under SIGKILL): agent 1 takes shard 0
        await zero.watch._beats.stop()
        took = await until(lambda: one.actions == [("take", 0)], 4, "shard 0 taken")
        assert took <= DEAD_AFTER + INTERVAL + 0.3, took
        # it comes back, still registering: kept; once up: given back (Expires: 0, contacts
        # differ)
        zero.ready = False
        zero.watch.state = "starting"
        await zero.watch._beats.start()
        await asyncio.sleep(DEAD_AFTER)
        assert one.actions == [("take", 0)]
        zero.ready = True
        await until(lambda: one.actions[-1:] == [("release", 0)], 3, "shard 0 given back")

        # a clean stop is taken over at once, not after dead_after
        await zero.watch.stop(final=False)
        taken = await until(lambda: one.actions[-1:] == [("take", 0)], 2, "stopping taken")
        assert taken < DEAD_AFTER, taken
        assert zero.actions == []  # agent 0 never took anything
    finally:
        await zero.watch.stop(final=True)
        await one.watch.stop(final=True)
        await bus0.close(drain=False)
        await bus1.close(drain=False)
