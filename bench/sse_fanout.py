"""Live-inbox fan-out: many Server-Sent-Event clients on one web-api process.

    uv run python bench/sse_fanout.py [--clients 1000] [--users 100] [--rounds 5]

A scratch PostgreSQL database and an isolated JetStream stream on the local servers; the
web-api app served by uvicorn in a child process (as in production: one process, one loop);
``--users`` mailboxes with ``clients / users`` open ``GET /api/v1/events`` streams each (raw
HTTP/1.1 sockets, so the client side costs little). Each round publishes one ``message.created``
per mailbox; the latency of a client is its receipt time minus the event's timestamp. Also the
server process's RSS before the clients connect and with all connected.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pydantic import SecretStr
from sipum.blobstore import FileBlobStore
from sipum.config import ServiceSettings
from sipum.db import domains, open_database, users
from sipum.events import EventBus, MessageCreated
from sipum.runtime import HealthRegistry, ServiceContext
from sipum.runtime.http import start_http
from sipum_testing.nats import EventNamespace, isolated_event_namespace
from sipum_testing.postgres import DEFAULT_ADMIN_DSN, dsn_for, temporary_database
from sipum_testing.s3 import free_port

PASSWORD = "bench-password-1"


def serve(dsn: str, ns: EventNamespace, port: int, blob_root: str) -> None:
    async def main() -> None:
        from sipum_web_api.app import create_app

        pool = await open_database(dsn, max_size=20)
        bus = await ns.connect("bench-web")
        ctx = ServiceContext(
            settings=ServiceSettings(domain="example.com", secret_key=SecretStr("bench")),
            health=HealthRegistry("web-api"), pool=pool, bus=bus,
            blobs=FileBlobStore(Path(blob_root)),
        )  # fmt: skip
        server, task, _ = await start_http(create_app(ctx), "127.0.0.1", port)
        await task

    asyncio.run(main())


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Client:
    def __init__(self, mailbox: str) -> None:
        self.mailbox = mailbox
        self.received: dict[int, float] = {}

    async def run(self, port: int, token: str, ready: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        status = await reader.readline()
        assert b" 200 " in status, status
        ready.set()
        while line := await reader.readline():
            if line.startswith(b"data: {"):
                self.received[json.loads(line[6:])["message_id"]] = time.time()


async def run(args: argparse.Namespace, dsn: str, blob_root: str) -> dict[str, float]:
    pool = await open_database(dsn)
    async with isolated_event_namespace("nats://127.0.0.1:4222") as ns:
        bus: EventBus = await ns.connect("bench")
        await bus.ensure_stream()
        await domains.ensure(pool, "example.com")
        names = [f"user{i:04d}" for i in range(args.users)]
        await asyncio.gather(*(users.create(pool, n, "example.com", PASSWORD) for n in names))
        port = free_port()
        child = multiprocessing.get_context("spawn").Process(
            target=serve, args=(dsn, ns, port, blob_root), daemon=True
        )
        child.start()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for _ in range(200):
                try:
                    if (await http.get("/health")).status_code in (200, 503):
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            tokens = {}
            for n in names:
                r = await http.post("/api/v1/login", json={"username": n, "password": PASSWORD})
                tokens[n] = r.json()["access_token"]
        rss_before = rss_kib(child.pid)
        per_user = args.clients // args.users
        clients = [Client(n) for n in names for _ in range(per_user)]
        readies = [asyncio.Event() for _ in clients]
        tasks = [
            asyncio.create_task(c.run(port, tokens[c.mailbox], r))
            for c, r in zip(clients, readies, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
        await asyncio.sleep(1.0)
        rss_connected = rss_kib(child.pid)
        sent: dict[int, float] = {}
        mid = 0
        for _ in range(args.rounds):
            for n in names:
                mid += 1
                event = MessageCreated(
                    username=n, domain="example.com", message_id=mid, caller_uri="sip:b@x",
                    caller_display="B", called_uri=f"sip:{n}@example.com",
                    received_at=datetime.now(UTC), duration_s=1.0, codec="PCMU", size=1,
                    blob_key="k",
                )  # fmt: skip
                sent[mid] = event.ts.timestamp()
                await bus.publish(event)
            await asyncio.sleep(0.5)
        await asyncio.sleep(2.0)
        latencies = sorted(t - sent[m] for c in clients for m, t in c.received.items())
        expected = args.rounds * per_user * args.users
        for task in tasks:
            task.cancel()
        child.terminate()
        child.join(5)
        await bus.close()
    await pool.close()
    q = statistics.quantiles(latencies, n=100)
    return {
        "clients": len(clients), "deliveries_expected": expected, "delivered": len(latencies),
        "p50_ms": round(q[49] * 1000, 1), "p99_ms": round(q[98] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
        "server_rss_mib_idle": round(rss_before / 1024, 1),
        "server_rss_mib_connected": round(rss_connected / 1024, 1),
        "kib_per_client": round((rss_connected - rss_before) / len(clients), 1),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with temporary_database(DEFAULT_ADMIN_DSN) as name:
        blob_root = f"{os.getcwd()}/var/bench-sse-blobs"
        print(json.dumps(asyncio.run(run(args, dsn_for(DEFAULT_ADMIN_DSN, name), blob_root))))


if __name__ == "__main__":
    main()
