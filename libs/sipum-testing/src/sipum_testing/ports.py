"""Loopback ports for tests that start a SIP peer as a process (sipp)."""

from __future__ import annotations

import asyncio
import socket


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 the OS says is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_until_udp_bound(port: int, limit: float = 10.0) -> None:
    """Until another process holds UDP ``port`` on 127.0.0.1 (our own bind then fails).

    Nothing tells us when a child process has bound its socket, so this polls; it returns as
    soon as the port is taken instead of waiting a fixed time."""
    async with asyncio.timeout(limit):
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    return
            await asyncio.sleep(0.02)
