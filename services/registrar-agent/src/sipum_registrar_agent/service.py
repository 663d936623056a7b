"""The registrar-agent service: life cycle on the shared runtime (`sipum.runtime`).

One SIP socket, the user agent's (``sip_host:sip_port``, UDP): it is the contact we register
for every user — where the proxy forks INVITEs to, handled by
:mod:`sipum_registrar_agent.calls` — and it also sends the REGISTERs of every user we own
through the shared ``RegistrationClient`` (digest auth from the stored HA1, refresh, back-off,
window of ``registrations_in_flight``, ``registrations_per_second``).

Start: subscribe to ``sipum.evt.user.*`` and ``sipum.evt.domain.*`` (durable consumers, new
events only — created before the lists are read, so no user created meanwhile is missed), then
load every domain's registrar (setting ``registrar``; unset: ours) and every user, and register
those of our shard, each at its domain's registrar. A ``domain.updated`` naming ``registrar``
moves the domain's users: de-registered at the old registrar, registered at the new one.
With several agents, ``shard_watch.ShardWatch`` exchanges heartbeats with the others and takes
over (and gives back) the shard of one that went silent; MWI subscriptions are restored from
PostgreSQL for our shard at start and for a taken shard. SIGTERM: stop taking calls and
events, de-register every user (``Expires: 0``, so the proxy stops forking to us), let calls
in progress finish for ``call_drain_seconds``, hang up the rest, close the sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from typing import Any

from sipum.db import domains, users
from sipum.db.settings import parse_registrar
from sipum.events import (
    DomainUpdated,
    EventBus,
    EventSubscription,
    UserCreated,
    UserDeleted,
    UserUpdated,
)
from sipum.events import RegistrationChanged as RegistrationChangedEvent
from sipum.runtime import ServiceContext
from sipum.runtime.work import InFlightWork
from sipum_protocol.sip.registration import (
    RegistrationChanged,
    RegistrationClient,
    RegistrationPool,
    RegistrationState,
)
from sipum_protocol.sip.transaction import Peer
from sipum_protocol.sip.transport import EndpointConfig
from sipum_protocol.sip.ua import (
    CallCancelled,
    CallConfirmed,
    CallEnded,
    DtmfReceived,
    IncomingCall,
    IncomingRequest,
    ReofferAccepted,
    ReofferFailed,
    SessionTimerConfig,
    TransferEnded,
    UserAgentEvent,
)
from sipum_protocol.sip.ua.aio import UserAgentEndpoint
from sipum_protocol.sip.uri import parse_uri

from sipum_registrar_agent import metrics
from sipum_registrar_agent.calls import ActiveCall, CallHandler, CallSettings, TrustedProxies
from sipum_registrar_agent.mailbox import MailboxResolver
from sipum_registrar_agent.mwi import MwiNotifier
from sipum_registrar_agent.recorders import RecorderWatch
from sipum_registrar_agent.registrations import UserRegistrations, shard_of
from sipum_registrar_agent.settings import RegistrarAgentSettings
from sipum_registrar_agent.shard_watch import ShardWatch
from sipum_registrar_agent.subscriptions import MailboxKey, MwiLimits
from sipum_registrar_agent.takeover import ShardTakeover
from sipum_registrar_agent.transfer import transfer_ended

#: ``user.updated`` ``changed`` entries that alter what the agent's REGISTER for the user
#: carries (its digest credentials, its address of record, its contact): re-register at once.
IDENTITY_CHANGES = frozenset({"password", "username", "realm", "contact"})

log = logging.getLogger("sipum.misc.registrar_agent")

USER_EVENTS_DURABLE = "registrar-agent"
DOMAIN_EVENTS_DURABLE = "registrar-agent-domains"
MESSAGE_EVENTS_DURABLE = "registrar-agent-mwi"
HANGUP_GRACE = 3.0


def split_hostport(text: str, default_port: int = 5060) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
        return host, int(port) if port else default_port
    host, sep, port = text.rpartition(":")
    if not sep or ":" in host:
        return text, default_port
    return host, int(port)


async def numeric_address(host: str) -> str:
    """The first address ``host`` resolves to (``-n``: numeric IPs in Via)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    return str(infos[0][4][0])


class RegistrarAgentService:
    name = "registrar-agent"

    def __init__(self, settings: RegistrarAgentSettings) -> None:
        self.settings = settings
        self.work = InFlightWork()
        self.ctx: ServiceContext | None = None
        self.agent_id = settings.agent_id or f"{socket.gethostname()}-{os.getpid()}"
        self.ua_endpoint: UserAgentEndpoint | None = None
        self.client: RegistrationClient | None = None
        self.registrations: UserRegistrations | None = None
        self.calls: CallHandler | None = None
        self.recorders: RecorderWatch[ActiveCall] | None = None
        self.active: set[ActiveCall] = set()
        self._digit_relays: set[asyncio.Task[None]] = set()
        """Digits by SIP INFO on their way to the recorders (strong references)."""
        self._user_events: EventSubscription | None = None
        self._domain_events: EventSubscription | None = None
        self.domain_registrars: dict[str, tuple[str, Peer]] = {}
        """Domains with a registrar of their own: its setting's text and address."""
        self.unresolved_registrars: dict[str, str] = {}
        """Domains whose registrar does not resolve (their users wait for a fix)."""
        self.known_domains: set[str] = set()
        self._granted_at: dict[str, str] = {}
        """AOR → the registrar (as configured) that granted its binding."""
        self._message_events: EventSubscription | None = None
        self.mwi: MwiNotifier | None = None
        self._publishing: set[asyncio.Task[Any]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self.shard_watch: ShardWatch | None = None
        self.contact_host = ""
        self.via_host = ""

    # ------------------------------------------------------------------ life cycle

    @property
    def bus(self) -> EventBus:
        assert self.ctx is not None
        bus: EventBus = self.ctx.bus
        return bus

    @property
    def sip_address(self) -> tuple[str, int]:
        """Where INVITEs arrive (our registered contact), once started."""
        assert self.ua_endpoint is not None
        return self.ua_endpoint.addresses["UDP"]

    async def start(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        s = self.settings
        advertise = s.sip_advertise or s.sip_host
        if advertise in ("0.0.0.0", "::", ""):
            advertise = socket.gethostname()
        self.contact_host = advertise
        # -n (the old sipum flag): a numeric address in Via, a name is kept for Contact.
        self.via_host = await numeric_address(advertise) if s.numeric_via else advertise

        self.ua_endpoint = UserAgentEndpoint(
            EndpointConfig(host=s.sip_host, udp_port=s.sip_port, advertised_host=self.via_host),
            on_event=self._on_call_event,
            request_methods=("SUBSCRIBE",) if s.mwi_enabled else (),
            session_timers=(
                SessionTimerConfig(
                    min_se=s.min_se_seconds,
                    default_expires=s.session_expires_seconds,
                    max_expires=s.session_expires_seconds,
                )
                if s.session_timers
                else None
            ),
            max_call_duration=s.max_call_seconds,
        )
        await self.ua_endpoint.start()
        ua_host, ua_port = self.ua_endpoint.addresses["UDP"]

        registrar_host, registrar_port = split_hostport(s.registrar)
        registrar = Peer("UDP", await numeric_address(registrar_host), registrar_port)
        pool = RegistrationPool(
            max_in_flight=s.registrations_in_flight, max_rate=s.registrations_per_second
        )
        self.client = RegistrationClient(
            pool,
            registrar,
            self.ua_endpoint,  # its Via carries via_host (numeric under -n)
            on_change=self._on_registration_change,
        )
        self.registrations = UserRegistrations(
            self.client,
            contact_host=self.contact_host,
            contact_port=ua_port,
            expires=s.register_expires,
            shard_index=s.shard_index,
            shard_count=s.shard_count,
            registrar_of=self.registrar_of,
        )
        self.client.on_outcome = self.registrations.sweep
        local_hosts = {ua_host, self.contact_host, self.via_host}
        if s.recorder_liveness:
            self.recorders = RecorderWatch(
                ctx.bus,
                on_lost=lambda active, rid: (
                    self.calls.media_lost(active, rid) if self.calls else None
                ),
                unknown_after=s.recorder_unknown_seconds,
                links=s.recorder_liveness_links,
            )
            await self.recorders.start()
        self.calls = CallHandler(
            pool=ctx.pool,
            bus=ctx.bus,
            resolver=MailboxResolver(
                default_domain=s.domain, local_hosts=local_hosts, access_user=s.voicemail_user
            ),
            trusted=TrustedProxies(s.trusted_proxies),
            settings=CallSettings(
                agent_id=self.agent_id,
                media_timeout=s.media_timeout,
                retry_after_seconds=s.retry_after_seconds,
                move_calls=s.recorder_move_calls,
                move_reinvite_seconds=s.recorder_move_reinvite_seconds,
                move_attempt_seconds=s.recorder_move_attempt_seconds,
            ),
            recorders=self.recorders,
        )
        # Subscribe before reading the users: a user created in between is not missed (and
        # one seen twice is harmless: adding is idempotent).
        durable = USER_EVENTS_DURABLE
        if s.shard_count > 1:
            durable = f"{USER_EVENTS_DURABLE}-{s.shard_index}-of-{s.shard_count}"
        self._user_events = await ctx.bus.subscribe(
            "user.*", self._on_user_event, durable=durable, start="new"
        )
        self._domain_events = await ctx.bus.subscribe(
            "domain.*",
            self._on_domain_event,
            durable=DOMAIN_EVENTS_DURABLE + durable[len(USER_EVENTS_DURABLE) :],
            start="new",
        )
        for domain in await domains.list_all(ctx.pool):
            await self._learn_registrar(domain)
        everyone = await users.list_users(ctx.pool)
        served = {u.domain for u in everyone}
        self.calls.resolver = MailboxResolver(
            default_domain=s.domain,
            domains=served,
            local_hosts=local_hosts,
            access_user=s.voicemail_user,
        )
        if s.mwi_enabled:
            await self._start_mwi(ctx, durable_suffix=durable[len(USER_EVENTS_DURABLE) :])
        # A disabled mailbox (docs/administration.md) has no voicemail contact.
        added = sum(self.registrations.add(user) for user in everyone if not user.disabled)
        for state in RegistrationState:
            metrics.REGISTRATIONS.labels(state.value).set_function(
                functools.partial(pool.count, state)
            )
        self.client.start()
        if s.shard_count > 1 and s.shard_takeover:
            self.shard_watch = ShardWatch(
                ctx.bus,
                ShardTakeover(
                    agent_id=self.agent_id,
                    shard_index=s.shard_index,
                    shard_count=s.shard_count,
                    dead_after=s.agent_dead_after_seconds,
                    contact=f"{self.contact_host}:{ua_port}",
                ),
                interval=s.agent_heartbeat_seconds,
                ready=self.registrations.settled,
                on_take=self._take_shard,
                on_release=self._release_shard,
                on_own_shard_free=self._restore_own_mwi,
            )
            await self.shard_watch.start()
            registrations = self.registrations
            metrics.SHARDS_SERVED.set_function(lambda: len(registrations.shards))
        else:
            self._restore_own_mwi()  # nobody else could have served our shard
        log.info(
            "registering users",
            extra={
                "users": added,
                "of": len(everyone),
                "registrar": s.registrar,
                "contact": f"{self.contact_host}:{ua_port}",
            },
        )

    async def _start_mwi(self, ctx: ServiceContext, durable_suffix: str) -> None:
        """RFC 3842 notifier; it needs every ``message.*`` event of the users it may serve,
        so the durable consumer is per shard (like the user events)."""
        s = self.settings
        assert self.ua_endpoint is not None and self.calls is not None
        calls = self.calls
        self.mwi = MwiNotifier(
            endpoint=self.ua_endpoint,
            pool=ctx.pool,
            resolver=lambda: calls.resolver,
            limits=MwiLimits(
                min_expires=s.mwi_min_expires,
                max_expires=s.mwi_max_expires,
                default_expires=s.mwi_default_expires,
                max_subscriptions=s.mwi_max_subscriptions,
            ),
            debounce=s.mwi_debounce_seconds,
            agent_id=self.agent_id,
        )
        mwi = self.mwi
        mwi.start()
        metrics.MWI_SUBSCRIPTIONS.set_function(lambda: len(mwi.table))
        self._message_events = await ctx.bus.subscribe(
            "message.*",
            self.mwi.on_message_event,
            durable=MESSAGE_EVENTS_DURABLE + durable_suffix,
            start="new",
        )

    async def stop_accepting(self) -> None:
        self.work.close()  # new INVITEs now get 503 (see _on_call_event)
        for name in ("_user_events", "_domain_events", "_message_events"):
            subscription = getattr(self, name)
            if subscription is not None:
                with contextlib.suppress(Exception):
                    await subscription.stop()
                setattr(self, name, None)
        if self.mwi is not None:
            await self.mwi.close()
        if self.registrations is not None:
            self.registrations.stopping = True  # no moved binding is registered again
        if self.shard_watch is not None:
            # "stopping": the others take our shard over now, not after the silence timeout.
            await self.shard_watch.stop(final=False)
        for task in list(self._background):
            task.cancel()  # a takeover still loading its users adds nobody now
        if self.client is not None:
            # Expires: 0 for every user, so the proxy stops forking new calls to us.
            done = await self.client.stop(grace=self.settings.deregister_seconds)
            if not done:
                log.warning("not every de-registration finished in time")
        if self.shard_watch is not None:
            await self.shard_watch.stop(final=True)

    async def drain(self) -> None:
        try:
            async with asyncio.timeout(self.settings.call_drain_seconds):
                await self.work.wait()
        except TimeoutError:
            log.warning("hanging up calls still going", extra={"calls": len(self.active)})
            for active in list(self.active):
                active.shutdown = True
                active.call.hangup(self.now())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HANGUP_GRACE):
                    await self.work.wait()
        if self._publishing:
            await asyncio.wait(set(self._publishing), timeout=2.0)
        # Let the BYE / final responses leave before the sockets close.
        await asyncio.sleep(0.05)
        await self.close()

    def now(self) -> float:
        """The clock of the SIP core (the endpoint's ``loop.time()``), for call actions."""
        assert self.ua_endpoint is not None
        return self.ua_endpoint.now()

    async def close(self) -> None:
        if self.recorders is not None:
            await self.recorders.close()
        if self.ua_endpoint is not None:
            await self.ua_endpoint.close()

    # ------------------------------------------------------------------ calls

    def _on_call_event(self, event: UserAgentEvent) -> None:
        if isinstance(event, IncomingRequest):
            if self.mwi is not None:
                self.mwi.on_request(event)
            elif self.ua_endpoint is not None:  # still starting
                self.ua_endpoint.respond(
                    event.transaction, event.request, 503, headers=[("Retry-After", "5")]
                )
            return
        if isinstance(event, IncomingCall):
            call = event.call
            if not self.work.accepting or self.calls is None:
                # RFC 3261 §21.5.4: 503 with Retry-After while we stop.
                call.reject(
                    503,
                    self.now(),
                    headers=[("Retry-After", str(self.settings.retry_after_seconds))],
                )
                return
            active = ActiveCall(call)
            call.user_data = active
            self.active.add(active)
            metrics.ACTIVE_CALLS.inc()
            task = self.work.spawn(self.calls.handle(active), name=f"call-{call.call_id}")
            task.add_done_callback(functools.partial(self._call_done, active))
            return
        state = getattr(event.call, "user_data", None)
        if not isinstance(state, ActiveCall):
            return
        if isinstance(event, CallEnded):
            state.on_ended(event.reason, event.status)
        elif isinstance(event, CallCancelled):
            state.cancel_reason = event.reason  # CallEnded follows
        elif isinstance(event, CallConfirmed):
            state.confirmed.set()
        elif isinstance(event, TransferEnded):
            transfer_ended(state, event)  # before CallEnded when it succeeded
        elif isinstance(event, DtmfReceived) and self.calls is not None:
            # not work.spawn: digits of calls still in progress while we drain go on too
            relay = asyncio.create_task(
                self.calls.relay_digit(state, event.digit, event.duration_ms),
                name=f"dtmf-{event.call.call_id}",
            )
            self._digit_relays.add(relay)
            relay.add_done_callback(self._digit_relays.discard)
        elif isinstance(event, ReofferAccepted | ReofferFailed):
            state.on_reoffer(event)  # our re-INVITE of a call being moved

    def _call_done(self, active: ActiveCall, task: asyncio.Task[Any]) -> None:
        self.active.discard(active)
        metrics.ACTIVE_CALLS.dec()
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("call %s failed", active.call.call_id, exc_info=error)
            if not active.call.ended:
                with contextlib.suppress(Exception):
                    active.call.hangup(self.now())

    # ------------------------------------------------------------------ shards

    def _in_shard(self, shard: int) -> Any:
        count = self.settings.shard_count
        return lambda key: shard_of(key.username, key.domain, count) == shard

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    def _restore_own_mwi(self) -> None:
        """Our shard is ours alone (at start, or a taker gave it back): the stored MWI
        subscriptions of its users are NOTIFYed by us from now on."""
        self._spawn(self._restore_mwi(self.settings.shard_index), name="mwi-restore")

    async def _restore_mwi(self, shard: int, attempts: int = 5, retry_after: float = 1.0) -> None:
        """``MwiNotifier.restore`` for one shard, again a few times if the database is away."""
        for attempt in range(attempts):
            if self.mwi is None or not self.work.accepting:
                return
            try:
                await self.mwi.restore(self._in_shard(shard))
                return
            except Exception as exc:
                log.warning("MWI subscriptions of shard %s not restored: %s", shard, exc)
                if attempt + 1 < attempts:
                    await asyncio.sleep(retry_after)

    def _take_shard(self, shard: int) -> None:
        """A silent agent's shard: REGISTER its users with our contact (calls for them reach
        us; we answer for every mailbox anyway), and NOTIFY its stored MWI subscriptions."""
        assert self.registrations is not None
        self.registrations.shards.add(shard)  # user events for it count from now on
        metrics.SHARD_TAKEOVERS.inc()
        self._spawn(self._load_shard(shard), name=f"take-shard-{shard}")

    async def _load_shard(self, shard: int, retry_after: float = 1.0) -> None:
        assert self.ctx is not None and self.registrations is not None
        while True:  # the database may be away a moment: the shard must not stay unserved
            try:
                everyone = await users.list_users(self.ctx.pool)
                break
            except Exception as exc:
                log.warning("users of taken shard %s not read (%s): retrying", shard, exc)
                await asyncio.sleep(retry_after)
            if shard not in self.registrations.shards:
                return
        if shard not in self.registrations.shards:
            return  # given back meanwhile
        added = self.registrations.take(shard, everyone)
        log.warning("took over a shard", extra={"shard": shard, "users": added})
        await self._restore_mwi(shard)

    def _release_shard(self, shard: int, deregister: bool) -> None:
        """Its agent is back and registered: stop registering its users (``Expires: 0`` for
        our contact, or only no more refreshes when its contact is ours too) and leave its MWI
        subscriptions to it (it restores them from the store)."""
        assert self.registrations is not None
        released = self.registrations.release(shard, deregister=deregister)
        dropped = self.mwi.drop(self._in_shard(shard)) if self.mwi is not None else 0
        log.info(
            "gave a shard back",
            extra={"shard": shard, "users": released, "mwi_subscriptions": dropped},
        )

    # ------------------------------------------------------------------ registrations

    def registrar_of(self, domain: str) -> Peer | None:
        """The domain's own registrar; None: ours (``registrar``). ``LookupError`` while the
        domain's registrar does not resolve."""
        if domain in self.unresolved_registrars:
            raise LookupError(
                f"registrar {self.unresolved_registrars[domain]!r} of {domain} does not resolve"
            )
        own = self.domain_registrars.get(domain)
        return None if own is None else own[1]

    def registrar_text(self, domain: str) -> str:
        """The registrar of the domain as configured (events, logs)."""
        own = self.domain_registrars.get(domain)
        return self.settings.registrar if own is None else own[0]

    async def _learn_registrar(self, domain: domains.Domain) -> None:
        """Read the domain's ``registrar`` setting and resolve it (numeric, like ours)."""
        self.known_domains.add(domain.name)
        self.unresolved_registrars.pop(domain.name, None)
        if domain.registrar is None:
            self.domain_registrars.pop(domain.name, None)
            return
        try:
            host, port = parse_registrar(domain.registrar)
            address = await numeric_address(host)
        except (ValueError, OSError) as exc:
            # The setting was checked when stored, so this is DNS: keep the domain's users
            # off rather than register them at another domain's registrar.
            log.error("registrar of %s (%s): %s", domain.name, domain.registrar, exc)
            self.domain_registrars.pop(domain.name, None)
            self.unresolved_registrars[domain.name] = domain.registrar
            return
        self.domain_registrars[domain.name] = (domain.registrar, Peer("UDP", address, port))

    async def _on_domain_event(self, event: Any) -> None:
        """``domain.updated`` naming ``registrar``: move the domain's users (idempotent: a
        user already at the new registrar is left alone)."""
        if not isinstance(event, DomainUpdated) or "registrar" not in event.changed:
            return
        assert self.ctx is not None and self.registrations is not None
        domain = await domains.get_by_name(self.ctx.pool, event.domain)
        if domain is None:
            return
        before = self.registrar_text(domain.name)
        await self._learn_registrar(domain)
        moved = 0
        for user in await users.list_users(self.ctx.pool, domain=domain.name):
            if not user.disabled and self.registrations.move(user):
                moved += 1
        log.info(
            "registrar of a domain changed",
            extra={
                "domain": domain.name,
                "from": before,
                "to": self.registrar_text(domain.name),
                "users": moved,
            },
        )

    def _on_registration_change(self, change: RegistrationChanged) -> None:
        if change.state not in (
            RegistrationState.REGISTERED,
            RegistrationState.FAILED,
            RegistrationState.UNREGISTERED,
        ):
            return
        aor = parse_uri(change.aor)
        registrar = self.registrar_text(aor.host)
        # The registrar the binding was granted at: after a move, "unregistered" happens at
        # the old one although the domain names the new one already.
        if change.state is RegistrationState.REGISTERED:
            self._granted_at[change.aor] = registrar
        elif change.state is RegistrationState.UNREGISTERED:
            registrar = self._granted_at.pop(change.aor, registrar)
        event = RegistrationChangedEvent(
            username=aor.user or "",
            domain=aor.host,
            state=change.state.value,
            registrar=registrar,
            contact=change.contact,
            expires_s=change.expires,
            status_code=change.status,
            detail=change.reason or None,
        )
        if self.ctx is None or self.ctx.bus is None:
            return
        task = asyncio.get_running_loop().create_task(self._publish(event))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, event: RegistrationChangedEvent) -> None:
        try:
            await self.bus.publish(event)
        except Exception as exc:
            log.warning("could not publish %s: %s", event.kind, exc)

    async def _on_user_event(self, event: Any) -> None:
        """``sipum.evt.user.*``: idempotent, as delivery is at least once."""
        registrations = self.registrations
        assert registrations is not None and self.ctx is not None
        if isinstance(event, UserDeleted):
            if registrations.remove(event.username, event.domain):
                log.info("user deleted: de-registering", extra={"user": event.mailbox})
            if self.mwi is not None:
                self.mwi.end_mailbox(MailboxKey.of(event.username, event.domain))
            return
        if not isinstance(event, UserCreated | UserUpdated):
            return
        user = await users.get_by_address(self.ctx.pool, event.username, event.domain)
        if user is None:
            return  # deleted since; its user.deleted follows
        if self.calls is not None and user.domain not in self.calls.resolver.domains:
            self.calls.resolver.domains.add(user.domain)
        if user.domain not in self.known_domains:
            domain = await domains.get_by_name(self.ctx.pool, user.domain)
            if domain is not None:
                await self._learn_registrar(domain)
        if user.disabled:
            # Disabled by an administrator: de-register the voicemail contact (again, if a
            # redelivery; remove is idempotent) and keep it off until "enabled".
            if registrations.remove(user.username, user.domain):
                log.info("user disabled: de-registering", extra={"user": user.address})
            return
        if isinstance(event, UserCreated):
            if registrations.add(user):
                log.info("user created: registering", extra={"user": user.address})
        elif IDENTITY_CHANGES.intersection(event.changed) or not registrations.is_registering(
            user.username, user.domain
        ):
            # The identity the REGISTER carries changed (new HA1, ...): re-register now.
            # Settings (ring timeout, ...) need nothing: they are read per call. "enabled"
            # lands here too: the user is not registering, so it is registered again.
            registrations.update(user)
