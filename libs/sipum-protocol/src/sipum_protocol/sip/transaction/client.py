"""Client transactions: RFC 3261 §17.1.1 (INVITE, with RFC 6026) and §17.1.2 (non-INVITE).

INVITE client (figure 5 as amended by RFC 6026 §7.2)::

    Calling --1xx--> Proceeding --1xx--> Proceeding
    Calling/Proceeding --2xx--> Accepted   (2xx to TU; timer M = 64*T1)
    Calling/Proceeding --300-699--> Completed (ACK sent here, same branch; timer D)
    Calling --timer B--> Terminated (timeout to TU)
    Accepted --2xx--> Accepted (each 2xx passed to the TU, which sends the ACK: §13.2.2.4)
    Accepted --timer M--> Terminated;  Completed --timer D--> Terminated
    Completed --300-699--> Completed (ACK re-sent, response not passed up)

Timer A (unreliable only) re-sends the INVITE at T1, 2*T1, 4*T1, ... with no cap until timer B.

Non-INVITE client (figure 6)::

    Trying --1xx--> Proceeding;  Trying/Proceeding --final--> Completed (timer K)
    Trying/Proceeding --timer F--> Terminated (timeout to TU)

Timer E (unreliable only) re-sends the request at T1, 2*T1, ... capped at T2; in Proceeding it
fires every T2 (§17.1.2.2). Timers D and K are 0 on reliable transports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sipum_protocol.sip.transaction.base import Output, Transaction, TransactionState
from sipum_protocol.sip.transaction.events import Peer, ResponseReceived, TransactionTimeout
from sipum_protocol.sip.transaction.timers import TimerConfig

if TYPE_CHECKING:
    from sipum_protocol.sip.message import SipRequest, SipResponse

S = TransactionState


class ClientTransaction(Transaction):
    """Common part of client transactions: the request, its bytes, the last response."""

    __slots__ = ("request", "data", "last_response", "_interval", "_cancel_pending")

    def __init__(
        self,
        out: Output,
        config: TimerConfig,
        peer: Peer,
        key: tuple[object, ...],
        request: SipRequest,
    ) -> None:
        super().__init__(out, config, peer, key)
        self.request = request
        self.data = bytes(request)
        self.last_response: SipResponse | None = None
        self._interval = config.t1
        self._cancel_pending = False

    @property
    def method(self) -> str:
        return self.request.method

    def start(self, now: float) -> None:
        raise NotImplementedError

    def receive_response(self, response: SipResponse, peer: Peer, now: float) -> None:
        raise NotImplementedError


class InviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.1 with the RFC 6026 Accepted state."""

    __slots__ = ()

    def start(self, now: float) -> None:
        self.state = S.CALLING
        self._send(self.data)
        if not self.reliable:
            self.timers["A"] = now + self._interval
        self.timers["B"] = now + self.config.timeout

    def receive_response(self, response: SipResponse, peer: Peer, now: float) -> None:
        status = response.status
        state = self.state
        if state in (S.CALLING, S.PROCEEDING):
            self.last_response = response
            if status < 200:
                self.state = S.PROCEEDING
                # §17.1.1.2: once a provisional arrives the INVITE is not re-sent any more, and
                # timer B only bounds Calling (the UAS owns the INVITE's lifetime from now on;
                # ``TransactionLayer.cancel`` re-arms B per §9.1).
                self.timers.pop("A", None)
                self.timers.pop("B", None)
                if self._cancel_pending:
                    self._cancel_pending = False
                    self._out._send_pending_cancel(self, now)  # type: ignore[attr-defined]
                self._emit(ResponseReceived(response, peer, self))
            elif status < 300:
                # RFC 6026 §7.2: Accepted, not Terminated, so 2xx retransmissions and 2xx from
                # other forks reach the TU through this transaction for timer M.
                self.state = S.ACCEPTED
                self.timers.clear()
                self.timers["M"] = now + self.config.timeout
                self._emit(ResponseReceived(response, peer, self))
            else:
                self.state = S.COMPLETED
                self.timers.clear()
                self._send_ack(response)
                self.timers["D"] = now + (0.0 if self.reliable else self.config.timer_d)
                self._emit(ResponseReceived(response, peer, self))
        elif state is S.COMPLETED:
            if status >= 300:
                # §17.1.1.2: a retransmitted final response is answered with the ACK again and
                # not passed up.
                self.retransmissions += 1
                self._send_ack(response)
        elif state is S.ACCEPTED:
            if 200 <= status < 300:
                self.last_response = response
                self._emit(ResponseReceived(response, peer, self))
            # RFC 6026 §7.2: anything else in Accepted is discarded.

    def _send_ack(self, response: SipResponse) -> None:
        self._send(bytes(build_ack(self.request, response)))

    def _fire(self, letter: str, now: float) -> None:
        if letter == "A" and self.state is S.CALLING:
            self.retransmissions += 1
            self._send(self.data)
            self._interval *= 2  # §17.1.1.2: doubled each time, no cap for INVITE
            self.timers["A"] = now + self._interval
        elif letter == "B" and self.state in (S.CALLING, S.PROCEEDING):
            self._emit(TransactionTimeout(self, "B"))
            self._terminate()
        elif letter in ("D", "M"):
            self._terminate()


class NonInviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.2."""

    __slots__ = ()

    def start(self, now: float) -> None:
        self.state = S.TRYING
        self._send(self.data)
        if not self.reliable:
            self.timers["E"] = now + self._interval
        self.timers["F"] = now + self.config.timeout

    def receive_response(self, response: SipResponse, peer: Peer, now: float) -> None:
        if self.state not in (S.TRYING, S.PROCEEDING):
            return  # Completed: retransmitted final responses are absorbed (§17.1.2.2)
        self.last_response = response
        if response.status < 200:
            self.state = S.PROCEEDING
        else:
            self.state = S.COMPLETED
            self.timers.clear()
            self.timers["K"] = now + (0.0 if self.reliable else self.config.t4)
        self._emit(ResponseReceived(response, peer, self))

    def _fire(self, letter: str, now: float) -> None:
        if letter == "E" and self.state in (S.TRYING, S.PROCEEDING):
            self.retransmissions += 1
            self._send(self.data)
            if self.state is S.TRYING:
                self._interval = min(2 * self._interval, self.config.t2)
            else:
                self._interval = self.config.t2  # §17.1.2.2: T2 once in Proceeding
            self.timers["E"] = now + self._interval
        elif letter == "F" and self.state in (S.TRYING, S.PROCEEDING):
            self._emit(TransactionTimeout(self, "F"))
            self._terminate()
        elif letter == "K":
            self._terminate()


def build_ack(request: SipRequest, response: SipResponse) -> SipRequest:
    """The ACK for a 3xx-6xx response, built inside the INVITE client transaction (§17.1.1.3).

    Same Request-URI, Call-ID, From and CSeq number as the INVITE; To from the response (with
    its tag); one Via: the INVITE's top Via (so the same branch); the INVITE's Route headers.
    """
    from sipum_protocol.sip.message import Headers, SipRequest

    headers = Headers()
    headers.add("Via", request.headers.get_all("Via")[0])
    headers.add("Max-Forwards", "70")
    headers.add("From", request.headers.get("From") or "")
    headers.add("To", response.headers.get("To") or "")
    headers.add("Call-ID", request.headers.get("Call-ID") or "")
    headers.add("CSeq", f"{request.cseq[0]} ACK")
    for route in request.headers.get_lines("Route"):
        headers.add("Route", route)
    return SipRequest("ACK", request.uri, headers)
