"""SIP user agent: calls and dialogs on top of the transaction layer (RFC 3261 §8.2, §12-§15).

``UserAgent`` is the sans-I/O core (see ``sipum_protocol.sip.ua.core``); ``Call`` is one call as the
application sees it; the events say what happened. ``sipum_protocol.sip.ua.aio`` runs a ``UserAgent``
on asyncio sockets.
"""

from sipum_protocol.sip.ua.call import Call, CallState
from sipum_protocol.sip.ua.core import ALLOWED_METHODS, SessionAnswerer, UserAgent
from sipum_protocol.sip.ua.events import (
    CallAnswered,
    CallCancelled,
    CallConfirmed,
    CallEnded,
    CallProgress,
    DtmfReceived,
    IncomingCall,
    IncomingRequest,
    ReofferAccepted,
    ReofferFailed,
    SessionModified,
    TransferEnded,
    UserAgentEvent,
)
from sipum_protocol.sip.ua.refer import Transfer, TransferState
from sipum_protocol.sip.ua.reoffer import NotAcceptableOffer, answer_reoffer, offer_direction
from sipum_protocol.sip.ua.session_timer import SessionTimer, SessionTimerConfig

__all__ = [
    "ALLOWED_METHODS",
    "Call",
    "CallAnswered",
    "CallCancelled",
    "CallConfirmed",
    "CallEnded",
    "CallProgress",
    "CallState",
    "DtmfReceived",
    "IncomingCall",
    "IncomingRequest",
    "NotAcceptableOffer",
    "ReofferAccepted",
    "ReofferFailed",
    "SessionAnswerer",
    "SessionModified",
    "SessionTimer",
    "SessionTimerConfig",
    "Transfer",
    "TransferEnded",
    "TransferState",
    "UserAgent",
    "UserAgentEvent",
    "answer_reoffer",
    "offer_direction",
]
