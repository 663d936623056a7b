"""The asyncio side of the shard takeover (``takeover.ShardTakeover`` decides).

* Every ``interval`` one ``AgentHeartbeat`` (``sipum.events.heartbeat.HeartbeatLoop``):
  ``starting`` until ``ready()`` (our own shard's first REGISTERs answered), then ``up``;
  ``stopping`` on SIGTERM (the others take our shard over at once), ``stopped`` last.
* Every other agent's heartbeat feeds the core; after each one, at each of our own beats and
  at the core's next deadline, the decisions go to ``on_take(shard)`` /
  ``on_release(shard, deregister)``.
* ``on_own_shard_free()`` is called once, when nobody else serves our shard any more (at
  start: after listening for ``dead_after``, or once a taker gave it back): the MWI
  subscriptions of our shard are restored then, not while a taker still NOTIFYs them.
* Our own blindness is not their death (as for the recorders): on a NATS reconnect nobody is
  judged for ``dead_after`` + the reconnect wait; while disconnected, nothing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Literal

from sipum.events import AgentHeartbeat, EventBus
from sipum.events.heartbeat import HeartbeatLoop

from sipum_registrar_agent.takeover import Release, ShardTakeover, Take

log = logging.getLogger("sipum.misc.registrar_agent.shards")


class ShardWatch:
    def __init__(
        self,
        bus: EventBus,
        core: ShardTakeover,
        *,
        interval: float,
        ready: Callable[[], bool],
        on_take: Callable[[int], None],
        on_release: Callable[[int, bool], None],
        on_own_shard_free: Callable[[], None],
    ) -> None:
        self.bus = bus
        self.core = core
        self.interval = interval
        self.ready = ready
        self.on_take = on_take
        self.on_release = on_release
        self.on_own_shard_free = on_own_shard_free
        self.state: Literal["starting", "up", "stopping", "stopped"] = "starting"
        self._own_free_told = False
        self._loop = asyncio.get_running_loop()
        self._beats = HeartbeatLoop(self._publish, interval)
        self._subscription: Any = None
        self._timer: asyncio.TimerHandle | None = None

    def now(self) -> float:
        return self._loop.time()

    async def start(self) -> None:
        self.bus.on_reconnect(self._on_reconnect)
        self._subscription = await self.bus.subscribe_agent_heartbeats(self._on_heartbeat)
        self.core.observe(self.now())
        await self._beats.start()
        self._arm()

    async def stop(self, *, final: bool) -> None:
        """``final=False``: say ``stopping`` (we are de-registering: take our shard now);
        ``True``: a last ``stopped`` and quiet. Nothing is taken or released from now on."""
        self.state = "stopped" if final else "stopping"
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if final:
            await self._beats.stop()
            if self._subscription is not None:
                with contextlib.suppress(Exception):
                    await self._subscription.unsubscribe()
                self._subscription = None
        await self._beats.beat()

    async def _publish(self) -> None:
        if self.state == "starting" and self.ready():
            self.state = "up"
            log.info("own shard registered: up", extra={"shard": self.core.shard_index})
        self.evaluate()
        await self.bus.publish_agent_heartbeat(
            AgentHeartbeat(
                agent_id=self.core.agent_id,
                shard_index=self.core.shard_index,
                shard_count=self.core.shard_count,
                interval_s=self.interval,
                dead_after_s=self.core.dead_after,
                state=self.state,
                serving=sorted(self.core.serving),
                contact=self.core.contact,
            )
        )

    def _on_heartbeat(self, heartbeat: AgentHeartbeat) -> None:
        if self.core.beat(heartbeat, self.now()):
            self.evaluate()
        elif heartbeat.agent_id != self.core.agent_id and self.core.mismatched == 1:
            log.warning(
                "an agent with another shard_count: its heartbeats are ignored",
                extra={"agent": heartbeat.agent_id, "shard_count": heartbeat.shard_count},
            )

    def _on_reconnect(self) -> None:
        self.core.hold(self.now() + self.core.dead_after + self.bus.reconnect_wait)
        self._arm()

    def evaluate(self) -> None:
        """Act on the core's decisions now."""
        if self.state in ("stopping", "stopped"):
            return
        now = self.now()
        if not self.bus.is_connected:
            # We are the ones cut off: their silence says nothing.
            self.core.hold(now + self.core.dead_after)
        for action in self.core.decide(now):
            try:
                if isinstance(action, Take):
                    log.warning(
                        "shard without a live agent: taking it over",
                        extra={"shard": action.shard, "serving": sorted(self.core.serving)},
                    )
                    self.on_take(action.shard)
                elif isinstance(action, Release):
                    log.info(
                        "shard's agent is back: giving it back",
                        extra={"shard": action.shard, "deregister": action.deregister},
                    )
                    self.on_release(action.shard, action.deregister)
            except Exception:
                log.exception("shard action %s failed", action)
        if not self._own_free_told and self.core.own_shard_free(now):
            self._own_free_told = True
            try:
                self.on_own_shard_free()
            except Exception:
                log.exception("own shard restore failed")
        self._arm()

    def _arm(self) -> None:
        deadline = self.core.next_deadline(self.now())
        if deadline is None:
            return
        if self._timer is not None:
            if self._timer.when() <= deadline:
                return
            self._timer.cancel()
        self._timer = self._loop.call_at(deadline + 0.001, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.evaluate()
