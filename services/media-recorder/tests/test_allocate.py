"""The allocation RPC: two replicas share one queue group, error codes the agent maps to SIP
responses, codec choice in the answer, SIGTERM-style drain; plus the pure helpers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sipum.events import RemoteError
from sipum_media_recorder.address import advertised_address, nats_host_port
from sipum_media_recorder.negotiation import answer_offer
from sipum_media_recorder.retrieve import caller_is_owner, sip_user_host
from sipum_media_recorder.service import session_id_for
from sipum_protocol.sip.sdp import SessionDescription
from sipum_testing.rtp_caller import offer_sdp, speech_like

pytestmark = pytest.mark.timeout(40)


async def test_two_replicas_split_the_allocations(world: Any) -> None:
    a = await world.start_recorder(recorder_id="rec-a")
    b = await world.start_recorder(recorder_id="rec-b")
    callers = [await world.caller() for _ in range(12)]
    replies = await asyncio.gather(*(c.allocate() for c in callers))
    by_replica: dict[str, int] = {}
    for caller, reply in zip(callers, replies, strict=True):
        by_replica[reply.recorder_id] = by_replica.get(reply.recorder_id, 0) + 1
        owner = a if reply.recorder_id == "rec-a" else b
        assert caller.remote is not None
        assert owner.port_pool.first <= caller.remote[1] <= owner.port_pool.last
        assert reply.session_id in owner.sessions
    assert set(by_replica) == {"rec-a", "rec-b"}, by_replica
    assert len(a.sessions) + len(b.sessions) == 12
    await asyncio.gather(*(c.hangup() for c in callers))
    ended = await asyncio.gather(*(world.wait_ended(r.session_id) for r in replies))
    assert {e.end_reason for e in ended} == {"bye"}
    await asyncio.sleep(0.05)
    assert a.sessions == {} and b.sessions == {}
    assert a.port_pool.in_use == 0 and b.port_pool.in_use == 0
    for caller in callers:
        caller.close()


async def test_a_retry_on_another_replica_makes_no_second_message(world: Any) -> None:
    """The agent's retry reaches replica B while A has the call (A's reply was lost): same
    session id, so A's message is the only one; B's session hears nothing and stores nothing."""
    await world.upload_greeting(0.1)
    a = await world.start_recorder(recorder_id="rec-a")
    b = await world.start_recorder(recorder_id="rec-b")
    caller = await world.caller()
    request = caller.request()
    reply_a = await a.allocate(request)
    reply_b = await b.allocate(request)
    assert reply_a.session_id == reply_b.session_id
    caller.use_reply(reply_a)
    await caller.wait_quiet(after=20)
    await caller.send_audio(speech_like(1.5, seed=21))
    await caller.hangup()  # both replicas own the session id: both stop
    await world.wait_ended(reply_a.session_id)
    await asyncio.sleep(0.3)
    assert a.sessions == {} and b.sessions == {}
    from sipum.db import messages

    rows = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert len(rows) == 1 and rows[0].idempotency_key == reply_a.session_id
    assert len(await world.events("message.created")) == 1
    caller.close()


async def test_errors_the_agent_maps_to_sip_responses(world: Any) -> None:
    service = await world.start_recorder(port_pairs=1)
    caller = await world.caller()
    # no common codec → unsupported (488)
    with pytest.raises(RemoteError) as err:
        await caller.allocate(
            caller.request(offer_sdp=offer_sdp("127.0.0.1", caller.port, formats="18"))
        )
    assert err.value.code == "unsupported" and "no common codec" in err.value.message
    # unreadable SDP → bad_request
    with pytest.raises(RemoteError) as err:
        await caller.allocate(caller.request(offer_sdp="hello"))
    assert err.value.code == "bad_request"
    # unknown mailbox, unknown message → not_found (404)
    with pytest.raises(RemoteError) as err:
        await caller.allocate(caller.request(username="nobody"))
    assert err.value.code == "not_found"
    with pytest.raises(RemoteError) as err:
        await caller.allocate(caller.request(mode="retrieve", message_id=999999))
    assert err.value.code == "not_found"
    # unserved mode → unsupported
    with pytest.raises(RemoteError) as err:
        await caller.allocate(caller.request(mode="greeting", greeting_kind="name"))
    assert err.value.code == "unsupported"
    # the pool has one port pair: the second call finds it taken → overloaded (503)
    first = await caller.allocate()
    other = await world.caller()
    with pytest.raises(RemoteError) as err:
        await other.allocate()
    assert err.value.code == "overloaded"
    await caller.hangup()
    await world.wait_ended(first.session_id)
    await asyncio.sleep(0.05)
    assert service.port_pool.in_use == 0
    caller.close()
    other.close()


async def test_stopping_refuses_new_calls_and_stores_the_ones_in_flight(world: Any) -> None:
    await world.upload_greeting(0.1)
    service = await world.start_recorder(drain_seconds=0.3)
    caller = await world.caller()
    reply = await caller.allocate()
    await caller.wait_quiet(after=20)
    sender = asyncio.create_task(caller.send_audio(speech_like(3.0, seed=22)))
    await asyncio.sleep(1.5)
    await service.stop_accepting()  # what SIGTERM does first
    other = await world.caller()
    with pytest.raises(RemoteError) as err:  # nobody else serves: the refusal is ours
        await service.allocate(other.request())
    assert err.value.code == "overloaded"
    await asyncio.wait_for(service.drain(), 5)
    sender.cancel()
    ended = await world.wait_ended(reply.session_id)
    assert ended.end_reason == "completed" and ended.message_id is not None
    from sipum.db import messages

    (message,) = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert 1500 <= message.duration_ms <= 2300
    caller.close()
    other.close()


# -- pure helpers ------------------------------------------------------------------------------


def test_answer_follows_the_offerers_codec_order_with_our_address() -> None:
    offer = offer_sdp("192.0.2.5", 4000, formats="8 0 101")
    negotiated = answer_offer(offer, address="203.0.113.9")
    plan = negotiated.with_port(20002)
    assert plan.codec.name == "PCMA" and plan.payload_type == 8
    assert plan.telephone_event_pt == 101
    assert plan.remote == ("192.0.2.5", 4000) and plan.remote_rtcp == ("192.0.2.5", 4001)
    answer = SessionDescription.parse(plan.answer_sdp)
    assert answer.connection is not None and answer.connection.host == "203.0.113.9"
    assert answer.media[0].port == 20002 and answer.media[0].formats == ["8", "101"]


def test_opus_and_g722_offers_are_accepted() -> None:
    opus = (
        "v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 96 9\r\na=rtpmap:96 opus/48000/2\r\n"
    )
    plan = answer_offer(opus, address="127.0.0.1").with_port(30000)
    assert plan.codec.name == "opus" and plan.payload_type == 96
    assert plan.telephone_event_pt is None
    g722 = opus.replace("RTP/AVP 96 9", "RTP/AVP 9")
    assert answer_offer(g722, address="127.0.0.1").with_port(30000).codec.name == "G722"


def test_session_ids_are_stable_per_request() -> None:
    from sipum.events import MediaAllocateRequest

    def request(**kw: Any) -> MediaAllocateRequest:
        values: dict[str, Any] = {
            "call_id": "abc@host",
            "mode": "record",
            "username": "alice",
            "domain": "example.com",
            "offer_sdp": "v=0\r\n",
            "caller_uri": "sip:bob@x",
            "called_uri": "sip:alice@example.com",
        }
        values.update(kw)
        return MediaAllocateRequest.model_validate(values)

    first = session_id_for(request())
    assert first == session_id_for(request())  # a retry (new envelope id) → same session
    assert first != session_id_for(request(call_id="other@host"))
    assert first != session_id_for(request(mode="retrieve", message_id=10001))
    assert first.isalnum() and len(first) <= 32


def test_advertised_address() -> None:
    assert nats_host_port("nats://10.1.2.3:4333,nats://x:1") == ("10.1.2.3", 4333)
    assert nats_host_port("nats://nats") == ("nats", 4222)
    kw = {"nats_url": "nats://127.0.0.1:4222"}
    assert advertised_address(configured="198.51.100.4", rtp_host="0.0.0.0", **kw) == "198.51.100.4"
    assert advertised_address(configured=None, rtp_host="192.0.2.1", **kw) == "192.0.2.1"
    # wildcard bind: the source address of the route to NATS (loopback here)
    assert advertised_address(configured=None, rtp_host="0.0.0.0", **kw) == "127.0.0.1"


def test_caller_uri_parsing_for_trust() -> None:
    assert sip_user_host('"Alice" <sip:alice@Example.com:5060;transport=tcp>') == (
        "alice",
        "example.com",
    )
    assert sip_user_host("mailto:alice@example.com") is None
    assert sip_user_host("sip:example.com") is None
    from sipum.db.users import User

    alice = User.__new__(User)
    object.__setattr__(alice, "username", "alice")
    object.__setattr__(alice, "domain", "example.com")
    assert caller_is_owner("<sip:alice@EXAMPLE.com>", alice)
    assert not caller_is_owner("sip:alice@evil.example", alice)
    assert not caller_is_owner("sip:Alice@example.com", alice)  # user parts are case-sensitive
