"""RFC 3261 method and version checks against the running agent's SIP socket (raw UDP).

The agent runs in-process with real Kamailio as its registrar, PostgreSQL and NATS; the
requests are written by hand and sent from a plain UDP socket, so nothing in our own stack
shapes them on the way in.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from sipum_protocol.sip.message import SipParseError, SipResponse, parse_message
from sipum_testing.kamailio import KamailioServer

DOMAIN = "sipum.test"
pytestmark = pytest.mark.timeout(60)
AgentRunner = FakeRecorder = Any  # conftest.py fixtures (not importable in importlib mode)

OFFER = (
    "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def request(
    method: str,
    port: int,
    target: tuple[str, int],
    *,
    branch: str,
    version: str = "SIP/2.0",
    body: str = "",
    to_tag: str = "",
    extra: tuple[str, ...] = (),
    ruri: str = "",
    cseq: int = 1,
    call_id: str = "",
) -> bytes:
    host, agent_port = target
    lines = [
        f"{method} {ruri or f'sip:alice@{host}:{agent_port}'} {version}",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport",
        "Max-Forwards: 70",
        "From: <sip:caller@127.0.0.1>;tag=c1",
        f"To: <sip:alice@{DOMAIN}>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id or branch + '@127.0.0.1'}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:caller@127.0.0.1:{port}>",
        *extra,
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def exchange(sock: socket.socket, data: bytes, target: tuple[str, int]) -> SipResponse:
    """Send ``data``; the first final response (provisional ones skipped), within 3 s."""
    try:
        cseq = parse_message(data).cseq
    except SipParseError:  # e.g. SIP/7.0: we parse only 2.0, the agent answers anyway
        cseq = None
    sock.sendto(data, target)
    while True:
        reply, _ = sock.recvfrom(65535)
        message = parse_message(reply)
        assert isinstance(message, SipResponse)
        # skip provisional responses and retransmissions of earlier answers
        if message.status >= 200 and cseq in (None, message.cseq):
            return message


@pytest.fixture
def udp() -> Any:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(3.0)
    yield sock
    sock.close()


@pytest.mark.parametrize(
    "method",
    ["!interesting-Method0123456789_*+`.%indeed'~", "`'~%!*_+.-", "NEWMETHOD", "invite"],
)
async def test_unknown_well_formed_method_gets_501_with_allow(
    kamailio: KamailioServer, agents: AgentRunner, recorder: FakeRecorder, udp: Any, method: str
) -> None:
    agent = await agents.start(f"127.0.0.1:{kamailio.port}")
    target = agent.sip_address
    port = udp.getsockname()[1]
    response = await asyncio.to_thread(
        exchange, udp, request(method, port, target, branch="z9hG4bKunk1"), target
    )
    assert (response.status, response.reason) == (501, "Not Implemented")
    allow = {m.strip() for m in (response.headers.get("Allow") or "").split(",")}
    assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"} <= allow
    assert method not in allow
    assert response.cseq == (1, method)
    # Inside a dialog the agent does not know (a To tag): still 501, not 481.
    response = await asyncio.to_thread(
        exchange, udp, request(method, port, target, branch="z9hG4bKunk2", to_tag="x"), target
    )
    assert response.status == 501
    assert recorder.requests == []  # nothing reached the media side


async def test_registered_method_we_do_not_serve_gets_405(
    kamailio: KamailioServer, agents: AgentRunner, udp: Any
) -> None:
    agent = await agents.start(f"127.0.0.1:{kamailio.port}", mwi_enabled=False)
    target = agent.sip_address
    port = udp.getsockname()[1]
    response = await asyncio.to_thread(
        exchange, udp, request("REFER", port, target, branch="z9hG4bKref"), target
    )
    assert response.status == 405 and "INVITE" in (response.headers.get("Allow") or "")


async def test_unsupported_sip_version_gets_505_and_no_call(
    kamailio: KamailioServer, agents: AgentRunner, recorder: FakeRecorder, udp: Any
) -> None:
    agent = await agents.start(f"127.0.0.1:{kamailio.port}")
    target = agent.sip_address
    port = udp.getsockname()[1]
    for i, version in enumerate(("SIP/7.0", "SIP/2.1")):
        data = request("INVITE", port, target, branch=f"z9hG4bKver{i}", version=version, body=OFFER)
        response = await asyncio.to_thread(exchange, udp, data, target)
        assert (response.status, response.reason) == (505, "Version Not Supported")
        assert response.top_via.branch == f"z9hG4bKver{i}"
    # SIP/2.0 on the same socket is served as ever.
    data = request("OPTIONS", port, target, branch="z9hG4bKopt")
    response = await asyncio.to_thread(exchange, udp, data, target)
    assert response.status == 200
    assert recorder.requests == []


async def test_session_timer_negotiation_on_the_wire(
    kamailio: KamailioServer, agents: AgentRunner, recorder: FakeRecorder, udp: Any
) -> None:
    """RFC 4028 §9: 422 + Min-SE for a too-small interval; the 200 of an accepted one carries
    Session-Expires with refresher=uac and Require: timer."""
    agent = await agents.start(f"127.0.0.1:{kamailio.port}")
    target = agent.sip_address
    host, agent_port = target
    port = udp.getsockname()[1]
    ruri = f"sip:voicemail@{host}:{agent_port};target=sip:alice%40{DOMAIN};cause=486"
    small = request(
        "INVITE", port, target, branch="z9hG4bKst1", body=OFFER, ruri=ruri,
        extra=("Supported: timer", "Session-Expires: 30"),
    )  # fmt: skip
    response = await asyncio.to_thread(exchange, udp, small, target)
    assert response.status == 422 and response.headers.get("Min-SE") == "90"
    ok = request(
        "INVITE", port, target, branch="z9hG4bKst2", body=OFFER, ruri=ruri,
        extra=("Supported: timer", "Session-Expires: 600"),
    )  # fmt: skip
    response = await asyncio.to_thread(exchange, udp, ok, target)
    assert response.status == 200
    assert response.headers.get("Session-Expires") == "600;refresher=uac"
    assert "timer" in response.headers.get_all("Require")
    to_tag = response.to.tag or ""
    call_id = "z9hG4bKst2@127.0.0.1"
    udp.sendto(
        request("ACK", port, target, branch="z9hG4bKst3", ruri=ruri, to_tag=to_tag,
                call_id=call_id),
        target,
    )  # fmt: skip
    bye = request(
        "BYE", port, target, branch="z9hG4bKst4", ruri=ruri, to_tag=to_tag, cseq=2,
        call_id=call_id,
    )  # fmt: skip
    response = await asyncio.to_thread(exchange, udp, bye, target)
    assert response.status == 200 and response.cseq == (2, "BYE")
    assert len(recorder.requests) == 1  # the 422 allocated nothing
