"""Waiting for a condition that real servers bring about in their own time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def wait_for(predicate: Callable[[], Any], limit: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` (sync) every 50 ms until it is true, at most ``limit`` seconds;
    ``AssertionError`` naming ``what`` if it never is."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        if loop.time() >= deadline:
            raise AssertionError(f"not reached in {limit}s: {what}")
        await asyncio.sleep(0.05)
