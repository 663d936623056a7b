"""A mailbox an administrator disabled, and settings changes, as the registrar-agent handles
them — with real Kamailio, PostgreSQL, NATS and a sipp caller: not registered at start-up,
de-registered on ``disabled``, registered again on ``enabled``, calls that reach the agent for
it refused with 480 (nothing allocated); a settings change re-registers nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sipum.db import users
from sipum.events import UserUpdated
from sipum_testing.kamailio import KamailioServer
from sipum_testing.polling import wait_for

DOMAIN = "sipum.test"  # the fixtures' domain (conftest.py)
pytestmark = pytest.mark.timeout(60)
AgentRunner = EventLog = Sipp = Any


async def test_disable_and_enable(
    kamailio: KamailioServer,
    agents: AgentRunner,
    make_recorder: Callable[[], Any],
    pg_pool,
    event_bus,
    event_log: EventLog,
    sipp: Sipp,
) -> None:
    alice = await users.get_by_address(pg_pool, "alice", DOMAIN)
    assert alice is not None
    await users.set_disabled(pg_pool, alice.id, True)
    recorder = await make_recorder()
    agent = await agents.start(f"127.0.0.1:{kamailio.port}")
    host, port = agent.sip_address
    await wait_for(lambda: kamailio.contacts("bob"), what="bob registered at start-up")
    await asyncio.sleep(0.5)
    assert kamailio.contacts("alice") == []  # disabled: no voicemail contact

    # A call that reaches the agent for the disabled mailbox anyway: 480, nothing allocated.
    code, output = await sipp.run(
        sipp.rejected(480),
        (host, port),
        service="alice",
        keys={"ruri_host": f"{host}:{port}", "to_host": f"{host}:{port}", "pt": "0",
              "codec": "PCMU"},
    )  # fmt: skip
    assert code == 0, output
    assert recorder.requests == []

    await users.set_disabled(pg_pool, alice.id, False)
    await event_bus.publish(UserUpdated(username="alice", domain=DOMAIN, changed=["enabled"]))
    await wait_for(lambda: kamailio.contacts("alice"), what="alice registered on enabled")
    (binding,) = kamailio.lookup("alice")

    # A setting changed: announced, but nothing about the REGISTER changed — no re-register.
    await users.update(pg_pool, alice.id, ring_timeout_seconds=3)
    await event_bus.publish(
        UserUpdated(username="alice", domain=DOMAIN, changed=["ring_timeout_seconds"])
    )
    await asyncio.sleep(1.0)
    (same,) = kamailio.lookup("alice")
    assert (same.call_id, same.cseq) == (binding.call_id, binding.cseq)

    await users.set_disabled(pg_pool, alice.id, True)
    await event_bus.publish(UserUpdated(username="alice", domain=DOMAIN, changed=["disabled"]))
    await wait_for(lambda: not kamailio.contacts("alice"), what="alice de-registered")
    await wait_for(
        lambda: event_log.of("registration.changed", username="alice", state="unregistered"),
        what="alice's unregistered event",
    )
    # a redelivered "disabled" changes nothing; bob was never touched
    await event_bus.publish(UserUpdated(username="alice", domain=DOMAIN, changed=["disabled"]))
    await asyncio.sleep(0.5)
    assert kamailio.contacts("alice") == [] and kamailio.contacts("bob")
