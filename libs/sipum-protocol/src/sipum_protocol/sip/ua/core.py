"""The user agent core (RFC 3261 §8.2, §12-§15) on top of the transaction layer, sans-I/O.

Theory of operation
-------------------
``UserAgent`` owns a ``TransactionLayer``. Its owner (the asyncio adapter, or a test with a
fake clock) feeds it exactly like the layer — ``receive_data(bytes, peer, now)``,
``handle_timer(now)`` — and drains ``datagrams_to_send()`` ``[(bytes, Peer)]``, the
application events (``next_event()``/``events()``) and re-arms one timer at ``get_timer()``.

After each input the UA drains the layer's events and acts on them:

* ``RequestReceived`` outside a dialog (no To tag): the §8.2 checks in order — 416 for a
  non-SIP Request-URI scheme, 405 with ``Allow`` for a registered method we do not serve and
  501 with ``Allow`` for a method we do not recognise (also inside a dialog), 482 for a
  merged request (§8.2.2.2), 420 with ``Unsupported`` for an unknown ``Require`` option tag
  (§8.2.2.3), 415 with ``Accept`` for a body that is not SDP (§8.2.3) — then OPTIONS is
  answered (§11.2) and an INVITE becomes a ``Call`` handed to the application
  (``IncomingCall``). A request with a To tag that names no dialog gets 481 (§12.2.2).
* Inside a dialog: CSeq lower than the last one gets 500 (§12.2.2); BYE gets 200 and ends the
  call (§15.1.2, with 487 for an INVITE still unanswered); INFO with a DTMF body gets 200 and
  becomes ``DtmfReceived`` (RFC 6086, ``sipum_protocol.sip.dtmf_info``); re-INVITE and UPDATE are target
  refreshes and carry new offers (hold, session refresh), answered from our last SDP
  (``reoffer.answer_reoffer``), with 491 while another offer/answer is in progress (§14.2,
  RFC 3311 §5.2) and 500 + Retry-After for an INVITE that overlaps an unanswered one (§14.2).
* Our 2xx to an INVITE is retransmitted by us, not the transaction (§13.3.1.4, RFC 6026):
  at T1, 2*T1, ... capped at T2, until the ACK (``AckReceived``) arrives. If none arrives
  within 64*T1 the dialog is confirmed but the session is ended with a BYE. A retransmitted
  INVITE after the 2xx is absorbed by the transaction (RFC 6026 §8.7); the next 2xx
  retransmission answers it.
* Our own re-INVITE in an established dialog (``reinvite``, §14.1; the media moved to another
  server): a client transaction with the next CSeq; 2xx → our ACK and ``ReofferAccepted``,
  non-2xx → ``ReofferFailed`` with the session unchanged, 491 → again after the §14.1 random
  delay, a deadline of the application's; see ``sipum_protocol.sip.ua.reinvite``. As RFC 4028
  refresher the same machinery sends the session refreshes at half the interval.
* ``CancelReceived``: the layer already sent 200 and 487; the call ends (``CallCancelled``).
* Outgoing calls (``invite``): the INVITE goes in a client transaction; a 2xx creates the
  dialog and we send the ACK ourselves (§13.2.2.4), again for every retransmitted 2xx.

Methods the application names in ``request_methods`` (e.g. SUBSCRIBE for an RFC 6665
notifier) are not ours: after the §8.2 checks (scheme, Require) such a request — outside a
dialog, or naming a dialog that is not a call — is handed up as ``IncomingRequest`` with its
server transaction, and the application answers it with ``respond()``. They appear in
``Allow``. Requests for those dialogs that the application originates (NOTIFY) go through
``send_request``.

Requests we originate in a dialog (BYE, ...) follow the route set (§12.2.1.1). Over a stream
transport a dialog without a route set sends them over the connection it was created on
(the peer), the connection reuse of RFC 5923/5626 — a UAC behind NAT or sipp in ``-t t1`` mode
does not accept connections to its Contact.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable
from typing import Literal

from sipum_protocol.sip.dialog import (
    Dialog,
    DialogId,
    header_tag,
    incoming_request_dialog_id,
    incoming_response_dialog_id,
)
from sipum_protocol.sip.dtmf_info import DTMF_INFO_TYPES, parse_dtmf_info
from sipum_protocol.sip.headers import SipParseError
from sipum_protocol.sip.message import (
    Headers,
    SipRequest,
    SipResponse,
    make_response,
    new_call_id,
    new_tag,
    via_for_request,
)
from sipum_protocol.sip.transaction import (
    AckReceived,
    CancelReceived,
    ClientTransaction,
    InviteServerTransaction,
    Peer,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    StrayResponse,
    TimerConfig,
    TransactionLayer,
    TransactionStateError,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
)
from sipum_protocol.sip.transaction.events import DEFAULT_PORTS
from sipum_protocol.sip.ua.call import Call, CallState, _Pending2xx
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
    UserAgentEvent,
)
from sipum_protocol.sip.ua.refer import DEFAULT_TIMEOUT as TRANSFER_TIMEOUT
from sipum_protocol.sip.ua.refer import Transfer, Transfers
from sipum_protocol.sip.ua.reinvite import (
    DEFAULT_TIMEOUT as REINVITE_TIMEOUT,
)
from sipum_protocol.sip.ua.reinvite import (
    GLARE_RETRIES,
    OutgoingReoffer,
    ReinviteAck,
    glare_delay,
    next_version,
)
from sipum_protocol.sip.ua.reoffer import NotAcceptableOffer, answer_reoffer, offer_direction
from sipum_protocol.sip.ua.session_timer import (
    OPTION_TAG as TIMER_TAG,
)
from sipum_protocol.sip.ua.session_timer import (
    SessionTimer,
    SessionTimerConfig,
    TooSmall,
    parse_min_se,
    parse_session_expires,
)
from sipum_protocol.sip.ua.session_timer import (
    negotiate as negotiate_session_timer,
)
from sipum_protocol.sip.uri import SipUri, parse_name_addr

log = logging.getLogger(__name__)

ALLOWED_METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "INFO", "NOTIFY")
"""What we implement (``Allow``, RFC 3261 §20.5); INFO for DTMF digits (RFC 6086), NOTIFY only
for our REFERs (``refer``)."""
KNOWN_METHODS = frozenset(
    (
        *ALLOWED_METHODS,
        "MESSAGE",  # RFC 3428
        "NOTIFY",  # RFC 6665
        "PRACK",  # RFC 3262
        "PUBLISH",  # RFC 3903
        "REFER",  # RFC 3515
        "REGISTER",  # RFC 3261
        "SUBSCRIBE",  # RFC 6665
    )
)
"""The IANA SIP methods registry: methods we recognise. One of these that we do not serve gets
``405 Method Not Allowed``; any other (well-formed) method ``501 Not Implemented`` (RFC 3261
§8.2.1, §21.5.2). Method names are case-sensitive (§7.1): ``invite`` is not ``INVITE``."""
ACCEPTED_BODIES = ("application/sdp",)

ResponseHandler = Callable[[SipResponse], None]
FailureHandler = Callable[[str], None]
SessionAnswerer = Callable[[bytes, bytes], bytes]
"""(our last SDP, the peer's new offer) -> our answer; raise ``NotAcceptableOffer`` for 488."""


class UserAgent:
    """A SIP user agent (UAS for incoming calls, UAC for outgoing ones); see module doc.

    ``local`` maps a transport name (``"UDP"``, ``"TCP"``, ``"TLS"``) to the host and port we
    listen on for it: they go into Via sent-by and Contact. ``user`` is the user part of our
    Contact. ``supported`` lists the option tags we implement (``Supported``, §20.37); any
    other tag in a ``Require`` is answered 420.
    """

    def __init__(
        self,
        *,
        local: dict[str, tuple[str, int]],
        user: str = "sipum",
        timers: TimerConfig | None = None,
        layer: TransactionLayer | None = None,
        supported: Iterable[str] = (),
        server_name: str = "sipum",
        session_answerer: SessionAnswerer = answer_reoffer,
        request_methods: Iterable[str] = (),
        session_timers: SessionTimerConfig | None = None,
        max_call_duration: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not local:
            raise ValueError("need at least one local transport address")
        self.local = {transport.upper(): addr for transport, addr in local.items()}
        self.user = user
        self.layer = layer or TransactionLayer(timers=timers)
        self.timers = self.layer.timers
        self.supported = tuple(supported)
        if session_timers is not None and TIMER_TAG not in self.supported:
            self.supported += (TIMER_TAG,)
        self.server_name = server_name
        self.session_answerer = session_answerer
        self.session_timers = session_timers
        """RFC 4028 as UAS (``session_timer``); None: Session-Expires is ignored."""
        if max_call_duration is not None and max_call_duration <= 0:
            raise ValueError("max_call_duration must be positive")
        self.max_call_duration = max_call_duration
        """An answered call is ended (BYE, reason ``max-duration``) this long after our 2xx."""
        self._deadline_heap: list[tuple[float, int, Call]] = []
        self._reoffer_heap: list[tuple[float, int, Call]] = []
        """Our re-INVITEs' retry times and deadlines, and session refresh times (``reinvite``)."""
        self.rng = rng or random.Random()
        """For the §14.1 glare delays (a seeded one makes tests repeatable)."""
        self.request_methods = tuple(m.upper() for m in request_methods)
        """Methods handed to the application as ``IncomingRequest`` (see module doc)."""
        self.allowed_methods = ALLOWED_METHODS + tuple(
            m for m in self.request_methods if m not in ALLOWED_METHODS
        )
        self.wakeup: Callable[[], None] | None = None
        """Called when an application action queued output outside of ``receive_data`` /
        ``handle_timer``, so an I/O adapter knows to flush."""
        self._events: deque[UserAgentEvent] = deque()
        self._calls: dict[DialogId, Call] = {}
        self._by_server_tx: dict[int, Call] = {}
        self._by_client_tx: dict[int, Call] = {}
        self._invites_in_progress: dict[tuple[str, str, int], str] = {}
        """(Call-ID, From tag, CSeq) -> branch of INVITEs being answered, for §8.2.2.2."""
        self._plain: dict[int, tuple[ResponseHandler | None, FailureHandler | None]] = {}
        """Client transactions of ``send_request`` (REGISTER, OPTIONS...): their handlers."""
        self._timer_heap: list[tuple[float, int, Call]] = []
        self._seq = itertools.count()
        self.calls_created = 0
        self.calls_ended = 0
        self.transfers = Transfers(self)
        """REFERs we sent (RFC 3515, ``sipum_protocol.sip.ua.refer``)."""

    # ------------------------------------------------------------------ I/O interface

    def receive_data(self, data: bytes, peer: Peer, now: float) -> None:
        """One datagram or framed stream message from ``peer``."""
        self.layer.receive_data(data, peer, now)
        self._drain_layer(now)

    def receive(self, message: SipRequest | SipResponse, peer: Peer, now: float) -> None:
        try:
            self.layer.receive(message, peer, now)
        except SipParseError:
            log.debug("unusable message from %s dropped", peer)
        self._drain_layer(now)

    def transport_error(self, peer: Peer, now: float) -> None:
        """The transport could not reach ``peer`` (§8.1.3.1, §17.1.4): its transactions fail."""
        self.layer.transport_error(peer, now)
        self._drain_layer(now)

    def handle_timer(self, now: float) -> None:
        self.layer.handle_timer(now)
        self._drain_layer(now)
        heap = self._timer_heap
        while heap and heap[0][0] <= now:
            when, _, call = heapq.heappop(heap)
            pending = call._pending_2xx
            if pending is None or call.ended or when != pending.next_at:
                continue  # stale entry
            self._retransmit_2xx(call, pending, now)
        deadlines = self._deadline_heap
        while deadlines and deadlines[0][0] <= now:
            when, _, call = heapq.heappop(deadlines)
            if call.ended or call.deadline != when:
                continue  # stale entry (refreshed, or over)
            self._expire(call, now)
        self.transfers.handle_timer(now)
        reoffers = self._reoffer_heap
        while reoffers and reoffers[0][0] <= now:
            _when, _, call = heapq.heappop(reoffers)
            if not call.ended:
                self._reoffer_timer(call, now)
        self._drain_layer(now)

    def get_timer(self) -> float | None:
        heap = self._timer_heap
        while heap:
            when, _, call = heap[0]
            pending = call._pending_2xx
            if pending is not None and not call.ended and pending.next_at == when:
                break
            heapq.heappop(heap)
        ours = heap[0][0] if heap else None
        deadlines = self._deadline_heap
        while deadlines:
            when, _, call = deadlines[0]
            if not call.ended and call.deadline == when:
                ours = when if ours is None else min(ours, when)
                break
            heapq.heappop(deadlines)
        transfer = self.transfers.next_timer()
        if transfer is not None:
            ours = transfer if ours is None else min(ours, transfer)
        reoffers = self._reoffer_heap
        while reoffers and reoffers[0][2].ended:
            heapq.heappop(reoffers)
        if reoffers:
            # Possibly stale (a retry that was not needed): a wake-up that finds nothing to do.
            ours = reoffers[0][0] if ours is None else min(ours, reoffers[0][0])
        theirs = self.layer.get_timer()
        if ours is None:
            return theirs
        if theirs is None:
            return ours
        return min(ours, theirs)

    def datagrams_to_send(self) -> list[tuple[bytes, Peer]]:
        return self.layer.datagrams_to_send()

    def next_event(self) -> UserAgentEvent | None:
        return self._events.popleft() if self._events else None

    def events(self) -> list[UserAgentEvent]:
        out = list(self._events)
        self._events.clear()
        return out

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    def _emit(self, event: UserAgentEvent) -> None:
        self._events.append(event)

    def _poke(self) -> None:
        if self.wakeup is not None:
            self.wakeup()

    # ------------------------------------------------------------------ layer events

    def _drain_layer(self, now: float) -> None:
        layer = self.layer
        while True:
            event = layer.next_event()
            if event is None:
                return
            if isinstance(event, RequestReceived):
                self._on_request(event.request, event.peer, event.transaction, now)
            elif isinstance(event, AckReceived):
                self._on_ack(event.request, now)
            elif isinstance(event, CancelReceived):
                self._on_cancel(event.invite, event.request)
            elif isinstance(event, ResponseReceived):
                self._on_response(event.response, event.transaction, now)
            elif isinstance(event, StrayResponse):
                self._on_stray_response(event.response)
            elif isinstance(event, TransactionTimeout | TransportError):
                self._on_transaction_failure(event.transaction, event, now)
            elif isinstance(event, TransactionTerminated):
                handlers = self._plain.pop(id(event.transaction), None)
                if handlers is not None and handlers[1] is not None:
                    handlers[1]("terminated")  # ended without a final response
                self._by_client_tx.pop(id(event.transaction), None)
                self._by_server_tx.pop(id(event.transaction), None)

    # ------------------------------------------------------------------ requests

    def _respond(
        self,
        tx: ServerTransaction,
        request: SipRequest,
        status: int,
        now: float,
        *,
        to_tag: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        reason: str | None = None,
    ) -> SipResponse:
        if to_tag is None and status > 100 and not header_tag(request.headers.get("To") or ""):
            # §8.2.6.2: a response to a request without a To tag carries one of ours (the
            # 416/420/415/482/... of the §8.2 checks too); a retransmission is answered by the
            # transaction with the same response, so the tag stays the same.
            to_tag = new_tag()
        response = make_response(request, status, reason, to_tag=to_tag, headers=headers, body=body)
        try:
            self.layer.send_response(tx, response, now)
        except TransactionStateError:
            log.debug("%s for %s dropped: transaction over", status, request.method)
        return response

    def respond(
        self,
        tx: ServerTransaction,
        request: SipRequest,
        status: int,
        now: float,
        *,
        to_tag: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        reason: str | None = None,
    ) -> SipResponse:
        """Answer an ``IncomingRequest`` (any status; a final one ends the transaction)."""
        response = self._respond(
            tx,
            request,
            status,
            now,
            to_tag=to_tag,
            headers=headers,
            body=body,
            reason=reason,
        )
        self._poke()
        return response

    def via_for(self, transport: str) -> str:
        """A Via value of ours (new branch, ``rport``) for a request over ``transport``."""
        return self._via_for(transport)

    def contact_for(self, transport: str, secure: bool = False) -> str:
        """Our Contact (name-addr) for ``transport``."""
        return self._contact_for(transport, secure)

    def _negotiate_timer(
        self, request: SipRequest, tx: ServerTransaction, now: float
    ) -> SessionTimer | Literal[False] | None:
        """RFC 4028 for an INVITE or a refresh: the timer to agree (None: none), or False when
        a 422 (interval too small) or 400 (unreadable header) was sent."""
        if self.session_timers is None:
            return None
        try:
            result = negotiate_session_timer(request, self.session_timers)
        except SipParseError as exc:
            self._respond(tx, request, 400, now, reason=exc.reason)
            return False
        if isinstance(result, TooSmall):
            self._respond(tx, request, 422, now, headers=result.response_headers())
            return False
        return result

    def _arm_deadline(self, call: Call, now: float) -> None:
        """The call's next self-imposed end: session expiry (from ``now``, the 2xx) or the
        maximum duration, whichever comes first."""
        candidates: list[tuple[float, str]] = []
        if call.session_timer is not None:
            candidates.append((now + call.session_timer.expiry, "session-expired"))
        if call._max_end is not None:
            candidates.append((call._max_end, "max-duration"))
        if not candidates:
            call.deadline = None
            return
        when, reason = min(candidates)
        call.deadline, call._deadline_reason = when, reason
        heapq.heappush(self._deadline_heap, (when, next(self._seq), call))

    def _expire(self, call: Call, now: float) -> None:
        """The deadline passed: end the call with BYE (after the ACK, §15)."""
        call.deadline = None
        reason = call._deadline_reason
        log.info("ending call %s: %s", call.call_id, reason)
        call._bye_reason = reason
        if call.state is CallState.ANSWERED:
            call._hangup_after_ack = True  # no ACK yet: BYE once it comes (or timer M ends it)
            return
        self._send_bye(call, now)
        self._end(call, reason)

    def _refuse_method(self, tx: ServerTransaction, request: SipRequest, now: float) -> None:
        """§8.2.1: 405 for a registered method we do not serve, 501 for one we do not know
        (§21.5.2: "does not recognize the request method"); both with ``Allow``."""
        status = 405 if request.method in KNOWN_METHODS else 501
        self._respond(tx, request, status, now, headers=self._capabilities()[:1])

    def _capabilities(self) -> list[tuple[str, str]]:
        return [
            ("Allow", ", ".join(self.allowed_methods)),
            ("Accept", ", ".join(ACCEPTED_BODIES)),
            ("Supported", ", ".join(self.supported)),
        ]

    def _contact_for(self, transport: str, secure: bool = False) -> str:
        transport = transport.upper()
        host, port = self.local.get(transport) or next(iter(self.local.values()))
        host_text = f"[{host}]" if ":" in host else host
        scheme = "sips" if secure else "sip"
        param = "" if transport == "UDP" else f";transport={transport.lower()}"
        return f"<{scheme}:{self.user}@{host_text}:{port}{param}>"

    def _via_for(self, transport: str) -> str:
        transport = transport.upper()
        host, port = self.local.get(transport) or next(iter(self.local.values()))
        return via_for_request(transport, host, port)

    def _on_request(
        self, request: SipRequest, peer: Peer, tx: ServerTransaction, now: float
    ) -> None:
        method = request.method
        # §8.2.1 comes before the header checks of §8.2.2 (To tag, Request-URI): a method we
        # do not serve is refused the same way inside and outside a dialog.
        if method not in self.allowed_methods:
            self._refuse_method(tx, request, now)
            return
        try:
            dialog_id = incoming_request_dialog_id(request)
        except SipParseError:
            self._respond(tx, request, 400, now, reason="Bad To header")
            return
        if dialog_id is not None:
            self._on_in_dialog_request(dialog_id, request, peer, tx, now)
            return
        # §8.2.2.1: we only serve SIP URIs.
        if not request.uri[:5].lower().startswith(("sip:", "sips:")):
            self._respond(tx, request, 416, now)
            return
        if method == "INVITE" and self._is_merged(
            request, header_tag(request.headers.get("From") or "") or "", request.cseq[0]
        ):
            self._respond(tx, request, 482, now, reason="Loop Detected")
            return
        if not self._check_require(request, tx, now):
            return
        if method in self.request_methods:
            self._emit(IncomingRequest(request, peer, tx))
            return
        if method == "OPTIONS":
            # §11.2: the same answer an INVITE would get, with our capabilities.
            self._respond(tx, request, 200, now, to_tag=new_tag(), headers=self._capabilities())
            return
        if method == "INVITE":
            self._on_new_invite(request, peer, tx, now)
            return
        if method == "BYE":
            self._respond(tx, request, 481, now)  # a BYE without To tag names no dialog
            return
        if method in ("UPDATE", "NOTIFY"):
            # UPDATE only inside a dialog (RFC 3311); a NOTIFY without To tag names no
            # subscription of ours (RFC 6665 §4.1.3)
            self._respond(tx, request, 481, now)
            return
        if method == "INFO":
            self._respond(tx, request, 481, now)  # INFO only inside a dialog (RFC 6086 §4.2.2)
            return
        self._respond(tx, request, 405, now, headers=self._capabilities()[:1])

    def _check_require(self, request: SipRequest, tx: ServerTransaction, now: float) -> bool:
        """§8.2.2.3: answer 420 listing the option tags of ``Require`` we do not support."""
        required = request.headers.get_all("Require")
        if not required:
            return True
        unsupported = [tag for tag in required if tag.strip().lower() not in self.supported]
        if not unsupported:
            return True
        self._respond(tx, request, 420, now, headers=[("Unsupported", ", ".join(unsupported))])
        return False

    def _check_body(self, request: SipRequest, tx: ServerTransaction, now: float) -> bool:
        """§8.2.3: a body we cannot read gets 415 with ``Accept``."""
        if not request.body:
            return True
        content_type = request.content_type
        encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
        if content_type in ACCEPTED_BODIES and encoding == "identity":
            return True
        self._respond(
            tx,
            request,
            415,
            now,
            headers=[("Accept", ", ".join(ACCEPTED_BODIES)), ("Accept-Encoding", "identity")],
        )
        return False

    def _is_merged(self, request: SipRequest, from_tag: str, cseq: int) -> bool:
        """§8.2.2.2: a request without To tag whose From tag, Call-ID and CSeq match an INVITE
        we are already handling, but arriving with another branch (a fork looping back)."""
        known = self._invites_in_progress.get((request.call_id, from_tag, cseq))
        return known is not None and known != (request.top_via.branch or "")

    def _on_new_invite(
        self, request: SipRequest, peer: Peer, tx: ServerTransaction, now: float
    ) -> None:
        assert isinstance(tx, InviteServerTransaction)
        if not self._check_body(request, tx, now):
            return
        timer = self._negotiate_timer(request, tx, now)
        if timer is False:
            return
        call = Call(self, incoming=True, invite=request, peer=peer, local_tag=new_tag())
        call.session_timer = timer
        call.server_transaction = tx
        call.remote_sdp = request.body or None
        secure = peer.transport == "TLS"
        call.dialog = Dialog.from_incoming_request(
            request,
            local_tag=call.local_tag,
            local_contact=self._contact_for(
                peer.transport, secure and request.uri.lower().startswith("sips:")
            ),
            secure_transport=secure,
        )
        self._calls[call.dialog.id] = call
        self._by_server_tx[id(tx)] = call
        self._invites_in_progress[
            (request.call_id, call.dialog.id.remote_tag, call.dialog.invite_cseq)
        ] = request.top_via.branch or ""
        self.calls_created += 1
        self._emit(IncomingCall(call))

    def _on_in_dialog_request(
        self,
        dialog_id: DialogId,
        request: SipRequest,
        peer: Peer,
        tx: ServerTransaction,
        now: float,
    ) -> None:
        call = self._calls.get(dialog_id)
        method = request.method
        if call is None and method in self.request_methods:
            # Not a call: maybe a dialog of the application's (an RFC 6665 subscription);
            # it answers 481 itself when it does not know the dialog either.
            if self._check_require(request, tx, now):
                self._emit(IncomingRequest(request, peer, tx))
            return
        if call is None or call.dialog is None or call.ended:
            # §12.2.2: no such dialog.
            self._respond(tx, request, 481, now)
            return
        dialog = call.dialog
        if not dialog.accept_remote_cseq(request):
            self._respond(tx, request, 500, now, reason="CSeq Out Of Order")
            return
        if method == "BYE":
            self._on_bye(call, request, tx, now)
        elif method in ("INVITE", "UPDATE"):
            if not self._check_require(request, tx, now) or not self._check_body(request, tx, now):
                return
            self._on_session_change(call, request, tx, now)
        elif method == "OPTIONS":
            self._respond(tx, request, 200, now, headers=self._capabilities())
        elif method == "NOTIFY":
            self.transfers.on_notify(call, request, tx, now)  # RFC 3515 §2.4.5
        elif method == "INFO":
            self._on_info(call, request, tx, now)
        else:
            self._respond(tx, request, 405, now, headers=self._capabilities()[:1])

    def _on_info(self, call: Call, request: SipRequest, tx: ServerTransaction, now: float) -> None:
        """RFC 6086 in a call's dialog, the legacy usage (no ``Info-Package``): a DTMF body
        (``dtmf_info``) → 200 and :class:`DtmfReceived`; no body → 200 (nothing to do, §4.2.2);
        any other body → 415 with ``Accept`` (RFC 3261 §21.4.13). An Info Package we do not
        support → 469 with an empty ``Recv-Info`` (RFC 6086 §4.2.2, §8.2)."""
        if request.headers.get("Info-Package") is not None:
            self._respond(tx, request, 469, now, headers=[("Recv-Info", "")])
            return
        if not request.body:
            self._respond(tx, request, 200, now)
            return
        try:
            found = parse_dtmf_info(request.headers.get("Content-Type"), request.body)
        except ValueError:
            self._respond(tx, request, 415, now, headers=[("Accept", ", ".join(DTMF_INFO_TYPES))])
            return
        self._respond(tx, request, 200, now)
        self._emit(DtmfReceived(call, found.digit, found.duration_ms))

    def _on_bye(self, call: Call, request: SipRequest, tx: ServerTransaction, now: float) -> None:
        self._respond(tx, request, 200, now)
        # §15.1.2: requests still pending in the dialog get 487.
        pending_tx = call.server_transaction
        if pending_tx is not None and not pending_tx.final_sent and not pending_tx.terminated:
            self._respond(pending_tx, pending_tx.request, 487, now, to_tag=call.local_tag)
        self._end(call, "remote-bye")

    def _on_session_change(
        self, call: Call, request: SipRequest, tx: ServerTransaction, now: float
    ) -> None:
        """re-INVITE (§14.2) or UPDATE (RFC 3311 §5.2)."""
        method = request.method
        dialog = call.dialog
        assert dialog is not None
        offer = request.body or None
        initial = call.server_transaction
        initial_unanswered = initial is not None and not initial.final_sent
        if method == "INVITE" and initial_unanswered:
            # §14.2: an INVITE before our final response to a lower one: 500 + Retry-After.
            self._respond(
                tx, request, 500, now, headers=[("Retry-After", "1")], reason="Overlapping Requests"
            )
            return
        ours = call._reoffer
        ours_in_flight = ours is not None and ours.transaction is not None
        if (
            call._awaiting_answer
            or (method == "INVITE" and call._pending_2xx is not None)
            or (ours_in_flight and (offer is not None or method == "INVITE"))
        ):
            # Our offer waits for its answer (in an ACK, or to our own re-INVITE), or our 2xx
            # for its ACK: an offer/answer exchange is in progress (§14.2, RFC 3311 §5.2).
            self._respond(tx, request, 491, now)
            return
        if offer is not None and call.local_sdp is None:
            # RFC 3311 §5.2: the peer's first offer has no answer from us yet.
            self._respond(
                tx, request, 500, now, headers=[("Retry-After", "1")], reason="Offer Pending"
            )
            return
        timer: SessionTimer | None = None
        if call.session_timer is not None or request.headers.get("Session-Expires"):
            negotiated = self._negotiate_timer(request, tx, now)
            if negotiated is False:
                return  # 422 or 400 sent; the session stays as it was
            timer = negotiated
        answer: bytes | None = None
        if offer is not None and call.local_sdp is not None:
            try:
                answer = self.session_answerer(call.local_sdp, offer)
            except (NotAcceptableOffer, ValueError) as error:
                # §14.2: a refused re-offer leaves the session as it was.
                self._respond(
                    tx,
                    request,
                    488,
                    now,
                    headers=[("Warning", f'304 {self.server_name} "{error}"')],
                )
                return
        headers = [("Contact", dialog.local_contact), *self._capabilities()]
        if self.session_timers is not None:
            # RFC 4028 §9/§10: a refresh (re-INVITE or UPDATE) restarts the interval; one
            # without Session-Expires turns the session timer off.
            call.session_timer = timer
            if timer is not None:
                headers.extend(timer.response_headers())
            self._arm_deadline(call, now)
            self._arm_refresh(call, now)
        if method == "INVITE":
            body = answer if answer is not None else (call.local_sdp or b"")
            if body:
                headers.append(("Content-Type", "application/sdp"))
            dialog.refresh_target(request)
            response = self._respond(tx, request, 200, now, headers=headers, body=body)
            assert isinstance(tx, InviteServerTransaction)
            self._start_2xx_retransmission(call, response, tx, request.cseq[0], now)
            if offer is None and body:
                call._awaiting_answer = True  # our offer, the answer comes in the ACK
        else:
            if answer is not None:
                headers.append(("Content-Type", "application/sdp"))
            dialog.refresh_target(request)
            self._respond(tx, request, 200, now, headers=headers, body=answer or b"")
        if offer is not None and answer is not None:
            call.remote_sdp = offer
            call.local_sdp = answer
            call.on_hold = offer_direction(offer) in ("sendonly", "inactive")
        self._emit(SessionModified(call, method, offer, answer, call.on_hold))

    def _on_ack(self, request: SipRequest, now: float) -> None:
        try:
            dialog_id = incoming_request_dialog_id(request)
        except SipParseError:
            return
        call = self._calls.get(dialog_id) if dialog_id is not None else None
        if call is None:
            return  # §17: an ACK is never answered; a stray one is dropped
        pending = call._pending_2xx
        if pending is None or request.cseq[0] != pending.cseq:
            return  # a retransmitted ACK, or one for an older 2xx
        call._pending_2xx = None
        if call._awaiting_answer:
            call._awaiting_answer = False
            if request.body:
                call.remote_sdp = request.body
        if call.state is CallState.ANSWERED:
            call.state = CallState.CONFIRMED
            self._emit(CallConfirmed(call))
        if call._hangup_after_ack:
            self._send_bye(call, now)
            self._end(call, call._bye_reason)

    def _on_cancel(self, invite: InviteServerTransaction, cancel: SipRequest) -> None:
        call = self._by_server_tx.get(id(invite))
        if call is None or call.ended:
            return
        self._emit(CallCancelled(call, cancel.headers.get("Reason")))
        self._end(call, "cancelled")

    # ------------------------------------------------------------------ application actions

    # Every action takes the caller's ``now``: there is no remembered "last time" to fall back
    # on, because an action taken after an ``await`` would then start its retransmission
    # timers (§13.3.1.4, §17) from a clock that is already in the past.

    def ring(self, call: Call, now: float, *, status: int = 180) -> None:
        if call.ended:
            return  # e.g. a CANCEL got there first
        if not call.incoming or call.state not in (CallState.OFFERED, CallState.RINGING):
            raise RuntimeError(f"cannot ring in state {call.state.value}")
        if not 100 < status < 200:
            raise ValueError("ring takes a provisional status 101-199")
        tx = call.server_transaction
        assert tx is not None and call.dialog is not None
        # §12.1.1: a provisional response with a tag creates an early dialog: Record-Route
        # copied, Contact ours.
        self._respond(
            tx,
            call.invite,
            status,
            now,
            to_tag=call.local_tag,
            headers=self._dialog_headers(call),
        )
        call.state = CallState.RINGING
        self._poke()

    def _dialog_headers(self, call: Call) -> list[tuple[str, str]]:
        assert call.dialog is not None
        headers = [("Record-Route", rr) for rr in call.invite.headers.get_lines("Record-Route")]
        headers.append(("Contact", call.dialog.local_contact))
        return headers

    def answer(self, call: Call, sdp: bytes, now: float) -> None:
        if call.ended:
            return  # e.g. a CANCEL got there first
        if not call.incoming or call.state not in (CallState.OFFERED, CallState.RINGING):
            raise RuntimeError(f"cannot answer in state {call.state.value}")
        tx = call.server_transaction
        assert tx is not None and call.dialog is not None
        headers = self._dialog_headers(call)
        headers.extend(self._capabilities())
        if call.session_timer is not None:
            headers.extend(call.session_timer.response_headers())
        if sdp:
            headers.append(("Content-Type", "application/sdp"))
        response = make_response(call.invite, 200, to_tag=call.local_tag, headers=headers, body=sdp)
        try:
            self.layer.send_response(tx, response, now)
        except TransactionStateError:
            # A CANCEL won the race (its 487 is out): the call is over already.
            self._poke()
            return
        call.local_sdp = sdp or None
        call._awaiting_answer = bool(sdp) and not call.invite.body
        call.state = CallState.ANSWERED
        call.dialog.confirm()
        self._forget_invite(call)
        self._start_2xx_retransmission(call, response, tx, call.invite.cseq[0], now)
        if self.max_call_duration is not None:
            call._max_end = now + self.max_call_duration
        self._arm_deadline(call, now)
        self._arm_refresh(call, now)
        self._poke()

    def reject(
        self,
        call: Call,
        status: int,
        now: float,
        *,
        reason: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        if call.ended:
            return
        if not call.incoming or call.state not in (CallState.OFFERED, CallState.RINGING):
            raise RuntimeError(f"cannot reject in state {call.state.value}")
        if not 300 <= status < 700:
            raise ValueError("reject takes a final status 300-699")
        tx = call.server_transaction
        assert tx is not None
        extra = list(headers)  # e.g. Retry-After on a 503 (RFC 3261 §20.33)
        if status == 405:
            extra.append(("Allow", ", ".join(self.allowed_methods)))
        self._respond(
            tx, call.invite, status, now, to_tag=call.local_tag, headers=extra, reason=reason
        )
        self._end(call, "rejected", status)
        self._poke()

    def hangup(self, call: Call, now: float) -> None:
        if call.ended:
            return
        if call.incoming:
            if call.state in (CallState.OFFERED, CallState.RINGING):
                self.reject(call, 480, now)
                return
            if call.state is CallState.ANSWERED:
                # §15: no BYE before the ACK (or before the 2xx retransmissions give up).
                call._hangup_after_ack = True
                return
            self._send_bye(call, now)
            self._end(call, "local-bye")
        else:
            if call.state in (CallState.CALLING, CallState.EARLY):
                tx = call.client_transaction
                assert tx is not None
                self.layer.cancel(tx, now)  # the 487 ends the call
                call._hangup_after_ack = True  # a 2xx racing the CANCEL gets ACK + BYE
            else:
                self._send_bye(call, now)
                self._end(call, "local-bye")
        self._poke()

    def refer(
        self, call: Call, target: str, now: float, *, timeout: float = TRANSFER_TIMEOUT
    ) -> Transfer:
        """Ask the peer of the confirmed ``call`` to call ``target`` (REFER, RFC 3515); the
        outcome comes as ``TransferEnded`` (see ``sipum_protocol.sip.ua.refer``)."""
        return self.transfers.start(call, target, now, timeout)

    def invite(
        self,
        target: str,
        *,
        peer: Peer,
        sdp: bytes | None = None,
        now: float,
        from_uri: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Call:
        """Place an outgoing call to ``target`` (a SIP URI), sending the INVITE to ``peer``."""
        host, _port = self.local.get(peer.transport) or next(iter(self.local.values()))
        local_uri = from_uri or f"sip:{self.user}@{host}"
        tag = new_tag()
        h = Headers()
        h.add("Via", self._via_for(peer.transport))
        h.add("Max-Forwards", "70")
        h.add("From", f"<{local_uri}>;tag={tag}")
        h.add("To", f"<{target}>")
        h.add("Call-ID", new_call_id(host))
        h.add("CSeq", "1 INVITE")
        h.add("Contact", self._contact_for(peer.transport))
        for name, value in self._capabilities()[:1]:
            h.add(name, value)
        for name, value in headers:
            h.add(name, value)
        if sdp:
            h.add("Content-Type", "application/sdp")
        request = SipRequest("INVITE", target, h, sdp or b"")
        call = Call(self, incoming=False, invite=request, peer=peer, local_tag=tag)
        call.local_sdp = sdp
        call.client_transaction = self.layer.send_request(request, peer, now)
        self._by_client_tx[id(call.client_transaction)] = call
        self.calls_created += 1
        self._poke()
        return call

    def send_request(
        self,
        request: SipRequest,
        peer: Peer,
        now: float,
        *,
        on_response: ResponseHandler | None = None,
        on_failure: FailureHandler | None = None,
    ) -> ClientTransaction:
        """A request outside any call (REGISTER, OPTIONS, ...) in a client transaction of this
        user agent, so it shares our socket and Contact. Our Via (and Max-Forwards) is added
        when missing. ``on_response`` sees every response (provisional too); ``on_failure``
        gets ``"timeout"`` (timer B/F), ``"transport-error"`` or ``"terminated"``."""
        if not request.headers.get("Via"):
            request.headers.prepend("Via", self._via_for(peer.transport))
        if not request.headers.get("Max-Forwards"):
            request.headers.add("Max-Forwards", "70")
        tx = self.layer.send_request(request, peer, now)
        self._plain[id(tx)] = (on_response, on_failure)
        self._poke()
        return tx

    # ------------------------------------------------------------------ our re-INVITEs (§14.1)

    def reinvite(
        self,
        call: Call,
        sdp: bytes,
        now: float,
        *,
        timeout: float | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Offer ``sdp`` in the call's dialog (re-INVITE, §14.1; see ``reinvite`` module doc):
        ``ReofferAccepted`` or ``ReofferFailed`` follows, within ``timeout`` seconds (default
        timer B). The ``o=`` line is our previous one with the version one higher (RFC 3264
        §8). Raises ``RuntimeError`` if the call is not established or a re-INVITE of ours is
        still in progress."""
        if call.ended or call.dialog is None:
            raise RuntimeError("the call is over")
        if call.state not in (CallState.ANSWERED, CallState.CONFIRMED):
            raise RuntimeError(f"cannot re-INVITE in state {call.state.value}")
        if call._reoffer is not None:
            raise RuntimeError("a re-INVITE of ours is still in progress")
        if not sdp:
            raise ValueError("a re-INVITE of ours carries an offer")
        reoffer = OutgoingReoffer(
            purpose="offer",
            method="INVITE",
            sdp=next_version(call.local_sdp, sdp),
            deadline=now + (timeout if timeout is not None else REINVITE_TIMEOUT),
            headers=list(headers),
        )
        call._reoffer = reoffer
        self._push_reoffer(call, reoffer.deadline)
        self._send_reoffer(call, reoffer, now)
        self._poke()

    def _push_reoffer(self, call: Call, when: float) -> None:
        heapq.heappush(self._reoffer_heap, (when, next(self._seq), call))

    def _offer_answer_busy(self, call: Call) -> bool:
        """An exchange of the peer's (or our first 2xx) is still open: do not collide (§14.1)."""
        if call._pending_2xx is not None or call._awaiting_answer:
            return True
        tx = call.server_transaction
        return call.state is CallState.ANSWERED or (tx is not None and not tx.final_sent)

    def _send_reoffer(self, call: Call, reoffer: OutgoingReoffer, now: float) -> None:
        reoffer.retry_at = None
        if self._offer_answer_busy(call):
            reoffer.retry_at = now + self.timers.t1
            self._push_reoffer(call, reoffer.retry_at)
            return
        dialog = call.dialog
        assert dialog is not None
        destination = self._peer_for(call, dialog.next_hop())
        extra = [*self._capabilities(), *self._timer_request_headers(call), *reoffer.headers]
        request = dialog.create_request(
            reoffer.method,
            via=self._via_for(destination.transport),
            body=reoffer.sdp,
            headers=extra,
        )
        reoffer.cseq = request.cseq[0]
        reoffer.provisional = False
        try:
            tx = self.layer.send_request(request, destination, now)
        except ValueError:
            log.exception("could not send the re-INVITE of %s", call.call_id)
            reoffer.transaction = None
            self._fail_reoffer(call, reoffer, "transport-error", None, now)
            return
        reoffer.transaction = tx
        self._by_client_tx[id(tx)] = call

    def _timer_request_headers(self, call: Call) -> list[tuple[str, str]]:
        """RFC 4028 §7.4: a re-INVITE (or UPDATE) of ours is a session refresh too.
        ``refresher`` names the role in *this* transaction: we are its UAC."""
        timer = call.session_timer
        if self.session_timers is None or timer is None:
            return []
        role = "uac" if timer.refresher == "uas" else "uas"
        return [
            ("Session-Expires", f"{timer.expires};refresher={role}"),
            ("Min-SE", str(self.session_timers.min_se)),
        ]

    def _on_reoffer_response(
        self, call: Call, reoffer: OutgoingReoffer, response: SipResponse, now: float
    ) -> None:
        status = response.status
        if status < 200:
            reoffer.provisional = True
            return
        tx = reoffer.transaction
        if tx is not None and status >= 300:
            # (after a 2xx the mapping stays until the transaction ends: its retransmissions
            # come through it, RFC 6026 §8.4)
            self._by_client_tx.pop(id(tx), None)
        reoffer.transaction = None
        if status < 300:
            self._reoffer_accepted(call, reoffer, response, now)
            return
        # 3xx-6xx: the transaction sent the ACK (§17.1.1.3); the session is unchanged (§14.1).
        if reoffer.failed or call.ended:
            call._reoffer = None
            return
        if status == 491 and reoffer.glare_retries < GLARE_RETRIES:
            # §14.1: glare; the owner of the Call-ID (the dialog's UAC) waits 2.1-4 s, the
            # other side 0-2 s, so one of the two re-INVITEs goes first.
            reoffer.glare_retries += 1
            delay = glare_delay(call_id_owner=not call.incoming, rng=self.rng)
            reoffer.retry_at = now + delay
            self._push_reoffer(call, reoffer.retry_at)
            return
        if status == 422 and not reoffer.too_small_retried and call.session_timer is not None:
            # RFC 4028 §7.4 (as UAC of the refresh): retry with the peer's Min-SE.
            try:
                floor = parse_min_se(response.headers.get("Min-SE") or "")
            except SipParseError:
                floor = None
            if floor is not None and floor > call.session_timer.expires:
                reoffer.too_small_retried = True
                call.session_timer = SessionTimer(floor, call.session_timer.refresher)
                self._send_reoffer(call, reoffer, now)
                return
        self._fail_reoffer(call, reoffer, "rejected", status, now)
        if status in (408, 481):
            # §12.2.1.2 (RFC 4028 §10 for a refresh): the dialog is gone at the far end.
            self._bye_after_failed_reoffer(call, reoffer, now)

    def _reoffer_accepted(
        self, call: Call, reoffer: OutgoingReoffer, response: SipResponse, now: float
    ) -> None:
        dialog = call.dialog
        assert dialog is not None
        if reoffer.method == "INVITE":
            # §13.2.2.4: the ACK of a 2xx is ours, with the INVITE's CSeq number.
            destination = self._peer_for(call, dialog.next_hop())
            ack = dialog.create_request(
                "ACK", via=self._via_for(destination.transport), cseq=reoffer.cseq
            )
            call._reinvite_ack = ReinviteAck(reoffer.cseq, ack, destination)
            self.layer.send_stateless(ack, destination)
        call._reoffer = None
        if call.ended:
            return
        dialog.refresh_target(response)  # a 2xx to a target refresh (§12.2.1.2)
        answer = response.body or None
        if reoffer.sdp:
            call.local_sdp = reoffer.sdp
            if answer is not None:
                call.remote_sdp = answer
                call.on_hold = offer_direction(answer) in ("sendonly", "inactive")
        self._timer_from_response(call, response, now)
        if not reoffer.failed:
            self._emit(ReofferAccepted(call, reoffer.sdp, answer, reoffer.purpose))
        self._poke()

    def _timer_from_response(self, call: Call, response: SipResponse, now: float) -> None:
        """RFC 4028 §7.2 as UAC of our re-INVITE/UPDATE: the 2xx's Session-Expires is the new
        interval (``refresher=uac`` is us); none: no session timer any more."""
        if self.session_timers is None or call.session_timer is None:
            return
        value = response.headers.get("Session-Expires")
        if value is None:
            call.session_timer = None
        else:
            try:
                expires, refresher = parse_session_expires(value)
            except SipParseError:
                expires, refresher = call.session_timer.expires, None
            # Stored from our side as UAS of the call: "uas" means we refresh.
            call.session_timer = SessionTimer(
                max(expires, 1), "uac" if refresher == "uas" else "uas"
            )
        self._arm_deadline(call, now)
        self._arm_refresh(call, now)

    def _reoffer_timer(self, call: Call, now: float) -> None:
        reoffer = call._reoffer
        refresh_at = call._refresh_at
        if reoffer is None:
            if refresh_at is not None and refresh_at <= now:
                self._send_refresh(call, now)
            return
        if reoffer.failed:
            return
        if reoffer.retry_at is not None and reoffer.retry_at <= now and now < reoffer.deadline:
            self._send_reoffer(call, reoffer, now)
            return
        if now >= reoffer.deadline:
            tx = reoffer.transaction
            if tx is not None and reoffer.provisional:
                self.layer.cancel(tx, now)  # §9.1; the 487 then ends the transaction
            if tx is None:
                call._reoffer = None
            self._fail_reoffer(call, reoffer, "timeout", None, now)

    def _reoffer_transaction_failed(
        self, call: Call, reoffer: OutgoingReoffer, reason: str, now: float
    ) -> None:
        """Timer B or a transport error: no response at all (§12.2.1.2: the dialog is over)."""
        reoffer.transaction = None
        call._reoffer = None
        if call.ended:
            return
        self._fail_reoffer(call, reoffer, reason, None, now)
        self._bye_after_failed_reoffer(call, reoffer, now)

    def _fail_reoffer(
        self, call: Call, reoffer: OutgoingReoffer, reason: str, status: int | None, now: float
    ) -> None:
        if reoffer.transaction is None:
            call._reoffer = None
        if reoffer.failed:
            return
        reoffer.failed = True
        self._emit(ReofferFailed(call, reason, status, reoffer.purpose))
        overdue = call._refresh_at is not None and call._refresh_at <= now
        if not call.ended and (reoffer.purpose == "refresh" or overdue):
            self._arm_refresh(call, now, retry=True)

    def _bye_after_failed_reoffer(self, call: Call, reoffer: OutgoingReoffer, now: float) -> None:
        if call.ended:
            return
        reason = "session-expired" if reoffer.purpose == "refresh" else "reinvite-failed"
        self._send_bye(call, now)
        self._end(call, reason)

    # ------------------------------------------------------------------ refresher (RFC 4028)

    def _arm_refresh(self, call: Call, now: float, *, retry: bool = False) -> None:
        """§10: the refresher sends a refresh at half the interval. We are it when our 2xx
        said ``refresher=uas`` (a UAC without timer support, or one that asked us to)."""
        timer = call.session_timer
        if self.session_timers is None or timer is None or timer.refresher != "uas":
            call._refresh_at = None
            return
        if retry:
            # A failed refresh: once more a little later, still before the expiry.
            remaining = (call.deadline or now) - now
            if remaining <= 2 * self.timers.t1:
                call._refresh_at = None
                return
            call._refresh_at = now + remaining / 2
        else:
            call._refresh_at = now + timer.expires / 2
        self._push_reoffer(call, call._refresh_at)

    def _send_refresh(self, call: Call, now: float) -> None:
        call._refresh_at = None
        if call.dialog is None or call.ended:
            return
        # RFC 3311: an UPDATE without a body refreshes the session without offer/answer (and
        # without an ACK) — when the peer said it takes UPDATE; else a re-INVITE with our
        # unchanged description (same version, RFC 3264 §8).
        allow = {m.strip().upper() for m in call.invite.headers.get_all("Allow")}
        update = "UPDATE" in allow
        reoffer = OutgoingReoffer(
            purpose="refresh",
            method="UPDATE" if update else "INVITE",
            sdp=b"" if update else (call.local_sdp or b""),
            deadline=now + self.timers.timeout,
        )
        call._reoffer = reoffer
        self._push_reoffer(call, reoffer.deadline)
        self._send_reoffer(call, reoffer, now)

    # ------------------------------------------------------------------ 2xx reliability (UAS)

    def _start_2xx_retransmission(
        self,
        call: Call,
        response: SipResponse,
        tx: InviteServerTransaction,
        cseq: int,
        now: float,
    ) -> None:
        pending = _Pending2xx(response, tx, cseq, now, self.timers.t1)
        call._pending_2xx = pending
        heapq.heappush(self._timer_heap, (pending.next_at, next(self._seq), call))

    def _retransmit_2xx(self, call: Call, pending: _Pending2xx, now: float) -> None:
        if now >= pending.give_up_at:
            # §13.3.1.4: no ACK within 64*T1: the dialog is confirmed, the session is not
            # wanted any more: BYE.
            call._pending_2xx = None
            if call.state is CallState.ANSWERED:
                call.state = CallState.CONFIRMED
            self._send_bye(call, now)
            self._end(call, "no-ack")
            return
        tx = pending.transaction
        try:
            self.layer.send_response(tx, pending.response, now)
        except TransactionStateError:
            # Timer L ended the transaction a hair earlier: send it ourselves.
            self.layer.send_stateless(pending.response, tx.response_peer)
        pending.sent += 1
        pending.interval = min(2 * pending.interval, self.timers.t2)
        pending.next_at = min(now + pending.interval, pending.give_up_at)
        heapq.heappush(self._timer_heap, (pending.next_at, next(self._seq), call))

    # ------------------------------------------------------------------ requests we send

    def _peer_for(self, call: Call, uri: SipUri) -> Peer:
        """Destination of an in-dialog request (§12.2.1.1, RFC 3263 for numeric hosts)."""
        dialog = call.dialog
        assert dialog is not None
        if call.peer.reliable and not dialog.route_set:
            return call.peer  # connection reuse, see module doc
        transport = (uri.params.get("transport") or "").upper()
        if not transport:
            transport = "TLS" if uri.scheme == "sips" else "UDP"
        port = uri.port or DEFAULT_PORTS.get(transport, 5060)
        maddr = uri.params.get("maddr")
        return Peer(transport, maddr or uri.host, port)

    def _send_in_dialog(
        self, call: Call, method: str, now: float, *, body: bytes = b""
    ) -> ClientTransaction | None:
        dialog = call.dialog
        assert dialog is not None
        destination = self._peer_for(call, dialog.next_hop())
        request = dialog.create_request(method, via=self._via_for(destination.transport), body=body)
        try:
            tx = self.layer.send_request(request, destination, now)
        except ValueError:
            log.exception("could not send %s for %s", method, call.call_id)
            return None
        self._by_client_tx[id(tx)] = call
        return tx

    def _send_bye(self, call: Call, now: float) -> None:
        self._send_in_dialog(call, "BYE", now)

    # ------------------------------------------------------------------ responses (UAC)

    def _on_response(self, response: SipResponse, tx: ClientTransaction, now: float) -> None:
        handlers = self._plain.get(id(tx))
        if handlers is not None:
            if response.status >= 200:
                del self._plain[id(tx)]
            if handlers[0] is not None:
                handlers[0](response)
            return
        call = self._by_client_tx.get(id(tx))
        if call is None:
            return
        status = response.status
        method = tx.method
        reoffer = call._reoffer
        if reoffer is not None and tx is reoffer.transaction:
            self._on_reoffer_response(call, reoffer, response, now)
            return
        again = call._reinvite_ack
        if (
            again is not None
            and method == "INVITE"
            and 200 <= status < 300
            and response.cseq[0] == again.cseq
        ):
            # A retransmitted 2xx to our re-INVITE: the same ACK again (§13.2.2.4).
            self.layer.send_stateless(again.request, again.peer)
            return
        if method != "INVITE" or tx is not call.client_transaction:
            # BYE and friends: the call already ended when we sent them.
            if tx.terminated or status >= 200:
                self._by_client_tx.pop(id(tx), None)
            return
        if status < 200:
            if status > 100 and call.state is CallState.CALLING:
                self._make_uac_dialog(call, response, early=True)
                call.state = CallState.EARLY
            if status > 100:
                self._emit(CallProgress(call, status))
            return
        if status < 300:
            self._on_invite_2xx(call, response, now)
            return
        # 3xx-6xx: the transaction sent the ACK (§17.1.1.3).
        self._by_client_tx.pop(id(tx), None)
        if not call.ended:
            reason = "cancelled" if call._hangup_after_ack and status == 487 else "failed"
            self._end(call, reason, status)

    def _make_uac_dialog(self, call: Call, response: SipResponse, *, early: bool) -> None:
        if not response.to.tag:
            return
        dialog = Dialog.from_response(
            call.invite,
            response,
            local_contact=self._contact_for(call.peer.transport),
            secure_transport=call.peer.transport == "TLS",
        )
        old = call.dialog
        if old is not None and old.id != dialog.id:
            self._calls.pop(old.id, None)
        if old is None or old.id != dialog.id:
            call.dialog = dialog
            self._calls[dialog.id] = call
        elif not early:
            old.refresh_target(response)
            old.route_set = dialog.route_set
            old.confirm()

    def _on_invite_2xx(self, call: Call, response: SipResponse, now: float) -> None:
        dialog_id = incoming_response_dialog_id(response)
        if call.ended and call._ack is None:
            # The call was given up (e.g. timer B) before this 2xx came: acknowledge it and
            # end that session at once (§13.2.2.4 treats it like an extra fork).
            self._ack_and_bye_fork(call, response, now)
            return
        if call._ack is not None:
            if call.dialog is not None and dialog_id == call.dialog.id:
                # A retransmitted 2xx: re-send the same ACK (§13.2.2.4).
                ack, peer = call._ack
                self.layer.send_stateless(ack, peer)
                return
            # A 2xx from another fork: acknowledge and end that dialog (§13.2.2.4).
            self._ack_and_bye_fork(call, response, now)
            return
        self._make_uac_dialog(call, response, early=False)
        dialog = call.dialog
        assert dialog is not None
        dialog.confirm()
        call.remote_sdp = response.body or None
        destination = self._peer_for(call, dialog.next_hop())
        ack = dialog.create_request(
            "ACK", via=self._via_for(destination.transport), cseq=dialog.invite_cseq
        )
        call._ack = (ack, destination)
        self.layer.send_stateless(ack, destination)
        call.state = CallState.CONFIRMED
        self._emit(CallAnswered(call))
        if call._hangup_after_ack:
            self._send_bye(call, now)
            self._end(call, "local-bye")

    def _ack_and_bye_fork(self, call: Call, response: SipResponse, now: float) -> None:
        fork = Dialog.from_response(
            call.invite, response, local_contact=self._contact_for(call.peer.transport)
        )
        shadow = Call(
            self, incoming=False, invite=call.invite, peer=call.peer, local_tag=call.local_tag
        )
        shadow.dialog = fork
        destination = self._peer_for(shadow, fork.next_hop())
        ack = fork.create_request(
            "ACK", via=self._via_for(destination.transport), cseq=fork.invite_cseq
        )
        self.layer.send_stateless(ack, destination)
        shadow.state = CallState.ENDED
        self._send_in_dialog(shadow, "BYE", now)

    def _on_stray_response(self, response: SipResponse) -> None:
        """A 2xx retransmitted after the INVITE transaction ended (timer M): ACK it again."""
        try:
            if response.cseq[1] != "INVITE" or not 200 <= response.status < 300:
                return
            dialog_id = incoming_response_dialog_id(response)
        except SipParseError:
            return
        call = self._calls.get(dialog_id) if dialog_id is not None else None
        again = call._reinvite_ack if call is not None else None
        if again is not None and response.cseq[0] == again.cseq:
            self.layer.send_stateless(again.request, again.peer)
            return
        if call is not None and call._ack is not None:
            ack, peer = call._ack
            self.layer.send_stateless(ack, peer)

    def _on_transaction_failure(
        self,
        tx: ClientTransaction | ServerTransaction,
        event: TransactionTimeout | TransportError,
        now: float,
    ) -> None:
        reason = "timeout" if isinstance(event, TransactionTimeout) else "transport-error"
        handlers = self._plain.pop(id(tx), None)
        if handlers is not None:
            if handlers[1] is not None:
                handlers[1](reason)
            return
        if isinstance(tx, ClientTransaction):
            call = self._by_client_tx.pop(id(tx), None)
            if call is not None and call._reoffer is not None and tx is call._reoffer.transaction:
                self._reoffer_transaction_failed(call, call._reoffer, reason, now)
                return
            if call is not None and tx is call.client_transaction and not call.ended:
                self._end(call, reason)
            return
        call = self._by_server_tx.get(id(tx))
        if (
            call is not None
            and tx is call.server_transaction
            and not call.ended
            and call.state
            in (
                CallState.OFFERED,
                CallState.RINGING,
            )
        ):
            self._end(call, reason)

    # ------------------------------------------------------------------ bookkeeping

    def _forget_invite(self, call: Call) -> None:
        if call.incoming and call.dialog is not None:
            self._invites_in_progress.pop(
                (call.call_id, call.dialog.id.remote_tag, call.dialog.invite_cseq), None
            )

    def _end(self, call: Call, reason: str, status: int | None = None) -> None:
        if call.ended:
            return
        reoffer = call._reoffer
        if reoffer is not None:
            call._reoffer = None if reoffer.transaction is None else reoffer
            if not reoffer.failed:
                # Kept while its transaction runs: a 2xx that still comes gets its ACK (§15).
                reoffer.failed = True
                self._emit(ReofferFailed(call, "ended", None, reoffer.purpose))
        call._refresh_at = None
        call.state = CallState.ENDED
        call.end_reason = reason
        call._pending_2xx = None
        if call.dialog is not None:
            call.dialog.terminate()
            self._calls.pop(call.dialog.id, None)
        if call.server_transaction is not None:
            self._by_server_tx.pop(id(call.server_transaction), None)
        self._forget_invite(call)
        self.calls_ended += 1
        self._emit(CallEnded(call, reason, status))


def contact_uri(value: str) -> str:
    """The URI inside a Contact value (helper for applications)."""
    return str(parse_name_addr(value).uri)
