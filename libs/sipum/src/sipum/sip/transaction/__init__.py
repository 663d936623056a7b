"""Sans-I/O SIP transactions: RFC 3261 §17 with the RFC 6026 corrections.

Use :class:`TransactionLayer`; see ``sipum.sip.transaction.layer`` for the theory of operation,
``client`` and ``server`` for the four state machines, ``routing`` for the §18.2 address rules.
"""

from sipum.sip.transaction.base import Transaction, TransactionState, TransactionStateError
from sipum.sip.transaction.client import (
    ClientTransaction,
    InviteClientTransaction,
    NonInviteClientTransaction,
    build_ack,
)
from sipum.sip.transaction.events import (
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
from sipum.sip.transaction.layer import LayerCounters, TransactionLayer, build_cancel
from sipum.sip.transaction.routing import (
    response_destination,
    sent_by,
    stamp_via,
    stream_fallback,
)
from sipum.sip.transaction.server import (
    InviteServerTransaction,
    NonInviteServerTransaction,
    ServerTransaction,
)
from sipum.sip.transaction.timers import TimerConfig

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
