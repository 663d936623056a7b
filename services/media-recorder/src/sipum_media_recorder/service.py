"""The media-recorder service: allocations, sessions, crash recovery, graceful stop.

* ``sipum.media.allocate`` is served in queue group ``media-recorder``: each request reaches
  one replica. The reply carries the session id and our SDP answer (this replica's advertised
  address and a port pair of its pool). Errors are ``RpcError`` codes: ``unsupported`` (no
  common codec, unserved mode → the agent answers 488), ``not_found`` (mailbox or message),
  ``overloaded`` (port pool exhausted or stopping → 503), ``bad_request``.
* The session id is derived from the request (call id, mode, mailbox, message): a retried
  allocation gets the same id — the same reply from the replica that has the session, and on
  any replica the same idempotency key for the message, so a retry never makes two messages.
* Each session subscribes to ``sipum.media.session.<id>.hangup|dtmf`` before the reply leaves,
  runs its flow (``record`` / ``retrieve``) as in-flight work, and when it is over publishes
  ``sipum.media.session.<id>.ended`` (end reason and message id) for the agent, which sends
  BYE if the call is still up and publishes ``sipum.evt.call.ended``.
* Liveness (``liveness``): every replica publishes a heartbeat every
  ``heartbeat_interval_seconds`` and listens to the others'. Recordings a crashed process left
  in the blob store (``spool``) are stored as messages flagged ``interrupted``: this
  replica's own at start-up; another replica's as soon as its heartbeats stop (or, never heard
  from, once we have listened for its ``dead_after``); a living replica's leftover once
  untouched for ``recovery_grace_seconds`` (checked every ``recovery_interval_seconds``).
* A call moved here from a gone replica (``continue_session_id``, the agent's "move the
  call"): the session keeps the gone one's id, takes over its spooled recording (the manifest
  rewritten with our ``recorder_id`` before the reply) and records on (``record``); without a
  spooled recording the call starts again with the greeting. Recovery leaves a gone replica's
  recording alone for ``recovery_move_grace_seconds`` after its last write, so the two never
  both store it; a continue that meets a recovery already running for it is refused
  (``overloaded``: the agent falls back to BYE, the recovery stores the message).
* SIGTERM: no new allocations (heartbeat ``stopping``); calls in flight go on for
  ``drain_seconds``, then the ones still running are ended like a hang-up and their
  recordings stored; heartbeat ``stopped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import time
from typing import Any

from sipum.db import domains, messages, users
from sipum.events import (
    MediaAllocateReply,
    MediaAllocateRequest,
    RemoteError,
    SessionEnded,
)
from sipum.events.liveness import format_link
from sipum.runtime import ServiceContext
from sipum.runtime.work import InFlightWork
from sipum_protocol.media.endpoint import RtpEndpoint
from sipum_protocol.media.ports import PortPool, PortPoolExhausted
from sipum_protocol.media.recording import RecordingSession, RecordingSettings

from sipum_media_recorder import lockout, metrics
from sipum_media_recorder.access import run_access
from sipum_media_recorder.address import advertised_address
from sipum_media_recorder.audio import Prompts
from sipum_media_recorder.liveness import LinkListener, ReplicaLiveness
from sipum_media_recorder.mainmenu import run_menu
from sipum_media_recorder.negotiation import answer_offer
from sipum_media_recorder.record import run_record, silence_rules
from sipum_media_recorder.retrieve import run_retrieve
from sipum_media_recorder.session import MediaSession, Services
from sipum_media_recorder.settings import MediaRecorderSettings
from sipum_media_recorder.spool import (
    LOST_AUDIO_SECONDS,
    PART_SIZE,
    Interrupted,
    RecordingMeta,
    Spooled,
    find_interrupted,
    is_stale,
    load_for_continue,
    load_interrupted,
    manifest_key,
    remove_partial,
)
from sipum_media_recorder.store import MessageStore

log = logging.getLogger("sipum.misc.recorder")

#: How long a finished session's id is remembered, so a late retry of its allocation is refused
#: instead of starting the call again.
ENDED_MEMORY_SECONDS = 300.0


ERROR_RECOVERY_DELAY = 1.0
"""A recording session that ended in ``error`` left its recording in the spool: our recovery
looks at it after this long (not only at the next ``recovery_interval_seconds``)."""


def session_id_for(request: MediaAllocateRequest) -> str:
    """The same request (retried by the agent) always gets the same session id."""
    key = "\x1f".join(
        [
            request.call_id,
            request.mode,
            request.username.lower(),
            request.domain.lower(),
            str(request.message_id or ""),
        ]
    )
    return "s" + hashlib.sha256(key.encode()).hexdigest()[:24]


class MediaRecorderService:
    name = "media-recorder"

    def __init__(
        self,
        settings: MediaRecorderSettings,
        *,
        prompts: Prompts | None = None,
    ) -> None:
        self.settings = settings
        self.work = InFlightWork()
        self.ctx: ServiceContext | None = None
        self.recorder_id = settings.recorder_id or f"{socket.gethostname()}-{os.getpid()}"
        self.prompts = prompts
        self.port_pool = PortPool(
            settings.rtp_port_min, settings.rtp_port_max, host=settings.rtp_host
        )
        self.address = "127.0.0.1"
        self.sessions: dict[str, MediaSession] = {}
        self._allocating: dict[str, asyncio.Future[MediaAllocateReply]] = {}
        self._ended: dict[str, float] = {}
        self._subscription: Any = None
        self._direct: Any = None
        """Our own allocation subject (``media_allocate_at``: a moved call sent to us)."""
        self._recovery_task: asyncio.Task[None] | None = None
        self._announce_task: asyncio.Task[None] | None = None
        self._recovering: set[str] = set()
        self._continuing: set[str] = set()
        self._passes_due: set[float] = set()
        """Wall times of the recovery passes scheduled for recordings in their move grace."""
        """Sessions being taken over from a gone replica (recovery keeps off them)."""
        self._recovery_passes: set[asyncio.Task[list[int]]] = set()
        self.liveness: ReplicaLiveness | None = None
        self.link: LinkListener | None = None
        self.services: Services | None = None
        self.recovered: list[int] = []
        """Message ids stored by recovery (for logs and tests)."""

    # -- life cycle -------------------------------------------------------------------------

    async def start(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        s = self.settings
        self.address = advertised_address(
            configured=s.rtp_advertise_address, rtp_host=s.rtp_host, nats_url=s.nats_url
        )
        if self.prompts is None:
            self.prompts = await Prompts.open(s.prompt_dir)
        self.services = Services(
            settings=s,
            pool=ctx.pool,
            blobs=ctx.blobs,
            bus=ctx.bus,
            prompts=self.prompts,
            store=MessageStore(pool=ctx.pool, blobs=ctx.blobs, bus=ctx.bus),
            recorder_id=self.recorder_id,
        )
        link_address: str | None = None
        if s.liveness_link:
            host = s.liveness_link_host or s.rtp_host
            self.link = LinkListener(
                recorder_id=self.recorder_id,
                host=host,
                port=s.liveness_link_port,
                max_links=s.liveness_link_max,
            )
            await self.link.start()
            if host in ("", "0.0.0.0", "::"):
                host = self.address
            link_address = format_link(host, self.link.bound_port)
        self.liveness = ReplicaLiveness(
            ctx.bus,
            recorder_id=self.recorder_id,
            interval=s.heartbeat_interval_seconds,
            misses=s.heartbeat_misses,
            sessions=lambda: len(self.sessions),
            on_gone=self._replica_gone,
            link=lambda: link_address,
        )
        await self.liveness.start()
        try:
            await self.recover(own_only=False)
        except Exception:
            log.exception("recovery at start-up failed; trying again later")
        # Replicas we have not heard from yet may be alive: look again once they had time to
        # speak (then their silence means they are gone).
        self._loop_later(self.liveness.dead_after + 0.05)
        self._subscription = await ctx.bus.serve_media_allocate(self.allocate)
        self._direct = await ctx.bus.serve_media_allocate(
            self.allocate, recorder_id=self.recorder_id
        )
        # the server knows we are in the queue group once it has our SUB: a request sent right
        # after start() returns must not see "no responders"
        await ctx.bus.nc.flush()
        self._recovery_task = asyncio.create_task(self._recovery_loop(), name="recovery")
        self._announce_task = asyncio.create_task(self._announce_loop(), name="lock-announce")
        log.info(
            "media-recorder ready",
            extra={
                "recorder": self.recorder_id,
                "rtp": f"{self.address}:{self.port_pool.first}-{self.port_pool.last}",
            },
        )

    async def stop_accepting(self) -> None:
        self.work.close()
        if self.link is not None:
            # Before the "stopping" heartbeat: the link closing later is no crash.
            self.link.drain()
        if self.liveness is not None:
            await self.liveness.stop(final=False)
        for name in ("_subscription", "_direct"):
            subscription = getattr(self, name)
            if subscription is not None:
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()
                setattr(self, name, None)

    async def drain(self) -> None:
        """Let calls go on for ``drain_seconds``, then end the rest and store their recordings."""
        if self.work:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.work.wait(), self.settings.drain_seconds)
        for session in list(self.sessions.values()):
            log.info("ending session for shutdown", extra={"session": session.session_id})
            session.hangup("shutdown")
        await self.work.wait()
        for loop_task in (self._recovery_task, self._announce_task):
            if loop_task is not None:
                loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop_task
        for task in list(self._recovery_passes):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.liveness is not None:
            await self.liveness.stop(final=True)
        if self.link is not None:
            await self.link.close()

    # -- allocation ----------------------------------------------------------------------------

    async def allocate(self, request: MediaAllocateRequest) -> MediaAllocateReply:
        session_id = request.continue_session_id or session_id_for(request)
        existing = self.sessions.get(session_id)
        if existing is not None:
            return existing.reply
        pending = self._allocating.get(session_id)
        if pending is not None:
            return await asyncio.shield(pending)
        if session_id in self._ended:
            raise RemoteError("bad_request", f"session {session_id} has already ended")
        if not self.work.accepting:
            raise RemoteError("overloaded", f"recorder {self.recorder_id} is stopping")
        future: asyncio.Future[MediaAllocateReply] = asyncio.get_running_loop().create_future()
        self._allocating[session_id] = future
        try:
            if request.continue_session_id is not None:
                reply = await self._allocate_continued(session_id, request)
            else:
                reply = await self._allocate(session_id, request)
        except BaseException as exc:
            code = exc.code if isinstance(exc, RemoteError) else "internal"
            metrics.ALLOCATIONS.labels(code).inc()
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        else:
            metrics.ALLOCATIONS.labels("ok").inc()
            future.set_result(reply)
            return reply
        finally:
            del self._allocating[session_id]

    async def _allocate_continued(
        self, session_id: str, request: MediaAllocateRequest
    ) -> MediaAllocateReply:
        """Take over the recording of a session whose replica is gone (see module doc)."""
        svc = self.services
        assert svc is not None
        if request.mode != "record":
            raise RemoteError("unsupported", "only a recording can be continued")
        if session_id in self._recovering:
            raise RemoteError("overloaded", f"session {session_id} is being recovered")
        self._continuing.add(session_id)
        try:
            # the manifest and the listing only: the chunks are fetched while we record on
            spooled = await load_for_continue(svc.blobs, session_id)
            if spooled is not None:
                try:
                    if spooled.next_index >= 10 * PART_SIZE:
                        raise RemoteError("overloaded", f"session {session_id} moved too often")
                    meta = spooled.meta
                    meta.recorder_id = self.recorder_id
                    if meta.ended is None:
                        # what the caller said while nobody recorded: since the recording
                        # started, minus what is spooled (the listed sizes; both clocks are
                        # wall clocks, NTP keeps them close)
                        elapsed = time.time() - meta.received_datetime.timestamp()
                        lost = elapsed - spooled.seconds
                        meta.lost_seconds = round(max(meta.lost_seconds, lost, 0.0), 3)
                    # ours from now on: a sweeping replica sees a live owner and keeps off.
                    # Written side by side with the allocation (mailbox, port, subscriptions),
                    # done before the reply.
                    rewrite = asyncio.ensure_future(
                        svc.blobs.put(
                            manifest_key(session_id),
                            meta.to_json(),
                            content_type="application/json",
                        )
                    )
                    spooled.taken_over = rewrite
                except BaseException:
                    spooled.cancel()
                    raise
            try:
                reply = await self._allocate(session_id, request, spooled=spooled)
            except BaseException:
                if spooled is not None:
                    spooled.cancel()
                    with contextlib.suppress(Exception):
                        await rewrite
                    # The manifest names us now but no session of ours holds it: our own
                    # recovery stores it (the agent, refused, ends the call).
                    self._loop_later(0.0)
                raise
            if spooled is not None:
                try:
                    await rewrite
                except Exception:
                    # the session's spool writes the manifest again first thing (and before
                    # each chunk until it succeeds): only the window until then is at risk
                    log.exception("cannot rewrite the manifest of %s", session_id)
            return reply
        finally:
            self._continuing.discard(session_id)

    async def _allocate(
        self, session_id: str, request: MediaAllocateRequest, *, spooled: Spooled | None = None
    ) -> MediaAllocateReply:
        svc = self.services
        assert svc is not None and self.ctx is not None
        if request.mode not in ("record", "retrieve", "menu", "access"):
            raise RemoteError(
                "unsupported", f"mode {request.mode!r} is not served by this recorder"
            )
        negotiated = answer_offer(request.offer_sdp, address=self.address)
        if request.mode == "access":
            # the voicemail access number: the caller says which mailbox (access.py)
            domain = await domains.get_by_name(svc.pool, request.domain)
            if domain is None:
                raise RemoteError("not_found", f"no domain {request.domain}")
            user: users.User | None = users.access_number(request.username, domain.name, domain.id)
        else:
            user = await users.get_by_address(svc.pool, request.username, request.domain)
        if user is None:
            raise RemoteError("not_found", f"no mailbox {request.username}@{request.domain}")
        message = None
        if request.mode == "retrieve":
            if request.message_id is None:
                raise RemoteError("bad_request", "retrieve needs message_id")
            message = await messages.get_for_user(svc.pool, user.id, request.message_id)
            if message is None:
                raise RemoteError("not_found", f"no message {request.message_id} in this mailbox")
        plan = negotiated.with_port(9)
        try:
            endpoint = await RtpEndpoint.open(
                self.port_pool,
                codec=plan.codec,
                payload_type=plan.payload_type,
                telephone_event_pt=plan.telephone_event_pt,
                remote=plan.remote,
                remote_rtcp=plan.remote_rtcp,
                cname=f"{self.recorder_id}@{self.address}",
            )
        except PortPoolExhausted as exc:
            raise RemoteError("overloaded", str(exc)) from exc
        plan = negotiated.with_port(endpoint.local_port)
        reply = MediaAllocateReply(
            session_id=session_id, answer_sdp=plan.answer_sdp, recorder_id=self.recorder_id
        )
        session = MediaSession(
            session_id=session_id,
            request=request,
            user=user,
            endpoint=endpoint,
            plan=plan,
            reply=reply,
            services=svc,
            message=message,
            spooled=spooled,
        )
        try:
            session.subscriptions = await self.ctx.bus.subscribe_session(
                session_id, session.on_command, commands=["hangup", "dtmf"]
            )
            await self.ctx.bus.nc.flush()  # subscribed before the agent can send a hang-up
            if not self.work.accepting:  # SIGTERM arrived while we were allocating
                raise RemoteError("overloaded", f"recorder {self.recorder_id} is stopping")
            self.work.spawn(self._run(session), name=f"session-{session_id}")
        except BaseException:
            await session.close()
            raise
        self.sessions[session_id] = session
        metrics.ACTIVE_SESSIONS.inc()
        log.info(
            "session allocated",
            extra={
                "session": session_id,
                "mode": request.mode,
                "mailbox": user.address,
                "codec": plan.codec.name,
                "rtp": f"{self.address}:{endpoint.local_port}",
                "continued": spooled is not None,
                "lost_s": spooled.meta.lost_seconds if spooled is not None else None,
            },
        )
        return reply

    async def _run(self, session: MediaSession) -> None:
        reason: str = "error"
        message_id: int | None = None
        try:
            if session.request.mode == "record":
                reason, message_id = await run_record(session)
            elif session.request.mode == "menu":
                reason, message_id = await run_menu(session)
            elif session.request.mode == "access":
                reason, message_id = await run_access(session)
            else:
                reason, message_id = await run_retrieve(session)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session failed", extra={"session": session.session_id})
        finally:
            self.sessions.pop(session.session_id, None)
            self._remember_ended(session.session_id)
            metrics.ACTIVE_SESSIONS.dec()
            metrics.SESSIONS_ENDED.labels(session.request.mode, reason).inc()
            await session.close()
            if session.request.mode == "record" and reason == "error":
                # a recording that could not be stored (or whose moved audio could not be
                # fetched) is left in the spool, ours: our recovery tries it soon
                self._loop_later(ERROR_RECOVERY_DELAY)
        assert self.ctx is not None
        with contextlib.suppress(Exception):
            await self.ctx.bus.send_command(
                SessionEnded(
                    session_id=session.session_id,
                    call_id=session.request.call_id,
                    end_reason=reason,  # type: ignore[arg-type]
                    message_id=message_id,
                )
            )
        log.info(
            "session ended",
            extra={"session": session.session_id, "reason": reason, "message_id": message_id},
        )

    async def _still_unclaimed(self, item: Interrupted) -> bool:
        """The manifest still names the replica we decided on (another replica may have taken
        the call over since we listed it): the last look before storing."""
        svc = self.services
        assert svc is not None
        try:
            now = RecordingMeta.from_json(await svc.blobs.get(manifest_key(item.session_id)))
        except Exception:
            return False  # stored and removed meanwhile (or unreadable: leave it)
        return now.recorder_id == item.meta.recorder_id

    def _remember_ended(self, session_id: str) -> None:
        now = time.monotonic()
        self._ended[session_id] = now
        for sid, at in list(self._ended.items()):
            if now - at > ENDED_MEMORY_SECONDS:
                del self._ended[sid]

    # -- crash recovery ----------------------------------------------------------------------

    async def _recovery_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.recovery_interval_seconds)
            try:
                await self.recover(own_only=False)
            except Exception:
                log.exception("recovery pass failed")

    async def _announce_loop(self) -> None:
        """Locks whose ``mailbox.locked`` never got out are published again
        (``lockout.announce_untold``)."""
        while True:
            await asyncio.sleep(self.settings.lockout_announce_retry_seconds)
            assert self.ctx is not None
            try:
                await lockout.announce_untold(
                    pool=self.ctx.pool,
                    bus=self.ctx.bus,
                    settings=self.settings,
                    recorder_id=self.recorder_id,
                )
            except Exception:
                log.exception("lock announcement pass failed")

    def _replica_gone(self, recorder_id: str) -> None:
        """Heartbeats of ``recorder_id`` stopped: store its recordings now."""
        log.info("recovering the recordings of a gone replica", extra={"recorder": recorder_id})
        self._loop_later(0.0)

    def _look_again_at(self, when: float, now: float) -> None:
        """A recovery pass at wall time ``when`` (one per distinct time is enough)."""
        due = round(when + 0.05, 1)
        self._passes_due = {d for d in self._passes_due if d > now}
        if due in self._passes_due:
            return
        self._passes_due.add(due)
        self._loop_later(max(0.0, due - now))

    def _loop_later(self, delay: float) -> None:
        async def later() -> list[int]:
            await asyncio.sleep(delay)
            return await self.recover(own_only=False)

        task = asyncio.create_task(later(), name="recovery-pass")
        self._recovery_passes.add(task)
        task.add_done_callback(self._recovery_pass_done)

    def _recovery_pass_done(self, task: asyncio.Task[list[int]]) -> None:
        self._recovery_passes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("recovery pass failed", exc_info=task.exception())

    def _may_recover(self, item: Interrupted, *, own_only: bool, now: float) -> bool:
        if item.meta.recorder_id == self.recorder_id:
            return True  # ours, and not one of our live sessions: left by our previous life
        if own_only:
            return False
        if self.liveness is not None and self.liveness.presumed_gone(item.meta.recorder_id):
            # Its replica stopped beating (or never did while we listened); the agent may be
            # moving the call to another replica that takes the recording over: not before it
            # had the time to (a moved recording's manifest names its new, living replica).
            grace = self.settings.recovery_move_grace_seconds
            if is_stale(item, grace=grace, now=now):
                return True
            self._look_again_at(item.last_write + grace, now)
            return False
        # Its replica is alive: only a leftover it has not touched for the grace period.
        return is_stale(item, grace=self.settings.recovery_grace_seconds, now=now)

    async def recover(self, *, own_only: bool) -> list[int]:
        """Store what interrupted recordings hold; returns the message ids stored.

        ``own_only``: only this replica's recordings (none of ours can be live); otherwise also
        those of replicas that are gone (no heartbeat) and leftovers of living ones untouched
        for ``recovery_grace_seconds``."""
        svc = self.services
        assert svc is not None
        found, orphans = await find_interrupted(svc.blobs)
        stored: list[int] = []
        now = time.time()
        grace = self.settings.recovery_grace_seconds
        for item in found:
            if (
                item.session_id in self.sessions
                or item.session_id in self._recovering
                or item.session_id in self._continuing
            ):
                continue
            if not self._may_recover(item, own_only=own_only, now=now):
                continue
            self._recovering.add(item.session_id)
            try:
                message_id = await self._recover_one(item)
            except Exception:
                log.exception("recovering %s failed", item.session_id)
                continue
            finally:
                self._recovering.discard(item.session_id)
            if message_id is not None:
                stored.append(message_id)
        for key in orphans:
            with contextlib.suppress(Exception):
                info = await svc.blobs.stat(key)
                if now - info.modified.timestamp() >= grace:
                    await svc.blobs.delete(key)
        self.recovered.extend(stored)
        return stored

    async def _recover_one(self, item: Interrupted) -> int | None:
        svc = self.services
        assert svc is not None
        meta = item.meta
        pcm = await load_interrupted(svc.blobs, item)
        if not await self._still_unclaimed(item):
            log.info("recording %s was taken over by another replica", meta.session_id)
            return None
        # Run the audio through the recording engine again: the same silence rules decide
        # whether enough was said to keep it, and trailing silence is trimmed the same way.
        seconds = len(pcm) / 2 / meta.sample_rate
        # The owner's min_message_seconds as it is now (the recorder's setting without one).
        _, owner_min_voice = silence_rules(
            await users.effective_settings(svc.pool, meta.owner_id), self.settings
        )
        # Cut off by a crash (no end reason in the manifest): the caller did not choose to
        # stop, so a short fragment with voice is kept, flagged interrupted. So is a finished
        # one that lost audio while its call moved.
        interrupted = meta.ended is None or meta.lost_seconds > LOST_AUDIO_SECONDS
        min_voice = (
            min(self.settings.recovery_min_voice_seconds, owner_min_voice)
            if interrupted
            else owner_min_voice
        )
        engine = RecordingSession(
            RecordingSettings(
                sample_rate=meta.sample_rate,
                silence_threshold_dbfs=self.settings.silence_threshold_dbfs,
                max_silence=max(self.settings.max_silence_seconds, seconds + 1.0),
                min_voice=min_voice,
                max_length=seconds + 1.0,
                hold_back=0.0,
            ),
            now=0.0,
        )
        engine.feed(pcm, now=0.0)
        engine.hangup(now=0.0)
        result = engine.result
        assert result is not None
        kept = b"".join(chunk.pcm for chunk in engine.drain_chunks())
        message_id = None
        if result.discarded:
            log.info("interrupted recording %s too short; dropped", meta.session_id)
        else:

            async def save_meta() -> None:
                await svc.blobs.put(manifest_key(meta.session_id), meta.to_json())

            message = await svc.store.store(
                meta, kept, save_meta=save_meta, interrupted=interrupted
            )
            message_id = None if message is None else message.id
            if message is not None:
                metrics.MESSAGES_STORED.labels("recovery").inc()
                if interrupted:
                    metrics.MESSAGES_INTERRUPTED.inc()
            log.info(
                "interrupted recording stored",
                extra={
                    "session": meta.session_id,
                    "message_id": message_id,
                    "duration_s": round(result.duration, 2),
                    "voiced_s": round(result.voiced_duration, 2),
                    "interrupted": interrupted,
                    "from_recorder": meta.recorder_id,
                },
            )
        await remove_partial(svc.blobs, meta.session_id)
        return message_id
