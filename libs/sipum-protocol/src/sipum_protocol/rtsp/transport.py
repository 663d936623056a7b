"""The RTSP ``Transport`` header (RFC 2326 §12.39).

A client lists the transports it accepts, most preferred first, separated by commas; the server
picks the first it supports and echoes it back with its own parameters. We support unicast RTP
over UDP (``RTP/AVP`` or ``RTP/AVP/UDP`` with ``client_port``) and over the RTSP connection
(``RTP/AVP/TCP`` with ``interleaved``). Multicast and other profiles are answered with 461.
"""

from __future__ import annotations

from dataclasses import dataclass


class UnsupportedTransport(ValueError):
    """No transport in the header is one we support (→ 461 Unsupported Transport)."""


@dataclass(frozen=True)
class TransportSpec:
    """One chosen transport: UDP to ``client_ports`` or TCP on ``interleaved`` channels."""

    tcp: bool
    client_ports: tuple[int, int] | None = None
    interleaved: tuple[int, int] | None = None

    def reply(self, *, server_ports: tuple[int, int] | None, ssrc: int) -> str:
        """The ``Transport`` value of the SETUP response."""
        if self.tcp:
            assert self.interleaved is not None
            a, b = self.interleaved
            return f"RTP/AVP/TCP;unicast;interleaved={a}-{b};ssrc={ssrc:08X}"
        assert self.client_ports is not None and server_ports is not None
        return (
            f"RTP/AVP/UDP;unicast;client_port={self.client_ports[0]}-{self.client_ports[1]};"
            f"server_port={server_ports[0]}-{server_ports[1]};ssrc={ssrc:08X}"
        )


def _port_pair(value: str, *, low: int, high: int) -> tuple[int, int]:
    first, _, second = value.partition("-")
    if not first.isdigit() or (second and not second.isdigit()):
        raise ValueError(f"malformed range {value!r}")
    a = int(first)
    b = int(second) if second else a + 1
    if not (low <= a <= high and low <= b <= high):
        raise ValueError(f"range {value!r} out of bounds")
    return a, b


def _parse_one(spec: str) -> TransportSpec | None:
    fields = [f.strip() for f in spec.split(";") if f.strip()]
    if not fields:
        return None
    protocol = fields[0].upper()
    params: dict[str, str | None] = {}
    for item in fields[1:]:
        name, sep, value = item.partition("=")
        params[name.strip().lower()] = value.strip() if sep else None
    if "multicast" in params:
        return None
    if protocol in ("RTP/AVP", "RTP/AVP/UDP"):
        if params.get("client_port") is None:
            return None
        ports = _port_pair(params["client_port"] or "", low=1, high=65535)
        return TransportSpec(tcp=False, client_ports=ports)
    if protocol == "RTP/AVP/TCP":
        channels = params.get("interleaved")
        pair = _port_pair(channels, low=0, high=255) if channels else (0, 1)
        return TransportSpec(tcp=True, interleaved=pair)
    return None


def choose_transport(header: str | None, *, allow_tcp: bool = True) -> TransportSpec:
    """Pick the first supported transport from a client's ``Transport`` header."""
    if not header:
        raise UnsupportedTransport("no Transport header")
    for spec in header.split(","):
        try:
            chosen = _parse_one(spec)
        except ValueError as exc:
            raise UnsupportedTransport(str(exc)) from None
        if chosen is not None and (allow_tcp or not chosen.tcp):
            return chosen
    raise UnsupportedTransport(f"none of {header!r} is supported")
