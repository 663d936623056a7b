"""The asyncio adapter: two user agents on real loopback sockets (UDP and TCP)."""

from __future__ import annotations

import asyncio
import socket

import pytest
from sipum_protocol.sip.message import Headers, SipRequest
from sipum_protocol.sip.transaction import Peer, TimerConfig
from sipum_protocol.sip.transport.config import EndpointConfig
from sipum_protocol.sip.transport.endpoint import SipTimeoutError
from sipum_protocol.sip.ua import (
    CallAnswered,
    CallConfirmed,
    CallEnded,
    IncomingCall,
    UserAgentEvent,
)
from sipum_protocol.sip.ua.aio import UserAgentEndpoint

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
            event.call.ring(b.now())
            event.call.answer(SDP, b.now())

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
        confirmed.call.hangup(b.now())
        (ended,) = await caller_events.wait_for(CallEnded)
        assert ended.reason == "remote-bye"
        (ended_b,) = await callee_events.wait_for(CallEnded)
        assert ended_b.reason == "local-bye"
        assert a.ua.active_calls == 0 and b.ua.active_calls == 0
        if transport == "TCP":
            assert b.counters.connections_opened == 0  # the BYE reused the caller's connection


def _options(uri: str) -> SipRequest:
    headers = Headers()
    headers.add("From", "<sip:caller@127.0.0.1>;tag=o1")
    headers.add("To", f"<{uri}>")
    headers.add("Call-ID", "options-1@127.0.0.1")
    headers.add("CSeq", "1 OPTIONS")
    return SipRequest("OPTIONS", uri, headers)


async def test_plain_request_shares_the_socket() -> None:
    """``send_request`` (what RegistrationClient uses) answered, and timing out."""
    fast = EndpointConfig(udp_port=0, timers=TimerConfig(t1=0.02, t2=0.08))
    async with (
        UserAgentEndpoint(EndpointConfig(udp_port=0)) as b,
        UserAgentEndpoint(fast) as a,
    ):
        host, port = b.addresses["UDP"]
        response = await a.send_request(_options(f"sip:b@{host}:{port}"), Peer("UDP", host, port))
        assert response.status == 200 and "INVITE" in (response.headers.get("Allow") or "")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            dead = silent.getsockname()[1]
            with pytest.raises(SipTimeoutError):
                await a.send_request(
                    _options(f"sip:x@127.0.0.1:{dead}"), Peer("UDP", "127.0.0.1", dead)
                )


async def test_registration_client_runs_on_the_user_agent_socket() -> None:
    """``RegistrationClient`` takes a ``UserAgentEndpoint`` as its endpoint: the REGISTER goes
    out from the user agent's socket and the answer (here 405 from another user agent, which
    is not a registrar) comes back to the pool."""
    import random

    from sipum_protocol.sip.registration import (
        RegistrationBinding,
        RegistrationChanged,
        RegistrationClient,
        RegistrationPolicy,
        RegistrationPool,
        RegistrationState,
    )

    changes: list[RegistrationChanged] = []
    got = asyncio.Event()

    def on_change(event: RegistrationChanged) -> None:
        changes.append(event)
        got.set()

    async with (
        UserAgentEndpoint(EndpointConfig(udp_port=0)) as not_a_registrar,
        UserAgentEndpoint(EndpointConfig(udp_port=0)) as agent,
    ):
        host, port = agent.addresses["UDP"]
        pool = RegistrationPool(
            max_in_flight=1,
            max_rate=None,
            policy=RegistrationPolicy(backoff_base=60.0),
            rng=random.Random(1),
        )
        client = RegistrationClient(
            pool, Peer("UDP", *not_a_registrar.addresses["UDP"]), agent, on_change=on_change
        )
        client.start()
        client.add(RegistrationBinding("alice", "sipum.test", host, port))
        async with asyncio.timeout(10):
            await got.wait()
        await client.stop(grace=0.1)
    assert changes[0].state is RegistrationState.FAILED and changes[0].status == 405
