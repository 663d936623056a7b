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

from sipum_protocol.sip.headers import Headers, split_list
from sipum_protocol.sip.transaction.events import DEFAULT_PORTS, Peer

if TYPE_CHECKING:
    from sipum_protocol.sip.message import SipRequest, Via


def default_port(transport: str) -> int:
    return DEFAULT_PORTS.get(transport.upper(), 5060)


def sent_by(via: Via) -> tuple[str, int]:
    """The sent-by of a Via with the default port filled in (for transaction matching)."""
    return via.host, via.port if via.port is not None else default_port(via.transport)


def stamp_via(request: SipRequest, peer: Peer) -> Via:
    """Add ``received``/``rport`` to the request's top Via for a request received from ``peer``
    (§18.2.1, RFC 3581 §4) and return the (stamped) top Via. The other Via values and the
    header order are kept."""
    via = request.top_via
    if via.rport_requested and via.rport is None:
        via.params["rport"] = str(peer.port)
        via.params["received"] = peer.host
    elif via.host != peer.host and via.received != peer.host:
        via.params["received"] = peer.host
    else:
        return via
    _replace_top_via(request.headers, str(via))
    return via


def _replace_top_via(headers: Headers, value: str) -> None:
    # Headers has no "replace one line" operation; this is the hot path of every request, so
    # edit the line list in place (the same package-internal access make_response uses).
    items = headers._items
    for index, (key, name, line) in enumerate(items):
        if key == "via":
            if "," in line:
                values = split_list(line)
                values[0] = value
                value = ", ".join(values)
            items[index] = (key, name, value)
            return


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
