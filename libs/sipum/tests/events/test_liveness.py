"""The liveness tracker on a fake clock: alive while beating, reported gone once after
``dead_after`` of silence, never-heard replicas only after we listened that long, a clean stop
is no death; and heartbeats over real NATS."""

from __future__ import annotations

import asyncio

from sipum.events import EventBus, RecorderHeartbeat
from sipum.events.liveness import (
    LINK_DRAINING,
    LINK_PROBE_DELAY,
    CloseLink,
    LivenessLinks,
    LivenessTracker,
    OpenLink,
    format_link,
    link_hello,
    parse_link,
)


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


# -- the liveness link (fake clock) ------------------------------------------------------------


def linked(rid: str, link: str | None = "127.0.0.1:7001", state: str = "up") -> RecorderHeartbeat:
    return RecorderHeartbeat(
        recorder_id=rid,
        interval_s=0.5,
        dead_after_s=1.5,
        state=state,  # type: ignore[arg-type]
        link=link,
    )


def open_one(links: LivenessLinks, rid: str, now: float = 0.0) -> int:
    (action,) = links.heartbeat(linked(rid), now)
    assert isinstance(action, OpenLink) and action.recorder_id == rid
    assert (action.host, action.port) == ("127.0.0.1", 7001)
    assert links.opened(action.link_id, link_hello(rid))
    return action.link_id


def test_a_link_closing_after_its_hello_then_refused_is_the_death_of_the_replica() -> None:
    links = LivenessLinks()
    link_id = open_one(links, "a")
    assert links.state("a") == "open"
    assert links.heartbeat(linked("a"), 0.5) == []  # one link per replica
    probe = links.closed(link_id, 1.0)  # EOF: confirm at once
    assert probe is not None
    assert probe == OpenLink(probe.link_id, "a", "127.0.0.1", 7001, probe=True)
    assert links.state("a") == "probing"
    assert links.heartbeat(linked("a"), 1.01) == []  # no second link meanwhile
    assert links.refused(probe.link_id, 1.01) == "a"
    assert links.state("a") is None
    assert links.closed(link_id, 1.0) is None  # reported once
    assert links.refused(probe.link_id, 1.02) is None


def test_a_broken_link_whose_replica_answers_the_probe_is_no_death() -> None:
    links = LivenessLinks()
    link_id = open_one(links, "a")
    probe = links.closed(link_id, 1.0)  # a reset by a middlebox
    assert probe is not None
    assert links.opened(probe.link_id, link_hello("a"))  # it lives: open again
    assert links.state("a") == "open"
    # the probed link breaking again: no second probe, the heartbeats decide
    assert links.closed(probe.link_id, 1.5) is None
    # a probe that is not refused but gets no answer (host unreachable): no decision either
    (fresh,) = links.heartbeat(linked("a"), 2.6)
    assert isinstance(fresh, OpenLink) and not fresh.probe
    assert links.opened(fresh.link_id, link_hello("a"))
    second = links.closed(fresh.link_id, 3.0)
    assert second is not None
    # accepted but closed before the hello (a process being torn down): probed again, 20 ms
    # later, up to LINK_PROBES in all; then no decision
    again = links.closed(second.link_id, 3.01)
    assert again is not None and again.probe and again.delay == LINK_PROBE_DELAY
    last = links.closed(again.link_id, 3.05)
    assert last is not None and links.closed(last.link_id, 3.3) is None
    assert links.state("a") is None
    # refused although it was no probe (the first connect): no death
    (third,) = links.heartbeat(linked("a"), 4.3)
    assert isinstance(third, OpenLink)
    assert links.refused(third.link_id, 4.3) is None


def test_a_failed_connect_or_a_wrong_hello_is_no_death_and_is_retried_later() -> None:
    links = LivenessLinks(retry=1.0)
    (action,) = links.heartbeat(linked("a"), 0.0)
    assert isinstance(action, OpenLink)
    assert links.closed(action.link_id, 0.1) is None  # connection refused: proves nothing
    assert links.heartbeat(linked("a"), 0.5) == []  # not before retry
    (again,) = links.heartbeat(linked("a"), 1.1)
    assert isinstance(again, OpenLink) and again.link_id != action.link_id
    # someone else holds the port now (a replica of another id): not our link
    assert not links.opened(again.link_id, link_hello("b"))
    assert links.closed(again.link_id, 1.2) is None
    # a replica over its link limit closes before the hello: no death either
    (third,) = links.heartbeat(linked("a"), 2.3)
    assert isinstance(third, OpenLink)
    assert links.closed(third.link_id, 2.31) is None


def test_a_draining_replica_closing_its_link_is_no_crash() -> None:
    links = LivenessLinks()
    link_id = open_one(links, "a")
    links.received(link_id, LINK_DRAINING)
    assert links.state("a") == "draining"
    assert links.closed(link_id, 3.0) is None  # not even probed
    assert links.heartbeat(linked("a", state="stopping"), 3.5) == []  # no new link
    # the "stopping" heartbeat alone (its line not read yet) is enough too
    link_b = open_one(links, "b")
    assert links.heartbeat(linked("b", state="stopping"), 1.0) == []
    assert links.closed(link_b, 1.1) is None


def test_a_stopped_replicas_link_is_closed_and_a_restarted_one_gets_a_new_link() -> None:
    links = LivenessLinks()
    link_id = open_one(links, "a")
    assert links.heartbeat(linked("a", state="stopped"), 1.0) == [CloseLink(link_id)]
    assert links.closed(link_id, 1.0) is None  # ours, on purpose
    new_id = open_one(links, "a", now=1.5)
    # it restarted again, on another port, before we saw the old link close
    actions = links.heartbeat(linked("a", link="127.0.0.1:7002"), 2.0)
    assert actions[0] == CloseLink(new_id)
    assert isinstance(actions[1], OpenLink) and actions[1].port == 7002
    assert links.closed(new_id, 2.0) is None


def test_no_link_without_an_address_nor_with_a_bad_one() -> None:
    links = LivenessLinks()
    assert links.heartbeat(linked("a", link=None), 0.0) == []
    assert links.heartbeat(linked("b", link="no-port"), 0.0) == []
    assert links.heartbeat(linked("c", link="[::1]:0"), 0.0) == []
    (v6,) = links.heartbeat(linked("d", link="[::1]:7003"), 0.0)
    assert isinstance(v6, OpenLink) and (v6.host, v6.port) == ("::1", 7003)
    assert parse_link(format_link("::1", 7003)) == ("::1", 7003)


def test_drop_takes_a_replica_for_gone_now_and_ignores_its_late_heartbeats() -> None:
    t = LivenessTracker()
    t.beat(hb("a"), 0.0)
    t.beat(hb("b"), 0.0)
    assert t.drop("a", 0.2)
    assert not t.alive("a", 0.2) and t.alive_ids(0.2) == ["b"]
    assert not t.drop("a", 0.2)  # once
    t.beat(hb("a"), 0.21)  # sent just before it died
    assert not t.known("a") and t.expire(5.0) == ["b"]
    t.beat(hb("a"), 1.8)  # after its dead_after: a replica restarted under the same id
    assert t.alive("a", 1.9)
