"""Which address a replica puts in the ``c=`` line of its SDP answers.

The caller's RTP must reach the replica that owns the session, so each replica advertises its
own address. Unless ``SIPUM_RTP_ADVERTISE_ADDRESS`` is set, it is the local address this host
uses to reach the NATS server: a UDP socket ``connect()`` picks the route (and so the source
address) without sending a packet. On a compose network that is the container's own address;
on a laptop with NATS on 127.0.0.1 it is 127.0.0.1. A wildcard bind address with no usable
route falls back to the host name's address.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

_WILDCARDS = {"0.0.0.0", "::", ""}


def nats_host_port(nats_url: str) -> tuple[str, int]:
    """Host and port of the first server of a (comma-separated) NATS URL."""
    first = nats_url.split(",")[0].strip()
    parts = urlsplit(first if "://" in first else f"nats://{first}")
    return parts.hostname or "127.0.0.1", parts.port or 4222


def route_source_address(host: str, port: int) -> str | None:
    """The local address the kernel would use to send to ``host:port`` (None if no route)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError:
        return None
    for family, _, _, _, sockaddr in infos:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect(sockaddr)
                address = str(s.getsockname()[0])
        except OSError:
            continue
        if address not in _WILDCARDS:
            return address
    return None


def advertised_address(*, configured: str | None, rtp_host: str, nats_url: str) -> str:
    """The address for our SDP: the configured one, else the RTP bind address when it is a
    specific one, else the route towards NATS."""
    if configured:
        return configured
    if rtp_host not in _WILDCARDS:
        return rtp_host
    host, port = nats_host_port(nats_url)
    found = route_source_address(host, port)
    if found is not None:
        return found
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
