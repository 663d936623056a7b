"""The liveness tracker on a fake clock: alive while beating, reported gone once after
``dead_after`` of silence, never-heard replicas only after we listened that long, a clean stop
is no death; and heartbeats over real NATS."""

from __future__ import annotations

import asyncio

from sipum.events import EventBus, RecorderHeartbeat
from sipum.events.liveness import LivenessTracker


def hb(rid: str, state: str = "up", dead_after: float = 1.5) -> RecorderHeartbeat:
    return RecorderHeartbeat(recorder_id=rid, interval_s=0.5, dead_after_s=dead_after, state=state)  # type: ignore[arg-type]


def test_alive_while_beating_gone_once_after_dead_after() -> None:
    t = LivenessTracker()
    t.observe(0.0)
    for i in range(10):  # a beat every 0.5 s up to 4.5 s
        t.beat(hb("a"), 0.5 * i)
        assert t.alive("a", 0.5 * i + 0.49)
        assert t.expire(0.5 * i + 0.49) == []
    assert t.next_deadline() == 4.5 + 1.5
    assert t.alive("a", 5.99) and not t.alive("a", 6.0)
    assert t.expire(5.99) == []
    assert t.expire(6.0) == ["a"]
    assert t.expire(7.0) == []  # reported once
    assert not t.known("a") and t.next_deadline() is None
    # a replica coming back under the same id starts afresh
    t.beat(hb("a"), 8.0)
    assert t.alive("a", 8.1) and t.expire(9.49) == [] and t.expire(9.5) == ["a"]


def test_each_replica_has_its_own_deadline() -> None:
    t = LivenessTracker()
    t.beat(hb("a"), 0.0)
    t.beat(hb("b", dead_after=3.0), 0.0)
    assert t.next_deadline() == 1.5
    assert t.expire(1.5) == ["a"]
    assert t.next_deadline() == 3.0
    assert t.alive_ids(2.0) == ["b"]
    assert t.expire(3.0) == ["b"]


def test_clean_stop_is_forgotten_not_reported() -> None:
    t = LivenessTracker()
    t.beat(hb("a"), 0.0)
    t.beat(hb("a", "stopping"), 0.5)
    assert t.alive("a", 1.0)  # draining: still holds calls
    t.beat(hb("a", "stopped"), 1.0)
    assert not t.known("a") and t.expire(10.0) == []


def test_never_heard_replica_is_presumed_gone_only_after_listening_long_enough() -> None:
    t = LivenessTracker()
    assert not t.silent_since_start("x", 100.0, 1.5)  # not listening at all
    t.observe(10.0)
    assert not t.silent_since_start("x", 11.4, 1.5)
    assert t.silent_since_start("x", 11.5, 1.5)
    t.beat(hb("y"), 11.0)
    assert not t.silent_since_start("y", 12.4, 1.5)
    assert t.silent_since_start("y", 12.5, 1.5)


async def test_heartbeats_over_nats(event_bus: EventBus) -> None:
    got: list[RecorderHeartbeat] = []
    sub = await event_bus.subscribe_heartbeats(got.append)
    await event_bus.nc.flush()
    await event_bus.publish_heartbeat(hb("r1"))
    await event_bus.nc.publish(event_bus.subjects.recorder_heartbeat, b"{not json")
    await event_bus.publish_heartbeat(hb("r1", "stopped"))
    for _ in range(100):
        if len(got) == 2:
            break
        await asyncio.sleep(0.01)
    await sub.unsubscribe()
    assert [(h.recorder_id, h.state) for h in got] == [("r1", "up"), ("r1", "stopped")]
    assert event_bus.subjects.recorder_heartbeat.endswith(".media.recorder.heartbeat")


def test_hold_keeps_everyone_alive_while_we_were_blind() -> None:
    """Our NATS connection was away (a server restart): nobody is gone before the hold ends."""
    t = LivenessTracker()
    t.observe(0.0)
    t.beat(hb("a"), 0.0)
    t.hold(5.0)
    assert t.alive("a", 4.9) and t.expire(4.9) == []
    assert t.next_deadline() == 5.0
    assert not t.silent_since_start("never", 4.9, 1.5)
    assert t.expire(5.0) == ["a"]
    assert t.silent_since_start("never", 5.0, 1.5)
    t.beat(hb("b"), 6.0)  # a hold in the past changes nothing
    assert t.next_deadline() == 7.5
