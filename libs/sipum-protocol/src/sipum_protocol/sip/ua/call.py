"""A call as the application sees it: one INVITE dialog plus the state of its offer/answer.

The methods (``ring``, ``answer``, ``reject``, ``hangup``) only queue work in the owning
``UserAgent``; its owner then drains ``datagrams_to_send()`` as after any other input. Each
takes the caller's ``now`` (for an asyncio adapter: ``loop.time()`` at the moment of the call),
from which the retransmission timers of what it sends are started.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sipum_protocol.sip.dialog import Dialog
    from sipum_protocol.sip.message import SipRequest, SipResponse
    from sipum_protocol.sip.transaction import ClientTransaction, InviteServerTransaction, Peer
    from sipum_protocol.sip.ua.core import UserAgent
    from sipum_protocol.sip.ua.reinvite import OutgoingReoffer, ReinviteAck
    from sipum_protocol.sip.ua.session_timer import SessionTimer


class CallState(enum.Enum):
    # incoming (UAS)
    OFFERED = "offered"
    """INVITE received, nothing but (maybe) 100 Trying sent."""
    RINGING = "ringing"
    """A provisional response with our tag went out (early dialog)."""
    ANSWERED = "answered"
    """Our 2xx went out; we retransmit it until the ACK arrives (§13.3.1.4)."""
    # outgoing (UAC)
    CALLING = "calling"
    EARLY = "early"
    # both
    CONFIRMED = "confirmed"
    ENDED = "ended"


class Call:
    """One call. Attributes are read-only for the application."""

    __slots__ = (
        "ua",
        "incoming",
        "call_id",
        "invite",
        "peer",
        "server_transaction",
        "client_transaction",
        "dialog",
        "state",
        "local_tag",
        "remote_sdp",
        "local_sdp",
        "end_reason",
        "on_hold",
        "user_data",
        "_pending_2xx",
        "_awaiting_answer",
        "_hangup_after_ack",
        "_ack",
        "session_timer",
        "deadline",
        "_deadline_reason",
        "_max_end",
        "_bye_reason",
        "_reoffer",
        "_reinvite_ack",
        "_refresh_at",
    )

    def __init__(
        self,
        ua: UserAgent,
        *,
        incoming: bool,
        invite: SipRequest,
        peer: Peer,
        local_tag: str,
    ) -> None:
        self.ua = ua
        self.incoming = incoming
        self.call_id = invite.call_id
        self.invite = invite
        """The INVITE that created the call (received or sent)."""
        self.peer = peer
        """Where the INVITE came from (incoming) or went to (outgoing)."""
        self.server_transaction: InviteServerTransaction | None = None
        self.client_transaction: ClientTransaction | None = None
        self.dialog: Dialog | None = None
        self.state = CallState.OFFERED if incoming else CallState.CALLING
        self.local_tag = local_tag
        self.remote_sdp: bytes | None = None
        """The peer's current session description (offer or answer)."""
        self.local_sdp: bytes | None = None
        """Ours, as last sent."""
        self.end_reason: str | None = None
        self.on_hold = False
        """The peer put us on hold (its last offer was sendonly/inactive)."""
        self.user_data: object = None
        """Free for the application (e.g. the media session id)."""
        self._pending_2xx: _Pending2xx | None = None
        self._awaiting_answer = False
        """We sent an offer (in a 2xx) and wait for the answer in the ACK."""
        self._hangup_after_ack = False
        self._ack: tuple[SipRequest, Peer] | None = None
        """UAC: the ACK we sent for the 2xx, re-sent for each retransmitted 2xx."""
        self.session_timer: SessionTimer | None = None
        """RFC 4028: the interval and refresher our last 2xx agreed (None: no session timer)."""
        self.deadline: float | None = None
        """When the user agent ends the call by itself (session expiry or maximum duration)."""
        self._deadline_reason = ""
        self._max_end: float | None = None
        """Answer time + the user agent's ``max_call_duration``."""
        self._bye_reason = "local-bye"
        """The ``CallEnded`` reason of our BYE (``max-duration``, ``session-expired``)."""
        self._reoffer: OutgoingReoffer | None = None
        """Our re-INVITE (or refreshing UPDATE) in progress (``reinvite``)."""
        self._reinvite_ack: ReinviteAck | None = None
        """The ACK of the 2xx to our last re-INVITE (sent again for a retransmitted 2xx)."""
        self._refresh_at: float | None = None
        """RFC 4028 §10: when we, the refresher, send the next session refresh."""

    @property
    def ended(self) -> bool:
        return self.state is CallState.ENDED

    @property
    def remote_offered(self) -> bool:
        """Incoming call whose INVITE carried an offer (so ``answer`` takes an answer)."""
        return self.incoming and bool(self.invite.body)

    # -- application actions (forwarded to the user agent) ----------------------------------

    def ring(self, now: float, *, status: int = 180) -> None:
        """Send a provisional response with our To tag (180 Ringing unless ``status``)."""
        self.ua.ring(self, now, status=status)

    def answer(self, sdp: bytes, now: float) -> None:
        """Accept with 200 carrying ``sdp`` (the answer, or our offer for an INVITE without SDP)."""
        self.ua.answer(self, sdp, now)

    def reject(
        self,
        status: int,
        now: float,
        *,
        reason: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Refuse an unanswered incoming call with a 3xx-6xx final response; ``headers`` are
        added to it (e.g. ``Retry-After`` on a 503)."""
        self.ua.reject(self, status, now, reason=reason, headers=headers)

    def hangup(self, now: float) -> None:
        """End the call: BYE when confirmed (after the ACK, §15), CANCEL for an unanswered
        outgoing call, 480 for an unanswered incoming one."""
        self.ua.hangup(self, now)

    def reinvite(
        self,
        sdp: bytes,
        now: float,
        *,
        timeout: float | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Send a new offer in this dialog (re-INVITE, RFC 3261 §14.1): ``ReofferAccepted`` or
        ``ReofferFailed`` follows (see ``sipum_protocol.sip.ua.reinvite``)."""
        self.ua.reinvite(self, sdp, now, timeout=timeout, headers=headers)

    @property
    def reoffer_in_progress(self) -> bool:
        """A re-INVITE of ours has not had its outcome yet."""
        return self._reoffer is not None and not self._reoffer.failed

    def __repr__(self) -> str:
        direction = "in" if self.incoming else "out"
        return f"<Call {direction} {self.call_id} {self.state.value}>"


class _Pending2xx:
    """A 2xx we retransmit until its ACK comes (RFC 3261 §13.3.1.4): first at T1 after the
    original, doubling up to T2, for at most 64*T1."""

    __slots__ = ("response", "transaction", "cseq", "next_at", "interval", "give_up_at", "sent")

    def __init__(
        self,
        response: SipResponse,
        transaction: InviteServerTransaction,
        cseq: int,
        now: float,
        t1: float,
    ) -> None:
        self.response = response
        self.transaction = transaction
        self.cseq = cseq
        self.interval = t1
        self.next_at = now + t1
        self.give_up_at = now + 64 * t1
        self.sent = 1
