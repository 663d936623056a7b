"""This replica's heartbeats, and the other replicas' liveness (``sipum.events.liveness``).

* Every ``heartbeat_interval_seconds`` one ``RecorderHeartbeat`` (``state=up``, the number of
  sessions, ``dead_after_s`` = interval × ``heartbeat_misses``) goes to
  ``<prefix>.media.recorder.heartbeat``; ``stopping`` while draining, ``stopped`` as the last
  word of a clean stop.
* Every replica's heartbeats feed one ``LivenessTracker``; one timer at its next deadline
  calls ``on_gone(recorder_id)`` for each replica that went silent — the service then
  recovers that replica's recordings at once (not after a fixed grace period).
* ``LinkListener``: the liveness link (``liveness_link_port``, advertised as the heartbeat's
  ``link``) — the agents keep a connection open to it and learn of this process's death the
  moment the kernel closes it; ``draining`` on SIGTERM, closed after the last session ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Literal

from sipum.events import EventBus, RecorderHeartbeat
from sipum.events.heartbeat import HeartbeatLoop
from sipum.events.liveness import LINK_DRAINING, LINK_LINE_MAX, LivenessTracker, link_hello

from sipum_media_recorder import metrics

log = logging.getLogger("sipum.misc.recorder.liveness")


class ReplicaLiveness:
    def __init__(
        self,
        bus: EventBus,
        *,
        recorder_id: str,
        interval: float,
        misses: int,
        sessions: Callable[[], int],
        on_gone: Callable[[str], None],
        link: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.link = link
        """Our liveness link's ``host:port`` for the heartbeats (None: no link)."""
        self.bus = bus
        self.recorder_id = recorder_id
        self.interval = interval
        self.dead_after = interval * misses
        self.sessions = sessions
        self.on_gone = on_gone
        self.tracker = LivenessTracker()
        self.state: Literal["up", "stopping", "stopped"] = "up"
        self._loop = asyncio.get_running_loop()
        self._subscription: Any = None
        self._beats = HeartbeatLoop(self._publish, interval)
        self._timer: asyncio.TimerHandle | None = None

    def now(self) -> float:
        return self._loop.time()

    async def start(self) -> None:
        self.bus.on_reconnect(self._on_reconnect)
        self._subscription = await self.bus.subscribe_heartbeats(self._on_heartbeat)
        self.tracker.observe(self.now())
        await self._beats.start()

    def _on_heartbeat(self, heartbeat: RecorderHeartbeat) -> None:
        if heartbeat.recorder_id == self.recorder_id:
            return  # our own (or a namesake's: ids must be unique per running replica)
        self.tracker.beat(heartbeat, self.now())
        self._arm()

    def _arm(self) -> None:
        deadline = self.tracker.next_deadline()
        if deadline is None:
            return
        if self._timer is not None:
            if self._timer.when() <= deadline:
                return
            self._timer.cancel()
        self._timer = self._loop.call_at(deadline, self._expire)

    def _on_reconnect(self) -> None:
        """Back on NATS: give everyone a full ``dead_after`` (plus the time the others need to
        reconnect too) to speak before their silence counts."""
        self.tracker.hold(self.now() + self.dead_after + self.bus.reconnect_wait)
        self._arm()

    def _expire(self) -> None:
        self._timer = None
        if not self.bus.is_connected:
            # We are the ones cut off: their silence says nothing.
            self.tracker.hold(self.now() + self.dead_after)
            self._arm()
            return
        for rid in self.tracker.expire(self.now()):
            metrics.REPLICAS_GONE.inc()
            log.warning(
                "media-recorder replica gone (no heartbeat)",
                extra={"recorder": rid, "dead_after_s": self.dead_after},
            )
            try:
                self.on_gone(rid)
            except Exception:
                log.exception("on_gone failed for %s", rid)
        self._arm()

    def alive(self, recorder_id: str) -> bool:
        return self.tracker.alive(recorder_id, self.now())

    def presumed_gone(self, recorder_id: str) -> bool:
        """Not alive as far as heartbeats can tell: silent for its ``dead_after``, or never
        heard from although we have listened that long."""
        if not self.bus.is_connected:
            return False
        return self.tracker.silent_since_start(recorder_id, self.now(), self.dead_after)

    async def beat(self) -> None:
        await self._beats.beat()  # NATS away: dropped, the next beat tries again

    async def _publish(self) -> None:
        await self.bus.publish_heartbeat(
            RecorderHeartbeat(
                recorder_id=self.recorder_id,
                interval_s=self.interval,
                dead_after_s=self.dead_after,
                state=self.state,
                sessions=self.sessions(),
                link=self.link(),
            )
        )

    async def stop(self, *, final: bool) -> None:
        """``final=False``: say ``stopping`` (still beating); ``True``: say ``stopped`` once
        and go quiet."""
        self.state = "stopped" if final else "stopping"
        if not final:
            await self.beat()
            return
        await self._beats.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.beat()
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None


class LinkListener:
    """This replica's end of the liveness link (``sipum.events.liveness``, module doc).

    Accepts TCP connections (at most ``max_links`` at a time: beyond that a connection is
    closed before the hello, which the agent does not take for a death), writes the hello line,
    and reads only to learn that the peer went away — at most ``LINK_LINE_MAX`` bytes in all
    from a peer, which has nothing to say; more and it is cut off. ``drain()`` (SIGTERM) writes
    ``draining`` on every link and to every later one; ``close()`` (the clean stop, after the
    last session ended) closes them. A killed process needs none of this: the kernel closes its
    sockets, and that is the signal.
    """

    def __init__(self, *, recorder_id: str, host: str, port: int, max_links: int) -> None:
        self.recorder_id = recorder_id
        self.host = host
        self.port = port
        self.max_links = max_links
        self.draining = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def bound_port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accepted, self.host, self.port, limit=LINK_LINE_MAX
        )

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._writers) >= self.max_links:
            metrics.LINKS_REFUSED.inc()
            writer.close()
            return
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            writer.write(link_hello(self.recorder_id) + (LINK_DRAINING if self.draining else b""))
            received = 0
            while received <= LINK_LINE_MAX:
                data = await reader.read(LINK_LINE_MAX)
                if not data:
                    break  # the agent closed its end
                received += len(data)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    def drain(self) -> None:
        self.draining = True
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.write(LINK_DRAINING)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                await writer.drain()  # the "draining" line goes out first
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        self._writers.clear()
