"""One incoming call from INVITE to its end: mailbox, ring timer, media session, events.

The SIP side is the shared user agent (``sipum_protocol.sip.ua``): it answers retransmissions, CANCEL
(``200`` + ``487``, RFC 3261 §9.2), BYE and the 2xx/ACK handshake on its own. The service
feeds its events into :class:`ActiveCall`; :class:`CallHandler` is the coroutine per call:

1. resolve the mailbox (:mod:`sipum_registrar_agent.mailbox` + PostgreSQL) — ``404`` if none;
2. ``sipum.evt.call.started``;
3. a forked call rings (``180``) for the user's ring timeout, so the user's own phones get the
   first chance; a diverted or retrieval call is answered at once;
4. ``sipum.media.allocate`` to the media-recorder queue group: ``503`` + ``Retry-After`` when
   nobody answers, ``488`` when the recorder has no codec in common with the offer;
5. ``200 OK`` with the recorder's SDP, ``sipum.evt.call.answered``;
6. the caller's BYE becomes ``sipum.media.session.<id>.hangup``, a digit the caller sends by
   SIP INFO (``application/dtmf-relay`` / ``application/dtmf``, answered 200 by the user agent)
   ``sipum.media.session.<id>.dtmf`` — in the order they came; a session that ends on its
   own (``#``, silence, maximum length) makes us send BYE;
7. the recorder holding the call going silent (``recorders.RecorderWatch``: no heartbeat for
   its ``dead_after``) moves a recording call (:meth:`CallHandler._move`): ``sipum.media.allocate``
   with ``continue_session_id`` (another live replica takes the spooled recording over, same
   session and message), then our re-INVITE with its SDP (RFC 3261 §14.1) — the caller's RTP
   goes there and the call goes on. No other live replica, no answer, or the re-INVITE refused
   or unanswered within ``move_reinvite_seconds``: BYE (``end_reason=media_lost``); what was said
   is kept by the new session or, without one, by the survivors' recovery;
8. ``sipum.evt.call.ended``.

A CANCEL before step 5 ends the call without any media session: before step 4 nothing is
allocated at all; during step 4 the fresh session is hung up at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sipum.db import users
from sipum.db.users import User
from sipum.events import (
    CallAnswered,
    CallEnded,
    CallStarted,
    CallTransferReply,
    CallTransferRequest,
    EventBus,
    MediaAllocateReply,
    MediaAllocateRequest,
    NoResponders,
    RemoteError,
    RequestTimeout,
    SessionCommand,
    SessionDtmf,
    SessionEnded,
    SessionHangup,
)
from sipum.events.models import CallEndReason, Event
from sipum_protocol.sip.headers import SipParseError
from sipum_protocol.sip.ua import Call, CallState, ReofferAccepted, ReofferFailed
from sipum_protocol.sip.uri import SipUri, parse_name_addr

from sipum_registrar_agent import metrics
from sipum_registrar_agent.mailbox import (
    InviteAddressing,
    MailboxCandidate,
    MailboxResolver,
    reason_cause,
)
from sipum_registrar_agent.recorders import RecorderWatch
from sipum_registrar_agent.transfer import transfer_call

log = logging.getLogger("sipum.misc.calls")

# RpcError codes of the media-recorder → our final response (RFC 3261 §21).
RPC_ERROR_STATUS = {
    "unsupported": 488,  # no common codec: Not Acceptable Here (RFC 3264 §6)
    "not_found": 404,  # e.g. the message of a retrieve URI does not exist
    "overloaded": 503,
    "bad_request": 400,
    "internal": 500,
}

SESSION_END_WAIT = 3.0
"""Seconds to wait for the recorder's ``ended`` after our hang-up command."""

# How the user agent says a call ended → CallEnded.end_reason.
UA_END_REASON: dict[str, CallEndReason] = {
    "remote-bye": "bye",
    "cancelled": "cancel",
    "rejected": "rejected",
    "no-ack": "error",
    "timeout": "error",
    "transport-error": "error",
    "local-bye": "completed",
    "max-duration": "max_duration",
    "session-expired": "session_expired",
    "transferred": "transferred",
    "reinvite-failed": "media_lost",
}

MAX_MOVES = 3
"""A call is moved at most this often (each replica holding it died); then BYE."""


@dataclass(eq=False)
class ActiveCall:
    """What the user agent told us about one call (set from its event handler)."""

    call: Call
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    ua_end_reason: str | None = None
    ua_end_status: int | None = None
    cancel_reason: str | None = None
    """The CANCEL's Reason header (RFC 3326), if it had one."""
    session_id: str | None = None
    session_end: SessionEnded | None = None
    session_over: asyncio.Event = field(default_factory=asyncio.Event)
    """The recorder said the session ended (``sipum.media.session.<id>.ended``)."""
    shutdown: bool = False
    """We hung up because the service is stopping."""
    media_lost: bool = False
    """We hung up because the media-recorder holding the call is gone (no heartbeat) and the
    call could not be moved: its session is gone too (nothing to tell)."""
    relay_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Digits by SIP INFO go to the recorder one at a time, in the order they came (the lock
    is FIFO)."""
    move_failed: bool = False
    """A move got a new session but not the caller (re-INVITE refused or unanswered): we hung
    up; the new session stores what was said."""
    request: MediaAllocateRequest | None = None
    """The allocation of the call's session (a move repeats it with ``continue_session_id``)."""
    recorder_id: str | None = None
    """The media-recorder holding the session now."""
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    """Its recorder is gone and the call is to be moved (set by ``CallHandler.media_lost``)."""
    lost_at: float = 0.0
    moves: int = 0
    reoffer: asyncio.Future[ReofferAccepted | ReofferFailed] | None = None
    """The outcome of our re-INVITE of a move (set from the user agent's event)."""
    confirmed: asyncio.Event = field(default_factory=asyncio.Event)
    """The ACK for our 2xx arrived (``CallConfirmed``)."""
    transfer_waiter: asyncio.Future[Any] | None = None
    """A REFER in progress (``transfer.transfer_call``) waits here for ``TransferEnded``."""

    def on_ended(self, reason: str, status: int | None) -> None:
        self.ua_end_reason = reason
        self.ua_end_status = status
        self.ended.set()

    def on_reoffer(self, event: ReofferAccepted | ReofferFailed) -> None:
        if self.reoffer is not None and not self.reoffer.done():
            self.reoffer.set_result(event)


@dataclass(frozen=True, slots=True)
class Caller:
    uri: str
    display: str | None
    trusted_identity: bool
    """The identity comes from a P-Asserted-Identity of a trusted proxy (RFC 3325 §9.1)."""


class TrustedProxies:
    """Addresses whose ``P-Asserted-Identity`` we accept (RFC 3325 §2 "trust domain")."""

    def __init__(self, networks: Sequence[str]) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    def __contains__(self, host: object) -> bool:
        if not isinstance(host, str):
            return False
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def caller_of(call: Call, trusted: TrustedProxies) -> Caller:
    """From, or the P-Asserted-Identity when the INVITE came from a trusted proxy.

    RFC 3325 §9.1: a PAI from outside the trust domain is ignored (anyone can write one).
    """
    invite = call.invite
    pai = invite.headers.get_all("P-Asserted-Identity")
    if pai and call.peer.host in trusted:
        for value in pai:
            try:
                na = parse_name_addr(value)
            except SipParseError:
                continue
            if na.uri.scheme in ("sip", "sips"):
                return Caller(str(_bare(na.uri)), na.display, True)
    na = invite.from_
    return Caller(str(_bare(na.uri)), na.display, False)


def _bare(uri: SipUri) -> SipUri:
    """The URI without parameters or headers (``sip:bob@example.org``)."""
    return SipUri(uri.scheme, uri.user, None, uri.host, uri.port)


@dataclass(frozen=True, slots=True)
class CallSettings:
    agent_id: str
    media_timeout: float
    retry_after_seconds: int
    move_calls: bool = False
    """Move a recording call whose recorder is gone (``_move``) instead of ending it."""
    move_reinvite_seconds: float = 4.0
    move_attempt_seconds: float = 0.5
    """Each try of a move's allocation waits this long (retried within ``media_timeout``)."""


class CallHandler:
    """Runs :meth:`handle` once per incoming call (see the module docstring)."""

    def __init__(
        self,
        *,
        pool: Any,
        bus: EventBus,
        resolver: MailboxResolver,
        trusted: TrustedProxies,
        settings: CallSettings,
        recorders: RecorderWatch[ActiveCall] | None = None,
    ) -> None:
        self.pool = pool
        self.bus = bus
        self.resolver = resolver
        self.trusted = trusted
        self.settings = settings
        self.recorders = recorders
        self.loop_time = asyncio.get_running_loop().time

    def media_lost(self, active: ActiveCall, recorder_id: str = "") -> None:
        """``RecorderWatch.on_lost``: the recorder holding the call is gone. A recording call
        with another live replica to go to is moved (``_serve_session`` runs ``_move``);
        otherwise the call is ended (BYE after the ACK) and what the caller said is stored by a
        surviving recorder (recovery)."""
        call = active.call
        if call.ended:
            return
        others = self.recorders.others_alive(recorder_id) if self.recorders is not None else []
        request = active.request
        if (
            self.settings.move_calls
            and request is not None
            and request.mode == "record"
            and others
            and active.session_end is None
            and active.moves < MAX_MOVES
            and call.state in (CallState.ANSWERED, CallState.CONFIRMED)
        ):
            log.warning(
                "media-recorder lost; moving call %s",
                call.call_id,
                extra={"recorder": recorder_id, "alive": others},
            )
            active.lost_at = self.loop_time()
            active.lost.set()
            return
        log.warning("media-recorder lost; ending call %s", call.call_id)
        metrics.CALLS_MOVED.labels("not_tried").inc()
        active.media_lost = True
        call.hangup(self.loop_time())

    # ------------------------------------------------------------------ helpers

    async def publish(self, event: Event) -> None:
        """Events are for watchers: a failing publish is logged, the call goes on."""
        try:
            await self.bus.publish(event)
        except Exception as exc:  # NATS down, stream missing, ...
            log.warning("could not publish %s: %s", event.kind, exc)

    async def find_mailbox(self, call: Call) -> tuple[MailboxCandidate, User] | None:
        """The first candidate (in the resolver's order) that is a user in the database."""
        seen: set[tuple[str, str]] = set()
        addressing = InviteAddressing.from_request(call.invite)
        for candidate in self.resolver.candidates(addressing):
            key = (candidate.username, candidate.domain)
            if key in seen:
                continue
            seen.add(key)
            user = await users.get_by_address(self.pool, *key)
            if user is not None:
                return candidate, user
        access = self.resolver.access(addressing)
        if access is not None:
            # sip:voicemail@<domain>: the recorder asks which mailbox, then the PIN
            return access, users.access_number(access.username, access.domain)
        return None

    def reject(self, call: Call, status: int, *, retry_after: bool = False) -> None:
        metrics.CALLS_REJECTED.labels(str(status)).inc()
        headers = [("Retry-After", str(self.settings.retry_after_seconds))] if retry_after else []
        call.reject(status, self.loop_time(), headers=headers)

    # ------------------------------------------------------------------ the call

    async def handle(self, active: ActiveCall) -> None:
        call = active.call
        started_at = self.loop_time()
        try:
            found = await self.find_mailbox(call)
        except Exception:
            log.exception("mailbox lookup failed for %s", call.call_id)
            self.reject(call, 500)
            return
        if found is None:
            log.info("no mailbox for %s (call %s)", call.invite.uri, call.call_id)
            self.reject(call, 404)
            return
        candidate, user = found
        if user.disabled:
            # An administrator disabled the mailbox: nothing is recorded or played. 480
            # (RFC 3261 §21.4.18): the callee exists but is not reachable here now — a forked
            # call goes on ringing the user's own phones.
            log.info("mailbox %s is disabled (call %s)", user.address, call.call_id)
            self.reject(call, 480)
            return
        caller = caller_of(call, self.trusted)
        # RFC 3325: only an asserted identity from a trusted proxy can prove the caller is the
        # owner (then the recorder skips the PIN of a retrieval call).
        trusted = caller.trusted_identity and caller.uri.lower() == (
            f"sip:{user.username}@{user.domain}"
        )
        to_uri = str(_bare(call.invite.to.uri))
        base: dict[str, Any] = {
            "username": user.username,
            "domain": user.domain,
            "call_id": call.call_id,
        }
        mode = candidate.mode
        metrics.CALLS_STARTED.labels(mode, candidate.reason).inc()
        ringing = candidate.reason == "forked" and mode == "record"
        if ringing:
            # Let the user's own phones ring first (the proxy forked the call to them and us):
            # 180 at once, the timer below.
            call.ring(self.loop_time())
        effective = await users.effective_settings(self.pool, user.id)
        ring_until = self.loop_time() + (effective.ring_timeout_seconds if effective else 10)
        await self.publish(
            CallStarted(
                **base,
                mode=mode,
                from_uri=caller.uri,
                from_display=caller.display,
                to_uri=to_uri,
                reason=candidate.reason,
                diversion_cause=candidate.diversion_cause,
                agent_id=self.settings.agent_id,
            )
        )

        async def ended(reason: CallEndReason, status: int | None = None) -> None:
            metrics.CALLS_ENDED.labels(reason).inc()
            await self.publish(
                CallEnded(
                    **base,
                    mode=mode,
                    end_reason=reason,
                    duration_s=round(self.loop_time() - started_at, 3),
                    status_code=status,
                    session_id=active.session_id,
                    message_id=active.session_end.message_id if active.session_end else None,
                )
            )

        if ringing and not active.ended.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(active.ended.wait(), ring_until - self.loop_time())
        if active.ended.is_set():
            # CANCEL (or the caller gave up) before we answered: nothing allocated.
            await ended(self._end_reason(active), active.ua_end_status or 487)
            return

        request = MediaAllocateRequest(
            **base,
            mode=mode,
            message_id=candidate.message_id,
            offer_sdp=call.invite.body.decode("utf-8", "replace"),
            caller_uri=caller.uri,
            caller_display=caller.display,
            called_uri=to_uri,
            reason=candidate.reason,
            diversion_cause=candidate.diversion_cause,
            trusted=trusted,
            max_duration_s=float(effective.max_message_seconds) if effective else None,
            agent_id=self.settings.agent_id,
        )
        active.request = request
        try:
            with metrics.MEDIA_ALLOCATE_SECONDS.time():
                reply = await self.bus.allocate_media(request, timeout=self.settings.media_timeout)
        except (NoResponders, RequestTimeout, RemoteError) as exc:
            if isinstance(exc, RemoteError):
                status = RPC_ERROR_STATUS.get(exc.code, 500)
                log.info("media-recorder refused %s: %s", call.call_id, exc)
            else:
                status = 503
                log.warning("no media-recorder for %s: %s", call.call_id, exc)
            if active.ended.is_set():  # cancelled meanwhile: the 487 went out already
                await ended(self._end_reason(active), 487)
                return
            self.reject(call, status, retry_after=status == 503)
            await ended("rejected", status)
            return
        await self._serve_session(active, reply, base, mode)
        if active.ua_end_reason == "cancelled" and active.session_end is None:
            await ended(self._end_reason(active), 487)
        else:
            await ended(self._end_reason(active))

    async def _serve_session(
        self, active: ActiveCall, reply: MediaAllocateReply, base: dict[str, Any], mode: Any
    ) -> None:
        call = active.call
        active.session_id = reply.session_id
        active.recorder_id = reply.recorder_id

        async def on_session_ended(command: SessionCommand) -> None:
            if isinstance(command, SessionEnded):
                active.session_end = command
                active.session_over.set()
                call.hangup(
                    self.loop_time()
                )  # BYE (after the ACK, RFC 3261 §15); no-op if already over

        async def on_transfer(request: CallTransferRequest) -> CallTransferReply:
            return await transfer_call(active, request, self.loop_time)

        subscriptions = await self.bus.subscribe_session(
            reply.session_id, on_session_ended, commands=["ended"]
        )
        # 0 to the operator: the recorder asks us, who hold the dialog, to send the REFER
        subscriptions.append(await self.bus.serve_transfer(reply.session_id, on_transfer))
        try:
            if not active.ended.is_set():
                # A CANCEL that arrived during the allocation has already ended the call
                # (200 + 487 went out); answer() is then a no-op.
                call.answer(reply.answer_sdp.encode(), self.loop_time())
            if active.ended.is_set() and active.ua_end_reason in ("cancelled", "rejected"):
                await self._hangup_session(reply.session_id, "cancel")
                return
            if self.recorders is not None:
                self.recorders.watch(active, reply.recorder_id)
            await self.publish(
                CallAnswered(
                    **base, mode=mode, session_id=reply.session_id, recorder_id=reply.recorder_id
                )
            )
            await self._follow(active)
            if active.media_lost:
                return  # nobody to tell: the recorder is gone, its recording is recovered
            if active.session_end is None:
                reason = {
                    "remote-bye": "bye",
                    "local-bye": "shutdown" if active.shutdown else "bye",
                    "transferred": "bye",  # the caller left us for the operator
                }.get(active.ua_end_reason or "", "timeout")
                await self._hangup_session(reply.session_id, reason)
                # The recorder answers a hang-up with its "ended" (with the id of the message
                # it stored); wait a little for it so call.ended can name the message.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(active.session_over.wait(), SESSION_END_WAIT)
        finally:
            if self.recorders is not None and active.recorder_id is not None:
                self.recorders.unwatch(active, active.recorder_id)
            for sub in subscriptions:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    async def relay_digit(self, active: ActiveCall, digit: str, duration_ms: int) -> None:
        """A digit the caller sent by SIP INFO → ``sipum.media.session.<id>.dtmf`` (the
        recorder treats it as an RFC 4733 event). Before the session exists (not answered yet)
        there is nobody to tell: dropped."""
        async with active.relay_lock:
            session_id = active.session_id
            if session_id is None or active.session_over.is_set():
                log.info("INFO digit with no media session (call %s)", active.call.call_id)
                return
            try:
                await self.bus.send_command(
                    SessionDtmf(session_id=session_id, digit=digit, duration_ms=duration_ms)
                )
            except Exception as exc:
                log.warning("could not relay an INFO digit of session %s: %s", session_id, exc)

    async def _follow(self, active: ActiveCall) -> None:
        """Until the call ends; each time its recorder is lost meanwhile, move it."""
        while not active.ended.is_set():
            ended = asyncio.ensure_future(active.ended.wait())
            lost = asyncio.ensure_future(active.lost.wait())
            try:
                await asyncio.wait({ended, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (ended, lost):
                    task.cancel()
            if active.lost.is_set():
                active.lost.clear()
                if not active.ended.is_set():
                    await self._move(active)

    async def _move(self, active: ActiveCall) -> None:
        """Move the call to another replica (module doc, step 7); on failure hang up."""
        call = active.call
        assert active.request is not None and active.session_id is not None
        active.moves += 1
        offer = call.remote_sdp or call.invite.body
        request = MediaAllocateRequest(
            **active.request.model_dump(exclude={"id", "ts", "offer_sdp", "continue_session_id"}),
            offer_sdp=offer.decode("utf-8", "replace"),
            continue_session_id=active.session_id,
        )
        others = (
            self.recorders.others_alive(active.recorder_id or "")
            if self.recorders is not None
            else []
        )
        try:
            with metrics.MEDIA_ALLOCATE_SECONDS.time():
                reply = await self._allocate_move(
                    request, random.choice(others) if others else None
                )
        except (NoResponders, RequestTimeout, RemoteError) as exc:
            log.warning("call %s not moved: no media-recorder took it: %s", call.call_id, exc)
            metrics.CALLS_MOVED.labels("no_recorder").inc()
            active.media_lost = True  # the survivors' recovery stores what was said
            call.hangup(self.loop_time())
            return
        active.recorder_id = reply.recorder_id
        if self.recorders is not None:
            self.recorders.watch(active, reply.recorder_id)
        if call.ended:
            return  # the caller hung up meanwhile: the normal end tells the new session
        active.reoffer = asyncio.get_running_loop().create_future()
        try:
            call.reinvite(
                reply.answer_sdp.encode(),
                self.loop_time(),
                timeout=self.settings.move_reinvite_seconds,
            )
            outcome = await active.reoffer
        except RuntimeError as exc:  # e.g. the caller's own re-INVITE is not over yet
            outcome = ReofferFailed(call, f"not sent: {exc}")
        finally:
            active.reoffer = None
        took = self.loop_time() - active.lost_at
        if isinstance(outcome, ReofferAccepted):
            metrics.CALLS_MOVED.labels("moved").inc()
            metrics.CALL_MOVE_SECONDS.observe(took)
            log.info(
                "call moved",
                extra={
                    "call_id": call.call_id,
                    "session": reply.session_id,
                    "recorder": reply.recorder_id,
                    "took_s": round(took, 3),
                },
            )
            return
        log.warning(
            "call %s not moved: re-INVITE %s%s",
            call.call_id,
            outcome.reason,
            f" ({outcome.status})" if outcome.status else "",
        )
        metrics.CALLS_MOVED.labels("reinvite_failed").inc()
        active.move_failed = True
        call.hangup(self.loop_time())  # the new session is hung up when the call has ended

    async def _allocate_move(
        self, request: MediaAllocateRequest, target: str | None
    ) -> MediaAllocateReply:
        """The move's allocation, sent to ``target`` — a replica alive by its heartbeats —
        on its own subject, not to the queue group: the liveness link tells us of a dead
        process within milliseconds, sooner at times than the NATS server drops that
        process's queue subscription, and a request the server hands to it vanishes (seen in
        the fault test: one move in three waited for a timeout). Tried again every
        ``move_attempt_seconds`` until ``media_timeout``, always at the same replica, so a
        slow one never makes two replicas take the recording over; safe, as the allocation is
        idempotent (``continue_session_id`` is the session id: a replica still working on the
        first try answers the second with the same reply). A target without its own subject
        (no responders: an older recorder) gets the request through the queue group."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.media_timeout
        while True:
            left = deadline - loop.time()
            try:
                return await self.bus.allocate_media(
                    request,
                    timeout=max(0.05, min(self.settings.move_attempt_seconds, left)),
                    recorder_id=target,
                )
            except NoResponders:
                if target is None:
                    raise
                target = None
            except RequestTimeout:
                if deadline - loop.time() <= 0.05:
                    raise
                log.info("move of call %s: allocation not answered, again", request.call_id)

    async def _hangup_session(self, session_id: str, reason: str) -> None:
        try:
            await self.bus.send_command(SessionHangup(session_id=session_id, reason=reason))  # type: ignore[arg-type]
        except Exception as exc:
            log.warning("could not send hangup for session %s: %s", session_id, exc)

    @staticmethod
    def _end_reason(active: ActiveCall) -> CallEndReason:
        if active.ua_end_reason in ("max-duration", "session-expired"):
            return UA_END_REASON[
                active.ua_end_reason
            ]  # we ended it: our reason, not the recorder's
        if active.move_failed:
            return "media_lost"  # we ended it: the recorder was lost and the move failed
        if active.session_end is not None:
            return active.session_end.end_reason  # the recorder's word (max_length, silence…)
        if active.media_lost:
            return "media_lost"
        if active.shutdown:
            return "error"
        if active.ua_end_reason == "cancelled" and active.cancel_reason:
            # RFC 3326 §2 / RFC 3261 §9: a forking proxy cancels the other branches with
            # "Reason: SIP;cause=200" once one of them (the user's phone) answered.
            if reason_cause(active.cancel_reason) == "200":
                return "answered_elsewhere"
        return UA_END_REASON.get(active.ua_end_reason or "", "error")
