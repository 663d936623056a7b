"""A phone made of our SIP stack that subscribes to its user's ``message-summary`` (RFC 3842
over RFC 6665) through Kamailio, answers every NOTIFY 200 (keeping it, and taking its Contact
as the new remote target) and refreshes inside the dialog along its route set."""

from __future__ import annotations

import asyncio
from typing import Any

from sipum_protocol.sip.dialog import Dialog
from sipum_protocol.sip.digest import authorization_from_ha1, compute_ha1, select_challenge
from sipum_protocol.sip.message import Headers, SipRequest, SipResponse, new_tag
from sipum_protocol.sip.transaction import Peer
from sipum_protocol.sip.transport import EndpointConfig
from sipum_protocol.sip.ua import IncomingRequest
from sipum_protocol.sip.ua.aio import UserAgentEndpoint

from ..e2e.firstcall.system import FirstCallSystem


class MwiPhone:
    """Subscribes through the proxy (password ``<user>-password-1``), answers every NOTIFY
    200 and keeps it."""

    def __init__(self, system: FirstCallSystem, user: str) -> None:
        self.system = system
        self.user = user
        self.password = f"{user}-password-1"
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
        h.add("From", f"<sip:{self.user}@{domain}>;tag={tag}")
        h.add("To", f"<sip:{self.user}@{domain}>")
        h.add("Call-ID", call_id)
        h.add("CSeq", f"{cseq} SUBSCRIBE")
        h.add("Contact", f"<sip:{self.user}@{host}:{port}>")
        h.add("Event", "message-summary")
        h.add("Accept", "application/simple-message-summary")
        h.add("Expires", "600")
        if authorization:
            h.add("Authorization", authorization)
        return SipRequest("SUBSCRIBE", f"sip:{self.user}@{domain}", h, b"")

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
            uri=f"sip:{self.user}@{self.system.domain}",
            username=self.user,
            ha1=compute_ha1(self.user, challenge.realm, self.password),
        )
        second = self._initial(call_id, tag, 2, authorization)
        response = await self._send(second, self.proxy)
        assert response.status == 200, response.status
        host, port = self.endpoint.addresses["UDP"]
        # RFC 3261 §12.1.2: the route set is the 200's Record-Route, reversed.
        self.dialog = Dialog.from_response(
            second, response, local_contact=f"<sip:{self.user}@{host}:{port}>"
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

    async def next_notify(self, limit: float, *, since: int | None = None) -> SipRequest:
        """The first NOTIFY after the first ``since`` ones (default: from now on)."""
        seen = len(self.notifies) if since is None else since
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
