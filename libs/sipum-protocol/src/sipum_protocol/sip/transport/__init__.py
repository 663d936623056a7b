"""SIP transports on asyncio (RFC 3261 §18): UDP, TCP, TLS, and ``SipEndpoint``, the one
adapter tying them to a sans-I/O core (``TransactionEndpoint``: the transaction layer;
``sipum_protocol.sip.ua.aio.UserAgentEndpoint``: a user agent). See ``endpoint``."""

from sipum_protocol.sip.transport.config import EndpointConfig, TransportCounters
from sipum_protocol.sip.transport.endpoint import (
    ClientRequest,
    EventHandler,
    SipCore,
    SipEndpoint,
    SipTimeoutError,
    SipTransportError,
    TransactionEndpoint,
)
from sipum_protocol.sip.transport.stream import StreamConnection, StreamTransport
from sipum_protocol.sip.transport.udp import UdpTransport

__all__ = [
    "ClientRequest",
    "EndpointConfig",
    "EventHandler",
    "SipCore",
    "SipEndpoint",
    "SipTimeoutError",
    "SipTransportError",
    "StreamConnection",
    "StreamTransport",
    "TransactionEndpoint",
    "TransportCounters",
    "UdpTransport",
]
