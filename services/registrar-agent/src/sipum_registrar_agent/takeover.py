"""Which shards this agent serves: its own, and those of agents that went silent (sans-I/O).

Every agent publishes an ``AgentHeartbeat`` every ``interval`` (its ``shard_index``, its
``state``, the shards it ``serving`` now, its registered ``contact``) and feeds everyone
else's into one :class:`ShardTakeover`, together with ``now``; :meth:`ShardTakeover.decide`
says which shards to take (REGISTER their users with our contact) and which to give back.
No clock, no I/O: ``sipum_registrar_agent.shard_watch`` is the asyncio side, the unit tests
drive this with a fake clock.

Rules:

* Liveness is the shared ``sipum.events.liveness.LivenessTracker``: an agent silent for its
  announced ``dead_after_s`` is gone; ``stopped`` (its last word on SIGTERM) forgets it at
  once, and ``stopping`` (it is de-registering) already counts as not serving its shard, so
  a clean stop is taken over without waiting for the timeout.
* A shard is **unserved** when no live agent with that ``shard_index`` is ``starting`` or
  ``up``. Nobody judges before having listened for ``dead_after`` (an agent that just
  started has not heard the others yet), nor while our own NATS view was blind
  (``hold``, as for the recorders: a NATS restart must not make every agent take every shard).
* The **taker** of an unserved shard is the live agent with the lowest ``shard_index``
  (counting ourselves): every agent computes the same one from the same heartbeats.
* **Giving back without a gap**: a taken shard is kept while its own agent is ``starting``
  (its first REGISTERs not all answered); once it says ``up`` — its contact is bound at the
  registrar — we give the shard back. Our contact differs from the returning agent's (its
  own socket), so we de-register ours (``Expires: 0`` for our Contact only, RFC 3261
  §10.2.2: the returning agent's binding stays). Should both contacts be the same URI (both
  agents behind one advertised address), an ``Expires: 0`` would remove the binding the
  returning agent has just refreshed: then we only stop refreshing (``Release.deregister``
  false) and the binding is the returning agent's.
* A taken shard is also given back when a lower live agent announces ``serving`` it (it
  became the taker); until then we keep it, so there is always someone.
* Heartbeats of agents with another ``shard_count`` are ignored (a rolling change of the
  shard count must not move users between unrelated splits); they are counted in
  ``mismatched`` for a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

from sipum.events.liveness import LivenessTracker
from sipum.events.models import AgentHeartbeat

SERVING_STATES = frozenset({"starting", "up"})


@dataclass(frozen=True, slots=True)
class Take:
    """Start registering the users of ``shard`` (an agent went silent)."""

    shard: int


@dataclass(frozen=True, slots=True)
class Release:
    """Stop registering the users of ``shard``; ``deregister``: with ``Expires: 0`` (our
    contact differs from that of the agent now serving it), else only stop refreshing."""

    shard: int
    deregister: bool


ShardAction = Take | Release


class ShardTakeover:
    """See the module docstring."""

    def __init__(
        self,
        *,
        agent_id: str,
        shard_index: int,
        shard_count: int,
        dead_after: float,
        contact: str = "",
    ) -> None:
        if not 0 <= shard_index < shard_count:
            raise ValueError("shard_index must be below shard_count")
        self.agent_id = agent_id
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.dead_after = dead_after
        self.contact = contact
        self.tracker = LivenessTracker()
        self.peers: dict[str, AgentHeartbeat] = {}
        """The last heartbeat of each other agent we take for alive."""
        self.serving: set[int] = {shard_index}
        """What we serve now (as decided; the adapter acts on the decisions)."""
        self.mismatched = 0

    # ------------------------------------------------------------------ input

    def observe(self, now: float) -> None:
        """We listen from ``now`` on."""
        self.tracker.observe(now)

    def beat(self, heartbeat: AgentHeartbeat, now: float) -> bool:
        """Another agent's heartbeat (our own is ignored); False if not counted."""
        if heartbeat.agent_id == self.agent_id:
            return False
        if heartbeat.shard_count != self.shard_count:
            self.mismatched += 1
            return False
        self.tracker.note(
            heartbeat.agent_id, now, dead_after=heartbeat.dead_after_s, state=heartbeat.state
        )
        if heartbeat.state == "stopped":
            self.peers.pop(heartbeat.agent_id, None)
        else:
            self.peers[heartbeat.agent_id] = heartbeat
        return True

    def hold(self, until: float) -> None:
        """Our view is blind until ``until`` (NATS away or just back): nobody is judged."""
        self.tracker.hold(until)

    # ------------------------------------------------------------------ state

    def _forget_gone(self, now: float) -> None:
        for agent_id in self.tracker.expire(now):
            self.peers.pop(agent_id, None)

    def live(self, now: float) -> list[AgentHeartbeat]:
        """The other agents that serve their shard now (alive, ``starting`` or ``up``)."""
        return [
            hb
            for agent_id, hb in self.peers.items()
            if hb.state in SERVING_STATES and self.tracker.alive(agent_id, now)
        ]

    def may_judge(self, now: float) -> bool:
        """Listened long enough, and not blind: silence now means something."""
        started = self.tracker.started_at
        return (
            started is not None
            and now - started >= self.dead_after
            and now >= self.tracker.hold_until
        )

    def others_serving(self, shard: int, now: float) -> list[AgentHeartbeat]:
        """Other live agents that announce serving ``shard`` (e.g. a taker of ours)."""
        return [hb for hb in self.live(now) if shard in hb.serving]

    def own_shard_free(self, now: float) -> bool:
        """Nobody else serves our shard any more (a taker gave it back): ours alone now —
        what the MWI restore of our shard waits for."""
        return self.may_judge(now) and not self.others_serving(self.shard_index, now)

    # ------------------------------------------------------------------ decisions

    def wanted(self, now: float) -> set[int]:
        """The shards we should serve now."""
        self._forget_gone(now)
        live = self.live(now)
        live_shards = {hb.shard_index for hb in live} | {self.shard_index}
        taker = min(live_shards)
        judge = self.may_judge(now)
        wanted = {self.shard_index}
        for shard in range(self.shard_count):
            if shard == self.shard_index:
                continue
            owners = [hb for hb in live if hb.shard_index == shard]
            if owners:
                # Its agent is back: keep it until that one is up (its contact bound).
                if shard in self.serving and not any(hb.state == "up" for hb in owners):
                    wanted.add(shard)
                continue
            if not judge:
                if shard in self.serving:
                    wanted.add(shard)  # blind or just started: change nothing
                continue
            if taker == self.shard_index:
                wanted.add(shard)
            elif shard in self.serving and not any(
                shard in hb.serving and hb.shard_index < self.shard_index for hb in live
            ):
                wanted.add(shard)  # the new taker has not taken it yet
        return wanted

    def decide(self, now: float) -> list[ShardAction]:
        """What to change now; ``serving`` is updated as if it were done."""
        wanted = self.wanted(now)
        actions: list[ShardAction] = [Take(k) for k in sorted(wanted - self.serving)]
        live = self.live(now)
        for shard in sorted(self.serving - wanted):
            now_serving = [hb for hb in live if hb.shard_index == shard or shard in hb.serving]
            same_contact = bool(self.contact) and any(
                hb.contact == self.contact for hb in now_serving
            )
            actions.append(Release(shard, deregister=not same_contact))
        self.serving = wanted
        return actions

    def next_deadline(self, now: float) -> float | None:
        """The next moment after ``now`` a decision may change with nothing heard (for a
        timer): an agent's silence deadline, the end of the listening period or of a hold."""
        times = [self.tracker.next_deadline(), self.tracker.hold_until]
        started = self.tracker.started_at
        if started is not None:
            times.append(started + self.dead_after)
        future = [t for t in times if t is not None and t > now]
        return min(future) if future else None
