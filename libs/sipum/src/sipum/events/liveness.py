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

Heartbeats need ``dead_after`` to tell silence from death — 1.5 s of a caller speaking into a
dead address. A crashed *process* (SIGKILL, OOM kill, segfault) says so at once: the kernel
closes its sockets. So each replica also listens on a TCP port (its **liveness link**, advertised
in its heartbeat's ``link``) and each agent keeps one connection open to every replica it hears
from; :class:`LivenessLinks` is the core of that (which links to open, what a closed one means),
:meth:`LivenessTracker.drop` takes a replica for gone on the spot. The wire is two lines from
the replica, nothing from the agent: ``sipum-recorder <id>`` when it accepts (a connection the
replica closes before that — over its limit, or a port now held by someone else — proves
nothing), ``draining`` when it stops cleanly (SIGTERM: the link closes later, when the replica
is done, and that is no crash). A link that closes is confirmed by a probe — connecting again at
once: refused means nobody listens any more (the process is gone), a hello means the connection
was only cut on the way. A host that dies, or a partition, closes nothing: those still
take ``dead_after`` of missed heartbeats, which stay the authority for being alive.

Our own blindness is not their death: while the listener's NATS connection is away, and for
``dead_after`` + the client's reconnect wait after it is back (every client reconnects within
that of a restarted server), ``hold(until)`` keeps every replica alive — a NATS restart must not
end every call in progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
        self._buried: dict[str, float] = {}
        """Replicas dropped (:meth:`drop`) → until when their heartbeats are ignored."""
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
        buried = self._buried.get(replica_id)
        if buried is not None:
            if now < buried and state != "stopped":
                return  # sent before it died (see drop)
            del self._buried[replica_id]
        if state == "stopped":
            # A clean stop: it stored or handed back everything; forget it without mourning.
            self._replicas.pop(replica_id, None)
            return
        self._replicas[replica_id] = _Replica(now, dead_after, state, sessions)

    def drop(self, recorder_id: str, now: float) -> bool:
        """``recorder_id`` is gone now (its liveness link closed without ``draining``): forget
        it (True if it was known: not yet reported gone) and ignore its heartbeats for its
        ``dead_after`` — one already on its way must not bring a dead process back for another
        ``dead_after``."""
        replica = self._replicas.pop(recorder_id, None)
        if replica is None:
            return False
        self._buried[recorder_id] = now + replica.dead_after
        return True

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


# -- the liveness link ------------------------------------------------------------------------

LINK_HELLO = b"sipum-recorder "
"""The replica's first line on an accepted link: this, its ``recorder_id``, ``\n``."""
LINK_DRAINING = b"draining\n"
"""The replica's line when it stops cleanly: the link closing after it is no crash."""
LINK_LINE_MAX = 200
"""Longest line a link carries (a hello with a long id); the reader reads no more."""
LINK_RETRY = 1.0
"""Seconds before a link that failed or closed is tried again (at the next heartbeat)."""
LINK_PROBE = 0.25
"""Seconds a probe (the connect right after an open link closed) may take to be refused."""
LINK_PROBES = 3
"""Probes, ``LINK_PROBE_DELAY`` apart, while each is accepted but closed before the hello: the
kernel of a process being torn down can still accept on its listening socket for a moment
after the connection we held was closed (then it resets what it accepted)."""
LINK_PROBE_DELAY = 0.02


def link_hello(recorder_id: str) -> bytes:
    return LINK_HELLO + recorder_id.encode() + b"\n"


def format_link(host: str, port: int) -> str:
    """``host:port`` for the heartbeat (``[v6]:port``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_link(text: str) -> tuple[str, int]:
    """``ValueError`` unless ``host:port`` / ``[v6]:port`` with a port in 1–65535."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"bad link address {text!r}")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"bad link address {text!r}")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad link address {text!r}")
    return host, int(port_text)


@dataclass(frozen=True)
class OpenLink:
    """Connect to ``host:port``; report it with ``link_id`` (``opened``/``received``/
    ``refused``/``closed``). ``probe``: the link just closed — connect once more, at once and
    briefly (``LINK_PROBE``), to tell a dead process (refused) from a broken connection."""

    link_id: int
    recorder_id: str
    host: str
    port: int
    probe: bool = False
    delay: float = 0.0
    """Seconds to wait before connecting (a second probe)."""


@dataclass(frozen=True)
class CloseLink:
    """Close the connection of ``link_id`` (the replica stopped cleanly, or moved)."""

    link_id: int


LinkAction = OpenLink | CloseLink


@dataclass
class _Link:
    link_id: int
    address: str
    state: Literal["connecting", "open", "draining", "probing"] = "connecting"
    host: str = ""
    port: int = 0
    from_probe: bool = False
    probes: int = 0
    """Opened by a probe: if it closes again, no second probe (the heartbeats decide)."""


class LivenessLinks:
    """The agent's side of the liveness links (sans-I/O; see the module doc).

    Fed the heartbeats (``heartbeat``) it says which links to open or close; fed what happens
    on them (``opened`` with the replica's first line, ``received``, ``closed``) it says whether
    the replica is gone. Only a link that was *open* — its hello named the replica we expected —
    and never said ``draining`` can mean death when it closes, and only once confirmed: the
    close asks for a **probe**, one more connect at once. Refused (nobody listens on that port
    any more: the kernel of a host that is up answers at once) — the process is gone. Accepted
    with the same hello — the connection broke (a middlebox, a reset) but the replica lives:
    the link is open again. Anything else (no answer within ``LINK_PROBE``, unreachable) — no
    decision, the heartbeats decide. A connect that fails, a hello that never comes or names
    another replica (a port reused), only means "try again after ``retry``" (at a later
    heartbeat).
    """

    def __init__(self, *, retry: float = LINK_RETRY) -> None:
        self.retry = retry
        self._links: dict[str, _Link] = {}
        self._by_id: dict[int, str] = {}
        self._retry_at: dict[str, float] = {}
        self._next_id = 1

    def state(self, recorder_id: str) -> str | None:
        link = self._links.get(recorder_id)
        return None if link is None else link.state

    def _forget(self, recorder_id: str) -> _Link | None:
        link = self._links.pop(recorder_id, None)
        if link is not None:
            self._by_id.pop(link.link_id, None)
        return link

    def heartbeat(self, heartbeat: RecorderHeartbeat, now: float) -> list[LinkAction]:
        rid = heartbeat.recorder_id
        link = self._links.get(rid)
        if heartbeat.state == "stopped":
            self._retry_at.pop(rid, None)
            old = self._forget(rid)
            return [] if old is None else [CloseLink(old.link_id)]
        if heartbeat.state == "stopping":
            if link is not None:
                link.state = "draining"  # its "draining" line may be on its way still
            return []
        actions: list[LinkAction] = []
        if link is not None:
            if link.address == heartbeat.link:
                return []
            # a new address: the replica restarted (or the link was turned off)
            self._forget(rid)
            actions.append(CloseLink(link.link_id))
        if heartbeat.link is None or now < self._retry_at.get(rid, float("-inf")):
            return actions
        try:
            host, port = parse_link(heartbeat.link)
        except ValueError:
            self._retry_at[rid] = now + self.retry
            return actions
        link_id = self._next_id
        self._next_id += 1
        self._links[rid] = _Link(link_id, heartbeat.link, host=host, port=port)
        self._by_id[link_id] = rid
        actions.append(OpenLink(link_id, rid, host, port))
        return actions

    def opened(self, link_id: int, first_line: bytes) -> bool:
        """The connection is up and the replica's first line came: True if it names the
        replica we meant (the link is open), False if not (the adapter closes it; ``closed``
        follows)."""
        rid = self._by_id.get(link_id)
        if rid is None:
            return False
        link = self._links[rid]
        if first_line.rstrip(b"\r\n") != link_hello(rid).rstrip(b"\n"):
            return False
        if link.state == "probing":
            link.from_probe = True
        if link.state in ("connecting", "probing"):
            link.state = "open"
        return True

    def received(self, link_id: int, line: bytes) -> None:
        rid = self._by_id.get(link_id)
        if rid is not None and line.rstrip(b"\r\n") == LINK_DRAINING.rstrip(b"\n"):
            self._links[rid].state = "draining"

    def closed(self, link_id: int, now: float) -> OpenLink | None:
        """The connection ended (EOF, reset, a connect that failed other than refused, or
        closed by us). An open link: the probe to make (``OpenLink(probe=True)``); else None."""
        rid = self._by_id.get(link_id)
        if rid is None:
            return None  # ours, closed on purpose (CloseLink), or already replaced
        link = self._forget(rid)
        assert link is not None
        self._retry_at[rid] = now + self.retry
        if link.state == "probing" and link.probes < LINK_PROBES:
            # accepted (or reset) but no hello: the process may be half torn down; again
            return self._probe(rid, link, link.probes + 1, LINK_PROBE_DELAY)
        if link.state != "open" or link.from_probe:
            return None
        return self._probe(rid, link, 1, 0.0)

    def _probe(self, rid: str, link: _Link, probes: int, delay: float) -> OpenLink:
        probe_id = self._next_id
        self._next_id += 1
        self._links[rid] = _Link(
            probe_id, link.address, "probing", link.host, link.port, probes=probes
        )
        self._by_id[probe_id] = rid
        return OpenLink(probe_id, rid, link.host, link.port, probe=True, delay=delay)

    def refused(self, link_id: int, now: float) -> str | None:
        """The connect of ``link_id`` was refused: the ``recorder_id`` whose process is gone
        if it was a probe, else None (as ``closed``)."""
        rid = self._by_id.get(link_id)
        if rid is None:
            return None
        link = self._links[rid]
        probing = link.state == "probing"
        self._forget(rid)
        self._retry_at[rid] = now + self.retry
        return rid if probing else None

    def link_ids(self) -> list[int]:
        return sorted(self._by_id)
