"""RegistrationClient on a real TransactionEndpoint when the registrar never answers."""

from __future__ import annotations

import asyncio
import random
import socket
import time

import pytest
from sipum_protocol.sip import digest
from sipum_protocol.sip.registration import (
    DigestCredentials,
    RegistrationBinding,
    RegistrationChanged,
    RegistrationClient,
    RegistrationPolicy,
    RegistrationPool,
    RegistrationState,
)
from sipum_protocol.sip.transaction import Peer, TimerConfig
from sipum_protocol.sip.transport import EndpointConfig, TransactionEndpoint

pytestmark = pytest.mark.timeout(30)


async def test_silent_registrar_times_out_fails_and_stop_is_bounded():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # receives, never answers
    silent.bind(("127.0.0.1", 0))
    endpoint = TransactionEndpoint(
        EndpointConfig(host="127.0.0.1", udp_port=0, timers=TimerConfig(t1=0.05, t2=0.2, t4=0.2))
    )
    changes: list[RegistrationChanged] = []
    failed = asyncio.Event()

    def on_change(event: RegistrationChanged) -> None:
        changes.append(event)
        failed.set()

    await endpoint.start()
    try:
        host, port = endpoint.addresses["UDP"]
        pool = RegistrationPool(
            max_in_flight=5,
            max_rate=None,
            policy=RegistrationPolicy(backoff_base=60.0),
            rng=random.Random(3),
        )
        client = RegistrationClient(
            pool, Peer("UDP", *silent.getsockname()), endpoint, on_change=on_change
        )
        client.start()
        started = time.monotonic()
        client.add(
            RegistrationBinding(
                user="alice",
                domain="sipum.test",
                contact_host=host,
                contact_port=port,
                credentials=DigestCredentials(
                    "alice", {"MD5": digest.compute_ha1("alice", "sipum.test", "pw")}
                ),
            )
        )
        async with asyncio.timeout(10):
            await failed.wait()
        elapsed = time.monotonic() - started
        # Timer F = 64·T1 = 3.2 s; retransmissions (timer E) went out meanwhile.
        assert 3.0 <= elapsed <= 5.0
        (event,) = changes
        assert event.state is RegistrationState.FAILED and event.reason == "timeout"
        assert event.status is None
        assert event.retry_at is not None and 30.0 <= event.retry_at - event.at <= 60.0
        assert pool.in_flight == 0  # the window slot is free again
        silent.setblocking(False)
        received = 0
        while True:
            try:
                silent.recv(65535)
            except BlockingIOError:
                break
            received += 1
        assert received >= 5  # the REGISTER and its timer E retransmissions
        # Never bound: stop() has nothing to de-register and returns at once.
        assert await client.stop(grace=1.0)
        assert pool.idle
        assert [e.state for e in changes] == [
            RegistrationState.FAILED,
            RegistrationState.UNREGISTERED,
        ]
    finally:
        await endpoint.close()
        silent.close()


async def test_stop_waits_at_most_grace_for_a_register_in_flight():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    endpoint = TransactionEndpoint(EndpointConfig(host="127.0.0.1", udp_port=0))
    await endpoint.start()
    try:
        host, port = endpoint.addresses["UDP"]
        pool = RegistrationPool(max_in_flight=5, max_rate=None, rng=random.Random(4))
        client = RegistrationClient(pool, Peer("UDP", *silent.getsockname()), endpoint)
        client.start()
        client.add(RegistrationBinding("bob", "sipum.test", host, port))
        client.pump()  # what the client's task does on its next turn: the REGISTER goes out
        assert pool.in_flight == 1
        started = time.monotonic()
        assert not await client.stop(grace=0.3)  # the REGISTER is still waiting for timer F
        assert 0.25 <= time.monotonic() - started <= 1.0
    finally:
        await endpoint.close()
        silent.close()
