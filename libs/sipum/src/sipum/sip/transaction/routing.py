"""Transport rules that the (pure) layer applies: RFC 3261 §18.2.1, §18.2.2 and RFC 3581.

* ``stamp_via``: a server adds ``received`` to the top Via when the packet's source address
  differs from the sent-by host (§18.2.1), and fills in ``rport`` with the source port when the
  client asked for it (RFC 3581 §4, which also makes ``received`` mandatory then).
* ``response_destination``: where a response goes (§18.2.2): over the connection the request
  came on for reliable transports; to ``maddr`` if present; to ``received``/``rport`` (RFC 3581
  §4: symmetric response routing, the source address and port); else to ``received`` (or
  sent-by host) at the sent-by port.
* ``stream_fallback``: §18.2.2 for reliable transports when the original connection is gone:
  open a new one to ``received`` (or sent-by host) at the sent-by port.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sipum.sip.headers import Headers, split_list
from sipum.sip.transaction.events import DEFAULT_PORTS, Peer
from sipum.sip.uri import parse_via

if TYPE_CHECKING:
    from sipum.sip.message import SipRequest, Via


def default_port(transport: str) -> int:
    return DEFAULT_PORTS.get(transport.upper(), 5060)


def sent_by(via: Via) -> tuple[str, int]:
    """The sent-by of a Via with the default port filled in (for transaction matching)."""
    return via.host, via.port if via.port is not None else default_port(via.transport)


def stamp_via(request: SipRequest, peer: Peer) -> None:
    """Add ``received``/``rport`` to the request's top Via for a request received from ``peer``
    (§18.2.1, RFC 3581 §4). The other Via values and the header order are kept."""
    lines = request.headers.get_lines("Via")
    if not lines:
        return
    first_line = lines[0]
    # Fast path: a lone value on its line (the usual case); otherwise split the line.
    values = split_list(first_line) if "," in first_line else [first_line.strip()]
    via = parse_via(values[0])
    changed = False
    if via.rport_requested and via.rport is None:
        via.params["rport"] = str(peer.port)
        via.params["received"] = peer.host
        changed = True
    elif via.host != peer.host and via.received != peer.host:
        via.params["received"] = peer.host
        changed = True
    if not changed:
        return
    values[0] = str(via)
    new_line = ", ".join(values)
    headers = request.headers
    items = headers.items()
    rebuilt = Headers()
    replaced = False
    for name, value in items:
        if not replaced and name == "Via":
            rebuilt.add(name, new_line)
            replaced = True
        else:
            rebuilt.add(name, value)
    request.headers = rebuilt


def response_destination(via: Via, source: Peer) -> Peer:
    """Where to send responses for a request whose (stamped) top Via is ``via`` and which came
    from ``source`` (§18.2.2, RFC 3581 §4)."""
    if source.reliable:
        return source
    maddr = via.params.get("maddr")
    if maddr:
        return Peer(source.transport, maddr, via.port or default_port(via.transport))
    host = via.received or via.host
    rport = via.rport
    if rport is not None:
        return Peer(source.transport, host, rport)
    return Peer(source.transport, host, via.port or default_port(via.transport))


def stream_fallback(via: Via, transport: str) -> Peer:
    """§18.2.2: the connection the request came on is closed; connect to received:sent-by-port."""
    return Peer(transport, via.received or via.host, via.port or default_port(via.transport))
