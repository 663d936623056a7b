"""SIP over UDP (RFC 3261 §18): one datagram is one message."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sipum_protocol.sip.transaction import Peer
from sipum_protocol.sip.transport.config import TransportCounters

log = logging.getLogger("sipum.net.sip")


class UdpTransport(asyncio.DatagramProtocol):
    """A bound UDP socket feeding ``on_message(data, peer)``."""

    def __init__(
        self,
        on_message: Callable[[bytes, Peer], None],
        counters: TransportCounters,
        *,
        max_message: int,
    ) -> None:
        self._on_message = on_message
        self._counters = counters
        self._max = max_message
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._counters.udp_received += 1
        if len(data) > self._max:
            self._counters.oversize_dropped += 1
            return
        self._on_message(data, Peer("UDP", str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP unreachable and the like: the socket API does not say for which destination,
        # so the transactions run into their timeouts instead (§17.1.4 allows both).
        self._counters.send_errors += 1
        log.debug("udp error: %s", exc)

    def send(self, data: bytes, peer: Peer) -> None:
        if self.transport is None or self.transport.is_closing():
            self._counters.send_errors += 1
            return
        self._counters.udp_sent += 1
        self.transport.sendto(data, (peer.host, peer.port))

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        sockname = self.transport.get_extra_info("sockname")
        return str(sockname[0]), int(sockname[1])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
