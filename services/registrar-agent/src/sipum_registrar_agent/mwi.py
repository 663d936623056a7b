"""Message Waiting Indication: the asyncio notifier around ``SubscriptionTable``.

A phone sends ``SUBSCRIBE`` with ``Event: message-summary`` (RFC 3842) for its user's
address; Kamailio routes it to the agent that registered the user's voicemail contact. Here:

1. checks (package, ``Accept``, ``Expires``: ``subscriptions.SubscriptionTable``);
2. the mailbox, found from Request-URI and To as for calls (``MailboxResolver``), else 404;
3. **only the mailbox's owner**: the SUBSCRIBE must carry Digest credentials (RFC 3261 §22,
   RFC 7616) of the mailbox user, checked against the stored HA1 — ``401`` with a challenge
   otherwise (``DigestGuard``). Refreshes inside the dialog need no new credentials (only
   the peer knows the dialog's Call-ID and tags);
4. ``200`` with ``Expires`` and at once a NOTIFY with the counts (RFC 6665 §4.2.1.2);
5. ``sipum.evt.message.*`` of a subscribed mailbox → after ``debounce`` seconds (a burst of
   events gives one NOTIFY) the counts are read again and every subscription whose last
   NOTIFY said something else gets a new one; one NOTIFY in flight per subscription (RFC 6665
   §4.2.2 — a later one waits for the earlier's final response);
6. a NOTIFY answered 481 or 408, or without any answer (timeout, transport error), ends the
   subscription (RFC 6665 §4.2.2); expiry sends ``terminated;reason=timeout``.

Subscriptions are kept in memory and in PostgreSQL (``sipum.db.mwi_subscriptions``, with the
dialog state an in-dialog NOTIFY needs, RFC 3261 §12.2.1.1): stored on the 200, updated on
each refresh and before each NOTIFY goes out (its CSeq, so whoever sends the next one in the
dialog goes higher), deleted when the subscription ends. :meth:`MwiNotifier.restore` reads
the unexpired ones of our shards back (at start, on a shard takeover) and NOTIFYs each with
the current counts, our Contact in it: NOTIFY is a target refresh request (RFC 6665; RFC
3261 §12.2), so the phone's next refresh comes to us, not to the agent that is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sipum.db import messages, mwi_subscriptions, users
from sipum.db.mwi_subscriptions import DialogKey, StoredSubscription
from sipum.db.users import User
from sipum.events import MessageCreated, MessageDeleted, MessageUpdated
from sipum_protocol.sip.dialog import Dialog, DialogId, DialogState, incoming_request_dialog_id
from sipum_protocol.sip.digest import (
    DigestError,
    SignedNonces,
    make_challenge,
    parse_authorization,
    verify_authorization,
)
from sipum_protocol.sip.message import SipRequest, new_tag
from sipum_protocol.sip.mwi import MessageSummary
from sipum_protocol.sip.transaction import Peer
from sipum_protocol.sip.transaction.events import DEFAULT_PORTS
from sipum_protocol.sip.transport.endpoint import SipTimeoutError, SipTransportError
from sipum_protocol.sip.ua import IncomingRequest
from sipum_protocol.sip.ua.aio import UserAgentEndpoint
from sipum_protocol.sip.uri import SipUri

from sipum_registrar_agent import metrics
from sipum_registrar_agent.mailbox import InviteAddressing, MailboxResolver
from sipum_registrar_agent.subscriptions import (
    MailboxKey,
    MwiLimits,
    Reply,
    Subscription,
    SubscriptionTable,
)

log = logging.getLogger("sipum.misc.mwi")

NONCE_LIFETIME = 300.0
"""Seconds a nonce of ours is good for; later the client gets a new one with ``stale=true``."""
MAX_TRACKED_NONCES = 10000
ANSWER_SECONDS = 5.0
"""Bound on answering one SUBSCRIBE (database lookups), and on reading the counts."""

FollowUp = tuple[Subscription, str | None]
"""The subscription an accepted SUBSCRIBE leaves, and the NOTIFY's ``terminated`` reason."""


class DigestGuard:
    """Digest challenges and checks for SUBSCRIBE (RFC 3261 §22.2, RFC 7616 §3.3-3.4).

    Nonces are stateless (``sipum_protocol.sip.digest.SignedNonces``, with a per-process key), so any
    number of challenges costs no memory. A replayed request is refused: ``qop=auth``
    is required, and the nonce count (``nc``) must grow per nonce (the counts of the latest
    ``MAX_TRACKED_NONCES`` nonces are kept; RFC 7616 §3.4). The wall clock is passed in.
    """

    def __init__(self, secret: bytes | None = None, lifetime: float = NONCE_LIFETIME) -> None:
        self._nonces = SignedNonces(secret or secrets.token_bytes(32), "mwi-subscribe")
        self.lifetime = lifetime
        self._counts: OrderedDict[str, int] = OrderedDict()

    def challenges(self, user: User, now: float, *, stale: bool = False) -> list[tuple[str, str]]:
        """``WWW-Authenticate`` headers: MD5, then SHA-256 when the user has that HA1.

        MD5 comes first because it is what phones (and the domain's Kamailio by default)
        speak; a client that takes the first challenge it supports (RFC 8760 §2.4) thus uses
        MD5 — a client that only does SHA-256 still finds its challenge."""
        nonce = self._nonces.issue(now)
        out = []
        for algorithm, ha1 in (("MD5", user.ha1), ("SHA-256", user.ha1_sha256)):
            if ha1:
                value = make_challenge(user.realm, nonce, algorithm=algorithm, stale=stale)
                out.append(("WWW-Authenticate", value))
        return out

    def check(self, request: SipRequest, user: User, now: float) -> str:
        """``ok``, ``stale`` (good digest, old nonce: challenge again with stale=true) or
        ``missing`` / ``bad`` (challenge again)."""
        values = request.headers.get_all("Authorization")
        if not values:
            return "missing"
        for value in values[:4]:
            try:
                cred = parse_authorization(value)
            except DigestError:
                continue
            if cred.username.lower() != user.username.lower() or cred.realm != user.realm:
                continue
            age = self._nonces.age(cred.nonce, now)
            if age is None or age < -5:
                continue
            ha1 = {"MD5": user.ha1, "SHA-256": user.ha1_sha256}.get(cred.algorithm)
            if not ha1 or cred.qop != "auth" or cred.nc is None:
                continue
            if not verify_authorization(value, request.method, ha1, realm=user.realm):
                continue
            if age > self.lifetime:
                return "stale"
            nc = int(cred.nc, 16)
            if nc <= self._counts.get(cred.nonce, 0):
                return "bad"  # replay
            self._counts[cred.nonce] = nc
            self._counts.move_to_end(cred.nonce)
            while len(self._counts) > MAX_TRACKED_NONCES:
                self._counts.popitem(last=False)
            return "ok"
        return "bad"


def summary_for(mailbox: MailboxKey, counts: messages.MailboxCounts) -> MessageSummary:
    """RFC 3842 §5.2: new = unheard outside the trash, old = heard outside the trash; sipum
    has no urgent messages."""
    return MessageSummary.for_voice(mailbox.account, counts.new, counts.old)


class MwiNotifier:
    """See the module docstring. ``on_request`` is given every ``IncomingRequest`` of the
    user agent; ``on_message_event`` every ``sipum.evt.message.*`` event."""

    def __init__(
        self,
        *,
        endpoint: UserAgentEndpoint,
        pool: Any,
        resolver: Callable[[], MailboxResolver],
        limits: MwiLimits,
        debounce: float = 0.25,
        guard: DigestGuard | None = None,
        wall_clock: Callable[[], float] = time.time,
        agent_id: str = "",
        persist: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.agent_id = agent_id
        self.persist = persist
        """Store the subscriptions in PostgreSQL (off: memory only, as before 0017)."""
        self.pool = pool
        self.resolver = resolver
        self.table = SubscriptionTable(limits)
        self.debounce = debounce
        self.guard = guard or DigestGuard()
        self.wall_clock = wall_clock
        self.accepting = True
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending: set[MailboxKey] = set()
        self._ticker: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        self._ticker = self._loop.create_task(self._expire_loop(), name="mwi-expiry")

    async def close(self) -> None:
        self.accepting = False
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro: Any, name: str) -> None:
        task = self._loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("MWI task %s failed", task.get_name(), exc_info=task.exception())

    def now(self) -> float:
        """The SIP core's clock (the endpoint's ``loop.time()``): every table call takes it."""
        return self.endpoint.now()

    # ------------------------------------------------------------------ SUBSCRIBE

    def on_request(self, event: IncomingRequest) -> None:
        self._spawn(self._handle(event), name=f"subscribe-{event.request.call_id}")

    def _reply(self, event: IncomingRequest, reply: Reply) -> None:
        metrics.MWI_REJECTED.labels(str(reply.status)).inc()
        self.endpoint.respond(
            event.transaction,
            event.request,
            reply.status,
            headers=reply.headers,
            reason=reply.reason,
        )

    async def _handle(self, event: IncomingRequest) -> None:
        request = event.request
        if request.method != "SUBSCRIBE":
            self._reply(event, Reply(405, (("Allow", "SUBSCRIBE"),)))
            return
        if not self.accepting:
            self._reply(event, Reply(503, (("Retry-After", "30"),)))
            return
        try:
            # Bounded: an answer after the subscriber's timer F (32 s) would be useless.
            async with asyncio.timeout(ANSWER_SECONDS):
                if incoming_request_dialog_id(request) is not None:
                    follow_up = await self._refresh(event)
                else:
                    follow_up = await self._subscribe(event)
        except Exception as exc:
            if isinstance(exc, TimeoutError):
                log.warning("SUBSCRIBE %s not answered in time", request.call_id)
            else:
                log.exception("SUBSCRIBE %s failed", request.call_id)
            with contextlib.suppress(Exception):
                self._reply(event, Reply(500))  # dropped if the transaction answered already
            return
        if follow_up is None:
            return
        # RFC 6665 §4.2.1.2: every accepted SUBSCRIBE is followed by a NOTIFY with the state.
        sub, terminated = follow_up
        try:
            async with asyncio.timeout(ANSWER_SECONDS):
                summary: MessageSummary | None = await self.summary(sub)
        except Exception as exc:
            log.warning("no counts for %s: %s", sub.mailbox.account, exc)
            summary = None
        await self.notify(sub, summary, terminated=terminated, force=True)

    async def _find_mailbox(self, request: SipRequest) -> tuple[MailboxKey, User] | None:
        """As for calls (Request-URI, then To), without the diversion headers: a subscription
        is for the addressed user itself."""
        addressing = InviteAddressing(request.uri, request.headers.get("To") or "", (), ())
        seen: set[tuple[str, str]] = set()
        for candidate in self.resolver().candidates(addressing):
            key = (candidate.username, candidate.domain)
            if key in seen or candidate.mode != "record":
                continue
            seen.add(key)
            user = await users.get_by_address(self.pool, *key)
            if user is not None:
                return MailboxKey.of(user.username, user.domain), user
        return None

    async def _subscribe(self, event: IncomingRequest) -> FollowUp | None:
        request = event.request
        decision = self.table.check_new(request)
        if isinstance(decision, Reply):
            self._reply(event, decision)
            return None
        found = await self._find_mailbox(request)
        if found is None:
            self._reply(event, Reply(404))
            return None
        mailbox, user = found
        verdict = self.guard.check(request, user, self.wall_clock())
        if verdict != "ok":
            # RFC 3261 §22.2: a UAS challenges with 401 + WWW-Authenticate.
            if verdict == "bad":
                log.info("SUBSCRIBE for %s with wrong credentials", mailbox.account)
            challenges = self.guard.challenges(user, self.wall_clock(), stale=verdict == "stale")
            self._reply(event, Reply(401, tuple(challenges)))
            return None
        room = self.table.check_room(mailbox)
        if room is not None:
            self._reply(event, room)
            return None
        expires = decision
        ua = self.endpoint.ua
        sub = self.table.create(
            request,
            event.peer,
            local_tag=new_tag(),
            local_contact=ua.contact_for(event.peer.transport),
            mailbox=mailbox,
            user_id=user.id,
            expires=expires,
            now=self.now(),
        )
        self.endpoint.respond(
            event.transaction,
            request,
            200,
            to_tag=sub.dialog.id.local_tag,
            # RFC 3261 §12.1.1: the dialog-creating 2xx copies Record-Route, so the phone's
            # refreshes come back through the proxy.
            headers=[
                *(("Record-Route", rr) for rr in request.headers.get_lines("Record-Route")),
                ("Expires", str(expires)),
                ("Contact", sub.dialog.local_contact),
            ],
        )
        log.info(
            "MWI subscription",
            extra={"mailbox": mailbox.account, "expires": expires, "call_id": request.call_id},
        )
        if expires:
            await self._store(sub)
        return sub, None if expires else ""

    async def _refresh(self, event: IncomingRequest) -> FollowUp | None:
        request = event.request
        sub = self.table.find(request)
        if sub is None:
            # RFC 6665 §4.1.2.2 / RFC 3261 §12.2.2: the phone starts a new subscription.
            self._reply(event, Reply(481))
            return None
        if not sub.dialog.accept_remote_cseq(request):
            self._reply(event, Reply(500, reason="CSeq Out Of Order"))
            return None
        decision = self.table.check_refresh(sub, request)
        if isinstance(decision, Reply):
            self._reply(event, decision)
            return None
        expires = decision
        sub.dialog.refresh_target(request)  # SUBSCRIBE is a target refresh (RFC 6665 §4.1.2.2)
        self.table.refresh(sub, expires, self.now())
        if expires == 0:
            await self._unstore(sub)
        else:
            await self._store_refresh(sub)
        self.endpoint.respond(
            event.transaction,
            request,
            200,
            headers=[("Expires", str(expires)), ("Contact", sub.dialog.local_contact)],
        )
        # §4.2.1.4: Expires 0 gets the final NOTIFY (terminated); a refresh an active one.
        return sub, "" if expires == 0 else None

    # ------------------------------------------------------------------ NOTIFY

    async def summary(self, sub: Subscription) -> MessageSummary:
        counts = await messages.counts(self.pool, sub.user_id)
        return summary_for(sub.mailbox, counts)

    async def _peer_for(self, sub: Subscription) -> Peer:
        """RFC 3261 §12.2.1.1 / §8.1.2: the first route (the proxy), else the remote target;
        RFC 3263 reduced to A/AAAA (as for the registrar)."""
        uri: SipUri = sub.dialog.next_hop()
        transport = (uri.params.get("transport") or "UDP").upper()
        host = uri.params.get("maddr") or uri.host
        port = uri.port or DEFAULT_PORTS.get(transport, 5060)
        host = host.strip("[]")
        if not _is_address(host):
            infos = await self._loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            host = str(infos[0][4][0])
        return Peer(transport, host, port)

    async def notify(
        self,
        sub: Subscription,
        summary: MessageSummary | None,
        *,
        terminated: str | None = None,
        force: bool = False,
    ) -> None:
        """Send one NOTIFY (waiting for the previous one's final response first)."""
        lock = sub.extra.get("lock")
        if not isinstance(lock, asyncio.Lock):
            lock = sub.extra["lock"] = asyncio.Lock()
        async with lock:
            if terminated is None:
                if sub.terminated:
                    return
                if not force and summary == sub.last_sent:
                    return
            ua = self.endpoint.ua
            try:
                peer = await self._peer_for(sub)
            except OSError as exc:
                log.warning("no address for NOTIFY of %s: %s", sub.mailbox.account, exc)
                self._end(sub)
                return
            request = self.table.notify_request(
                sub, summary, self.now(), via=ua.via_for(peer.transport), terminated=terminated
            )
            if terminated is None:
                # Before it leaves: after a crash, whoever NOTIFYs next goes above this CSeq.
                await self._store_cseq(sub, request.cseq[0])
            try:
                response = await self.endpoint.send_request(request, peer)
            except (SipTimeoutError, SipTransportError) as exc:
                # RFC 6665 §4.2.2: no answer at all — the subscriber is gone.
                metrics.MWI_NOTIFIES.labels("timeout").inc()
                log.info("NOTIFY to %s failed (%s): subscription ended", sub.mailbox.account, exc)
                self._end(sub)
                return
            metrics.MWI_NOTIFIES.labels(str(response.status)).inc()
            if 200 <= response.status < 300:
                sub.last_sent = summary
            elif response.status in (408, 481):
                # §4.2.2: the subscription does not exist at the subscriber any more.
                log.info(
                    "NOTIFY to %s answered %s: subscription ended",
                    sub.mailbox.account,
                    response.status,
                )
                self._end(sub)

    def end_mailbox(self, mailbox: MailboxKey, reason: str = "noresource") -> int:
        """The mailbox is gone (``user.deleted``): end its subscriptions with a last NOTIFY
        ``terminated;reason=noresource`` (RFC 6665 §4.1.3: do not subscribe again)."""
        subs = self.table.for_mailbox(mailbox)
        for sub in subs:
            self.table.remove(sub)
            self._spawn(
                self.notify(sub, None, terminated=reason), name=f"mwi-gone-{mailbox.account}"
            )
            self._spawn(self._unstore(sub), name=f"mwi-unstore-{sub.dialog.id.call_id}")
        return len(subs)

    def _end(self, sub: Subscription) -> None:
        if not sub.terminated:
            self.table.remove(sub)
        self._spawn(self._unstore(sub), name=f"mwi-unstore-{sub.dialog.id.call_id}")

    # ------------------------------------------------------------------ the store

    def _wall(self, loop_time: float) -> datetime:
        """A time of the loop clock as wall-clock time (the rows are wall-clock)."""
        return datetime.fromtimestamp(self.wall_clock() + (loop_time - self.now()), UTC)

    @staticmethod
    def _key(sub: Subscription) -> DialogKey:
        dialog_id = sub.dialog.id
        return DialogKey(dialog_id.call_id, dialog_id.local_tag, dialog_id.remote_tag)

    async def _stored_op(self, what: str, sub: Subscription, coro: Any) -> None:
        """Run one store operation, bounded; a failure is logged (the subscription goes on
        in memory; only a restart would lose it)."""
        try:
            async with asyncio.timeout(ANSWER_SECONDS):
                await coro
        except Exception as exc:
            log.warning("MWI store: %s of %s failed: %s", what, sub.mailbox.account, exc)

    async def _store(self, sub: Subscription) -> None:
        if not self.persist:
            return
        d = sub.dialog
        row = StoredSubscription(
            key=self._key(sub),
            user_id=sub.user_id,
            event_id=sub.event_id,
            local_uri=d.local_uri,
            remote_uri=d.remote_uri,
            remote_target=d.remote_target,
            route_set=tuple(d.route_set),
            local_seq=d.local_seq,
            remote_seq=d.remote_seq,
            peer_transport=sub.peer.transport,
            peer_host=sub.peer.host,
            peer_port=sub.peer.port,
            expires_at=self._wall(sub.expires_at),
            agent_id=self.agent_id,
        )
        await self._stored_op("save", sub, mwi_subscriptions.save(self.pool, row))

    async def _store_refresh(self, sub: Subscription) -> None:
        if not self.persist:
            return
        update = mwi_subscriptions.refresh(
            self.pool,
            self._key(sub),
            expires_at=self._wall(sub.expires_at),
            remote_seq=sub.dialog.remote_seq,
            remote_target=sub.dialog.remote_target,
            agent_id=self.agent_id,
        )
        await self._stored_op("refresh", sub, update)

    async def _store_cseq(self, sub: Subscription, cseq: int) -> None:
        if not self.persist:
            return
        update = mwi_subscriptions.advance_local_seq(self.pool, self._key(sub), cseq, self.agent_id)
        await self._stored_op("cseq", sub, update)

    async def _unstore(self, sub: Subscription) -> None:
        if not self.persist:
            return
        await self._stored_op("delete", sub, mwi_subscriptions.delete(self.pool, self._key(sub)))

    async def restore(self, accept: Callable[[MailboxKey], bool]) -> int:
        """Take over the stored, unexpired subscriptions whose mailbox ``accept`` says is ours
        (our shard at start; a taken shard): each gets a NOTIFY with the current counts at
        once, so the phone's lamp is right again. Returns how many."""
        if not self.persist:
            return 0
        wall_now = datetime.fromtimestamp(self.wall_clock(), UTC)
        async with asyncio.timeout(ANSWER_SECONDS):
            # rows that ran out while no agent held them (the phone has given up on them)
            await mwi_subscriptions.delete_expired(self.pool, wall_now)
            rows = await mwi_subscriptions.list_active(self.pool, wall_now)
        now, wall = self.now(), self.wall_clock()
        restored: list[Subscription] = []
        for row in rows:
            mailbox = MailboxKey.of(row.username, row.domain)
            if not accept(mailbox):
                continue
            peer = Peer(row.peer_transport, row.peer_host, row.peer_port)
            dialog = Dialog(
                id=DialogId(row.key.call_id, row.key.local_tag, row.key.remote_tag),
                local_uri=row.local_uri,
                remote_uri=row.remote_uri,
                remote_target=row.remote_target,
                route_set=list(row.route_set),
                secure=False,
                # ours now: the NOTIFY carries it, so the phone's refreshes come here
                local_contact=self.endpoint.ua.contact_for(peer.transport),
                local_seq=row.local_seq,
                remote_seq=row.remote_seq,
                state=DialogState.CONFIRMED,
                is_uas=True,
            )
            sub = self.table.adopt(
                dialog,
                mailbox=mailbox,
                user_id=row.user_id,
                event_id=row.event_id,
                peer=peer,
                expires_at=now + (row.expires_at.timestamp() - wall),
                now=now,
            )
            if sub is not None:
                restored.append(sub)
        for sub in restored:
            self._spawn(self._notify_counts(sub), name=f"mwi-restore-{sub.mailbox.account}")
        if restored:
            log.info("MWI subscriptions restored", extra={"subscriptions": len(restored)})
        return len(restored)

    def drop(self, accept: Callable[[MailboxKey], bool]) -> int:
        """Forget (no NOTIFY, the rows stay) the subscriptions whose mailbox ``accept`` names:
        a shard given back to its agent, which restores them from the store."""
        subs = [sub for sub in self.table if accept(sub.mailbox)]
        for sub in subs:
            self.table.remove(sub)
        return len(subs)

    async def _notify_counts(self, sub: Subscription) -> None:
        try:
            async with asyncio.timeout(ANSWER_SECONDS):
                summary: MessageSummary | None = await self.summary(sub)
        except Exception as exc:
            log.warning("no counts for %s: %s", sub.mailbox.account, exc)
            summary = None
        await self.notify(sub, summary, force=True)

    # ------------------------------------------------------------------ changes

    async def on_message_event(self, event: Any) -> None:
        """``sipum.evt.message.*``: schedule a recount for a subscribed mailbox."""
        if not isinstance(event, MessageCreated | MessageUpdated | MessageDeleted):
            return
        mailbox = MailboxKey.of(event.username, event.domain)
        if not self.table.has_mailbox(mailbox) or mailbox in self._pending:
            return
        self._pending.add(mailbox)
        self._spawn(self._recount(mailbox), name=f"mwi-{mailbox.account}")

    async def _recount(self, mailbox: MailboxKey) -> None:
        try:
            await asyncio.sleep(self.debounce)  # events of a burst ride on this one recount
        finally:
            self._pending.discard(mailbox)
        subs = self.table.for_mailbox(mailbox)
        if not subs:
            return
        async with asyncio.timeout(ANSWER_SECONDS):
            counts = await messages.counts(self.pool, subs[0].user_id)
        summary = summary_for(mailbox, counts)
        await asyncio.gather(*(self.notify(sub, summary) for sub in subs))

    async def _expire_loop(self, tick: float = 0.5) -> None:
        while True:
            for sub in self.table.expired(self.now()):
                # RFC 6665 §4.1.3: the last NOTIFY says why it ended.
                self._spawn(
                    self.notify(sub, None, terminated="timeout"), name=f"mwi-expired-{sub.mailbox}"
                )
                self._spawn(self._unstore(sub), name=f"mwi-unstore-{sub.dialog.id.call_id}")
            await asyncio.sleep(tick)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
