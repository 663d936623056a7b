"""The registrar-agent with real Kamailio, PostgreSQL, NATS JetStream and sipp callers.

Kamailio checks the agent's digest credentials against the test database (``WITH_PGSQL``);
a fake media-recorder serves ``sipum.media.allocate`` on the test's NATS namespace.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sipum.db import users
from sipum.events import UserCreated, UserDeleted, UserUpdated
from sipum_protocol.sip.message import SipRequest, make_response, parse_message
from sipum_protocol.sip.registration import (
    DigestCredentials,
    RegistrationBinding,
    RegistrationClient,
    RegistrationPool,
)
from sipum_protocol.sip.transaction import Peer
from sipum_protocol.sip.transport import EndpointConfig
from sipum_protocol.sip.ua import IncomingCall
from sipum_protocol.sip.ua.aio import UserAgentEndpoint
from sipum_registrar_agent.registrations import shard_of
from sipum_testing.kamailio import KamailioServer

DOMAIN = "sipum.test"  # the fixtures' domain (conftest.py)
pytestmark = pytest.mark.timeout(60)

# Fixture objects are defined in conftest.py (AgentRunner, FakeRecorder, EventLog, Sipp);
# pytest's importlib mode does not let tests import from it, hence the Any annotations.
AgentRunner = EventLog = FakeRecorder = Sipp = Any


async def wait_for(predicate: Callable[[], Any], limit: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` every 50 ms until true, at most ``limit`` seconds."""
    for _ in range(int(limit / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached in {limit}s: {what}")


def contacts(kamailio: KamailioServer, user: str) -> list[str]:
    return [c.address for c in kamailio.lookup(user)]


async def test_registers_users_follows_user_events_and_deregisters_on_stop(
    kamailio: KamailioServer, agents: AgentRunner, pg_pool, event_bus, event_log: EventLog
) -> None:
    agent = await agents.start(f"127.0.0.1:{kamailio.port}", registrations_in_flight=2)
    host, port = agent.sip_address
    await wait_for(
        lambda: contacts(kamailio, "alice") and contacts(kamailio, "bob"), what="start-up"
    )
    assert contacts(kamailio, "alice") == [f"sip:alice@127.0.0.1:{port}"]
    assert contacts(kamailio, "bob") == [f"sip:bob@127.0.0.1:{port}"]

    # A user created through the web-api: row in the database, then the event.
    carol = await users.create(pg_pool, "carol", DOMAIN, "carol-password-1")
    await event_bus.publish(UserCreated(username="carol", domain=DOMAIN))
    await wait_for(lambda: contacts(kamailio, "carol"), what="carol registered")
    assert contacts(kamailio, "carol") == [f"sip:carol@127.0.0.1:{port}"]

    # A deleted one is de-registered (Expires: 0). The event comes before the row goes: the
    # registrar authenticates the de-registration against the row (docs/registrar-agent.md).
    await event_bus.publish(UserDeleted(username="bob", domain=DOMAIN))
    await wait_for(lambda: not contacts(kamailio, "bob"), what="bob de-registered")
    bob = await users.get_by_address(pg_pool, "bob", DOMAIN)
    assert bob is not None
    await users.delete(pg_pool, bob.id)
    assert contacts(kamailio, "alice") and contacts(kamailio, "carol")

    # Every transition is published as sipum.evt.registration.changed.
    await wait_for(
        lambda: event_log.of("registration.changed", username="bob", state="unregistered"),
        what="bob's unregistered event",
    )
    for name in ("alice", "bob", "carol"):
        (registered,) = event_log.of("registration.changed", username=name, state="registered")
        assert registered.contact == f"sip:{name}@127.0.0.1:{port}"
        assert registered.expires_s and registered.expires_s > 0
    assert carol.id > 0

    # SIGTERM: everybody de-registered.
    await agents.stop(agent)
    assert contacts(kamailio, "alice") == [] and contacts(kamailio, "carol") == []
    await wait_for(
        lambda: event_log.of("registration.changed", username="alice", state="unregistered"),
        what="alice's unregistered event",
    )


async def test_forked_call_rings_then_answers_with_recorder_sdp_and_bye_hangs_up(
    kamailio: KamailioServer,
    agents: AgentRunner,
    recorder: FakeRecorder,
    event_log: EventLog,
    sipp: Sipp,
) -> None:
    await agents.start(f"127.0.0.1:{kamailio.port}", trusted_proxies=["127.0.0.1"])
    await wait_for(lambda: contacts(kamailio, "alice"), what="alice registered")
    byes_before = (
        REGISTRY.get_sample_value("sipum_agent_calls_ended_total", {"end_reason": "bye"}) or 0.0
    )
    status, output = await sipp.run(
        "call",
        kamailio.address,
        service="alice",
        keys={"ruri_host": DOMAIN, "to_host": DOMAIN, "extra": "X-Test: forked", "talk_ms": "300"},
    )
    assert status == 0, output
    await wait_for(lambda: recorder.hangups, what="hangup command")
    (request,) = recorder.requests
    assert (request.username, request.domain, request.mode) == ("alice", DOMAIN, "record")
    assert request.reason == "forked"
    assert request.caller_uri.startswith("sip:caller@127.0.0.1")
    assert request.caller_display == "Bob Caller"
    assert request.trusted is False  # no P-Asserted-Identity
    assert "m=audio" in request.offer_sdp
    (hangup,) = recorder.hangups
    assert hangup.session_id == "fake1" and hangup.reason == "bye"

    await wait_for(lambda: event_log.of("call.ended"), what="call.ended")
    (started,) = event_log.of("call.started", username="alice")
    (answered,) = event_log.of("call.answered", username="alice")
    (ended,) = event_log.of("call.ended", username="alice")
    # The agent let it ring for alice's ring timeout (1 s) before answering.
    assert (answered.ts - started.ts).total_seconds() >= 0.95
    assert answered.session_id == "fake1" and answered.recorder_id == "fake"
    assert ended.end_reason == "bye" and ended.session_id == "fake1"
    assert ended.message_id == 1001  # from the recorder's "ended" answering the hang-up
    assert started.reason == "forked" and started.from_display == "Bob Caller"
    # /metrics
    assert (
        REGISTRY.get_sample_value("sipum_agent_calls_ended_total", {"end_reason": "bye"})
        == byes_before + 1
    )
    assert (
        REGISTRY.get_sample_value("sipum_agent_registrations", {"state": "registered"}) or 0
    ) >= 2


async def test_cancel_before_the_ring_timeout_gives_487_and_allocates_nothing(
    kamailio: KamailioServer,
    agents: AgentRunner,
    recorder: FakeRecorder,
    event_log: EventLog,
    sipp: Sipp,
) -> None:
    await agents.start(f"127.0.0.1:{kamailio.port}")
    await wait_for(lambda: contacts(kamailio, "alice"), what="alice registered")
    status, output = await sipp.run(
        "cancel",
        kamailio.address,
        service="alice",
        keys={"ruri_host": DOMAIN, "to_host": DOMAIN, "wait_ms": "200"},
    )
    assert status == 0, output
    await wait_for(lambda: event_log.of("call.ended"), what="call.ended")
    (ended,) = event_log.of("call.ended", username="alice")
    assert ended.end_reason == "cancel" and ended.status_code == 487
    await asyncio.sleep(1.2)  # past alice's ring timeout: still nothing allocated
    assert recorder.requests == [] and recorder.commands == []
    assert event_log.of("call.answered") == []


async def test_direct_call_is_answered_at_once(
    kamailio: KamailioServer,
    agents: AgentRunner,
    recorder: FakeRecorder,
    event_log: EventLog,
    sipp: Sipp,
) -> None:
    """A call diverted to us (RFC 4458 target/cause): no ring delay; trusted PAI passed on."""
    agent = await agents.start(f"127.0.0.1:{kamailio.port}", trusted_proxies=["127.0.0.0/8"])
    host, port = agent.sip_address
    status, output = await sipp.run(
        "call",
        (host, port),
        service="voicemail",
        keys={
            "ruri_host": f"{host}:{port};target=sip:alice%40{DOMAIN};cause=486",
            "to_host": DOMAIN,
            "extra": f"P-Asserted-Identity: <sip:alice@{DOMAIN}>",
            "talk_ms": "100",
        },
    )
    assert status == 0, output
    (request,) = recorder.requests
    assert request.username == "alice"
    assert (request.reason, request.diversion_cause) == ("diverted", "486")
    # The PAI came from a trusted address and names the owner.
    assert request.trusted is True and request.caller_uri == f"sip:alice@{DOMAIN}"
    await wait_for(lambda: event_log.of("call.answered"), what="call.answered")
    (started,) = event_log.of("call.started")
    (answered,) = event_log.of("call.answered")
    assert (answered.ts - started.ts).total_seconds() < 0.9


async def test_untrusted_p_asserted_identity_is_ignored(
    kamailio: KamailioServer, agents: AgentRunner, recorder: FakeRecorder, sipp: Sipp
) -> None:
    agent = await agents.start(f"127.0.0.1:{kamailio.port}", trusted_proxies=["192.0.2.1"])
    host, port = agent.sip_address
    status, output = await sipp.run(
        "call",
        (host, port),
        service="alice-7-retrieve",
        keys={
            "ruri_host": f"{host}:{port}",
            "to_host": f"{host}:{port}",
            "extra": f"P-Asserted-Identity: <sip:alice@{DOMAIN}>",
            "talk_ms": "100",
        },
    )
    assert status == 0, output
    (request,) = recorder.requests
    assert (request.mode, request.message_id, request.username) == ("retrieve", 7, "alice")
    assert request.trusted is False and request.caller_uri.startswith("sip:caller@")


@pytest.mark.parametrize(
    ("status", "user", "codec", "with_recorder"),
    [
        (404, "mallory", ("0", "PCMU"), True),  # unknown mailbox
        (488, "alice", ("18", "G729"), True),  # no codec in common with the recorder
        (503, "alice", ("0", "PCMU"), False),  # no media-recorder answers
    ],
    ids=["unknown-mailbox-404", "no-common-codec-488", "no-recorder-503"],
)
async def test_rejected_calls(
    status: int,
    user: str,
    codec: tuple[str, str],
    with_recorder: bool,
    kamailio: KamailioServer,
    agents: AgentRunner,
    make_recorder: Callable[[], Any],
    event_log: EventLog,
    sipp: Sipp,
) -> None:
    recorder = await make_recorder() if with_recorder else None
    agent = await agents.start(f"127.0.0.1:{kamailio.port}")
    host, port = agent.sip_address
    code, output = await sipp.run(
        sipp.rejected(status),
        (host, port),
        service=user,
        keys={
            "ruri_host": f"{host}:{port}",
            "to_host": f"{host}:{port}",
            "pt": codec[0],
            "codec": codec[1],
        },
    )
    assert code == 0, output
    if status != 404:
        await wait_for(lambda: event_log.of("call.ended"), what="call.ended")
        (ended,) = event_log.of("call.ended", username=user)
        assert ended.end_reason == "rejected" and ended.status_code == status
    else:
        await asyncio.sleep(0.2)
        assert event_log.of("call.started") == []
    if recorder is not None and status == 404:
        assert recorder.requests == []


async def test_numeric_via_with_n(pg_pool, accounts, agents: AgentRunner, event_bus) -> None:
    """-n: the REGISTER's Via carries the numeric address; the Contact keeps the name."""
    loop = asyncio.get_running_loop()
    for numeric, expected_via in ((False, "localhost"), (True, "127.0.0.1")):
        registrar = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        registrar.bind(("127.0.0.1", 0))
        registrar.setblocking(False)
        seen: list[tuple[SipRequest, tuple[str, int]]] = []

        async def refuse_all() -> None:
            # A registrar that says 403 to everything (so stopping needs no de-registration).
            while True:
                data, source = await loop.sock_recvfrom(registrar, 65535)  # noqa: B023
                request = parse_message(data)
                assert isinstance(request, SipRequest)
                seen.append((request, source))  # noqa: B023
                registrar.sendto(bytes(make_response(request, 403)), source)  # noqa: B023

        responder = asyncio.create_task(refuse_all())
        try:
            agent = await agents.start(
                f"127.0.0.1:{registrar.getsockname()[1]}",
                sip_advertise="localhost",
                numeric_via=numeric,
            )
            await wait_for(lambda: len(seen) >= 2, what="REGISTERs of alice and bob")  # noqa: B023
            for request, source in seen:
                assert request.method == "REGISTER"
                assert request.top_via.host == expected_via
                assert request.top_via.port == source[1]  # our registration socket
                contact = request.headers.get("Contact") or ""
                assert f"@localhost:{agent.sip_address[1]}" in contact
            await asyncio.wait_for(agents.stop(agent), 5)
        finally:
            responder.cancel()
            registrar.close()


async def test_session_ended_by_the_recorder_makes_the_agent_send_bye(
    kamailio: KamailioServer,
    agents: AgentRunner,
    recorder: FakeRecorder,
    event_log: EventLog,
    sipp: Sipp,
) -> None:
    agent = await agents.start(f"127.0.0.1:{kamailio.port}")
    host, port = agent.sip_address
    caller = asyncio.create_task(
        sipp.run("hungup", (host, port), service="bob", keys={"ruri_host": f"{host}:{port}",
                                                               "to_host": f"{host}:{port}"})
    )  # fmt: skip
    await wait_for(lambda: event_log.of("call.answered"), what="call.answered")
    await recorder.end_session("fake1", message_id=67212)  # e.g. the caller pressed '#'
    status, output = await asyncio.wait_for(caller, 20)
    assert status == 0, output  # sipp got our BYE and answered it
    await wait_for(lambda: event_log.of("call.ended"), what="call.ended")
    (ended,) = event_log.of("call.ended", username="bob")
    assert ended.end_reason == "completed" and ended.message_id == 67212
    assert recorder.hangups == []  # the recorder ended it; no hangup command back


async def test_a_recorder_that_stops_beating_is_noticed_within_2s_and_the_call_ended(
    kamailio: KamailioServer,
    agents: AgentRunner,
    recorder: FakeRecorder,
    event_log: EventLog,
    sipp: Sipp,
) -> None:
    """The recorder holding the call goes silent (as a SIGKILLed one does): the agent sends
    BYE within 2 s of its last heartbeat, and call.ended says media_lost."""
    agent = await agents.start(f"127.0.0.1:{kamailio.port}")
    host, port = agent.sip_address
    caller = asyncio.create_task(
        sipp.run("hungup", (host, port), service="bob", keys={"ruri_host": f"{host}:{port}",
                                                               "to_host": f"{host}:{port}"})
    )  # fmt: skip
    await wait_for(lambda: event_log.of("call.answered"), what="call.answered")
    await asyncio.sleep(1.0)  # the call goes on while the recorder beats
    assert event_log.of("call.ended") == []
    loop = asyncio.get_running_loop()
    recorder.go_silent()
    silent = loop.time()
    await wait_for(lambda: event_log.of("call.ended"), what="call.ended")
    noticed = loop.time() - silent
    status, output = await asyncio.wait_for(caller, 20)
    assert status == 0, output  # sipp got our BYE and answered it
    (ended,) = event_log.of("call.ended", username="bob")
    assert ended.end_reason == "media_lost"
    print(f"\nrecorder silent -> call ended (BYE sent) after {noticed:.2f} s")
    assert noticed <= 2.0
    assert recorder.hangups == []  # nothing sent to the dead recorder


async def test_a_recorder_never_heard_from_after_answering_is_taken_for_gone(
    kamailio: KamailioServer,
    agents: AgentRunner,
    recorder: FakeRecorder,
    event_log: EventLog,
    sipp: Sipp,
) -> None:
    recorder.go_silent()  # answers allocations, never beats (it died right after answering)
    agent = await agents.start(f"127.0.0.1:{kamailio.port}", recorder_unknown_seconds=1.0)
    host, port = agent.sip_address
    status, output = await sipp.run(
        "hungup", (host, port), service="bob", keys={"ruri_host": f"{host}:{port}",
                                                      "to_host": f"{host}:{port}"}
    )  # fmt: skip
    assert status == 0, output
    await wait_for(lambda: event_log.of("call.ended"), what="call.ended")
    (ended,) = event_log.of("call.ended", username="bob")
    assert ended.end_reason == "media_lost" and 0.9 <= ended.duration_s <= 3.0


async def test_max_call_seconds_ends_the_call_with_bye(
    kamailio: KamailioServer,
    agents: AgentRunner,
    recorder: FakeRecorder,
    event_log: EventLog,
    sipp: Sipp,
) -> None:
    agent = await agents.start(f"127.0.0.1:{kamailio.port}", max_call_seconds=1.5)
    host, port = agent.sip_address
    status, output = await sipp.run(
        "hungup", (host, port), service="bob", keys={"ruri_host": f"{host}:{port}",
                                                      "to_host": f"{host}:{port}"}
    )  # fmt: skip
    assert status == 0, output  # our BYE came and was answered
    await wait_for(lambda: event_log.of("call.ended"), what="call.ended")
    (ended,) = event_log.of("call.ended", username="bob")
    assert ended.end_reason == "max_duration" and 1.4 <= ended.duration_s <= 3.0
    # the recorder was told, so it stores what was said
    assert [h.reason for h in recorder.hangups] == ["timeout"]


async def test_sigterm_lets_a_call_in_progress_finish_and_refuses_new_ones(
    kamailio: KamailioServer,
    agents: AgentRunner,
    recorder: FakeRecorder,
    event_log: EventLog,
    sipp: Sipp,
) -> None:
    agent = await agents.start(f"127.0.0.1:{kamailio.port}", call_drain_seconds=10.0)
    host, port = agent.sip_address
    direct = {"ruri_host": f"{host}:{port}", "to_host": f"{host}:{port}"}
    await wait_for(lambda: contacts(kamailio, "alice"), what="alice registered")
    caller = asyncio.create_task(
        sipp.run("call", (host, port), service="alice",
                 keys={**direct, "extra": "X-Test: drain", "talk_ms": "2000"})
    )  # fmt: skip
    await wait_for(lambda: event_log.of("call.answered"), what="call.answered")
    stopping = asyncio.create_task(agents.stop(agent))  # what the runtime does on SIGTERM
    # Users are de-registered at once, so the proxy stops sending new calls ...
    await wait_for(lambda: not contacts(kamailio, "alice"), what="de-registered")
    # ... and a call that still arrives is refused with 503 + Retry-After.
    status, output = await sipp.run(
        sipp.rejected(503), (host, port), service="bob", keys={**direct, "pt": "0", "codec": "PCMU"}
    )
    assert status == 0, output
    assert not stopping.done()  # the call in progress is still going
    status, output = await asyncio.wait_for(caller, 20)
    assert status == 0, output  # it ended with the caller's BYE, answered 200
    await asyncio.wait_for(stopping, 10)
    (hangup,) = recorder.hangups
    assert hangup.reason == "bye"
    (ended,) = event_log.of("call.ended", username="alice")
    assert ended.end_reason == "bye"


async def test_calls_still_going_at_the_drain_deadline_are_hung_up(
    kamailio: KamailioServer,
    agents: AgentRunner,
    recorder: FakeRecorder,
    event_log: EventLog,
    sipp: Sipp,
) -> None:
    agent = await agents.start(f"127.0.0.1:{kamailio.port}", call_drain_seconds=0.5)
    host, port = agent.sip_address
    caller = asyncio.create_task(
        sipp.run("hungup", (host, port), service="alice", keys={"ruri_host": f"{host}:{port}",
                                                                 "to_host": f"{host}:{port}"})
    )  # fmt: skip
    await wait_for(lambda: event_log.of("call.answered"), what="call.answered")
    await asyncio.wait_for(agents.stop(agent), 10)
    status, output = await asyncio.wait_for(caller, 20)
    assert status == 0, output  # sipp received our BYE
    (hangup,) = recorder.hangups
    assert hangup.reason == "shutdown"
    await wait_for(lambda: event_log.of("call.ended"), what="call.ended")
    (ended,) = event_log.of("call.ended", username="alice")
    assert ended.end_reason == "completed" and ended.message_id == 1001


async def test_process_registers_and_deregisters_on_sigterm(
    kamailio: KamailioServer, pg_dsn: str, event_namespace, event_bus, event_log: EventLog
) -> None:
    """``python -m sipum_registrar_agent -n`` on the shared runtime: real SIGTERM → exit 0,
    every binding removed from Kamailio."""
    env = {
        **os.environ,
        "SIPUM_DATABASE_URL": pg_dsn,
        "SIPUM_NATS_URL": event_namespace.url,
        "SIPUM_EVENTS_PREFIX": event_namespace.prefix,
        "SIPUM_EVENTS_STREAM": event_namespace.stream,
        "SIPUM_REGISTRAR": f"127.0.0.1:{kamailio.port}",
        "SIPUM_SIP_HOST": "127.0.0.1",
        "SIPUM_SIP_PORT": "0",
        "SIPUM_HTTP_PORT": "0",
        "SIPUM_DOMAIN": DOMAIN,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sipum_registrar_agent", "-n",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        await wait_for(
            lambda: contacts(kamailio, "alice") and contacts(kamailio, "bob"),
            limit=20,
            what="registered by the process",
        )
        process.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, out.decode(errors="replace")[-2000:]
    assert contacts(kamailio, "alice") == [] and contacts(kamailio, "bob") == []
    await wait_for(
        lambda: len(event_log.of("registration.changed", state="unregistered")) == 2,
        what="unregistered events",
    )


async def test_cancel_during_the_allocation_hangs_up_the_new_session(
    kamailio: KamailioServer,
    agents: AgentRunner,
    recorder: FakeRecorder,
    event_log: EventLog,
    sipp: Sipp,
) -> None:
    """The ring timer fired and the recorder is slow to answer: the CANCEL wins, the session
    it allocated is hung up at once and no 200 goes out."""
    recorder.delay = 1.0
    agent = await agents.start(f"127.0.0.1:{kamailio.port}", media_timeout=3.0)
    host, port = agent.sip_address
    status, output = await sipp.run(
        "cancel",
        kamailio.address,
        service="alice",
        keys={"ruri_host": DOMAIN, "to_host": DOMAIN, "wait_ms": "1500"},  # 1 s ring + 0.5 s
    )
    assert status == 0, output
    await wait_for(lambda: recorder.hangups, what="hangup of the allocated session")
    assert len(recorder.requests) == 1
    (hangup,) = recorder.hangups
    assert hangup.reason == "cancel"
    await wait_for(lambda: event_log.of("call.ended"), what="call.ended")
    (ended,) = event_log.of("call.ended", username="alice")
    assert ended.end_reason == "cancel" and ended.status_code == 487
    assert event_log.of("call.answered") == []


async def test_password_change_re_registers_with_the_new_ha1(
    kamailio: KamailioServer, agents: AgentRunner, pg_pool, event_bus
) -> None:
    await agents.start(f"127.0.0.1:{kamailio.port}")
    await wait_for(lambda: contacts(kamailio, "alice"), what="alice registered")
    (before,) = kamailio.lookup("alice")
    alice = await users.get_by_address(pg_pool, "alice", DOMAIN)
    assert alice is not None
    await users.set_password(pg_pool, alice.id, "a-new-password-2")
    await event_bus.publish(UserUpdated(username="alice", domain=DOMAIN, changed=["password"]))
    # The same binding (Call-ID), refreshed at once with a higher CSeq: the registrar accepted
    # the digest computed from the new HA1 (the old one is now refused by the database view).
    await wait_for(lambda: kamailio.lookup("alice")[0].cseq > before.cseq, what="re-register")
    (after,) = kamailio.lookup("alice")
    assert after.call_id == before.call_id and after.address == before.address


async def test_two_agents_split_the_users_by_shard(
    kamailio: KamailioServer, agents: AgentRunner, pg_pool
) -> None:
    for i in range(6):
        await users.create(pg_pool, f"user{i}", DOMAIN, f"user{i}-password-x")
    first = await agents.start(f"127.0.0.1:{kamailio.port}", shard_index=0, shard_count=2)
    second = await agents.start(f"127.0.0.1:{kamailio.port}", shard_index=1, shard_count=2)
    names = ["alice", "bob", *(f"user{i}" for i in range(6))]
    # exactly one contact each (should the first agent have taken shard 1 over while the
    # second was still starting, it gives it back once the second is up)
    await wait_for(
        lambda: all(len(contacts(kamailio, n)) == 1 for n in names), what="all registered once"
    )
    ports = {first.sip_address[1]: 0, second.sip_address[1]: 1}
    for name in names:
        (contact,) = contacts(kamailio, name)
        port = int(contact.rsplit(":", 1)[1])
        assert ports[port] == shard_of(name, DOMAIN, 2), name
    assert set(ports.values()) == {0, 1}


async def test_phone_answers_first_our_branch_is_cancelled_nothing_recorded(
    kamailio: KamailioServer,
    agents: AgentRunner,
    recorder: FakeRecorder,
    event_log: EventLog,
    accounts,
    sipp: Sipp,
) -> None:
    """Alice's phone and the agent both registered: Kamailio forks, the phone answers within
    the ring timeout, Kamailio CANCELs our branch (Reason: SIP;cause=200): no session."""
    phone_sdp = (
        b"v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=alice-phone\r\nc=IN IP4 127.0.0.1\r\n"
        b"t=0 0\r\nm=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
    loop = asyncio.get_running_loop()

    def on_phone_event(event: object) -> None:
        if isinstance(event, IncomingCall):
            event.call.ring(loop.time())
            loop.call_later(0.2, lambda: event.call.answer(phone_sdp, loop.time()))

    async with UserAgentEndpoint(EndpointConfig(udp_port=0), on_event=on_phone_event) as phone:
        registrar = Peer("UDP", kamailio.host, kamailio.port)
        client = RegistrationClient(RegistrationPool(max_rate=None), registrar, phone)
        client.start()
        alice = accounts["alice"]
        client.add(
            RegistrationBinding(
                user="alice",
                domain=DOMAIN,
                contact_host="127.0.0.1",
                contact_port=phone.addresses["UDP"][1],
                credentials=DigestCredentials("alice", {"MD5": alice.ha1}, realm=alice.realm),
            )
        )
        await agents.start(f"127.0.0.1:{kamailio.port}")
        await wait_for(lambda: len(contacts(kamailio, "alice")) == 2, what="phone and agent")
        status, output = await sipp.run(
            "call",
            kamailio.address,
            service="alice",
            keys={
                "ruri_host": DOMAIN,
                "to_host": DOMAIN,
                "extra": "X-Test: phone",
                "talk_ms": "100",
                "answer_mark": "alice-phone",  # the caller talks to the phone
            },
        )
        assert status == 0, output
        await wait_for(lambda: event_log.of("call.ended"), what="call.ended")
        await client.stop(grace=2.0)
    (ended,) = event_log.of("call.ended", username="alice")
    assert ended.end_reason == "answered_elsewhere" and ended.status_code == 487
    assert recorder.requests == [] and event_log.of("call.answered") == []


async def test_many_concurrent_calls_each_get_their_own_session(
    kamailio: KamailioServer,
    agents: AgentRunner,
    recorder: FakeRecorder,
    event_log: EventLog,
    sipp: Sipp,
) -> None:
    """60 diverted calls, 30 per second, each talking 0.5 s (so about 15 overlap)."""
    agent = await agents.start(f"127.0.0.1:{kamailio.port}")
    host, port = agent.sip_address
    status, output = await sipp.run(
        "call",
        (host, port),
        service="voicemail",
        keys={
            "ruri_host": f"{host}:{port};target=sip:alice%40{DOMAIN};cause=408",
            "to_host": DOMAIN,
            "extra": "X-Test: load",
            "talk_ms": "500",
        },
        calls=60,
        rate=30,
        timeout=30,
    )
    assert status == 0, output  # every call: 200 with the recorder's SDP, ACK, BYE, 200
    await wait_for(lambda: len(event_log.of("call.ended")) == 60, what="60 call.ended")
    assert len(recorder.requests) == 60
    assert len({r.call_id for r in recorder.requests}) == 60
    assert sorted(h.session_id for h in recorder.hangups) == sorted(
        f"fake{i}" for i in range(1, 61)
    )
    ended = event_log.of("call.ended")
    assert {e.end_reason for e in ended} == {"bye"}
    assert len({e.session_id for e in ended}) == 60
