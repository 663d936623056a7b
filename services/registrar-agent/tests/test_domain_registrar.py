"""Each domain its own registrar (setting ``registrar``, docs/administration.md), with real
Kamailio instances (one per domain, credentials from the test's PostgreSQL), NATS and the agent:
users of domain A are registered at registrar A, those of B at B, none at the agent's own
``registrar``; a ``domain.updated`` naming ``registrar`` moves A's users to a new registrar
(de-registered at the old one first)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from sipum.accounts import admin
from sipum.db import domains, users
from sipum.events import UserCreated
from sipum_testing.polling import wait_for

pytestmark = pytest.mark.timeout(60)
AgentRunner = EventLog = Any


def silent_udp_port() -> tuple[socket.socket, int]:
    """A bound UDP socket nobody reads: the agent's own ``registrar``, which no domain uses."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock, int(sock.getsockname()[1])


async def test_each_domain_registers_at_its_registrar_and_moves(
    kamailio_factory, pg_dsn, pg_pool, event_bus, agents: AgentRunner, event_log: EventLog
) -> None:
    dsn = pg_dsn.replace("postgresql://", "postgres://", 1)
    kam_a = kamailio_factory(domain="a.test", postgres_url=dsn)
    kam_b = kamailio_factory(domain="b.test", postgres_url=dsn)
    await domains.create(pg_pool, "a.test", registrar=f"127.0.0.1:{kam_a.port}")
    await domains.create(pg_pool, "b.test", registrar=f"sip:127.0.0.1:{kam_b.port};transport=udp")
    await users.create(pg_pool, "ann", "a.test", "ann-password-1")
    await users.create(pg_pool, "ben", "b.test", "ben-password-1")
    idle, idle_port = silent_udp_port()
    try:
        await agents.start(f"127.0.0.1:{idle_port}", domain="a.test")
        await wait_for(lambda: kam_a.contacts("ann"), what="ann registered at A")
        await wait_for(lambda: kam_b.contacts("ben"), what="ben registered at B")
        assert kam_b.contacts("ann") == [] and kam_a.contacts("ben") == []

        # A user created later in B: registered at B (the agent knew the domain already).
        await users.create(pg_pool, "bea", "b.test", "bea-password-1")
        await event_bus.publish(UserCreated(username="bea", domain="b.test"))
        await wait_for(lambda: kam_b.contacts("bea"), what="bea registered at B")
        assert kam_a.contacts("bea") == []
        idle.setblocking(False)
        with pytest.raises(BlockingIOError):
            idle.recv(4096)  # nothing ever went to the agent's own registrar

        # The administrator moves domain A to a new registrar (the admin service layer, which
        # publishes domain.updated naming "registrar").
        kam_a2 = kamailio_factory(domain="a.test", postgres_url=dsn)
        await admin.update_domain(
            pg_pool, "a.test", bus=event_bus, registrar=f"127.0.0.1:{kam_a2.port}"
        )
        await wait_for(lambda: kam_a2.contacts("ann"), what="ann registered at the new A")
        await wait_for(lambda: not kam_a.contacts("ann"), what="ann de-registered at old A")
        assert [c.address for c in kam_b.lookup("ben")]  # B's users untouched
        registered = event_log.of("registration.changed", username="ann", state="registered")
        assert registered[-1].registrar == f"127.0.0.1:{kam_a2.port}"
        await wait_for(
            lambda: event_log.of("registration.changed", username="ann", state="unregistered"),
            what="ann's unregistered event",
        )
        (gone,) = event_log.of("registration.changed", username="ann", state="unregistered")
        assert gone.registrar == f"127.0.0.1:{kam_a.port}"  # where it was bound: the old one
        assert (
            event_log.of("registration.changed", username="ben", state="registered")[-1].registrar
            == f"sip:127.0.0.1:{kam_b.port};transport=udp"
        )
    finally:
        idle.close()
