"""Fault: a phone's MWI subscription (RFC 3842 over RFC 6665) survives a SIGKILL of the
registrar-agent.

A phone made of our SIP stack subscribes to alice's ``message-summary`` through Kamailio
(record-routed; the agent challenges it, 401 → credentials → 200 → NOTIFY ``no``). The agent
is SIGKILLed; while it is down a message is stored for alice *without any event* (so only the
restored subscription can tell the phone). The restarted agent reads the subscription back
from PostgreSQL and NOTIFYs in the same dialog (same Call-ID and tags, a higher CSeq) with
``Messages-Waiting: yes`` and ``1/0``; the phone's refresh inside the dialog is answered 200,
not 481 — the dialog is the restarted agent's now."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import asyncpg
import pytest
from sipum.db import messages
from sipum_protocol.sip.dialog import Dialog
from sipum_protocol.sip.digest import authorization_from_ha1, compute_ha1, select_challenge
from sipum_protocol.sip.message import Headers, SipRequest, SipResponse, new_tag
from sipum_protocol.sip.mwi import parse_summary
from sipum_protocol.sip.transaction import Peer
from sipum_protocol.sip.transport import EndpointConfig
from sipum_protocol.sip.ua import IncomingRequest
from sipum_protocol.sip.ua.aio import UserAgentEndpoint

from ..e2e.firstcall.system import FirstCallSystem
from .calls import sign_up_alice, table

pytestmark = pytest.mark.timeout(150)

PASSWORD = "alice-password-1"  # calls.sign_up_alice


class MwiPhone:
    """Subscribes through the proxy, answers every NOTIFY 200 and keeps it."""

    def __init__(self, system: FirstCallSystem) -> None:
        self.system = system
        self.endpoint = UserAgentEndpoint(
            EndpointConfig(host="127.0.0.1", udp_port=0),
            on_event=self._on_event,
            request_methods=("NOTIFY",),
        )
        self.notifies: list[SipRequest] = []
        self.arrived = asyncio.Event()
        self.dialog: Dialog | None = None

    def _on_event(self, event: Any) -> None:
        if isinstance(event, IncomingRequest) and event.request.method == "NOTIFY":
            self.notifies.append(event.request)
            if self.dialog is not None:
                self.dialog.refresh_target(event.request)  # NOTIFY: a target refresh
            self.endpoint.respond(event.transaction, event.request, 200)
            self.arrived.set()

    async def __aenter__(self) -> MwiPhone:
        await self.endpoint.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.endpoint.close()

    @property
    def proxy(self) -> Peer:
        return Peer("UDP", *self.system.proxy)

    def _initial(self, call_id: str, tag: str, cseq: int, authorization: str | None) -> SipRequest:
        host, port = self.endpoint.addresses["UDP"]
        domain = self.system.domain
        h = Headers()
        h.add("From", f"<sip:alice@{domain}>;tag={tag}")
        h.add("To", f"<sip:alice@{domain}>")
        h.add("Call-ID", call_id)
        h.add("CSeq", f"{cseq} SUBSCRIBE")
        h.add("Contact", f"<sip:alice@{host}:{port}>")
        h.add("Event", "message-summary")
        h.add("Accept", "application/simple-message-summary")
        h.add("Expires", "600")
        if authorization:
            h.add("Authorization", authorization)
        return SipRequest("SUBSCRIBE", f"sip:alice@{domain}", h, b"")

    async def _send(self, request: SipRequest, peer: Peer) -> SipResponse:
        return await asyncio.wait_for(self.endpoint.send_request(request, peer), 10)

    async def subscribe(self) -> SipResponse:
        call_id, tag = f"{new_tag()}@127.0.0.1", new_tag()
        first = self._initial(call_id, tag, 1, None)
        response = await self._send(first, self.proxy)
        assert response.status == 401, response.status
        challenge = select_challenge(response.headers.get_all("WWW-Authenticate"), ["MD5"])
        assert challenge is not None
        authorization = authorization_from_ha1(
            challenge,
            method="SUBSCRIBE",
            uri=f"sip:alice@{self.system.domain}",
            username="alice",
            ha1=compute_ha1("alice", challenge.realm, PASSWORD),
        )
        second = self._initial(call_id, tag, 2, authorization)
        response = await self._send(second, self.proxy)
        assert response.status == 200, response.status
        host, port = self.endpoint.addresses["UDP"]
        # RFC 3261 §12.1.2: the route set is the 200's Record-Route, reversed.
        self.dialog = Dialog.from_response(
            second, response, local_contact=f"<sip:alice@{host}:{port}>"
        )
        self.dialog.confirm()
        return response

    async def refresh(self) -> SipResponse:
        """A SUBSCRIBE inside the dialog (RFC 6665 §4.1.2.2), along its route set."""
        assert self.dialog is not None
        request = self.dialog.create_request(
            "SUBSCRIBE",
            via=self.endpoint.ua.via_for("UDP"),
            headers=[("Event", "message-summary"), ("Expires", "600")],
        )
        hop = self.dialog.next_hop()
        return await self._send(request, Peer("UDP", hop.host, hop.port or 5060))

    async def next_notify(self, limit: float) -> SipRequest:
        seen = len(self.notifies)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while len(self.notifies) <= seen:
            self.arrived.clear()
            left = deadline - loop.time()
            assert left > 0, f"no NOTIFY within {limit} s"
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except TimeoutError:
                pass
        return self.notifies[seen]


async def store_message_silently(database_url: str) -> None:
    """A message row for alice and no ``message.created``: only a restored subscription's
    NOTIFY can tell the phone."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        owner = await conn.fetchval("SELECT id FROM users WHERE username = 'alice'")
        await messages.insert_idempotent(
            conn,
            owner_id=owner,
            idempotency_key="mwi-restart-1",
            caller_uri="sip:bob@sipum.test",
            called_uri="sip:alice@sipum.test",
            duration_ms=2000,
            codec="PCMU",
            size_bytes=32000,
            blob_key="test/mwi-restart-1.wav",
        )
        rows = await conn.fetchval("SELECT count(*) FROM mwi_subscriptions")
    finally:
        await conn.close()
    assert rows == 1  # the subscription is in the store


def cseq(request: SipRequest) -> int:
    return request.cseq[0]


async def test_mwi_subscription_survives_sigkill_of_the_agent(
    system: FirstCallSystem, killed: set[str]
) -> None:
    await sign_up_alice(system)
    async with MwiPhone(system) as phone:
        await phone.subscribe()
        first = await phone.next_notify(10)
        summary = parse_summary(first.body)
        assert summary.waiting is False
        assert "active" in (first.headers.get("Subscription-State") or "")

        killed.add("registrar-agent")
        system.services["registrar-agent"].proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(system.services["registrar-agent"].proc.wait, 10)
        await store_message_silently(system.backends.database_url)
        loop = asyncio.get_running_loop()
        restarted = loop.time()
        system.restart("registrar-agent")
        after = await phone.next_notify(20)
        notify_s = loop.time() - restarted

        summary = parse_summary(after.body)
        assert summary.waiting is True, after.body
        assert summary.voice is not None, after.body
        assert (summary.voice.new, summary.voice.old) == (1, 0), after.body
        # the same dialog, a higher CSeq (RFC 3261 §12.2.1.1)
        assert after.call_id == first.call_id
        assert after.from_.tag == first.from_.tag and after.to.tag == first.to.tag
        assert cseq(after) > cseq(first)
        assert "active" in (after.headers.get("Subscription-State") or "")
        # the restarted agent knows the dialog: a refresh is 200, not 481
        refresh = await phone.refresh()
        assert refresh.status == 200, refresh.status
        print(
            table(
                [
                    {
                        "fault": "SIGKILL registrar-agent with an MWI subscription",
                        "NOTIFY after restart (s)": f"{notify_s:.2f}",
                        "Messages-Waiting": "yes" if summary.waiting else "no",
                        "CSeq before/after": f"{cseq(first)}/{cseq(after)}",
                        "refresh": refresh.status,
                    }
                ]
            )
        )
