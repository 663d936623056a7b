"""``0`` to the operator: the caller is transferred to the mailbox's ``operator_uri``.

The call is answered (the greeting plays after our 200 OK), so only the registrar-agent, which
holds the SIP dialog, can move the caller: we ask it over NATS
(``<p>.call.<session_id>.transfer``, ``CallTransferRequest``) and it sends an in-dialog REFER
(RFC 3515) towards the caller, whose UA then calls the operator itself. The agent answers when
the transfer is over (``CallTransferReply``):

* ``transferred`` — the caller reached the operator (NOTIFY sipfrag 2xx) and the agent has sent
  BYE; the session's hang-up follows. A message recorded before ``0`` is stored.
* anything else (``refused``, ``failed``, ``timeout``, ``gone``, or no answer from the agent)
  — the caller hears "The call cannot be transferred." and the call goes on where it was: the
  greeting's beep and the recording, or the recording itself, continued.

While it waits the caller hears "Please hold while your call is transferred." A mailbox
without ``operator_uri`` (user or domain setting) has no operator: ``0`` is an ordinary key
there (nothing happens at the greeting; it is recorded like any other tone after the beep).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from sipum.db import users
from sipum.events import CallTransferRequest, NoResponders, RemoteError, RequestTimeout
from sipum.events.models import TransferOutcome

from sipum_media_recorder.session import MediaSession
from sipum_media_recorder.settings import MediaRecorderSettings

log = logging.getLogger("sipum.misc.recorder.transfer")

#: Beyond ``transfer_timeout_seconds``, how long we wait for the agent's reply.
REPLY_GRACE = 3.0


def operator_target(
    settings: MediaRecorderSettings, effective: users.EffectiveSettings | None
) -> str | None:
    """The URI ``operator_digit`` transfers to, or None (no operator: the key is ordinary)."""
    if not settings.operator_digit or effective is None:
        return None
    return (effective.operator_uri or "").strip() or None


async def ask_transfer(session: MediaSession, target: str) -> TransferOutcome:
    """Ask the agent to transfer the call to ``target``; its outcome (``gone`` when nobody
    holds the call any more, ``timeout`` when the agent did not answer)."""
    svc = session.services
    timeout = svc.settings.transfer_timeout_seconds
    request = CallTransferRequest(
        session_id=session.session_id,
        call_id=session.request.call_id,
        target_uri=target,
        timeout_s=timeout,
    )
    try:
        reply = await svc.bus.request_transfer(request, timeout=timeout + REPLY_GRACE)
    except NoResponders:
        return "gone"
    except RequestTimeout:
        return "timeout"
    except RemoteError as exc:
        log.warning("transfer refused by the agent: %s", exc, extra={"session": session.session_id})
        return "failed"
    return reply.outcome


async def to_operator(session: MediaSession, target: str) -> Literal["transferred", "bye"] | None:
    """The whole escape: "please hold", the transfer. ``transferred``; ``bye`` when the caller
    hung up meanwhile; None when "The call cannot be transferred." has been said (the call goes
    on)."""
    log.info("transfer to the operator", extra={"session": session.session_id, "to": target})
    asking = asyncio.ensure_future(ask_transfer(session, target))
    try:
        await session.prompt("transferring")
        gone = asyncio.ensure_future(session.hung_up.wait())
        try:
            await asyncio.wait({asking, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
    except BaseException:
        asking.cancel()
        raise
    if not asking.done():
        # the caller hung up first; the agent's reply no longer matters
        asking.cancel()
        return "bye"
    outcome = asking.result()
    log.info(
        "transfer to the operator ended",
        extra={"session": session.session_id, "outcome": outcome},
    )
    if outcome == "transferred":
        return "transferred"
    if session.hung_up.is_set():
        return "bye"
    session.clear_digits()
    await session.prompt("cannot-transfer")
    return "bye" if session.hung_up.is_set() else None
