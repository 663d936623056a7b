"""What the user agent tells its application: small frozen dataclasses, drained with
``UserAgent.next_event()`` / ``events()``.

Every call ends with exactly one ``CallEnded``; ``CallCancelled`` precedes it when the caller
cancelled an unanswered INVITE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sipum_protocol.sip.message import SipRequest
    from sipum_protocol.sip.transaction import Peer, ServerTransaction
    from sipum_protocol.sip.ua.call import Call


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A new INVITE (outside any dialog) passed the checks; answer it with ``call.ring(now)``,
    ``call.answer(sdp, now)`` or ``call.reject(status, now)``. ``call.remote_sdp`` is the offer, or
    ``None`` for an INVITE without SDP (then the SDP given to ``answer`` is our offer and the
    answer arrives in the ACK, RFC 3261 §13.2.1)."""

    call: Call


@dataclass(frozen=True, slots=True)
class CallConfirmed:
    """The ACK for our 2xx arrived (RFC 3261 §13.3.1.4); for an INVITE without SDP
    ``call.remote_sdp`` now holds the answer from the ACK."""

    call: Call


@dataclass(frozen=True, slots=True)
class CallProgress:
    """Outgoing call: a provisional response (180, 183, ...) arrived."""

    call: Call
    status: int


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """Outgoing call: the 2xx arrived and we sent the ACK; ``call.remote_sdp`` is set."""

    call: Call


@dataclass(frozen=True, slots=True)
class CallCancelled:
    """The caller sent CANCEL before we answered; the transaction layer already answered the
    CANCEL with 200 and the INVITE with 487 (RFC 3261 §9.2). ``CallEnded`` follows."""

    call: Call
    reason: str | None = None
    """The CANCEL's ``Reason`` header (RFC 3326), e.g. ``SIP;cause=200;text="Call completed
    elsewhere"`` when a forking proxy cancels our branch because another one answered."""


@dataclass(frozen=True, slots=True)
class SessionModified:
    """A re-INVITE or UPDATE changed the session (RFC 3261 §14, RFC 3311): ``offer`` is the
    peer's new SDP, ``answer`` ours; ``on_hold`` is true when the peer stopped sending to us
    (``a=sendonly`` or ``a=inactive``, RFC 3264 §8.4). A refresh without SDP has ``offer``
    ``None``."""

    call: Call
    method: str
    offer: bytes | None
    answer: bytes | None
    on_hold: bool


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """A DTMF digit by SIP INFO in the call's dialog (``application/dtmf-relay`` or
    ``application/dtmf``, ``sipum_protocol.sip.dtmf_info``); the INFO was answered 200."""

    call: Call
    digit: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class ReofferAccepted:
    """Our re-INVITE (``UserAgent.reinvite``) got a 2xx and we sent the ACK (RFC 3261 §14.1):
    ``offer`` is what we sent (``call.local_sdp`` now), ``answer`` the peer's answer
    (``call.remote_sdp`` now). ``purpose`` is ``offer`` for the application's re-INVITE,
    ``refresh`` for an RFC 4028 session refresh we sent as refresher."""

    call: Call
    offer: bytes
    answer: bytes | None
    purpose: str = "offer"


@dataclass(frozen=True, slots=True)
class ReofferFailed:
    """Our re-INVITE did not change the session; the old one stays (RFC 3261 §14.1).
    ``reason``: ``rejected`` (a final non-2xx, ``status`` set; a 491 only after the glare
    retries), ``timeout`` (no final response by the deadline, or timer B), ``transport-error``,
    ``ended`` (the call ended first)."""

    call: Call
    reason: str
    status: int | None = None
    purpose: str = "offer"


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call is over. ``reason`` is one of: ``remote-bye``, ``local-bye``, ``cancelled``,
    ``rejected`` (we answered 3xx-6xx), ``failed`` (outgoing call got 3xx-6xx, ``status`` set),
    ``no-ack`` (our 2xx was never acknowledged; we sent BYE, §13.3.1.4), ``timeout`` (no
    response to our INVITE), ``transport-error``, ``max-duration``, ``session-expired`` (no
    refresh in time, or our refresh got 408/481/no answer, RFC 4028 §10), ``reinvite-failed``
    (our re-INVITE got 408/481 or no answer at all: we sent BYE, RFC 3261 §12.2.1.2)."""

    call: Call
    reason: str
    status: int | None = None


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """A request of a method the application handles itself (``request_methods``, e.g.
    SUBSCRIBE): outside a dialog, or in a dialog that is not a call. The §8.2 checks passed;
    answer it with ``UserAgent.respond(transaction, request, status, ...)``."""

    request: SipRequest
    peer: Peer
    transaction: ServerTransaction


@dataclass(frozen=True, slots=True)
class TransferEnded:
    """A transfer we asked for by REFER (RFC 3515, ``UserAgent.refer``) is over. ``ok``: the
    peer reached the target (sipfrag 2xx); the user agent has then sent BYE itself and
    ``CallEnded`` (reason ``transferred``) follows. Otherwise the call goes on; ``reason`` is
    ``refused`` (REFER answered 3xx-6xx, ``status`` set), ``failed`` (a sipfrag 3xx-6xx,
    ``status`` set), ``terminated`` (the subscription ended without a final status),
    ``timeout`` (no REFER response or no final NOTIFY in time) or ``transport-error``."""

    call: Call
    target: str
    ok: bool
    reason: str
    status: int | None = None


UserAgentEvent = (
    IncomingCall
    | IncomingRequest
    | CallConfirmed
    | CallProgress
    | CallAnswered
    | CallCancelled
    | SessionModified
    | TransferEnded
    | DtmfReceived
    | ReofferAccepted
    | ReofferFailed
    | CallEnded
)
