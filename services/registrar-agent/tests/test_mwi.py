"""Message Waiting Indication (RFC 3842 over RFC 6665) with real peers: Kamailio (credentials
in the test database), PostgreSQL, NATS JetStream, a sipp phone, and a phone made of our own
SIP stack for the error paths."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest
from sipum.db import messages
from sipum.events import EventBus, MessageCreated, MessageUpdated, UserDeleted
from sipum_protocol.sip.digest import authorization_from_ha1, compute_ha1, select_challenge
from sipum_protocol.sip.message import Headers, SipRequest, SipResponse, new_tag
from sipum_protocol.sip.mwi import parse_summary
from sipum_protocol.sip.registration import (
    DigestCredentials,
    RegistrationBinding,
    RegistrationClient,
    RegistrationPool,
)
from sipum_protocol.sip.transaction import Peer
from sipum_protocol.sip.transport import EndpointConfig
from sipum_protocol.sip.ua import IncomingRequest
from sipum_protocol.sip.ua.aio import UserAgentEndpoint
from sipum_testing.kamailio import KamailioServer
from sipum_testing.polling import wait_for

DOMAIN = "sipum.test"  # the fixtures' domain (conftest.py)
SCENARIO = "mwi.xml"
pytestmark = pytest.mark.timeout(90)

AgentRunner = Sipp = Any  # conftest.py objects (importlib mode: not importable)


async def store_message(pool: Any, bus: EventBus, user: Any, key: str) -> messages.Message:
    """What the media-recorder does: the row, then ``message.created``."""
    message, _ = await messages.insert_idempotent(
        pool,
        owner_id=user.id,
        idempotency_key=key,
        caller_uri="sip:bob@sipum.test",
        called_uri=f"sip:{user.username}@{DOMAIN}",
        duration_ms=2000,
        codec="PCMU",
        size_bytes=32000,
        blob_key=f"test/{key}.wav",
    )
    await bus.publish(
        MessageCreated(
            username=user.username,
            domain=user.domain,
            message_id=message.id,
            caller_uri=message.caller_uri,
            called_uri=message.called_uri,
            received_at=message.received_at,
            duration_s=2.0,
            codec="PCMU",
            size=32000,
            blob_key=message.blob_key,
        )
    )
    return message


async def mark_heard(pool: Any, bus: EventBus, user: Any, message_id: int) -> None:
    """What the web-api does when a message is played."""
    await messages.mark_heard(pool, user.id, message_id)
    await bus.publish(
        MessageUpdated(
            username=user.username,
            domain=user.domain,
            message_id=message_id,
            folder="inbox",
            heard=True,
            changed=["heard"],
        )
    )


def subscription_of(service: Any, username: str) -> Any:
    subs = [s for s in service.mwi.table if s.mailbox.username == username]
    return subs[0] if len(subs) == 1 else None


async def test_phone_gets_message_waiting_through_kamailio(
    kamailio: KamailioServer,
    agents: AgentRunner,
    accounts: dict[str, Any],
    pg_pool: Any,
    event_bus: EventBus,
    sipp: Sipp,
) -> None:
    """The sipp phone subscribes through Kamailio (401, credentials, 200, NOTIFY no); a
    stored message lights the lamp (NOTIFY yes, 1/0); hearing it puts it out (no, 0/1);
    Expires: 0 ends the subscription with a terminated NOTIFY."""
    async with Phone("alice", "alice-password-1") as other_phone:
        # Alice's other phone is registered too: Kamailio must not fork the SUBSCRIBE to it.
        client = await other_phone.register(kamailio, accounts["alice"])
        try:
            await _sipp_subscriber(kamailio, agents, accounts, pg_pool, event_bus, sipp)
        finally:
            await client.stop(grace=2.0)
        assert other_phone.subscribes == []


async def _sipp_subscriber(
    kamailio: KamailioServer,
    agents: AgentRunner,
    accounts: dict[str, Any],
    pg_pool: Any,
    event_bus: EventBus,
    sipp: Sipp,
) -> None:
    service = await agents.start(f"127.0.0.1:{kamailio.port}", mwi_debounce_seconds=0.1)
    await wait_for(lambda: len(kamailio.contacts("alice")) == 2, what="phone and agent")
    scenario = sipp.directory / SCENARIO
    source = Path(__file__).parent / "scenarios" / SCENARIO
    text = source.read_text().replace("$username", "alice")
    scenario.write_text(text.replace("$password", "alice-password-1"))
    phone = asyncio.create_task(
        sipp.run(scenario, kamailio.address, service="alice", keys={"domain": DOMAIN}, timeout=45)
    )
    try:
        try:
            await wait_for(
                lambda: (s := subscription_of(service, "alice")) is not None and s.last_sent,
                what="first NOTIFY answered",
            )
        except AssertionError as exc:
            _, output = await phone  # sipp gives up by itself (its timeout)
            raise AssertionError(f"{exc}\n{output}\n--- kamailio\n{kamailio.log_tail()}") from None
        sub = subscription_of(service, "alice")
        assert sub.last_sent.waiting is False
        assert sub.peer.port == kamailio.port  # it came through the proxy
        alice = accounts["alice"]
        message = await store_message(pg_pool, event_bus, alice, "mwi-1")
        await wait_for(lambda: sub.last_sent.waiting, what="NOTIFY yes answered")
        await mark_heard(pg_pool, event_bus, alice, message.id)
        status, output = await asyncio.wait_for(phone, 50)
    finally:
        if not phone.done():
            phone.cancel()
    assert status == 0, output
    assert subscription_of(service, "alice") is None
    assert len(service.mwi.table) == 0


# ---------------------------------------------------------------------------------------
# A phone made of our own stack, straight to the agent (no proxy): the error paths.


class Phone:
    """Sends SUBSCRIBEs from its own socket and answers NOTIFYs with ``notify_status``."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password
        self.endpoint = UserAgentEndpoint(
            EndpointConfig(host="127.0.0.1", udp_port=0),
            on_event=self._on_event,
            request_methods=("NOTIFY", "SUBSCRIBE"),
        )
        self.notifies: list[SipRequest] = []
        self.subscribes: list[SipRequest] = []
        self.notify_status = 200
        self.call_id = f"{new_tag()}@127.0.0.1"
        self.tag = new_tag()
        self.remote_tag: str | None = None
        self.cseq = itertools.count(1)

    async def __aenter__(self) -> Phone:
        await self.endpoint.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.endpoint.close()

    def _on_event(self, event: Any) -> None:
        if not isinstance(event, IncomingRequest):
            return
        if event.request.method == "NOTIFY":
            self.notifies.append(event.request)
            self.endpoint.respond(event.transaction, event.request, self.notify_status)
        else:
            self.subscribes.append(event.request)
            self.endpoint.respond(event.transaction, event.request, 489)

    async def register(self, kamailio: KamailioServer, user: Any) -> RegistrationClient:
        """Register this phone as a contact of ``user`` at Kamailio."""
        client = RegistrationClient(
            RegistrationPool(max_rate=None),
            Peer("UDP", kamailio.host, kamailio.port),
            self.endpoint,
        )
        client.start()
        client.add(
            RegistrationBinding(
                user=user.username,
                domain=DOMAIN,
                contact_host="127.0.0.1",
                contact_port=self.endpoint.addresses["UDP"][1],
                credentials=DigestCredentials(user.username, {"MD5": user.ha1}, realm=user.realm),
            )
        )
        await wait_for(
            lambda: any(
                str(self.endpoint.addresses["UDP"][1]) in c
                for c in kamailio.contacts(user.username)
            ),
            what="phone registered",
        )
        return client

    def request(
        self,
        target: tuple[str, int],
        *,
        expires: int | None = 600,
        event: str = "message-summary",
        in_dialog: bool = False,
        authorization: str | None = None,
        mailbox: str | None = None,
    ) -> SipRequest:
        host, port = self.endpoint.addresses["UDP"]
        mailbox = mailbox or self.user
        h = Headers()
        h.add("From", f"<sip:{self.user}@{DOMAIN}>;tag={self.tag}")
        to_tag = f";tag={self.remote_tag}" if in_dialog and self.remote_tag else ""
        h.add("To", f"<sip:{mailbox}@{DOMAIN}>{to_tag}")
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{next(self.cseq)} SUBSCRIBE")
        h.add("Contact", f"<sip:{self.user}@{host}:{port}>")
        h.add("Event", event)
        if expires is not None:
            h.add("Expires", str(expires))
        if authorization:
            h.add("Authorization", authorization)
        uri = f"sip:{mailbox}@{target[0]}:{target[1]}"
        return SipRequest("SUBSCRIBE", uri, h, b"")

    async def send(self, target: tuple[str, int], **kwargs: Any) -> SipResponse:
        request = self.request(target, **kwargs)
        response = await asyncio.wait_for(
            self.endpoint.send_request(request, Peer("UDP", *target)), 10
        )
        if response.status == 200 and response.to.tag:
            self.remote_tag = response.to.tag
        return response

    async def subscribe(self, target: tuple[str, int], **kwargs: Any) -> SipResponse:
        """SUBSCRIBE, answer the 401 with our credentials."""
        first = await self.send(target, **kwargs)
        if first.status != 401:
            return first
        challenge = select_challenge(first.headers.get_all("WWW-Authenticate"), ["MD5"])
        assert challenge is not None
        realm = challenge.realm
        mailbox = kwargs.get("mailbox") or self.user
        authorization = authorization_from_ha1(
            challenge,
            method="SUBSCRIBE",
            uri=f"sip:{mailbox}@{target[0]}:{target[1]}",
            username=self.user,
            ha1=compute_ha1(self.user, realm, self.password),
        )
        return await self.send(target, authorization=authorization, **kwargs)


@pytest.fixture
async def direct_agent(kamailio: KamailioServer, agents: AgentRunner) -> Any:
    service = await agents.start(
        f"127.0.0.1:{kamailio.port}",
        mwi_min_expires=2,
        mwi_default_expires=60,
        mwi_debounce_seconds=0.05,
    )
    return service


async def test_subscribe_refusals(direct_agent: Any, accounts: dict[str, Any]) -> None:
    target = direct_agent.sip_address
    async with Phone("alice", "alice-password-1") as phone:
        assert (await phone.send(target, event="presence")).status == 489
        response = await phone.send(target, expires=1)
        assert response.status == 423 and response.headers.get("Min-Expires") == "2"
        assert (await phone.send(target, mailbox="nobody")).status == 404
        unauthenticated = await phone.send(target)
        assert unauthenticated.status == 401
        assert unauthenticated.headers.get_all("WWW-Authenticate")
        assert phone.notifies == []
        # An in-dialog SUBSCRIBE for a dialog the agent does not know.
        phone.remote_tag = "nosuchdialog"
        assert (await phone.send(target, in_dialog=True)).status == 481
    # Bob's (valid) credentials do not open Alice's mailbox: challenged again, no NOTIFY.
    async with Phone("bob", "bob-password-12") as bob:
        refused = await bob.subscribe(target, mailbox="alice")
        assert refused.status == 401
        await asyncio.sleep(0.3)
        assert bob.notifies == []
    assert len(direct_agent.mwi.table) == 0


async def test_burst_gives_one_notify_refresh_and_expiry(
    direct_agent: Any, accounts: dict[str, Any], pg_pool: Any, event_bus: EventBus
) -> None:
    target = direct_agent.sip_address
    alice = accounts["alice"]
    async with Phone("alice", "alice-password-1") as phone:
        response = await phone.subscribe(target, expires=600)
        assert response.status == 200
        assert response.headers.get("Expires") == "600"
        await wait_for(lambda: len(phone.notifies) == 1, what="first NOTIFY")
        first = phone.notifies[0]
        assert first.headers.get("Subscription-State", "").startswith("active;expires=")
        assert parse_summary(first.body).waiting is False
        # Three messages in a burst: one NOTIFY saying 3/0.
        for i in range(3):
            await store_message(pg_pool, event_bus, alice, f"burst-{i}")
        await wait_for(lambda: len(phone.notifies) == 2, what="NOTIFY after the burst")
        await asyncio.sleep(0.5)
        assert len(phone.notifies) == 2
        summary = parse_summary(phone.notifies[1].body)
        assert summary.waiting and summary.voice is not None
        assert (summary.voice.new, summary.voice.old) == (3, 0)
        # A refresh in the dialog (to a short interval) is answered and NOTIFYed.
        refresh = await phone.send(target, in_dialog=True, expires=2)
        assert refresh.status == 200 and refresh.headers.get("Expires") == "2"
        await wait_for(lambda: len(phone.notifies) == 3, what="NOTIFY after the refresh")
        assert phone.notifies[2].headers.get("Subscription-State") in (
            "active;expires=2",
            "active;expires=1",
        )
        # Nothing refreshes it again: it times out with a final NOTIFY.
        await wait_for(lambda: len(phone.notifies) == 4, limit=6, what="timeout NOTIFY")
        assert phone.notifies[3].headers.get("Subscription-State") == "terminated;reason=timeout"
        assert len(direct_agent.mwi.table) == 0
        cseqs = [n.cseq[0] for n in phone.notifies]
        assert cseqs == sorted(cseqs) and len(set(cseqs)) == 4
        # A refresh now names a dialog that is gone.
        assert (await phone.send(target, in_dialog=True)).status == 481


async def test_notify_answered_481_ends_the_subscription(
    direct_agent: Any, accounts: dict[str, Any], pg_pool: Any, event_bus: EventBus
) -> None:
    target = direct_agent.sip_address
    async with Phone("alice", "alice-password-1") as phone:
        assert (await phone.subscribe(target)).status == 200
        await wait_for(lambda: len(phone.notifies) == 1, what="first NOTIFY")
        phone.notify_status = 481  # the phone forgot the subscription (rebooted)
        await store_message(pg_pool, event_bus, accounts["alice"], "gone-1")
        await wait_for(lambda: len(phone.notifies) == 2, what="NOTIFY after the message")
        await wait_for(lambda: len(direct_agent.mwi.table) == 0, what="subscription ended")
        await store_message(pg_pool, event_bus, accounts["alice"], "gone-2")
        await asyncio.sleep(0.5)
        assert len(phone.notifies) == 2  # nothing more is sent to it


async def test_kamailio_sends_subscribe_only_to_the_voicemail_contact(
    kamailio: KamailioServer, accounts: dict[str, Any]
) -> None:
    """Only a phone is registered for alice (no agent): Kamailio answers 404 itself and the
    phone never sees the SUBSCRIBE; other event packages still reach the phone."""
    async with Phone("alice", "alice-password-1") as phone:
        client = await phone.register(kamailio, accounts["alice"])
        try:
            async with Phone("alice", "alice-password-1") as subscriber:
                response = await subscriber.send(kamailio.address)
                assert response.status == 404
                assert phone.subscribes == []
                other = await subscriber.send(kamailio.address, event="presence")
                assert other.status == 489  # the phone's answer, relayed
                (seen,) = phone.subscribes
                assert seen.headers.get("Event") == "presence"
        finally:
            await client.stop(grace=2.0)


async def test_deleted_user_ends_the_subscription_with_noresource(
    direct_agent: Any, accounts: dict[str, Any], event_bus: EventBus
) -> None:
    target = direct_agent.sip_address
    async with Phone("bob", "bob-password-12") as phone:
        assert (await phone.subscribe(target)).status == 200
        await wait_for(lambda: len(phone.notifies) == 1, what="first NOTIFY")
        await event_bus.publish(UserDeleted(username="bob", domain=DOMAIN))
        await wait_for(lambda: len(phone.notifies) == 2, what="last NOTIFY")
        last = phone.notifies[1]
        assert last.headers.get("Subscription-State") == "terminated;reason=noresource"
        assert len(direct_agent.mwi.table) == 0
