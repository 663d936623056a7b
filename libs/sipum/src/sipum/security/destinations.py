"""Where an outbound request (a webhook) may go — the SSRF guard.

The web-api checks a URL when a user saves it (a clear 422 at once); the notifier checks it
again before every attempt (DNS answers change).

A webhook URL is chosen by a user, and the notifier runs inside the deployment's network: left
unchecked, ``http://169.254.169.254/`` (cloud metadata), ``http://127.0.0.1:8222/`` (NATS
monitoring) or ``http://postgres:5432/`` would be requests from inside. So before every attempt
the host is resolved and **every** address it resolves to must be globally routable (not
loopback, private, link-local, CGNAT, multicast, reserved or unspecified, also when written as
an IPv4-mapped IPv6 address), unless it lies in a network the administrator allowed
(``webhook_allowed_networks``). The request then goes to the address that was checked (with the
name in ``Host`` and in TLS SNI), so a DNS answer that changes between the check and the connect
(rebinding) cannot redirect it. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefused(ValueError):
    """The URL may not be requested; the message says why (it names no secret)."""


@dataclass(frozen=True, slots=True)
class Destination:
    scheme: str
    host: str
    port: int
    address: str
    """The checked IP address the request connects to."""
    target: str
    """Path and query of the request."""

    @property
    def connect_url(self) -> str:
        literal = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{literal}:{self.port}{self.target}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


def parse_networks(specs: Sequence[str]) -> list[IpNetwork]:
    return [ipaddress.ip_network(spec, strict=False) for spec in specs]


def why_internal(address: IpAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return why_internal(address.ipv4_mapped)
    for label, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("not globally routable", not address.is_global),
    ):
        if flag:
            return label
    return None


def check_address(address: IpAddress, allowed: Sequence[IpNetwork]) -> None:
    reason = why_internal(address)
    if reason is not None and not any(address in network for network in allowed):
        raise DestinationRefused(f"{address} is a {reason} address")


def split_url(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise DestinationRefused("only http and https URLs")
    if parts.username is not None or parts.password is not None:
        raise DestinationRefused("credentials in the URL are not allowed (use the secret)")
    if not parts.hostname:
        raise DestinationRefused("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise DestinationRefused("bad port") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, target


async def resolve_destination(
    url: str, allowed: Sequence[IpNetwork], *, resolve_timeout: float = 5.0
) -> Destination:
    scheme, host, port, target = split_url(url)
    try:
        literal: IpAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses: list[IpAddress] = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), resolve_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise DestinationRefused(f"cannot resolve {host}: {exc}") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        if not addresses:
            raise DestinationRefused(f"{host} has no address")
    for address in addresses:
        check_address(address, allowed)
    return Destination(scheme, host, port, str(addresses[0]), target)
