"""The asyncio side every heartbeat publisher shares: say something every ``interval``.

The media-recorder replicas (``RecorderHeartbeat``) and the registrar-agents
(``AgentHeartbeat``) both publish one heartbeat at start, one every ``interval`` after, and a
last one on a clean stop; a publish that fails (NATS away) is dropped — the next beat tries
again, and the listeners' ``LivenessTracker.hold`` covers our silence meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("sipum.events.heartbeat")


class HeartbeatLoop:
    """Calls ``beat()`` (which builds and publishes one heartbeat) every ``interval``."""

    def __init__(self, beat: Callable[[], Awaitable[None]], interval: float) -> None:
        self._beat = beat
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> None:
        """One heartbeat now (errors are dropped: NATS away, the next one tries again)."""
        try:
            await self._beat()
        except Exception as exc:
            log.debug("heartbeat not published: %s", exc)

    async def start(self) -> None:
        """The first heartbeat at once, then one every ``interval``."""
        await self.beat()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="heartbeat")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.beat()

    async def stop(self) -> None:
        """No more periodic beats (the caller may send a last one with :meth:`beat`)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
