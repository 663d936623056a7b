"""The asyncio adapter: two user agents on real loopback sockets (UDP and TCP)."""

from __future__ import annotations

import asyncio

import pytest
from sipum.sip.transaction import Peer
from sipum.sip.transport.config import EndpointConfig
from sipum.sip.ua import (
    CallAnswered,
    CallConfirmed,
    CallEnded,
    IncomingCall,
    UserAgentEvent,
)
from sipum.sip.ua.aio import UserAgentEndpoint

pytestmark = pytest.mark.timeout(20)

SDP = (
    b"v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
)


class Recorder:
    def __init__(self) -> None:
        self.events: list[UserAgentEvent] = []
        self.changed = asyncio.Event()

    def __call__(self, event: UserAgentEvent) -> None:
        self.events.append(event)
        self.changed.set()

    async def wait_for(self, kind: type, count: int = 1) -> list[UserAgentEvent]:
        async with asyncio.timeout(10):
            while True:
                found = [e for e in self.events if isinstance(e, kind)]
                if len(found) >= count:
                    return found
                self.changed.clear()
                await self.changed.wait()


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_call_answered_then_callee_hangs_up(transport: str) -> None:
    config = EndpointConfig(udp_port=0, tcp_port=0 if transport == "TCP" else None)
    callee_events, caller_events = Recorder(), Recorder()

    def callee(event: UserAgentEvent) -> None:
        callee_events(event)
        if isinstance(event, IncomingCall):
            event.call.ring()
            event.call.answer(SDP)

    async with (
        UserAgentEndpoint(config, on_event=callee, user="callee") as b,
        UserAgentEndpoint(
            EndpointConfig(udp_port=0, tcp_port=0 if transport == "TCP" else None),
            on_event=caller_events,
            user="caller",
        ) as a,
    ):
        host, port = b.addresses[transport]
        call = a.invite(f"sip:callee@{host}:{port}", Peer(transport, host, port), sdp=SDP)
        (answered,) = await caller_events.wait_for(CallAnswered)
        assert answered.call is call and call.remote_sdp == SDP
        (confirmed,) = await callee_events.wait_for(CallConfirmed)
        # The callee ends the call: its BYE reaches the caller (over the same TCP connection).
        confirmed.call.hangup()
        (ended,) = await caller_events.wait_for(CallEnded)
        assert ended.reason == "remote-bye"
        (ended_b,) = await callee_events.wait_for(CallEnded)
        assert ended_b.reason == "local-bye"
        assert a.ua.active_calls == 0 and b.ua.active_calls == 0
        if transport == "TCP":
            assert b.counters.connections_opened == 0  # the BYE reused the caller's connection
