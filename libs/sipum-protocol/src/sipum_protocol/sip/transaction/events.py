"""Addresses and the events the transaction layer hands to its user (the TU).

Events are small frozen dataclasses, drained with ``TransactionLayer.next_event()`` or
``events()``. Server and client transactions appear in events as their objects; the TU answers
a request with ``TransactionLayer.send_response(transaction, response, now)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sipum_protocol.sip.message import SipRequest, SipResponse
    from sipum_protocol.sip.transaction.client import ClientTransaction
    from sipum_protocol.sip.transaction.server import InviteServerTransaction, ServerTransaction

RELIABLE_TRANSPORTS = frozenset({"TCP", "TLS", "SCTP", "WS", "WSS"})
DEFAULT_PORTS = {"UDP": 5060, "TCP": 5060, "TLS": 5061, "SCTP": 5060, "WS": 80, "WSS": 443}


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a message came from or goes to: transport name as in Via (``UDP``/``TCP``/``TLS``),
    an IP address (IPv6 without brackets) and a port.

    On stream transports a ``Peer`` is also the key of the connection: a request received over
    TCP from 192.0.2.1:53312 is answered to ``Peer("TCP", "192.0.2.1", 53312)``, i.e. over the
    same connection (RFC 3261 §18.2.2).
    """

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        """Reliable transports do not use retransmission timers A, E, G (RFC 3261 §17)."""
        return self.transport in RELIABLE_TRANSPORTS

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request for the TU (not a retransmission, not an ACK, not a CANCEL)."""

    request: SipRequest
    """The request, its top Via already stamped with ``received``/``rport``."""
    peer: Peer
    """Where it came from."""
    transaction: ServerTransaction
    """Answer it with ``TransactionLayer.send_response(transaction, response, now)``."""


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK that no transaction absorbed: the ACK for a 2xx (RFC 3261 §13.3.1.4, §17.1.1.3)
    — a request of its own for the dialog layer — or an ACK matching an INVITE server
    transaction in the RFC 6026 Accepted state."""

    request: SipRequest
    peer: Peer


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """A CANCEL matched an INVITE server transaction that had no final response yet.

    The layer has already answered the CANCEL with ``200`` and the INVITE with ``487 Request
    Terminated`` (RFC 3261 §9.2); the TU only has to stop what it was doing for that INVITE.
    """

    request: SipRequest
    """The CANCEL."""
    peer: Peer
    invite: InviteServerTransaction
    """The INVITE server transaction it cancelled (now in Completed with the 487)."""


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for a client transaction, passed up per RFC 3261 §17.1 / RFC 6026.

    Provisional and final responses arrive once; for an INVITE, retransmissions of a 2xx (and
    2xx from other forks) during the Accepted state arrive again, so the TU can re-send its ACK.
    """

    response: SipResponse
    peer: Peer
    transaction: ClientTransaction


@dataclass(frozen=True, slots=True)
class StrayResponse:
    """A response that matched no client transaction (RFC 3261 §18.1.2: the UA core may use a
    late 2xx for an INVITE to ACK and BYE it)."""

    response: SipResponse
    peer: Peer


@dataclass(frozen=True, slots=True)
class TransactionTimeout:
    """Timer B or F (client: no final response) or H (INVITE server: no ACK for the 3xx-6xx),
    or the non-INVITE server guard (the TU never answered)."""

    transaction: ClientTransaction | ServerTransaction
    timer: str
    """``"B"``, ``"F"``, ``"H"`` or ``"guard"``."""


@dataclass(frozen=True, slots=True)
class TransportError:
    """The transport could not deliver a message of this transaction (RFC 3261 §17.1.4,
    §17.2.4); the transaction is terminated."""

    transaction: ClientTransaction | ServerTransaction
    peer: Peer


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    """The transaction reached Terminated and was removed from the layer."""

    transaction: ClientTransaction | ServerTransaction


Event = (
    RequestReceived
    | AckReceived
    | CancelReceived
    | ResponseReceived
    | StrayResponse
    | TransactionTimeout
    | TransportError
    | TransactionTerminated
)
