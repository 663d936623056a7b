"""Registration against a real Kamailio (deploy/kamailio/kamailio.cfg) on loopback."""

from __future__ import annotations

import asyncio
import random
import socket
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from sipum_protocol.sip import digest
from sipum_protocol.sip.message import (
    SipRequest,
    SipResponse,
    make_response,
    new_tag,
    parse_message,
)
from sipum_protocol.sip.registration import (
    DigestCredentials,
    RegistrationBinding,
    RegistrationChanged,
    RegistrationClient,
    RegistrationPolicy,
    RegistrationPool,
    RegistrationState,
)
from sipum_protocol.sip.transaction import AckReceived, Peer, RequestReceived, TimerConfig
from sipum_protocol.sip.transport import ClientRequest, EndpointConfig, TransactionEndpoint
from sipum_testing.kamailio import KamailioServer

DOMAIN = "sipum.test"
pytestmark = pytest.mark.timeout(60)


class _OutcomeSignal:
    """Sends the client's REGISTERs through ``endpoint`` and sets ``changed`` once the pool
    has taken each outcome in, so a test waits for "the refresh was answered" rather than
    for a time."""

    def __init__(self, endpoint: TransactionEndpoint, changed: asyncio.Event) -> None:
        self.endpoint = endpoint
        self.changed = changed

    def send_request(self, request: SipRequest, peer: Peer) -> ClientRequest:
        pending = self.endpoint.send_request(request, peer)
        loop = asyncio.get_running_loop()
        # The client's own done-callback is added after this returns; call_soon from ours
        # runs after it.
        pending.final.add_done_callback(lambda _f: loop.call_soon(self.changed.set))
        return pending


class Agent:
    """A registration client on its own TransactionEndpoint, recording every state change and every
    request it receives. Requests go to ``on_request`` if set, else are answered 405 (no user
    agent here)."""

    def __init__(
        self,
        server: KamailioServer,
        policy: RegistrationPolicy,
        window: int = 50,
        transport: str = "UDP",
        changed: asyncio.Event | None = None,
    ):
        self.server = server
        self.transport = transport
        self.endpoint = TransactionEndpoint(
            EndpointConfig(
                host="127.0.0.1",
                udp_port=0,
                tcp_port=0 if transport == "TCP" else None,
                timers=TimerConfig(t1=0.1, t2=0.4, t4=0.5),
            ),
            on_event=self._on_event,
        )
        self.pool = RegistrationPool(
            max_in_flight=window, max_rate=None, policy=policy, rng=random.Random(1)
        )
        self.changes: list[RegistrationChanged] = []
        self.changed = changed or asyncio.Event()
        """Set on every state change, REGISTER outcome and endpoint event (may be shared)."""
        self.invites: list[SipRequest] = []
        self.events: list[object] = []
        self.on_request: Callable[[TransactionEndpoint, RequestReceived], None] | None = None
        self.client: RegistrationClient | None = None

    async def open(self) -> Agent:
        await self.endpoint.start()
        self.client = RegistrationClient(
            self.pool,
            Peer(self.transport, self.server.host, self.server.port),
            _OutcomeSignal(self.endpoint, self.changed),
            on_change=self._record,
        )
        self.client.start()
        return self

    @property
    def address(self) -> tuple[str, int]:
        return self.endpoint.addresses[self.transport]

    def _on_event(self, endpoint: TransactionEndpoint, event: object) -> None:
        self.events.append(event)
        self.changed.set()
        if isinstance(event, RequestReceived):
            if event.request.method == "INVITE":
                self.invites.append(event.request)
            if self.on_request is not None:
                self.on_request(endpoint, event)
                return
            response = make_response(event.request, 405, to_tag=new_tag())
            response.headers.add("Allow", "OPTIONS")
            endpoint.send_response(event.transaction, response)

    def _record(self, event: RegistrationChanged) -> None:
        self.changes.append(event)
        self.changed.set()

    def add(self, user: str, *, expires: int = 3600, ha1: dict[str, str] | None = None) -> None:
        assert self.client is not None
        host, port = self.address
        creds = DigestCredentials(
            username=user,
            ha1=ha1 or {"MD5": digest.compute_ha1(user, DOMAIN, "secret", "MD5")},
            realm=DOMAIN,
        )
        self.client.add(
            RegistrationBinding(
                user=user,
                domain=DOMAIN,
                contact_host=host,
                contact_port=port,
                credentials=creds,
                transport=self.transport,
                expires=expires,
            )
        )

    async def wait_for(self, predicate: Callable[[], bool], limit: float = 10.0) -> None:
        async with asyncio.timeout(limit):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    def states(self, aor: str) -> list[RegistrationState]:
        return [e.state for e in self.changes if e.aor == aor]


@pytest.fixture
async def agents() -> AsyncIterator[list[Agent]]:
    made: list[Agent] = []
    yield made
    for agent in made:
        if agent.client is not None:
            await agent.client.stop(grace=2.0)
        await agent.endpoint.close()


async def new_agent(
    agents: list[Agent], server: KamailioServer, policy: RegistrationPolicy | None = None, **kw
) -> Agent:
    agent = await Agent(server, policy or RegistrationPolicy(), **kw).open()
    agents.append(agent)
    return agent


async def test_md5_register_refresh_and_deregister(kamailio_factory, agents):
    server = kamailio_factory(users={"alice": "secret"}, min_expires=2)
    agent = await new_agent(agents, server)
    agent.add("alice", expires=4)  # refresh at max(2, -26) × [0.9, 1] ≈ 1.8-2 s
    aor = f"sip:alice@{DOMAIN}"
    await agent.wait_for(lambda: RegistrationState.REGISTERED in agent.states(aor))
    first = server.lookup("alice")
    host, port = agent.address
    assert [c.address for c in first] == [f"sip:alice@{host}:{port}"]
    assert 0 < first[0].expires <= 4
    registration = agent.pool.get(aor)
    assert registration is not None
    assert first[0].call_id == registration.call_id
    assert first[0].cseq == 2  # REGISTER → 401 → REGISTER with credentials
    # Wait for the refresh (a third final response): same Call-ID, higher CSeq, still bound.
    await agent.wait_for(lambda: agent.pool.stats.responses >= 3, limit=5)
    refreshed = server.lookup("alice")
    assert len(refreshed) == 1
    assert refreshed[0].call_id == first[0].call_id
    # Pre-emptive credentials with nc=2: the refresh needs one REGISTER, not two.
    assert refreshed[0].cseq == 3
    assert agent.states(aor) == [RegistrationState.REGISTERED]
    assert agent.client is not None
    assert await agent.client.stop(grace=5.0)
    assert server.lookup("alice") == []
    assert agent.states(aor) == [RegistrationState.REGISTERED, RegistrationState.UNREGISTERED]


async def test_expired_nonce_is_answered_stale_and_refresh_retries(kamailio_factory, agents):
    """Kamailio answers pre-emptive credentials with an expired nonce with stale=true; the
    refresh retries with the new nonce and the binding never looks failed."""
    server = kamailio_factory(
        users={"alice": "secret"}, min_expires=2, extra_defines={"NONCE_EXPIRE": "1"}
    )
    agent = await new_agent(agents, server)
    agent.add("alice", expires=4)  # refresh after ~1.8-2 s: the 1 s nonce has expired
    aor = f"sip:alice@{DOMAIN}"
    await agent.wait_for(lambda: bool(agent.states(aor)))
    # The refresh is due at most 2 s after the registration: wait for its 200.
    await agent.wait_for(lambda: agent.pool.stats.by_status.get(200) == 2, limit=5)
    assert agent.pool.stats.by_status.get(401) == 2  # first challenge + the stale one
    assert agent.pool.stats.by_status.get(200) == 2
    (contact,) = server.lookup("alice")
    assert contact.cseq == 4  # REGISTER, +credentials, stale pre-emptive, +new nonce
    assert agent.states(aor) == [RegistrationState.REGISTERED]
    assert agent.pool.get(aor).failures == 0  # type: ignore[union-attr]


async def test_register_over_tcp(kamailio_factory, agents):
    server = kamailio_factory(users={"alice": "secret"}, tcp=True)
    agent = await new_agent(agents, server, transport="TCP")
    agent.add("alice")
    aor = f"sip:alice@{DOMAIN}"
    await agent.wait_for(lambda: bool(agent.states(aor)))
    assert agent.states(aor) == [RegistrationState.REGISTERED]
    host, port = agent.address
    (contact,) = server.lookup("alice")
    assert contact.address == f"sip:alice@{host}:{port};transport=tcp"
    assert len(agent.endpoint.connections("TCP")) == 1  # both REGISTERs on one connection
    assert agent.client is not None
    assert await agent.client.stop(grace=5.0)
    assert server.lookup("alice") == []


async def test_sha256_register(kamailio_factory, agents):
    server = kamailio_factory(users={"alice": "secret"}, algorithm="SHA-256")
    agent = await new_agent(agents, server)
    agent.add(
        "alice",
        ha1={
            "MD5": digest.compute_ha1("alice", DOMAIN, "secret", "MD5"),
            "SHA-256": digest.compute_ha1("alice", DOMAIN, "secret", "SHA-256"),
        },
    )
    aor = f"sip:alice@{DOMAIN}"
    await agent.wait_for(lambda: bool(agent.states(aor)))
    assert agent.states(aor) == [RegistrationState.REGISTERED]
    assert len(server.lookup("alice")) == 1


async def test_wrong_ha1_fails_and_backs_off(kamailio_factory, agents):
    server = kamailio_factory(users={"alice": "secret"})
    policy = RegistrationPolicy(backoff_base=1.0, backoff_max=4.0)
    agent = await new_agent(agents, server, policy)
    agent.add("alice", ha1={"MD5": digest.compute_ha1("alice", DOMAIN, "wrong", "MD5")})
    aor = f"sip:alice@{DOMAIN}"
    await agent.wait_for(lambda: bool(agent.states(aor)))
    failed = agent.changes[0]
    assert failed.state is RegistrationState.FAILED
    assert failed.status == 401 and failed.reason == "credentials rejected"
    assert failed.retry_at is not None and 0.5 <= failed.retry_at - failed.at <= 1.0
    assert agent.pool.stats.requests_sent == 2  # no loop of answers to the challenge
    # The backed-off second attempt (0.5-1 s later) happens, and fails too.
    await agent.wait_for(lambda: agent.pool.get(aor).failures == 2, limit=5)  # type: ignore[union-attr]
    assert agent.pool.stats.requests_sent == 4
    assert agent.states(aor) == [RegistrationState.FAILED]  # published once
    assert server.lookup("alice") == []


async def test_interval_too_brief_is_retried_with_min_expires(kamailio_factory, agents):
    server = kamailio_factory(users={"alice": "secret"}, min_expires=120)
    agent = await new_agent(agents, server)
    agent.add("alice", expires=30)
    aor = f"sip:alice@{DOMAIN}"
    await agent.wait_for(lambda: bool(agent.states(aor)))
    assert agent.states(aor) == [RegistrationState.REGISTERED]
    assert agent.changes[0].expires == 120
    assert agent.pool.stats.by_status.get(423) == 1
    (contact,) = server.lookup("alice")
    assert 100 < contact.expires <= 120


async def test_many_users_with_a_window(kamailio_factory, agents):
    users = {f"user{i}": "secret" for i in range(300)}
    server = kamailio_factory(users=users)
    agent = await new_agent(agents, server, window=20)
    for user in users:
        agent.add(user)
    await agent.wait_for(
        lambda: sum(e.state is RegistrationState.REGISTERED for e in agent.changes) == 300,
        limit=30,
    )
    assert agent.pool.stats.max_in_flight_seen == 20
    assert server.registered_count() == 300
    assert agent.client is not None
    assert await agent.client.stop(grace=20.0)
    assert server.registered_count() == 0


async def test_postgres_credentials_from_kamailio_subscriber_view(
    kamailio_factory, agents, pg_pool, pg_dsn
):  # noqa: E501
    """WITH_PGSQL: a user created through sipum.db registers with its stored HA1."""
    from sipum.db import domains, users

    await domains.create(pg_pool, DOMAIN)
    alice = await users.create(pg_pool, "alice", DOMAIN, "correct horse")
    server = kamailio_factory(postgres_url=pg_dsn.replace("postgresql://", "postgres://", 1))
    agent = await new_agent(agents, server)
    agent.add("alice", ha1={"MD5": alice.ha1})
    agent.add("mallory", ha1={"MD5": digest.compute_ha1("mallory", DOMAIN, "x", "MD5")})
    await agent.wait_for(lambda: len(agent.changes) >= 2)
    by_aor = {e.aor: e.state for e in agent.changes}
    assert by_aor == {
        f"sip:alice@{DOMAIN}": RegistrationState.REGISTERED,
        f"sip:mallory@{DOMAIN}": RegistrationState.FAILED,
    }
    assert len(server.lookup("alice")) == 1


async def test_invite_is_forked_to_every_contact_with_record_route(kamailio_factory, agents):
    """Kamailio config: parallel forking to all of the AOR's contacts (the phone and sipum)."""
    server = kamailio_factory(users={"alice": "secret"})
    phone = await new_agent(agents, server)
    sipum = await new_agent(agents, server)
    phone.add("alice")
    sipum.add("alice")
    aor = f"sip:alice@{DOMAIN}"
    await phone.wait_for(lambda: bool(phone.states(aor)))
    await sipum.wait_for(lambda: bool(sipum.states(aor)))
    assert len(server.lookup("alice")) == 2

    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller.bind(("127.0.0.1", 0))
    caller.setblocking(False)
    loop = asyncio.get_running_loop()
    cport = caller.getsockname()[1]
    invite = (
        f"INVITE sip:alice@{DOMAIN} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{cport};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:bob@{DOMAIN}>;tag=b0b\r\nTo: <sip:alice@{DOMAIN}>\r\n"
        f"Call-ID: {uuid.uuid4().hex}@caller\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:bob@127.0.0.1:{cport}>\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    try:
        caller.sendto(invite, server.address)
        final = None
        async with asyncio.timeout(10):
            while final is None:
                message = parse_message(await loop.sock_recv(caller, 65535))
                if getattr(message, "status", 0) >= 200:
                    final = message
    finally:
        caller.close()
    assert len(phone.invites) == 1 and len(sipum.invites) == 1
    for forwarded in phone.invites + sipum.invites:
        assert forwarded.headers.get("Record-Route") is not None
        assert len(forwarded.vias) == 2  # Kamailio's Via on top of the caller's
    assert final.status == 405  # the best final response of both branches reaches the caller


def _caller_request(
    method: str, ruri: str, cport: int, call_id: str, cseq: int, extra: str
) -> bytes:
    return (
        f"{method} {ruri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{cport};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:bob@{DOMAIN}>;tag=b0b\r\n{extra}"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
        f"Contact: <sip:bob@127.0.0.1:{cport}>\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def test_phone_answers_first_sipum_branch_is_cancelled_dialog_via_record_route(
    kamailio_factory, agents
):
    """The second scenario of the first call: both ring, the phone answers, Kamailio CANCELs
    sipum's branch (200 + 487 there), and ACK and BYE reach the phone through Record-Route."""
    server = kamailio_factory(users={"alice": "secret"})
    phone = await new_agent(agents, server)
    sipum = await new_agent(agents, server, changed=phone.changed)  # one wake-up for both
    loop = asyncio.get_running_loop()

    def phone_answers(endpoint: TransactionEndpoint, event: RequestReceived) -> None:
        request = event.request
        if request.method == "INVITE":
            tag = new_tag()
            endpoint.send_response(event.transaction, make_response(request, 180, to_tag=tag))
            # §12.1.1: the 2xx copies Record-Route, so the caller routes ACK/BYE via Kamailio.
            record_route = [("Record-Route", v) for v in request.headers.get_lines("Record-Route")]
            ok = make_response(request, 200, to_tag=tag, headers=record_route)
            ok.headers.add("Contact", f"<sip:alice@{phone.address[0]}:{phone.address[1]}>")
            # Answer after sipum's branch has surely been ringing for a while.
            loop.call_later(0.3, endpoint.send_response, event.transaction, ok)
        else:
            endpoint.send_response(event.transaction, make_response(request, 200))

    def sipum_rings(endpoint: TransactionEndpoint, event: RequestReceived) -> None:
        request = event.request
        status = 180 if request.method == "INVITE" else 200
        endpoint.send_response(event.transaction, make_response(request, status, to_tag="sipum"))

    phone.on_request = phone_answers
    sipum.on_request = sipum_rings
    phone.add("alice")
    sipum.add("alice")
    aor = f"sip:alice@{DOMAIN}"
    await phone.wait_for(lambda: bool(phone.states(aor)))
    await sipum.wait_for(lambda: bool(sipum.states(aor)))

    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller.bind(("127.0.0.1", 0))
    caller.setblocking(False)
    cport = caller.getsockname()[1]
    call_id = f"{uuid.uuid4().hex}@caller"

    async def final_response(method: str) -> SipResponse:
        async with asyncio.timeout(10):
            while True:
                message = parse_message(await loop.sock_recv(caller, 65535))
                if (
                    isinstance(message, SipResponse)
                    and message.status >= 200
                    and message.cseq[1] == method
                ):
                    return message

    try:
        to = f"To: <sip:alice@{DOMAIN}>\r\n"
        invite = _caller_request("INVITE", f"sip:alice@{DOMAIN}", cport, call_id, 1, to)
        caller.sendto(invite, server.address)
        ok = await final_response("INVITE")
        assert ok.status == 200
        route = ok.headers.get("Record-Route")
        contact = ok.headers.get("Contact")
        assert route is not None and contact is not None
        remote_target = contact.strip("<>")
        in_dialog = f"To: {ok.headers.get('To')}\r\nRoute: {route}\r\n"
        caller.sendto(
            _caller_request("ACK", remote_target, cport, call_id, 1, in_dialog), server.address
        )
        caller.sendto(
            _caller_request("BYE", remote_target, cport, call_id, 2, in_dialog), server.address
        )
        bye_ok = await final_response("BYE")
        assert bye_ok.status == 200
    finally:
        caller.close()

    def phone_methods() -> list[str]:
        return [
            e.request.method for e in phone.events if isinstance(e, RequestReceived | AckReceived)
        ]

    # The ACK and the BYE may pass through different Kamailio processes and arrive in either
    # order; wait (bounded) for everything rather than for a fixed time.
    await sipum.wait_for(
        lambda: (
            "CancelReceived" in [type(e).__name__ for e in sipum.events]
            and len(phone_methods()) >= 3
        )
    )
    kinds = [type(e).__name__ for e in sipum.events]
    assert "CancelReceived" in kinds  # Kamailio cancelled sipum's ringing branch
    methods = phone_methods()
    assert methods[0] == "INVITE" and sorted(methods[1:]) == ["ACK", "BYE"], methods
    # ACK for the 2xx and BYE reached the phone via Record-Route
