"""Event → webhook delivered: latency of the notifier's webhook path on real servers.

    uv run python bench/webhook_delivery.py [--messages 200] [--rate 50] [--dead-endpoint]

Creates a scratch PostgreSQL database (migrated) and an isolated JetStream stream on the local
servers, one user with one webhook pointing at a real HTTP receiver on loopback (the standard
library's threading server, checking every signature), starts the notifier service in this
process (e-mail off) and publishes ``message.created`` events at ``--rate`` per second. The
latency of each is the receiver's arrival time minus the event's timestamp: publish, JetStream,
fan-out into the outbox, lease, signing, HTTP. ``--dead-endpoint`` adds a second endpoint of
the same user that refuses connections, to show it does not slow the first.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import resource
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pydantic import SecretStr
from sipum.db import domains, open_database, users, webhooks
from sipum.events import MessageCreated
from sipum.runtime import HealthRegistry, ServiceContext
from sipum_notifier.service import NotifierService
from sipum_notifier.settings import NotifierSettings
from sipum_testing.nats import isolated_event_namespace
from sipum_testing.postgres import DEFAULT_ADMIN_DSN, dsn_for, temporary_database
from sipum_testing.s3 import free_port

SECRET = "bench-webhook-secret-0123456789"


def start_receiver(port: int, arrivals: dict[str, float], bad: list[int]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            arrived = time.time()
            t, _, v1 = self.headers["Sipum-Signature"].partition(",v1=")
            mac = hmac.new(SECRET.encode(), t[2:].encode() + b"." + body, hashlib.sha256)
            if not hmac.compare_digest(mac.hexdigest(), v1):
                bad.append(1)
            arrivals.setdefault(self.headers["Idempotency-Key"], arrived)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def run(messages: int, rate: float, dead_endpoint: bool, dsn: str) -> dict[str, float]:
    pool = await open_database(dsn)
    async with isolated_event_namespace("nats://127.0.0.1:4222") as ns:
        bus = await ns.connect("bench")
        await bus.ensure_stream()
        await domains.ensure(pool, "example.com")
        alice = await users.create(pool, "alice", "example.com", "alice-password-1")
        port = free_port()
        arrivals: dict[str, float] = {}
        bad: list[int] = []
        server = start_receiver(port, arrivals, bad)
        await webhooks.create(
            pool,
            webhooks.Owner.user(alice.id),
            url=f"http://127.0.0.1:{port}/hook",
            events=["message.created"],
            secret=SECRET,
        )
        if dead_endpoint:
            await webhooks.create(
                pool,
                webhooks.Owner.user(alice.id),
                url=f"http://127.0.0.1:{free_port()}/dead",
                events=["message.created"],
                secret=SECRET,
            )
        settings = NotifierSettings(
            secret_key=SecretStr("bench"),
            send_email=False,
            webhook_allowed_networks=["127.0.0.0/8"],
            webhook_timeout=2.0,
        )
        service = NotifierService(settings)
        ctx = ServiceContext(
            settings=settings,
            health=HealthRegistry("notifier"),
            pool=pool,
            bus=bus,
            blobs=None,
        )
        await service.start(ctx)
        sent: dict[str, float] = {}
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        start = time.monotonic()
        for i in range(messages):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            event = MessageCreated(
                username="alice",
                domain="example.com",
                message_id=10000 + i,
                caller_uri="sip:bob@example.com",
                caller_display="Bob",
                called_uri="sip:alice@example.com",
                received_at=datetime.now(UTC),
                duration_s=5.0,
                codec="PCMU",
                size=1000,
                blob_key=f"k/{i}",
                id=uuid.uuid4(),
            )
            sent[str(event.id)] = event.ts.timestamp()
            await bus.publish(event)
        for _ in range(1200):  # at most 60 s for the last deliveries
            if len(arrivals) >= messages:
                break
            await asyncio.sleep(0.05)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.monotonic() - start
        await service.stop_accepting()
        await service.drain()
        server.shutdown()
        await bus.close()
    await pool.close()
    latencies = sorted(arrivals[k] - sent[k] for k in sent if k in arrivals)
    q = statistics.quantiles(latencies, n=100)
    return {
        "messages": messages,
        "delivered": len(latencies),
        "bad_signatures": len(bad),
        "p50_ms": round(q[49] * 1000, 1),
        "p99_ms": round(q[98] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
        "process_cpu_share": round(
            (cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / wall, 3
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--dead-endpoint", action="store_true")
    args = parser.parse_args()
    with temporary_database(DEFAULT_ADMIN_DSN) as name:
        result = asyncio.run(
            run(args.messages, args.rate, args.dead_endpoint, dsn_for(DEFAULT_ADMIN_DSN, name))
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
