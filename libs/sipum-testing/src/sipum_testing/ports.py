"""Loopback ports for tests that start a SIP peer as a process (sipp)."""

from __future__ import annotations

import asyncio
import random
import socket

RANGE_FLOOR = 20000
RANGE_CEILING = 32768
"""Port ranges for RTP pools come from below the kernel's usual ephemeral range (32768-60999
on Linux): the kernel never hands those out to a socket bound to port 0, so a range chosen
there is not taken, port by port, by the test's own clients, sipp and other processes' sockets
while a long-lived service holds it."""


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 the OS says is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_range(size: int) -> tuple[int, int]:
    """An even-based range of ``size`` UDP ports on 127.0.0.1, all free now, at a random place
    below the ephemeral range (so concurrent test runs rarely overlap; the services' port
    pools skip a port that turns out to be busy anyway)."""
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(RANGE_FLOOR, RANGE_CEILING - size, 2)
        if all(_udp_free(port) for port in range(base, base + size)):
            return base, base + size - 1
    raise RuntimeError(f"no free range of {size} UDP ports below {RANGE_CEILING}")


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
