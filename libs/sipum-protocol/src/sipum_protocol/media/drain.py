"""Draining the full receive queues of a loop's media sessions together.

Why: a session only queues the caller's plain audio packets (see :mod:`.session`) and processes
them in batches. When a queue is full, its owner is put on its loop's :class:`DrainScheduler`,
which drains every such queue one after another after the loop's current round of I/O callbacks:
the batch code then runs warm in the CPU's caches for all of them instead of cold for each one
between two socket reads (measured with ``bench/rtp_receive_cost.py``).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Protocol

log = logging.getLogger("sipum.net.rtp")


class QueueOwner(Protocol):
    """What the scheduler drains: the driver of one session."""

    @property
    def local_port(self) -> int: ...

    def process_queue(self) -> None: ...


class DrainScheduler:
    """Calls ``process_queue()`` of every owner scheduled during a round of the loop's I/O
    callbacks, once that round is over (``call_soon``), in the order they were scheduled."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: list[QueueOwner] = []

    def schedule(self, owner: QueueOwner) -> None:
        if not self._due:
            self._loop.call_soon(self._run)
        self._due.append(owner)

    def _run(self) -> None:
        due, self._due = self._due, []
        for owner in due:
            try:
                owner.process_queue()
            except Exception:
                # one call's failure must not leave the others' queues undrained
                log.exception("RTP receive failed", extra={"rtp_port": owner.local_port})


_schedulers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DrainScheduler] = (
    weakref.WeakKeyDictionary()
)


def drain_scheduler(loop: asyncio.AbstractEventLoop) -> DrainScheduler:
    """The loop's one scheduler (made on first use, gone with the loop)."""
    scheduler = _schedulers.get(loop)
    if scheduler is None:
        scheduler = _schedulers[loop] = DrainScheduler(loop)
    return scheduler
