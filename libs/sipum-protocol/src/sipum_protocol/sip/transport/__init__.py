"""SIP transports on asyncio (RFC 3261 §18): UDP, TCP, TLS, and ``SipEndpoint`` tying them to
the sans-I/O ``TransactionLayer``. See ``endpoint`` for the API a UA uses."""

from sipum_protocol.sip.transport.config import EndpointConfig, TransportCounters
from sipum_protocol.sip.transport.endpoint import (
    ClientRequest,
    EventHandler,
    SipEndpoint,
    SipTimeoutError,
    SipTransportError,
)
from sipum_protocol.sip.transport.stream import StreamConnection, StreamTransport
from sipum_protocol.sip.transport.udp import UdpTransport

__all__ = [
    "ClientRequest",
    "EndpointConfig",
    "EventHandler",
    "SipEndpoint",
    "SipTimeoutError",
    "SipTransportError",
    "StreamConnection",
    "StreamTransport",
    "TransportCounters",
    "UdpTransport",
]
