"""In-flight work tracking, so SIGTERM can let running calls and mails finish."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class InFlightWork:
    """Tasks a service has started and must finish before it exits.

    ``accepting`` turns false on :meth:`close`; :meth:`spawn` then refuses new work, and
    :meth:`wait` returns when every task started before is done.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.accepting = True

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> asyncio.Task[Any]:
        if not self.accepting:
            coro.close()
            raise RuntimeError("service is stopping: no new work accepted")
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def close(self) -> None:
        self.accepting = False

    async def wait(self) -> None:
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def cancel_all(self) -> None:
        for task in self._tasks:
            task.cancel()
