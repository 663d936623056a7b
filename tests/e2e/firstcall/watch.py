"""Watching the system from outside: its events on NATS, its users' settings in PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg


@dataclass
class SeenEvent:
    kind: str
    """``<entity>.<verb>``, e.g. ``message.created``."""
    data: dict[str, Any]
    at: float
    """``time.time()`` when it reached us."""


@dataclass
class EventWatch:
    """A plain NATS subscriber to ``<prefix>.evt.>`` (what an operator's ``nats sub`` sees)."""

    url: str
    prefix: str
    seen: list[SeenEvent] = field(default_factory=list)
    _nc: Client | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> EventWatch:
        self._nc = await nats.connect(self.url, name="sipum-e2e-watch")
        root = f"{self.prefix}.evt."

        async def on_message(msg: Msg) -> None:
            data = json.loads(msg.data)
            self.seen.append(SeenEvent(msg.subject.removeprefix(root), data, time.time()))
            self._changed.set()

        await self._nc.subscribe(f"{root}>", cb=on_message)
        await self._nc.flush()
        return self

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.drain()
            self._nc = None

    def of(self, kind: str, **match: Any) -> list[SeenEvent]:
        return [
            e
            for e in self.seen
            if e.kind == kind and all(e.data.get(k) == v for k, v in match.items())
        ]

    async def wait_for(self, kind: str, *, limit: float, **match: Any) -> SeenEvent:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while True:
            found = self.of(kind, **match)
            if found:
                return found[0]
            left = deadline - loop.time()
            if left <= 0:
                kinds = [e.kind for e in self.seen]
                raise AssertionError(f"no {kind} {match} event within {limit} s (saw {kinds})")
            self._changed.clear()
            try:
                async with asyncio.timeout(left):
                    await self._changed.wait()
            except TimeoutError:
                pass


async def set_ring_timeout(database_url: str, username: str, seconds: int) -> None:
    """The user's ring timeout override (``users.ring_timeout_seconds``), straight in the DB."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        status = await conn.execute(
            "UPDATE users SET ring_timeout_seconds = $1 WHERE username = $2", seconds, username
        )
    finally:
        await conn.close()
    assert status == "UPDATE 1", status
