"""Sans-I/O SIP transactions: RFC 3261 §17 with the RFC 6026 corrections.

Use :class:`TransactionLayer`; see ``sipum_protocol.sip.transaction.layer`` for the theory of operation,
``client`` and ``server`` for the four state machines, ``routing`` for the §18.2 address rules.
"""

from sipum_protocol.sip.transaction.base import Transaction, TransactionState, TransactionStateError
from sipum_protocol.sip.transaction.client import (
    ClientTransaction,
    InviteClientTransaction,
    NonInviteClientTransaction,
    build_ack,
)
from sipum_protocol.sip.transaction.events import (
    AckReceived,
    CancelReceived,
    Event,
    Peer,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
)
from sipum_protocol.sip.transaction.layer import LayerCounters, TransactionLayer, build_cancel
from sipum_protocol.sip.transaction.routing import (
    response_destination,
    sent_by,
    stamp_via,
    stream_fallback,
)
from sipum_protocol.sip.transaction.server import (
    InviteServerTransaction,
    NonInviteServerTransaction,
    ServerTransaction,
)
from sipum_protocol.sip.transaction.timers import TimerConfig

__all__ = [
    "AckReceived",
    "CancelReceived",
    "ClientTransaction",
    "Event",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "LayerCounters",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "Peer",
    "RequestReceived",
    "ResponseReceived",
    "ServerTransaction",
    "StrayResponse",
    "TimerConfig",
    "Transaction",
    "TransactionLayer",
    "TransactionState",
    "TransactionStateError",
    "TransactionTerminated",
    "TransactionTimeout",
    "TransportError",
    "build_ack",
    "build_cancel",
    "response_destination",
    "sent_by",
    "stamp_via",
    "stream_fallback",
]
