"""Liveness of replicas from their heartbeats (sans-I/O): the media-recorders', and the
registrar-agents' (``AgentHeartbeat``, ``note``; see ``sipum_registrar_agent.takeover``).

Every replica publishes ``RecorderHeartbeat`` on ``<prefix>.media.recorder.heartbeat`` every
``interval_s`` (core NATS). A replica silent for ``dead_after_s`` (the value it announced itself,
three intervals by default) is **gone**: the registrar-agent ends the calls whose media it held,
the other replicas recover the recordings it left in the blob store.

Why heartbeats per replica and not keep-alives per session: one message per replica per interval
whatever the number of calls (100 calls on a replica would otherwise be 100 keep-alives every
interval to every agent), and the one signal serves both listeners — the agents (which calls to
end) and the recorders (whose recordings to recover). What it cannot see is a replica that is
alive but has lost one session (a bug): the session's own end-of-call path covers that.

:class:`LivenessTracker` is the core: fed heartbeats and ``now``, it answers ``alive(id, now)``,
reports each replica that went silent once (``expire(now)``) and says when to look next
(``next_deadline()``). No clock of its own, no I/O; ``sipum.events.bus`` carries the messages.

Our own blindness is not their death: while the listener's NATS connection is away, and for
``dead_after`` + the client's reconnect wait after it is back (every client reconnects within
that of a restarted server), ``hold(until)`` keeps every replica alive — a NATS restart must not
end every call in progress.
"""

from __future__ import annotations

from dataclasses import dataclass

from sipum.events.models import RecorderHeartbeat

DEFAULT_INTERVAL = 0.5
"""Seconds between two heartbeats of one replica."""
DEFAULT_MISSES = 3
"""Heartbeats missed before a replica counts as gone (``dead_after = misses × interval``)."""


@dataclass
class _Replica:
    last_seen: float
    dead_after: float
    state: str
    sessions: int


class LivenessTracker:
    """Which media-recorder replicas are alive, from their heartbeats (see module doc)."""

    def __init__(self) -> None:
        self._replicas: dict[str, _Replica] = {}
        self.hold_until = float("-inf")
        """No replica is taken for gone before this (see :meth:`hold`)."""
        self.started_at: float | None = None
        """``now`` of the first ``observe`` call: only after ``dead_after`` of listening can a
        replica we never heard from be taken for gone (see :meth:`silent_since_start`)."""

    def observe(self, now: float) -> None:
        """We are listening from ``now`` on (call once, when subscribed)."""
        if self.started_at is None:
            self.started_at = now

    def beat(self, heartbeat: RecorderHeartbeat, now: float) -> None:
        self.note(
            heartbeat.recorder_id,
            now,
            dead_after=heartbeat.dead_after_s,
            state=heartbeat.state,
            sessions=heartbeat.sessions,
        )

    def note(
        self, replica_id: str, now: float, *, dead_after: float, state: str, sessions: int = 0
    ) -> None:
        """A heartbeat of any kind of replica: its id, its own ``dead_after`` and state."""
        self.observe(now)
        if state == "stopped":
            # A clean stop: it stored or handed back everything; forget it without mourning.
            self._replicas.pop(replica_id, None)
            return
        self._replicas[replica_id] = _Replica(now, dead_after, state, sessions)

    def hold(self, until: float) -> None:
        """Our own view was blind (our NATS connection was away, or just came back): silence
        until ``until`` proves nothing, so nobody is reported gone before then."""
        self.hold_until = max(self.hold_until, until)

    def _deadline(self, replica: _Replica) -> float:
        return max(replica.last_seen + replica.dead_after, self.hold_until)

    def alive(self, recorder_id: str, now: float) -> bool:
        replica = self._replicas.get(recorder_id)
        return replica is not None and now < self._deadline(replica)

    def known(self, recorder_id: str) -> bool:
        """Heard from and not yet reported gone."""
        return recorder_id in self._replicas

    def silent_since_start(self, recorder_id: str, now: float, dead_after: float) -> bool:
        """Never heard from (or reported gone), and we have listened for ``dead_after``: a
        replica that is alive would have spoken by now."""
        if recorder_id in self._replicas:
            return not self.alive(recorder_id, now)
        return (
            self.started_at is not None
            and now - self.started_at >= dead_after
            and now >= self.hold_until
        )

    def expire(self, now: float) -> list[str]:
        """Replicas that went silent since the last call, each reported once (then forgotten,
        so a replica that comes back under the same id starts afresh)."""
        gone = [rid for rid, replica in self._replicas.items() if now >= self._deadline(replica)]
        for rid in gone:
            del self._replicas[rid]
        return gone

    def next_deadline(self) -> float | None:
        """When the next replica goes silent if nothing more is heard (for a timer)."""
        if not self._replicas:
            return None
        return min(self._deadline(r) for r in self._replicas.values())

    def alive_ids(self, now: float) -> list[str]:
        return sorted(rid for rid in self._replicas if self.alive(rid, now))
