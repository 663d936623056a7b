"""RTP/RTCP port pairs of one host: the pool every call's media sockets come from.

:class:`PortPool` hands out RTP ports from a configured range: always an even port for RTP with
RTCP on the next odd one (RFC 3550 §11), both bound before the port is handed out, so a port that
some other process holds is skipped rather than failing a call. Ports are handed out round-robin
(a port freed a moment ago is the last to be reused, so stray packets of an old call do not land
in a new one). When every pair is taken, :class:`PortPoolExhausted` says so.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass


class PortPoolExhausted(RuntimeError):
    """Every RTP port pair of the pool is in use."""


@dataclass(frozen=True, slots=True)
class PortPair:
    """A bound, non-blocking RTP socket and its RTCP socket on the next port."""

    rtp_port: int
    rtp_socket: socket.socket
    rtcp_socket: socket.socket

    @property
    def rtcp_port(self) -> int:
        return self.rtp_port + 1


class PortPool:
    """Even RTP ports (RTCP = RTP + 1) from ``[first, last]`` on *host*."""

    def __init__(self, first: int, last: int, *, host: str = "0.0.0.0") -> None:
        first += first % 2  # RTP on even ports (RFC 3550 §11)
        if not 1024 <= first < last <= 65535:
            raise ValueError(f"RTP port range {first}-{last} is not a range of high ports")
        self.host = host
        self.first = first
        self.last = last
        self._ports = list(range(first, last, 2))  # `last` itself can only be an RTCP port
        self._in_use: set[int] = set()
        self._cursor = 0

    @property
    def capacity(self) -> int:
        return len(self._ports)

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def allocate(self) -> PortPair:
        """Bind the next free pair; :class:`PortPoolExhausted` when none is left."""
        for _ in range(len(self._ports)):
            port = self._ports[self._cursor]
            self._cursor = (self._cursor + 1) % len(self._ports)
            if port in self._in_use:
                continue
            pair = self._bind(port)
            if pair is not None:
                self._in_use.add(port)
                return pair
        raise PortPoolExhausted(
            f"no free RTP port pair in {self.first}-{self.last} on {self.host} "
            f"({len(self._in_use)} of {len(self._ports)} in use by us)"
        )

    def _bind(self, port: int) -> PortPair | None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        rtp = socket.socket(family, socket.SOCK_DGRAM)
        rtcp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            rtp.bind((self.host, port))
            rtcp.bind((self.host, port + 1))
        except OSError:
            # held by another process: skip it
            rtp.close()
            rtcp.close()
            return None
        for s in (rtp, rtcp):
            s.setblocking(False)
        return PortPair(port, rtp, rtcp)

    def release(self, port: int) -> None:
        self._in_use.discard(port)
