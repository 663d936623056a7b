"""Webhooks against a real HTTP receiver (the standard library's threading HTTP server on
loopback) that checks every signature itself, through retries, a receiver restart, a slow
endpoint and the SSRF guard."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sipum.db import domains, users, webhooks
from sipum.security.destinations import (
    DestinationRefused,
    check_address,
    resolve_destination,
)
from sipum_notifier.webhooks.signature import verify

from .test_notifier import free_port, start_notifier, wait_for

LOOPBACK = ["127.0.0.0/8"]
FAST = {
    "webhook_allowed_networks": LOOPBACK,
    "webhook_retry_base": 0.3,
    "webhook_poll_interval": 0.1,
    "send_email": False,
}


class Receiver:
    """A webhook endpoint: verifies the signature independently (plain hmac), keeps what it got,
    answers ``status`` (or 500 to the first ``fail_first``) after ``delay`` seconds."""

    def __init__(self, secret: str, *, port: int | None = None) -> None:
        self.secret = secret
        self.port = port or free_port()
        self.got: list[dict] = []
        self.bad_signatures = 0
        self.fail_first = 0
        self.delay = 0.0
        self.status = 200
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                t, _, v1 = self.headers["Sipum-Signature"].partition(",v1=")
                mac = hmac.new(
                    receiver.secret.encode(),
                    t.removeprefix("t=").encode() + b"." + body,
                    hashlib.sha256,
                ).hexdigest()
                if not hmac.compare_digest(mac, v1) or abs(time.time() - int(t[2:])) > 300:
                    receiver.bad_signatures += 1
                time.sleep(receiver.delay)
                failing = receiver.fail_first > 0
                receiver.fail_first -= failing
                receiver.got.append(
                    {
                        "key": self.headers["Idempotency-Key"],
                        "event": self.headers["Sipum-Event"],
                        "host": self.headers["Host"],
                        "body": json.loads(body),
                        "ok": not failing,
                    }
                )
                self.send_response(500 if failing else receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/sipum?x=1"

    def accepted_keys(self) -> set[str]:
        return {g["key"] for g in self.got if g["ok"]}


@pytest.fixture
def receivers():
    started: list[Receiver] = []

    def make(secret: str, **kw) -> Receiver:
        r = Receiver(secret, **kw)
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()


def new_event(world, **changes):
    return world["event"].model_copy(update={"id": uuid.uuid4(), **changes})


async def alice_endpoint(world, receiver) -> webhooks.Webhook:
    """alice's own endpoint for ``message.created`` at *receiver*, signed with its secret."""
    return await webhooks.create(
        world["pool"],
        webhooks.Owner.user(world["alice"].id),
        url=receiver.url,
        events=["message.created"],
        secret=receiver.secret,
    )


async def deliveries(pool, webhook_id: int) -> list[webhooks.DeliveryLog]:
    user_id = await pool.fetchval("SELECT user_id FROM webhooks WHERE id=$1", webhook_id)
    return await webhooks.deliveries_for(pool, webhooks.Owner.user(user_id), webhook_id)


async def test_signed_delivery_once_per_event(world, receivers) -> None:
    receiver = receivers("s" * 20).start()
    hook = await alice_endpoint(world, receiver)
    service = await start_notifier(world, 9, **FAST)
    await world["bus"].publish(world["event"])
    await wait_for(lambda: receiver.got)
    [got] = receiver.got
    assert receiver.bad_signatures == 0
    assert got["key"] == str(world["event"].id) and got["event"] == "message.created"
    assert got["host"] == f"127.0.0.1:{receiver.port}"
    assert got["body"]["type"] == "message.created"
    assert got["body"]["data"]["message_id"] == world["message"].id
    # The same event again (a redelivery) adds no delivery; an event of a kind the endpoint did
    # not subscribe to is not sent.
    await service.webhooks.fan_out(world["event"])
    from sipum.events import MessageDeleted

    await world["bus"].publish(
        MessageDeleted(username="alice", domain="example.com", message_id=world["message"].id)
    )
    await asyncio.sleep(0.5)
    assert len(receiver.got) == 1
    [log] = await deliveries(world["pool"], hook.id)
    assert log.state == "delivered" and log.attempts == 1 and log.last_status == 200
    await service.stop_accepting()
    await service.drain()


async def test_retries_through_a_receiver_restart_lose_nothing(world, receivers) -> None:
    receiver = receivers("r" * 20)  # not started: the port refuses connections
    await alice_endpoint(world, receiver)
    service = await start_notifier(world, 9, **FAST)
    events = [new_event(world) for _ in range(5)]
    for event in events:
        await world["bus"].publish(event)
    await asyncio.sleep(1.0)  # a few refused attempts each
    receiver.start()
    receiver.fail_first = 3  # and the first answers after the restart are 500s
    await wait_for(lambda: len(receiver.accepted_keys()) == 5, limit=20)
    receiver.stop()
    receiver.start()  # a second restart: nothing is sent again
    await asyncio.sleep(1.0)
    assert receiver.accepted_keys() == {str(e.id) for e in events}
    assert sum(g["ok"] for g in receiver.got) == 5  # duplicates only as retries of failures
    assert receiver.bad_signatures == 0
    await service.stop_accepting()
    await service.drain()


async def test_a_slow_endpoint_does_not_delay_another(world, receivers) -> None:
    slow, fast = receivers("a" * 20).start(), receivers("b" * 20).start()
    slow.delay = 3.0
    for r in (slow, fast):
        await alice_endpoint(world, r)
    service = await start_notifier(world, 9, webhook_timeout=1.0, **FAST)
    started = time.monotonic()
    for _ in range(6):
        await world["bus"].publish(new_event(world))
    await wait_for(lambda: len(fast.accepted_keys()) == 6, limit=10)
    assert time.monotonic() - started < 2.0  # while the slow one is still timing out
    await service.stop_accepting()
    await service.drain()


async def test_dead_letter_after_the_retry_window(world, receivers) -> None:
    receiver = receivers("d" * 20).start()
    receiver.status = 503
    hook = await alice_endpoint(world, receiver)
    service = await start_notifier(world, 9, webhook_retry_window=1.5, **FAST)
    await world["bus"].publish(world["event"])

    async def dead() -> bool:
        return [d.state for d in await deliveries(world["pool"], hook.id)] == ["dead"]

    for _ in range(60):
        if await dead():
            break
        await asyncio.sleep(0.1)
    [log] = await deliveries(world["pool"], hook.id)
    assert log.state == "dead" and log.last_status == 503 and log.attempts >= 2
    attempts = await world["pool"].fetch(
        "SELECT attempt, status FROM webhook_attempts ORDER BY attempt"
    )
    assert [a["attempt"] for a in attempts] == list(range(1, log.attempts + 1))
    await service.stop_accepting()
    await service.drain()


async def test_loopback_is_refused_unless_allowed(world, receivers) -> None:
    receiver = receivers("l" * 20).start()
    hook = await alice_endpoint(world, receiver)
    service = await start_notifier(
        world, 9, send_email=False, webhook_poll_interval=0.1, webhook_retry_base=0.2
    )
    await world["bus"].publish(world["event"])
    for _ in range(50):
        logs = await deliveries(world["pool"], hook.id)
        if logs and logs[0].state != "pending":
            break
        await asyncio.sleep(0.1)
    [log] = logs
    assert log.state == "dead" and "loopback" in (log.last_error or "")
    assert receiver.got == []
    await service.stop_accepting()
    await service.drain()


async def test_domain_endpoint_gets_every_users_events_of_its_domain_only(
    world, receivers, pg_pool
) -> None:
    receiver = receivers("m" * 20).start()
    domain = await domains.ensure(pg_pool, "example.com")
    await webhooks.create(
        pg_pool,
        webhooks.Owner.domain(domain.id),
        url=receiver.url,
        events=["message.created"],
        secret=receiver.secret,
    )
    await domains.ensure(pg_pool, "other.test")
    await users.create(pg_pool, "carol", "other.test", "carol-password-1")
    await users.create(pg_pool, "bob", "example.com", "bob-password-12")
    service = await start_notifier(world, 9, **FAST)
    await world["bus"].publish(new_event(world, username="carol", domain="other.test"))
    alices = new_event(world)
    await world["bus"].publish(alices)
    bobs = new_event(world, username="bob")
    await world["bus"].publish(bobs)
    await wait_for(lambda: len(receiver.got) >= 2)
    await asyncio.sleep(0.5)
    # every mailbox of the domain, nobody else's; signed with the domain endpoint's secret
    assert sorted(g["key"] for g in receiver.got) == sorted([str(alices.id), str(bobs.id)])
    assert {g["body"]["data"]["username"] for g in receiver.got} == {"alice", "bob"}
    assert receiver.bad_signatures == 0
    await service.stop_accepting()
    await service.drain()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    with pytest.raises(DestinationRefused):
        check_address(ipaddress.ip_address(address), [])


def test_public_and_allowed_addresses_pass() -> None:
    check_address(ipaddress.ip_address("93.184.216.34"), [])
    check_address(ipaddress.ip_address("2606:2800:220:1::1"), [])
    check_address(ipaddress.ip_address("10.1.2.3"), [ipaddress.ip_network("10.1.0.0/16")])


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/", "only http"),
        ("http://user:pw@93.184.216.34/", "credentials"),
        ("http://localhost:8222/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http:///nohost", "no host"),
    ],
)
async def test_urls_refused(url: str, why: str) -> None:
    with pytest.raises(DestinationRefused, match=why):
        await resolve_destination(url, [])


async def test_a_public_literal_connects_to_the_checked_address() -> None:
    d = await resolve_destination("https://93.184.216.34:8443/a?b=1", [])
    assert (
        d.connect_url == "https://93.184.216.34:8443/a?b=1"
        and d.host_header == "93.184.216.34:8443"
    )


def test_signature_verifies_and_rejects_old_or_forged() -> None:
    from sipum_notifier.webhooks.signature import sign

    header = sign("k" * 20, 1_700_000_000, b"{}")
    assert verify("k" * 20, header, b"{}", now=1_700_000_100)
    assert not verify("k" * 20, header, b"{ }", now=1_700_000_100)
    assert not verify("x" * 20, header, b"{}", now=1_700_000_100)
    assert not verify("k" * 20, header, b"{}", now=1_700_001_000)
    assert not verify("k" * 20, "garbage", b"{}", now=1_700_000_000)


async def test_a_queued_test_event_is_delivered(world, receivers) -> None:
    receiver = receivers("t" * 20).start()
    hook = await alice_endpoint(world, receiver)
    service = await start_notifier(world, 9, **FAST)
    event_id = uuid.uuid4()
    body = json.dumps({"id": str(event_id), "type": "webhook.test", "data": {}})
    await webhooks.enqueue_test(world["pool"], hook.id, body, event_id)
    await wait_for(lambda: receiver.got)  # picked up by the poll, within a second
    [got] = receiver.got
    assert got["event"] == "webhook.test" and got["key"] == str(event_id)
    assert receiver.bad_signatures == 0
    await service.stop_accepting()
    await service.drain()
