"""Which media-recorder holds which call, and what to do when one is gone.

The recorders' heartbeats (``sipum.media.recorder.heartbeat``, see ``sipum.events.liveness``)
feed one ``LivenessTracker``; one timer at its next deadline. A call is watched from our 200 on
(``watch``) until it ends (``unwatch``). When the replica holding it goes silent for its
``dead_after`` (1.5 s by default), or a replica that answered an allocation was never heard
from within ``unknown_after`` of it, every call it held is handed to ``on_lost(call,
recorder_id)`` — the call handler moves it to another live replica (``others_alive``) or, failing
that, ends it with BYE (``end_reason=media_lost``); what the caller said up to the crash is then
stored by a surviving replica (media-recorder recovery), flagged ``interrupted``.

The liveness links (``links=True``; core: ``sipum.events.liveness.LivenessLinks``): for every
replica whose heartbeat names a ``link`` we keep one TCP connection open to it and only read.
When its process dies the kernel closes the connection and we read EOF (or a reset) within
milliseconds: the replica is dropped from the tracker and its calls go to ``on_lost`` at once —
the same path as missed heartbeats, 1.5 s sooner. A link that fails to connect, or whose
replica said ``draining`` (SIGTERM), decides nothing; a partitioned or dead host closes
nothing — the heartbeats' ``dead_after`` covers those.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from sipum.events import EventBus, RecorderHeartbeat
from sipum.events.liveness import (
    LINK_LINE_MAX,
    LINK_PROBE,
    CloseLink,
    LinkAction,
    LivenessLinks,
    LivenessTracker,
    OpenLink,
)

log = logging.getLogger("sipum.misc.registrar_agent.recorders")

C = TypeVar("C", bound=Hashable)


def keep_alive(writer: asyncio.StreamWriter) -> None:
    """TCP keep-alives on the idle link, so a firewall or NAT on the way does not drop it for
    idleness (a link that breaks is probed, not taken for a death, but then it is gone until
    a heartbeat ≥ 1 s later)."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)


class RecorderWatch(Generic[C]):
    def __init__(
        self,
        bus: EventBus,
        *,
        on_lost: Callable[[C, str], None],
        unknown_after: float,
        links: bool = True,
        link_connect_seconds: float = 1.0,
    ) -> None:
        self.bus = bus
        self.links = LivenessLinks() if links else None
        self.link_connect_seconds = link_connect_seconds
        self._link_tasks: dict[int, asyncio.Task[None]] = {}
        self.on_lost = on_lost
        self.unknown_after = unknown_after
        self.tracker = LivenessTracker()
        self.calls: dict[str, set[C]] = {}
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._unknown: dict[C, asyncio.TimerHandle] = {}
        self._subscription: Any = None

    def now(self) -> float:
        return self._loop.time()

    def others_alive(self, recorder_id: str) -> list[str]:
        """Replicas other than ``recorder_id`` whose heartbeats say they are alive now."""
        return [rid for rid in self.tracker.alive_ids(self.now()) if rid != recorder_id]

    async def start(self) -> None:
        self.bus.on_reconnect(self._on_reconnect)
        self._subscription = await self.bus.subscribe_heartbeats(self._on_heartbeat)
        self.tracker.observe(self.now())

    async def close(self) -> None:
        tasks = list(self._link_tasks.values())
        self._link_tasks.clear()
        self.links = None  # a link ending from now on is ours
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._timer is not None:
            self._timer.cancel()
        for handle in self._unknown.values():
            handle.cancel()
        self._unknown.clear()
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None

    # -- calls ---------------------------------------------------------------------------------

    def watch(self, call: C, recorder_id: str) -> None:
        self.calls.setdefault(recorder_id, set()).add(call)
        if not self.tracker.alive(recorder_id, self.now()):
            # Not heard from (yet): it answered us a moment ago, so it must speak soon.
            self._unknown[call] = self._loop.call_later(
                self.unknown_after, self._check_unknown, call, recorder_id
            )

    def unwatch(self, call: C, recorder_id: str) -> None:
        handle = self._unknown.pop(call, None)
        if handle is not None:
            handle.cancel()
        calls = self.calls.get(recorder_id)
        if calls is not None:
            calls.discard(call)
            if not calls:
                del self.calls[recorder_id]

    def _on_reconnect(self) -> None:
        """Back on NATS (e.g. after a server restart): every recorder gets the time to
        reconnect and speak before its silence counts — a restart must not end every call."""
        self.tracker.hold(self.now() + self.unknown_after + self.bus.reconnect_wait)
        self._rearm()

    def _rearm(self) -> None:
        deadline = self.tracker.next_deadline()
        if deadline is None:
            return
        if self._timer is not None:
            if self._timer.when() <= deadline:
                return
            self._timer.cancel()
        self._timer = self._loop.call_at(deadline, self._expire)

    def _check_unknown(self, call: C, recorder_id: str) -> None:
        self._unknown.pop(call, None)
        now = self.now()
        if not self.bus.is_connected or now < self.tracker.hold_until:
            # We cannot tell now; look again later.
            later = max(self.tracker.hold_until, now + self.unknown_after) - now
            self._unknown[call] = self._loop.call_later(
                later, self._check_unknown, call, recorder_id
            )
            return
        if self.tracker.alive(recorder_id, now):
            return
        if call not in self.calls.get(recorder_id, ()):
            return
        log.warning(
            "media-recorder never heard from; ending its call",
            extra={"recorder": recorder_id, "after_s": self.unknown_after},
        )
        self._lost(recorder_id, [call])

    # -- heartbeats ----------------------------------------------------------------------------

    def _on_heartbeat(self, heartbeat: RecorderHeartbeat) -> None:
        self.tracker.beat(heartbeat, self.now())
        self._rearm()
        # (a heartbeat the tracker ignored — sent just before its process died — opens none)
        if self.links is not None and (
            self.tracker.known(heartbeat.recorder_id) or heartbeat.state == "stopped"
        ):
            self._link_actions(self.links.heartbeat(heartbeat, self.now()))

    # -- liveness links (the thin asyncio side of LivenessLinks) -------------------------------

    def _link_actions(self, actions: list[LinkAction]) -> None:
        for action in actions:
            if isinstance(action, OpenLink):
                self._link_tasks[action.link_id] = self._loop.create_task(
                    self._hold_link(action), name=f"link-{action.recorder_id}"
                )
            elif isinstance(action, CloseLink):
                task = self._link_tasks.pop(action.link_id, None)
                if task is not None:
                    task.cancel()

    async def _hold_link(self, action: OpenLink) -> None:
        writer: asyncio.StreamWriter | None = None
        refused = False
        try:
            if action.delay:
                await asyncio.sleep(action.delay)
            async with asyncio.timeout(LINK_PROBE if action.probe else self.link_connect_seconds):
                reader, writer = await asyncio.open_connection(
                    action.host, action.port, limit=LINK_LINE_MAX
                )
                keep_alive(writer)
                hello = await reader.readline()
            if self.links is None or not self.links.opened(action.link_id, hello):
                return
            log.debug("liveness link open", extra={"recorder": action.recorder_id})
            while line := await reader.readline():
                if self.links is None:
                    return
                self.links.received(action.link_id, line)
        except ConnectionRefusedError:
            refused = True  # nobody listens there any more
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
            pass  # reset, unreachable, too long a line: closed() below decides what it means
        finally:
            if writer is not None:
                writer.close()
            self._link_tasks.pop(action.link_id, None)
            if self.links is not None:
                if refused:
                    gone = self.links.refused(action.link_id, self.now())
                    if gone is not None:
                        self._link_lost(gone)
                else:
                    probe = self.links.closed(action.link_id, self.now())
                    if probe is not None:
                        # confirm at once: refused = the process is gone
                        self._link_actions([probe])

    def _link_lost(self, recorder_id: str) -> None:
        """The replica's process is gone (its link closed without ``draining``)."""
        if not self.tracker.drop(recorder_id, self.now()):
            return
        calls = list(self.calls.get(recorder_id, ()))
        log.warning(
            "media-recorder gone (liveness link closed)",
            extra={"recorder": recorder_id, "calls": len(calls)},
        )
        self._lost(recorder_id, calls)
        self._rearm()

    def _expire(self) -> None:
        self._timer = None
        if not self.bus.is_connected:
            # We are the ones cut off: the recorders' silence says nothing.
            self.tracker.hold(self.now() + self.unknown_after)
            self._rearm()
            return
        for rid in self.tracker.expire(self.now()):
            calls = list(self.calls.get(rid, ()))
            log.warning(
                "media-recorder gone (no heartbeat)", extra={"recorder": rid, "calls": len(calls)}
            )
            self._lost(rid, calls)
        self._rearm()

    def _lost(self, recorder_id: str, calls: list[C]) -> None:
        for call in calls:
            self.unwatch(call, recorder_id)
            try:
                self.on_lost(call, recorder_id)
            except Exception:
                log.exception("ending a call of a lost recorder failed")
