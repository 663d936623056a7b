"""Call transfer by REFER from our end of an answered call (RFC 3515), sans-I/O.

Theory of operation
-------------------
A call is answered, so a redirect (3xx) is no longer possible; we ask the peer to call the
transfer target itself. ``Transfers.start(call, target, now, timeout)`` (``UserAgent.refer``)
sends ``REFER`` inside the call's dialog with ``Refer-To: <target>`` (RFC 3515 §2.1) and
``Referred-By`` (RFC 3892) naming our side of the dialog. From there:

* the REFER's final response: ``2xx`` (``202 Accepted``, §2.4.2) → accepted, the transfer
  waits for its NOTIFYs; ``3xx``–``6xx`` → failed (``refused``); no response (timer F) or a
  transport error → failed (``timeout`` / ``transport-error``);
* the implicit subscription's NOTIFYs (``Event: refer``, body ``message/sipfrag``, §2.4.4,
  §2.4.5), each answered ``200``: a sipfrag status line ``1xx`` is progress; ``2xx`` means the
  peer reached the target → done: we send ``BYE`` (the transfer is complete, the call is
  over for us, ``CallEnded`` reason ``transferred``); ``3xx``–``6xx`` → failed (``failed``).
  A NOTIFY may overtake the ``202`` (§2.4.4: they travel independently), so NOTIFYs count in
  any state. ``Subscription-State: terminated`` without a final status → failed;
* ``timeout`` seconds after the REFER without a final outcome → failed (``timeout``); the
  call goes on.

Every transfer ends with exactly one ``TransferEnded`` event, unless the call ends first
(a BYE from the peer — RFC 5589 §6 lets the transferee hang up itself — which the
application already sees as ``CallEnded``). One transfer per call at a time. A NOTIFY for a
call without a running transfer, or naming another REFER (``Event: refer;id=<CSeq>``,
§2.4.6), gets ``481`` (RFC 6665 §4.1.3: no such subscription); one with another event
package ``489``; one whose body is not ``message/sipfrag`` ``415`` (RFC 3261 §8.2.3).

The ``UserAgent`` hooks this in at four places only: ``refer()``, in-dialog ``NOTIFY``
(``on_notify``) and its timer (``next_timer``/``handle_timer``); the REFER itself goes out
as a plain client transaction of ``UserAgent.send_request`` (its handlers).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sipum_protocol.sip.message import SipRequest, SipResponse
from sipum_protocol.sip.ua.call import CallState
from sipum_protocol.sip.ua.events import TransferEnded

if TYPE_CHECKING:
    from sipum_protocol.sip.transaction import ServerTransaction
    from sipum_protocol.sip.ua.call import Call
    from sipum_protocol.sip.ua.core import UserAgent

SIPFRAG = "message/sipfrag"
_STATUS_LINE = re.compile(rb"\s*SIP/2\.0\s+(\d{3})\b")

DEFAULT_TIMEOUT = 30.0
"""Seconds from the REFER to a final outcome before the transfer is given up."""


class TransferState(enum.Enum):
    PENDING = "pending"
    """REFER sent, no final response yet."""
    ACCEPTED = "accepted"
    """2xx to the REFER; waiting for the final sipfrag."""
    DONE = "done"
    FAILED = "failed"


@dataclass(eq=False)
class Transfer:
    """One REFER and its implicit subscription (RFC 3515 §2.4.4)."""

    call: Call
    target: str
    """The Refer-To URI."""
    cseq: int
    """CSeq of the REFER: the ``id`` of its ``Event: refer`` (§2.4.6)."""
    deadline: float
    state: TransferState = TransferState.PENDING
    refer_status: int | None = None
    """Final status of the REFER (202, 403, ...)."""
    progress: list[int] = field(default_factory=list)
    """Status of every sipfrag NOTIFY seen (100, 180, 200, ...)."""

    @property
    def over(self) -> bool:
        return self.state in (TransferState.DONE, TransferState.FAILED)


def sipfrag_status(body: bytes) -> int | None:
    """The status code of a ``message/sipfrag`` body's status line (RFC 3420), or None."""
    match = _STATUS_LINE.match(body)
    return int(match.group(1)) if match else None


def _event_package(value: str) -> tuple[str, str | None]:
    """``refer;id=7`` → (``refer``, ``7``) (RFC 6665 §8.2.1)."""
    parts = [p.strip() for p in value.split(";")]
    event_id = None
    for param in parts[1:]:
        name, _, val = param.partition("=")
        if name.strip().lower() == "id":
            event_id = val.strip()
    return parts[0].lower(), event_id


class Transfers:
    """The REFERs of one ``UserAgent`` (see module doc)."""

    def __init__(self, ua: UserAgent) -> None:
        self.ua = ua
        self._by_call: dict[Call, Transfer] = {}

    def get(self, call: Call) -> Transfer | None:
        return self._by_call.get(call)

    # ------------------------------------------------------------------ start

    def start(self, call: Call, target: str, now: float, timeout: float) -> Transfer:
        """Send REFER (RFC 3515 §2.4.1) for the confirmed call ``call``."""
        if call.ended or call.state is not CallState.CONFIRMED or call.dialog is None:
            raise RuntimeError(f"cannot transfer a call in state {call.state.value}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        current = self._by_call.get(call)
        if current is not None and not current.over:
            raise RuntimeError("a transfer of this call is already running")
        ua = self.ua
        dialog = call.dialog
        destination = ua._peer_for(call, dialog.next_hop())
        refer_to = target if target.startswith("<") else f"<{target}>"
        request = dialog.create_request(
            "REFER",
            via=ua.via_for(destination.transport),
            headers=[("Refer-To", refer_to), ("Referred-By", dialog.local_uri)],
        )
        transfer = Transfer(call, target, request.cseq[0], now + timeout)
        self._by_call[call] = transfer
        ua.send_request(
            request,
            destination,
            now,
            on_response=lambda response: self._on_refer_response(transfer, response),
            on_failure=lambda reason: self._on_refer_failure(transfer, reason),
        )
        return transfer

    # ------------------------------------------------------------------ REFER outcome

    def _on_refer_response(self, transfer: Transfer, response: SipResponse) -> None:
        status = response.status
        if status < 200 or transfer.over:
            return
        transfer.refer_status = status
        if status < 300:
            if transfer.state is TransferState.PENDING:
                transfer.state = TransferState.ACCEPTED  # §2.4.2: 202 Accepted
            return
        # §2.4.2: the REFER was refused; there is no subscription.
        self._fail(transfer, "refused", status)

    def _on_refer_failure(self, transfer: Transfer, reason: str) -> None:
        if transfer.over or transfer.refer_status is not None:
            return  # "terminated" after a final response is the normal end
        self._fail(transfer, "transport-error" if reason == "transport-error" else "timeout")

    # ------------------------------------------------------------------ NOTIFY

    def on_notify(self, call: Call, request: SipRequest, tx: ServerTransaction, now: float) -> None:
        """An in-dialog NOTIFY for ``call`` (the dialog and its CSeq checked by the caller)."""
        ua = self.ua
        package, event_id = _event_package(request.headers.get("Event") or "")
        if package != "refer":
            # RFC 6665 §8.2.2 (our only event package here is the REFER's)
            ua._respond(tx, request, 489, now, headers=[("Allow-Events", "refer")])
            return
        transfer = self._by_call.get(call)
        if (
            transfer is None
            or (transfer.over and transfer.state is not TransferState.DONE)
            or (event_id is not None and event_id != str(transfer.cseq))
        ):
            ua._respond(tx, request, 481, now)  # RFC 6665 §4.1.3: no such subscription
            return
        if request.content_type != SIPFRAG or (status := sipfrag_status(request.body)) is None:
            ua._respond(tx, request, 415, now, headers=[("Accept", SIPFRAG)])
            return
        ua._respond(tx, request, 200, now)  # §2.4.5: every NOTIFY is answered
        if transfer.over:
            return  # e.g. a retransmitted final NOTIFY after our BYE
        transfer.progress.append(status)
        if 200 <= status < 300:
            self._succeed(transfer, now)
        elif status >= 300:
            self._fail(transfer, "failed", status)
        else:
            state = (request.headers.get("Subscription-State") or "").split(";")[0].strip()
            if state.lower() == "terminated":
                self._fail(transfer, "terminated", status)

    # ------------------------------------------------------------------ timer

    def next_timer(self) -> float | None:
        pending = [t.deadline for t in self._by_call.values() if not t.over and not t.call.ended]
        return min(pending) if pending else None

    def handle_timer(self, now: float) -> None:
        for call, transfer in list(self._by_call.items()):
            if call.ended:
                del self._by_call[call]  # the call ended first; CallEnded said so
            elif not transfer.over and now >= transfer.deadline:
                self._fail(transfer, "timeout")

    # ------------------------------------------------------------------ endings

    def _succeed(self, transfer: Transfer, now: float) -> None:
        transfer.state = TransferState.DONE
        call = transfer.call
        ua = self.ua
        ua._emit(TransferEnded(call, transfer.target, True, "transferred", transfer.progress[-1]))
        if not call.ended:
            # RFC 3515 §2.4.5 / RFC 5589 §6: the peer reached the target; our leg is done.
            ua._send_bye(call, now)
            ua._end(call, "transferred")
        ua._poke()

    def _fail(self, transfer: Transfer, reason: str, status: int | None = None) -> None:
        transfer.state = TransferState.FAILED
        self.ua._emit(TransferEnded(transfer.call, transfer.target, False, reason, status))
        self.ua._poke()
