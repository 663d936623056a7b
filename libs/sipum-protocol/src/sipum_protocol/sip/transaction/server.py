"""Server transactions: RFC 3261 §17.2.1 (INVITE, with RFC 6026) and §17.2.2 (non-INVITE).

INVITE server (figure 7 as amended by RFC 6026 §7.1)::

    Proceeding: INVITE retransmission -> last provisional re-sent (100 if none yet)
                TU 1xx -> sent;  TU 2xx -> sent, Accepted (timer L = 64*T1)
                TU 300-699 -> sent, Completed (timer G unreliable, H = 64*T1)
                no TU response within ``trying_delay`` (< 200 ms) -> 100 Trying sent (§17.2.1)
    Completed:  INVITE retransmission -> final re-sent;  timer G -> final re-sent, G doubled
                up to T2;  ACK -> Confirmed (timer I = T4, 0 on reliable);
                timer H -> Terminated, timeout to TU (the ACK never came)
    Confirmed:  ACKs absorbed;  timer I -> Terminated
    Accepted:   INVITE retransmissions absorbed (RFC 6026 §8.7: the 2xx is re-sent by the TU,
                RFC 3261 §13.3.1.4, not by us); each 2xx the TU passes down is sent; an ACK
                that matched us goes to the TU; timer L -> Terminated

Non-INVITE server (figure 8)::

    Trying:     retransmissions discarded;  TU 1xx -> Proceeding;  TU final -> Completed
    Proceeding: retransmission -> last provisional re-sent;  TU final -> Completed
    Completed:  retransmission -> final re-sent;  timer J (64*T1, 0 reliable) -> Terminated

The non-INVITE server also has a guard (not in the RFC): if the TU never answers within 64*T1
the transaction ends with ``TransactionTimeout(timer="guard")`` so a silent TU cannot leak
transactions; the client gave up at timer F by then anyway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sipum_protocol.sip.transaction.base import (
    Output,
    Transaction,
    TransactionState,
    TransactionStateError,
)
from sipum_protocol.sip.transaction.events import AckReceived, Peer, TransactionTimeout
from sipum_protocol.sip.transaction.timers import TimerConfig

if TYPE_CHECKING:
    from sipum_protocol.sip.message import SipRequest, SipResponse

S = TransactionState


class ServerTransaction(Transaction):
    """Common part of server transactions."""

    __slots__ = (
        "request",
        "response_peer",
        "last_response",
        "_last_data",
        "_interval",
        "cancelled",
    )

    def __init__(
        self,
        out: Output,
        config: TimerConfig,
        peer: Peer,
        key: tuple[object, ...],
        request: SipRequest,
        response_peer: Peer,
    ) -> None:
        super().__init__(out, config, peer, key)
        self.request = request
        self.response_peer = response_peer
        """Where responses go (RFC 3261 §18.2.2, computed from the top Via and the source)."""
        self.last_response: SipResponse | None = None
        self._last_data = b""
        self._interval = config.t1
        self.cancelled = False
        """A CANCEL matched this (INVITE) transaction and the layer answered it with 487."""

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def final_sent(self) -> bool:
        return self.last_response is not None and self.last_response.status >= 200

    def _send(self, data: bytes) -> None:
        self._out._send(data, self.response_peer)

    def _send_response(self, response: SipResponse) -> None:
        self.last_response = response
        self._last_data = bytes(response)
        self._send(self._last_data)

    def _resend_last(self) -> None:
        if self._last_data:
            self.retransmissions += 1
            self._send(self._last_data)

    def start(self, now: float) -> None:
        raise NotImplementedError

    def receive_request(self, request: SipRequest, peer: Peer, now: float) -> None:
        raise NotImplementedError

    def send_response(self, response: SipResponse, now: float) -> None:
        raise NotImplementedError


class InviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.1 with the RFC 6026 Accepted state."""

    __slots__ = ()

    def start(self, now: float) -> None:
        self.state = S.PROCEEDING
        if self.config.trying_delay <= 0:
            self._send_trying()
        else:
            self.timers["trying"] = now + self.config.trying_delay

    def _send_trying(self) -> None:
        from sipum_protocol.sip.message import make_response

        self._send_response(make_response(self.request, 100))

    def receive_request(self, request: SipRequest, peer: Peer, now: float) -> None:
        state = self.state
        if request.method == "ACK":
            if state is S.COMPLETED:
                # §17.2.1: ACK for our 3xx-6xx; stop G and H, absorb later ACKs for timer I.
                self.state = S.CONFIRMED
                self.timers.clear()
                self.timers["I"] = now + (0.0 if self.reliable else self.config.t4)
            elif state is S.ACCEPTED:
                self._emit(AckReceived(request, peer))  # RFC 6026 §7.1: to the TU
            return  # Confirmed: absorbed; Proceeding: an ACK before any final is meaningless
        # a retransmitted INVITE
        if state is S.PROCEEDING:
            if self.last_response is None:
                # The client is re-sending before our 100 went out: send it now.
                self.timers.pop("trying", None)
                self._send_trying()
            else:
                self._resend_last()
        elif state is S.COMPLETED:
            self._resend_last()
        # Confirmed / Accepted: absorbed (RFC 6026 §7.1 for Accepted)

    def send_response(self, response: SipResponse, now: float) -> None:
        status = response.status
        if self.state is S.PROCEEDING:
            self.timers.pop("trying", None)
            self._send_response(response)
            if status < 200:
                return
            self.timers.clear()
            if status < 300:
                self.state = S.ACCEPTED
                self.timers["L"] = now + self.config.timeout
            else:
                self.state = S.COMPLETED
                if not self.reliable:
                    self.timers["G"] = now + self._interval
                self.timers["H"] = now + self.config.timeout
        elif self.state is S.ACCEPTED and 200 <= status < 300:
            # RFC 6026 §7.1: the TU's 2xx retransmissions go out through us.
            self.last_response = response
            self._last_data = bytes(response)
            self._send(self._last_data)
        else:
            raise TransactionStateError(
                f"cannot send {status} in INVITE server transaction state {self.state.value}"
            )

    def _fire(self, letter: str, now: float) -> None:
        if letter == "trying" and self.state is S.PROCEEDING and self.last_response is None:
            self._send_trying()
        elif letter == "G" and self.state is S.COMPLETED:
            self._resend_last()
            self._interval = min(2 * self._interval, self.config.t2)
            self.timers["G"] = now + self._interval
        elif letter == "H" and self.state is S.COMPLETED:
            self._emit(TransactionTimeout(self, "H"))
            self._terminate()
        elif letter in ("I", "L"):
            self._terminate()


class NonInviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.2."""

    __slots__ = ()

    def start(self, now: float) -> None:
        self.state = S.TRYING
        self.timers["guard"] = now + self.config.timeout

    def receive_request(self, request: SipRequest, peer: Peer, now: float) -> None:
        if self.state in (S.PROCEEDING, S.COMPLETED):
            self._resend_last()
        # Trying: discarded (§17.2.2)

    def send_response(self, response: SipResponse, now: float) -> None:
        if self.state not in (S.TRYING, S.PROCEEDING):
            raise TransactionStateError(
                f"cannot send {response.status} in non-INVITE server transaction state "
                f"{self.state.value}"
            )
        self._send_response(response)
        if response.status < 200:
            self.state = S.PROCEEDING
            return
        self.state = S.COMPLETED
        self.timers.clear()
        self.timers["J"] = now + (0.0 if self.reliable else self.config.timeout)

    def _fire(self, letter: str, now: float) -> None:
        if letter == "J":
            self._terminate()
        elif letter == "guard" and self.state in (S.TRYING, S.PROCEEDING):
            self._emit(TransactionTimeout(self, "guard"))
            self._terminate()
