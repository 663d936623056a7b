"""The transaction layer: owns every transaction, matches messages to them, runs their timers.

Theory of operation
-------------------
The layer is sans-I/O (aioquic style). The transport feeds it with
``receive_data(bytes, peer, now)`` (or ``receive(message, peer, now)``) and the TU with
``send_request`` / ``send_response`` / ``cancel`` / ``send_stateless``. After any call, the
owner drains ``datagrams_to_send()`` (``[(bytes, Peer)]``), the events (``next_event()`` or
``events()``) and re-arms one timer at ``get_timer()``, calling ``handle_timer(now)`` when it is
due. Nothing here reads a clock or touches a socket.

Incoming requests (§17.2.3): the top Via is stamped with ``received``/``rport`` (§18.2.1, RFC
3581), then matched. With an RFC 3261 branch (magic cookie ``z9hG4bK``) the key is (branch,
sent-by, method) with ACK matching INVITE; CANCEL has a transaction of its own and is matched to
its INVITE by the same branch and sent-by. Without the cookie (RFC 2543 peers) the key is
(Request-URI, From tag, Call-ID, CSeq number, top Via sent-by and transport, method, To tag),
and an ACK matches the INVITE whose response carried the ACK's To tag.

What the layer does on its own, so every TU gets it right:

* a malformed request whose routing headers were understood is answered ``400 <reason>`` (or
  the ``status`` of the error, e.g. 505); anything else malformed is dropped; both counted;
* a CANCEL matching an INVITE server transaction is answered ``200`` and, if the INVITE has
  no final response yet, the INVITE is answered ``487 Request Terminated`` (same To tag as
  the provisional responses, §9.2); the TU then gets ``CancelReceived``. A CANCEL matching
  nothing gets ``481`` (§9.2);
* above ``max_transactions`` server transactions, new requests get ``503`` with Retry-After;
* responses with more than one Via are discarded (§18.1.2).

What goes to the TU: ``RequestReceived`` (new request, answer through its transaction),
``AckReceived`` (ACK for a 2xx — a transaction of its own per §17.1.1.3, the dialog's
business), ``CancelReceived``, ``ResponseReceived``, ``StrayResponse`` (no client transaction,
e.g. a 2xx retransmitted after timer M), ``TransactionTimeout``, ``TransportError``,
``TransactionTerminated``.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass

from sipum_protocol.sip.headers import Headers, SipParseError
from sipum_protocol.sip.message import (
    SipRequest,
    SipResponse,
    Via,
    make_response,
    new_tag,
    parse_message,
)
from sipum_protocol.sip.transaction.base import (
    Output,
    Transaction,
    TransactionState,
    TransactionStateError,
)
from sipum_protocol.sip.transaction.client import (
    ClientTransaction,
    InviteClientTransaction,
    NonInviteClientTransaction,
)
from sipum_protocol.sip.transaction.events import (
    AckReceived,
    CancelReceived,
    Event,
    Peer,
    RequestReceived,
    StrayResponse,
)
from sipum_protocol.sip.transaction.routing import response_destination, sent_by, stamp_via
from sipum_protocol.sip.transaction.server import (
    InviteServerTransaction,
    NonInviteServerTransaction,
    ServerTransaction,
)
from sipum_protocol.sip.transaction.timers import TimerConfig

MAGIC_COOKIE = "z9hG4bK"


@dataclass(slots=True)
class LayerCounters:
    """Counters for metrics and tests."""

    requests_received: int = 0
    responses_received: int = 0
    retransmissions_received: int = 0
    """Requests and responses that matched an existing transaction."""
    malformed_answered: int = 0
    """Malformed requests answered with 400 (or 505)."""
    malformed_dropped: int = 0
    """Malformed input that could not be answered."""
    stray_responses: int = 0
    stray_acks: int = 0
    cancels_unmatched: int = 0
    overload_rejected: int = 0
    responses_discarded: int = 0
    """Responses with several Via values (§18.1.2)."""
    retransmissions_sent: int = 0
    """Requests and responses re-sent by ended transactions (timers A, E, G; answers to
    retransmitted requests; ACKs re-sent)."""


class TransactionLayer(Output):
    """Every transaction of one SIP endpoint; see the module docstring."""

    def __init__(
        self,
        *,
        timers: TimerConfig | None = None,
        max_transactions: int = 100_000,
        max_message: int = 65535,
        max_headers: int = 128,
    ) -> None:
        self.timers = timers or TimerConfig()
        self.max_transactions = max_transactions
        self.max_message = max_message
        self.max_headers = max_headers
        self.counters = LayerCounters()
        self._client: dict[tuple[object, ...], ClientTransaction] = {}
        self._server: dict[tuple[object, ...], ServerTransaction] = {}
        self._outgoing: list[tuple[bytes, Peer]] = []
        self._events: deque[Event] = deque()
        self._heap: list[tuple[float, int, Transaction]] = []
        self._seq = itertools.count()

    # ------------------------------------------------------------------ outputs

    def datagrams_to_send(self) -> list[tuple[bytes, Peer]]:
        """Messages produced since the last call, in order: ``[(bytes, Peer)]``."""
        out = self._outgoing
        self._outgoing = []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def events(self) -> list[Event]:
        """Drain every pending event."""
        out = list(self._events)
        self._events.clear()
        return out

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must next be called (absolute, same clock as ``now``)."""
        heap = self._heap
        while heap:
            when, _, tx = heap[0]
            if tx._heap_deadline == when and not tx.terminated:
                return when
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, tx = heapq.heappop(heap)
            if tx._heap_deadline != when or tx.terminated:
                continue  # stale entry: the transaction was re-scheduled or ended
            tx._heap_deadline = None
            tx.on_timer(now)
            self._after(tx, now)

    @property
    def client_transactions(self) -> int:
        return len(self._client)

    @property
    def server_transactions(self) -> int:
        return len(self._server)

    # Output interface used by the transactions
    def _send(self, data: bytes, peer: Peer) -> None:
        self._outgoing.append((data, peer))

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _after(self, tx: Transaction, now: float) -> None:
        """Book-keeping after a transaction ran: run zero-length timers, re-arm, forget."""
        deadline = tx.deadline()
        while deadline is not None and deadline <= now and not tx.terminated:
            tx.on_timer(now)
            deadline = tx.deadline()
        if tx.terminated:
            self.counters.retransmissions_sent += tx.retransmissions
            table: (
                dict[tuple[object, ...], ClientTransaction]
                | dict[tuple[object, ...], ServerTransaction]
            ) = self._client if isinstance(tx, ClientTransaction) else self._server
            if table.get(tx.key) is tx:
                del table[tx.key]
            tx._heap_deadline = None
            return
        if deadline != tx._heap_deadline:
            tx._heap_deadline = deadline  # older heap entries become stale
            if deadline is not None:
                heapq.heappush(self._heap, (deadline, next(self._seq), tx))

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes, peer: Peer, now: float) -> None:
        """One datagram (UDP) or one framed message (TCP/TLS) from ``peer``."""
        if not data.strip(b"\r\n\t "):
            return  # keep-alive or padding (§7.5, RFC 5626 §4.4.1)
        try:
            message = parse_message(data, max_size=self.max_message, max_headers=self.max_headers)
        except SipParseError as error:
            self._malformed(error, peer)
            return
        try:
            self.receive(message, peer, now)
        except SipParseError as error:
            # A header the matching needs (Via, CSeq, ...) turned out unusable.
            if isinstance(message, SipRequest) and error.request is None:
                error.request = message
            self._malformed(error, peer)

    def _malformed(self, error: SipParseError, peer: Peer) -> None:
        request = error.request
        if request is None or request.method == "ACK":
            self.counters.malformed_dropped += 1
            return
        try:
            stamp_via(request, peer)
            destination = response_destination(request.top_via, peer)
            response = make_response(request, error.status, error.reason)
            data = bytes(response)
        except (SipParseError, ValueError):
            self.counters.malformed_dropped += 1
            return
        self.counters.malformed_answered += 1
        self._send(data, destination)

    def receive(self, message: SipRequest | SipResponse, peer: Peer, now: float) -> None:
        """A parsed message from ``peer``; may raise ``SipParseError`` for unusable headers."""
        if isinstance(message, SipResponse):
            self._receive_response(message, peer, now)
        else:
            self._receive_request(message, peer, now)

    def _receive_response(self, response: SipResponse, peer: Peer, now: float) -> None:
        self.counters.responses_received += 1
        vias = response.headers.get_all("Via")
        if len(vias) != 1:
            self.counters.responses_discarded += 1  # §18.1.2
            return
        branch = response.top_via.branch or ""
        tx = self._client.get((branch, response.cseq[1]))
        if tx is None:
            self.counters.stray_responses += 1
            self._emit(StrayResponse(response, peer))
            return
        if tx.last_response is not None:
            self.counters.retransmissions_received += 1
        tx.receive_response(response, peer, now)
        self._after(tx, now)

    def _server_key(
        self, request: SipRequest, method: str, via: Via | None = None
    ) -> tuple[object, ...]:
        if via is None:
            via = request.top_via
        branch = via.branch
        if branch is not None and branch.startswith(MAGIC_COOKIE):
            return (branch, sent_by(via), method)
        # RFC 2543 (§17.2.3 second half): no usable branch.
        return (
            "2543",
            request.uri,
            request.from_.tag,
            request.call_id,
            request.cseq[0],
            via.transport,
            sent_by(via),
            branch,
            method,
            None if method == "INVITE" else request.to.tag,
        )

    def _receive_request(self, request: SipRequest, peer: Peer, now: float) -> None:
        self.counters.requests_received += 1
        via = stamp_via(request, peer)
        method = request.method
        if method == "ACK":
            self._receive_ack(request, peer, now, via)
            return
        key = self._server_key(request, method, via)
        tx = self._server.get(key)
        if tx is not None:
            self.counters.retransmissions_received += 1
            tx.receive_request(request, peer, now)
            self._after(tx, now)
            return
        if method == "CANCEL":
            self._receive_cancel(request, key, peer, now)
            return
        if len(self._server) >= self.max_transactions:
            self.counters.overload_rejected += 1
            self.send_stateless(
                make_response(request, 503, headers=[("Retry-After", "5")]),
                response_destination(request.top_via, peer),
            )
            return
        new = self._new_server_transaction(request, key, peer, now, via)
        self._emit(RequestReceived(request, peer, new))
        self._after(new, now)

    def _new_server_transaction(
        self,
        request: SipRequest,
        key: tuple[object, ...],
        peer: Peer,
        now: float,
        via: Via | None = None,
    ) -> ServerTransaction:
        cls = InviteServerTransaction if request.method == "INVITE" else NonInviteServerTransaction
        destination = response_destination(via or request.top_via, peer)
        tx = cls(self, self.timers, peer, key, request, destination)
        self._server[key] = tx
        tx.start(now)
        return tx

    def _receive_ack(self, request: SipRequest, peer: Peer, now: float, via: Via) -> None:
        key = self._server_key(request, "INVITE", via)
        tx = self._server.get(key)
        if tx is not None and key[0] == "2543" and not _to_tag_matches(tx, request):
            # §17.2.3: a 2543 ACK matches only if its To tag is the one of our response.
            tx = None
        if tx is None:
            self.counters.stray_acks += 1
            self._emit(AckReceived(request, peer))
            return
        self.counters.retransmissions_received += 1
        tx.receive_request(request, peer, now)
        self._after(tx, now)

    def _receive_cancel(
        self, request: SipRequest, key: tuple[object, ...], peer: Peer, now: float
    ) -> None:
        invite_key = (*key[:-1], "INVITE") if key[0] != "2543" else (*key[:-2], "INVITE", None)
        invite = self._server.get(invite_key)
        cancel_tx = self._new_server_transaction(request, key, peer, now)
        if not isinstance(invite, InviteServerTransaction):
            self.counters.cancels_unmatched += 1
            cancel_tx.send_response(make_response(request, 481), now)
            self._after(cancel_tx, now)
            return
        # §9.2: the 200 to the CANCEL and the 487 to the INVITE carry the same To tag as the
        # provisional responses the INVITE already had.
        tag = None
        if invite.last_response is not None:
            tag = invite.last_response.to.tag
        tag = tag or new_tag()
        cancel_tx.send_response(make_response(request, 200, to_tag=tag), now)
        self._after(cancel_tx, now)
        if invite.state is TransactionState.PROCEEDING:
            invite.cancelled = True
            invite.send_response(make_response(invite.request, 487, to_tag=tag), now)
            self._after(invite, now)
            self._emit(CancelReceived(request, peer, invite))

    # ------------------------------------------------------------------ TU side

    def send_request(self, request: SipRequest, peer: Peer, now: float) -> ClientTransaction:
        """Start a client transaction for ``request`` (which must have its top Via with an RFC
        3261 branch; the transport user adds it, knowing its sent-by) towards ``peer``."""
        if request.method == "ACK":
            raise ValueError("ACK is not sent in a client transaction; use send_stateless")
        branch = request.top_via.branch
        if branch is None or not branch.startswith(MAGIC_COOKIE):
            raise ValueError("request needs a top Via with an RFC 3261 branch (z9hG4bK...)")
        key = (branch, request.method)
        if key in self._client:
            raise ValueError(f"a client transaction with branch {branch} exists already")
        cls = InviteClientTransaction if request.method == "INVITE" else NonInviteClientTransaction
        tx = cls(self, self.timers, peer, key, request)
        self._client[key] = tx
        tx.start(now)
        self._after(tx, now)
        return tx

    def send_response(
        self, transaction: ServerTransaction, response: SipResponse, now: float
    ) -> None:
        """The TU's response for a server transaction (raises ``TransactionStateError`` if the
        transaction cannot take it, e.g. after the 487 a CANCEL caused)."""
        if transaction.terminated:
            raise TransactionStateError("transaction already terminated")
        transaction.send_response(response, now)
        self._after(transaction, now)

    def send_stateless(self, message: SipRequest | SipResponse, peer: Peer) -> None:
        """Send outside any transaction: the ACK for a 2xx (§13.2.2.4), a 2xx retransmission
        after its transaction ended, a stateless reply."""
        self._send(bytes(message), peer)

    def cancel(self, transaction: ClientTransaction, now: float) -> ClientTransaction | None:
        """Cancel a pending INVITE client transaction (§9.1). Returns the CANCEL's transaction,
        or ``None`` when it waits for the first provisional response (§9.1: a CANCEL is not sent
        before one) or there is nothing to cancel any more."""
        if not isinstance(transaction, InviteClientTransaction):
            raise ValueError("only INVITE transactions can be cancelled")
        if transaction.state is TransactionState.CALLING:
            transaction._cancel_pending = True
            return None
        if transaction.state is TransactionState.PROCEEDING:
            return self._send_pending_cancel(transaction, now)
        return None

    def _send_pending_cancel(
        self, transaction: InviteClientTransaction, now: float
    ) -> ClientTransaction:
        cancel = build_cancel(transaction.request)
        # §9.1: if the INVITE gets no final response within 64*T1 of the CANCEL, it is over.
        transaction.timers["B"] = now + self.timers.timeout
        self._after(transaction, now)
        tx = NonInviteClientTransaction(
            self, self.timers, transaction.peer, (cancel.top_via.branch, "CANCEL"), cancel
        )
        self._client[tx.key] = tx
        tx.start(now)
        self._after(tx, now)
        return tx

    def transport_error(self, peer: Peer, now: float) -> None:
        """The transport cannot reach ``peer`` (connection refused/reset, ICMP): every
        transaction talking to it ends with ``TransportError`` (§17.1.4, §17.2.4)."""
        for table in (self._client, self._server):
            for tx in list(table.values()):
                target = tx.response_peer if isinstance(tx, ServerTransaction) else tx.peer
                if target == peer:
                    tx.transport_failed()
                    self._after(tx, now)


def _to_tag_matches(tx: ServerTransaction, ack: SipRequest) -> bool:
    response = tx.last_response
    if response is None or response.status < 200:
        return False
    return response.to.tag == ack.to.tag


def build_cancel(request: SipRequest) -> SipRequest:
    """A CANCEL for a client INVITE (§9.1): same Request-URI, Call-ID, From, To, CSeq number,
    one Via equal to the INVITE's top Via (same branch), the INVITE's Route headers."""
    headers = Headers()
    headers.add("Via", request.headers.get_all("Via")[0])
    headers.add("Max-Forwards", "70")
    headers.add("From", request.headers.get("From") or "")
    headers.add("To", request.headers.get("To") or "")
    headers.add("Call-ID", request.call_id)
    headers.add("CSeq", f"{request.cseq[0]} CANCEL")
    for route in request.headers.get_lines("Route"):
        headers.add("Route", route)
    return SipRequest("CANCEL", request.uri, headers)
