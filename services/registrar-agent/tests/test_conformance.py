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
from sipum_protocol.sip.message import SipResponse, parse_message
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
) -> bytes:
    host, agent_port = target
    lines = [
        f"{method} sip:alice@{host}:{agent_port} {version}",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport",
        "Max-Forwards: 70",
        "From: <sip:caller@127.0.0.1>;tag=c1",
        f"To: <sip:alice@{DOMAIN}>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {branch}@127.0.0.1",
        f"CSeq: 1 {method}",
        f"Contact: <sip:caller@127.0.0.1:{port}>",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def exchange(sock: socket.socket, data: bytes, target: tuple[str, int]) -> SipResponse:
    """Send ``data``; the first final response (provisional ones skipped), within 3 s."""
    sock.sendto(data, target)
    while True:
        reply, _ = sock.recvfrom(65535)
        message = parse_message(reply)
        assert isinstance(message, SipResponse)
        if message.status >= 200:
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
