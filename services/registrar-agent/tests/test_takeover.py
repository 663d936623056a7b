"""The shard takeover decisions (``takeover.ShardTakeover``), sans-I/O on a fake clock: fed
heartbeats and ``now``, it says which shards to take and to give back."""

from __future__ import annotations

import pytest
from sipum.events import AgentHeartbeat
from sipum_registrar_agent.takeover import Release, ShardTakeover, Take

DEAD_AFTER = 2.0


def hb(
    shard: int,
    *,
    state: str = "up",
    serving: list[int] | None = None,
    count: int = 3,
    contact: str | None = None,
    agent: str | None = None,
) -> AgentHeartbeat:
    return AgentHeartbeat(
        agent_id=agent or f"agent-{shard}",
        shard_index=shard,
        shard_count=count,
        interval_s=0.5,
        dead_after_s=DEAD_AFTER,
        state=state,  # type: ignore[arg-type]
        serving=[shard] if serving is None else serving,
        contact=contact or f"127.0.0.1:{5070 + shard}",
    )


def agent(shard: int, count: int = 3, *, contact: str | None = None) -> ShardTakeover:
    core = ShardTakeover(
        agent_id=f"agent-{shard}",
        shard_index=shard,
        shard_count=count,
        dead_after=DEAD_AFTER,
        contact=contact or f"127.0.0.1:{5070 + shard}",
    )
    core.observe(0.0)
    return core


def beat_all(core: ShardTakeover, now: float, *beats: AgentHeartbeat) -> None:
    for beat in beats:
        core.beat(beat, now)


def test_nothing_taken_while_everyone_beats() -> None:
    core = agent(1)
    for i in range(20):
        now = 0.5 * i
        beat_all(core, now, hb(0), hb(2))
        assert core.decide(now) == []
    assert core.serving == {1}


def test_lowest_live_agent_takes_a_silent_shard_after_dead_after() -> None:
    one, two = agent(1), agent(2)
    for core in (one, two):
        beat_all(core, 0.0, hb(0), hb(1), hb(2))
        beat_all(core, 0.5, hb(0), hb(1), hb(2))
    # agent 0 dies after its beat at 0.5 s: gone at 2.5 s, not before
    for now in (1.0, 1.5, 2.0, 2.4):
        beat_all(one, now, hb(2))
        beat_all(two, now, hb(1))
        assert one.decide(now) == [] and two.decide(now) == []
    assert one.decide(2.5) == [Take(0)]
    assert two.decide(2.5) == []  # 1 is lower and alive: it is the taker
    assert one.serving == {0, 1} and two.serving == {2}
    assert one.decide(2.6) == []  # decided once


def test_clean_stop_is_taken_over_at_once() -> None:
    core = agent(1, count=2)
    beat_all(core, 0.0, hb(0, count=2))
    beat_all(core, 2.0, hb(0, count=2))
    assert core.decide(2.0) == []
    beat_all(core, 2.1, hb(0, count=2, state="stopping"))
    assert core.decide(2.1) == [Take(0)]
    beat_all(core, 2.2, hb(0, count=2, state="stopped"))
    assert core.decide(2.2) == [] and core.serving == {0, 1}


def test_no_judgement_before_listening_for_dead_after() -> None:
    core = agent(1, count=2)  # agent 0 never heard
    assert core.decide(1.99) == []
    assert core.decide(2.0) == [Take(0)]


def test_hold_keeps_everything_as_it_is() -> None:
    core = agent(1, count=2)
    beat_all(core, 1.0, hb(0, count=2))
    core.hold(10.0)  # our NATS connection came back: nobody judged before 10 s
    assert core.decide(5.0) == []
    assert core.next_deadline(5.0) == 10.0
    assert core.decide(10.0) == [Take(0)]
    # and a taken shard is not given up while blind either
    core.hold(20.0)
    assert core.decide(15.0) == [] and core.serving == {0, 1}


def test_given_back_only_when_the_returning_agent_is_up() -> None:
    core = agent(1, count=2)
    assert core.decide(2.0) == [Take(0)]
    beat_all(core, 3.0, hb(0, count=2, state="starting"))
    assert core.decide(3.0) == []  # its REGISTERs are not answered yet: we keep serving
    beat_all(core, 3.5, hb(0, count=2, state="starting"))
    assert core.decide(3.5) == [] and core.serving == {0, 1}
    beat_all(core, 4.0, hb(0, count=2, state="up"))
    assert core.decide(4.0) == [Release(0, deregister=True)]
    assert core.serving == {1}


def test_same_contact_is_released_without_deregistration() -> None:
    shared = "vm.example.com:5070"
    core = agent(1, count=2, contact=shared)
    assert core.decide(2.0) == [Take(0)]
    beat_all(core, 3.0, hb(0, count=2, contact=shared))
    assert core.decide(3.0) == [Release(0, deregister=False)]


def test_returning_agent_that_dies_again_is_taken_over_again() -> None:
    core = agent(1, count=2)
    assert core.decide(2.0) == [Take(0)]
    beat_all(core, 3.0, hb(0, count=2, state="starting"))
    assert core.decide(3.0) == []
    # silent again before it was up: we never let go, nothing to do when it is gone
    assert core.decide(5.1) == [] and core.serving == {0, 1}
    beat_all(core, 6.0, hb(0, count=2))
    assert core.decide(6.0) == [Release(0, deregister=True)]
    assert core.decide(8.0) == [Take(0)]  # last beat at 6.0, gone at 8.0


def test_a_lower_agent_back_becomes_the_taker_and_we_hand_over() -> None:
    # agents 0 and 2 are down; 1 took 2. 0 comes back: it takes 2 (lowest), then 1 gives 2 up.
    one = agent(1)
    beat_all(one, 0.5, hb(0))
    assert one.decide(2.0) == []  # 2 never heard, but 0 is alive: 0 is its taker
    assert one.decide(2.5) == [Take(0), Take(2)]  # 0's last beat was at 0.5
    beat_all(one, 3.0, hb(0, state="starting", serving=[0]))
    assert one.decide(3.0) == []
    beat_all(one, 3.5, hb(0, state="up", serving=[0]))
    assert one.decide(3.5) == [Release(0, deregister=True)]
    assert one.serving == {1, 2}  # 0 has not taken 2 yet: keep it
    beat_all(one, 4.0, hb(0, state="up", serving=[0, 2]))
    assert one.decide(4.0) == [Release(2, deregister=True)]
    assert one.serving == {1}

    zero = agent(0)  # the same from 0's side: 1 is alive, 2 silent → 0 takes it
    beat_all(zero, 1.0, hb(1, serving=[1, 2]))
    assert zero.decide(2.0) == [Take(2)]


def test_own_shard_free_waits_for_the_taker_to_give_it_back() -> None:
    zero = agent(0, count=2)
    beat_all(zero, 0.5, hb(1, count=2, serving=[0, 1]))
    assert not zero.own_shard_free(1.0)  # still listening
    beat_all(zero, 2.0, hb(1, count=2, serving=[0, 1]))
    assert not zero.own_shard_free(2.0)  # 1 still serves our shard
    beat_all(zero, 2.5, hb(1, count=2, serving=[1]))
    assert zero.own_shard_free(2.5)


def test_other_shard_counts_and_our_own_beats_are_ignored() -> None:
    core = agent(1, count=2)
    assert not core.beat(hb(0, count=3), 0.5)
    assert not core.beat(hb(1, count=2), 0.5)  # our own agent_id
    assert core.mismatched == 1
    assert core.decide(2.0) == [Take(0)]  # 0 of a 3-way split says nothing about ours


def test_next_deadline_is_the_next_silence() -> None:
    core = agent(1, count=2)
    assert core.next_deadline(0.0) == 2.0  # end of the listening period
    beat_all(core, 3.0, hb(0, count=2))
    assert core.next_deadline(3.0) == 5.0
    assert core.next_deadline(5.0) is None


def test_bad_shard_index() -> None:
    with pytest.raises(ValueError):
        ShardTakeover(agent_id="a", shard_index=2, shard_count=2, dead_after=1.0)
