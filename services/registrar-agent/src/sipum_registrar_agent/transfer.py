"""The operator escape's SIP side: transfer an answered call by REFER (RFC 3515).

The media-recorder hears the caller press ``0`` and asks us over NATS
(``<p>.call.<session_id>.transfer``, ``CallTransferRequest``); we hold the dialog, so we send
the REFER (``UserAgent.refer``, ``sipum_protocol.sip.ua.refer``) towards the caller — through
Kamailio by the dialog's route set — and the caller's UA calls the operator itself. We answer
the request when the transfer is over:

| user agent says | reply ``outcome`` | the call |
|---|---|---|
| NOTIFY sipfrag 2xx | ``transferred`` | the UA has sent BYE (``CallEnded`` ``transferred``) |
| REFER answered 3xx–6xx | ``refused`` (+ status) | goes on; the recorder says it cannot transfer |
| NOTIFY sipfrag 3xx–6xx, or terminated without a final one | ``failed`` (+ status) | goes on |
| no answer / no final NOTIFY within ``timeout_s`` | ``timeout`` | goes on |
| the call is not confirmed or ends meanwhile | ``gone`` | — |

Why REFER and not 302: the greeting plays after our ``200 OK``, so the INVITE transaction is
over and a redirect is no longer possible (RFC 3261 §8.2.6, §13.3.1.4); a REFER inside the
dialog is the one way to point the caller elsewhere, and Kamailio routes it like any in-dialog
request (``loose_route``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from sipum.events import CallTransferReply, CallTransferRequest
from sipum.events.models import TransferOutcome
from sipum_protocol.sip.ua import CallState, TransferEnded

from sipum_registrar_agent import metrics

if TYPE_CHECKING:
    from sipum_registrar_agent.calls import ActiveCall

log = logging.getLogger("sipum.misc.calls")

#: ``TransferEnded.reason`` of the user agent → the reply's outcome.
OUTCOMES: dict[str, TransferOutcome] = {
    "transferred": "transferred",
    "refused": "refused",
    "failed": "failed",
    "terminated": "failed",
    "timeout": "timeout",
    "transport-error": "timeout",
}

#: Beyond the request's timeout, how long we wait for the user agent's own verdict.
GRACE = 1.0
#: How long a request may wait for the ACK of our 2xx (a key pressed at once).
CONFIRM_WAIT = 2.0


async def transfer_call(
    active: ActiveCall, request: CallTransferRequest, now: Callable[[], float]
) -> CallTransferReply:
    """Send the REFER for ``active`` and wait for its outcome (see the module doc)."""
    call = active.call
    if request.call_id != call.call_id:
        return _reply("gone", None, active)
    loop = asyncio.get_running_loop()
    if call.state is CallState.ANSWERED:
        # our 2xx awaits its ACK (a key pressed at once): a REFER needs the confirmed dialog
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(active.confirmed.wait(), CONFIRM_WAIT)
    if call.ended or call.state is not CallState.CONFIRMED:
        return _reply("gone", None, active)
    waiter: asyncio.Future[TransferEnded] = loop.create_future()
    try:
        call.ua.refer(call, request.target_uri, now(), timeout=request.timeout_s)
    except RuntimeError as exc:  # one at a time; or no longer confirmed
        log.info("cannot transfer %s: %s", call.call_id, exc)
        return _reply("gone", None, active)
    active.transfer_waiter = waiter
    log.info("transferring call %s to %s (REFER)", call.call_id, request.target_uri)
    ended: asyncio.Future[object] = asyncio.ensure_future(active.ended.wait())
    outcome: set[asyncio.Future[object]] = {waiter, ended}  # type: ignore[arg-type]
    try:
        await asyncio.wait(
            outcome, timeout=request.timeout_s + GRACE, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        ended.cancel()
        active.transfer_waiter = None
    if waiter.done():
        event = waiter.result()
        return _reply(OUTCOMES.get(event.reason, "failed"), event.status, active)
    waiter.cancel()
    return _reply("gone" if active.ended.is_set() else "timeout", None, active)


def transfer_ended(active: ActiveCall, event: TransferEnded) -> None:
    """The user agent's ``TransferEnded`` for the call (from the service's event handler)."""
    waiter = active.transfer_waiter
    if waiter is not None and not waiter.done():
        waiter.set_result(event)


def _reply(outcome: TransferOutcome, status: int | None, active: ActiveCall) -> CallTransferReply:
    metrics.TRANSFERS.labels(outcome).inc()
    log.info(
        "transfer of %s: %s%s",
        active.call.call_id,
        outcome,
        f" ({status})" if status is not None else "",
    )
    return CallTransferReply(outcome=outcome, status_code=status)
