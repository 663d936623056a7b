"""Latency of the first call's back half: caller's BYE → stored message → e-mail.

    uv run python bench/first_call.py [--calls 50] [--concurrency 5] [--seconds 2]

Starts the whole system as processes (what ``tests/e2e/test_first_call.py`` uses: Kamailio with
the users from PostgreSQL, moto_server as S3, an aiosmtpd SMTP server, the five services) on a
fresh database, NATS namespace and bucket, removed at the end. Signs up one mailbox per
concurrent caller through the REST API (ring timeout 0, so the forked call is answered at once)
and places ``--calls`` calls through Kamailio, ``--concurrency`` at a time: each caller waits for
greeting and beep, sends ``--seconds`` of speech-like PCMU and hangs up (BYE).

Per call, on one clock (``time.time()``, everything on this host):

* BYE → row: the ``messages.created_at`` of the row (its insert transaction's start);
* BYE → event: when an independent NATS subscriber received ``sipum.evt.message.created``;
* event → SMTP: from that event to our SMTP server answering 250 to the notifier's DATA.

Needs PostgreSQL (127.0.0.1:5432, trust) and NATS with JetStream (127.0.0.1:4222), like the
tests (``SIPUM_TEST_POSTGRES_URL`` / ``SIPUM_TEST_NATS_URL`` override them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from firstcall.audio import known_audio  # noqa: E402
from firstcall.phone import Caller, RtpPeer, wait_event  # noqa: E402
from firstcall.system import Backends, FirstCallSystem, start_system  # noqa: E402
from firstcall.watch import EventWatch, set_ring_timeout  # noqa: E402
from sipum.db.migrate import apply_migrations  # noqa: E402
from sipum.events import EventBus  # noqa: E402
from sipum_testing.postgres import dsn_for, temporary_database  # noqa: E402

ADMIN_DSN = os.environ.get(
    "SIPUM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
NATS_URL = os.environ.get("SIPUM_TEST_NATS_URL", "nats://127.0.0.1:4222")
S3_KEY, S3_SECRET = "bench", "bench-secret"


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto_server on a free loopback port (stopped by PID); yields ``host:port``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("moto_server did not start")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Call:
    call_id: str
    user: str
    bye_at: float


async def one_call(system: FirstCallSystem, caller: Caller, user: str, audio: object) -> Call:
    rtp = await RtpPeer().open()
    try:
        record = caller.invite(f"sip:{user}@{system.domain}", system.proxy, rtp.offer())
        await wait_event(record.answered, 20, "answer", caller)
        assert record.call.remote_sdp is not None
        rtp.use_answer(record.call.remote_sdp)
        await rtp.wait_quiet(quiet=0.3, after=25, limit=30)  # greeting + beep
        await rtp.send_audio(audio)  # type: ignore[arg-type]
        bye_at = time.time()
        record.call.hangup(caller.endpoint.now())
        await wait_event(record.ended, 10, "end of call", caller)
        return Call(record.call.call_id, user, bye_at)
    finally:
        rtp.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def run(system: FirstCallSystem, args: argparse.Namespace) -> dict[str, list[float]]:
    users = [f"bench{i}" for i in range(args.concurrency)]
    async with httpx.AsyncClient(base_url=system.web_url, timeout=15) as http:
        for user in users:
            response = await http.post(
                "/api/v1/signup",
                json={
                    "username": user,
                    "password": f"{user}-password",
                    "email": f"{user}@mail.test",
                },
            )
            response.raise_for_status()
            await set_ring_timeout(system.backends.database_url, user, 0)
    deadline = time.monotonic() + 20
    while any(not system.kamailio.lookup(u) for u in users):  # the agent registered them
        if time.monotonic() > deadline:
            raise RuntimeError("the registrar-agent did not register the bench users")
        await asyncio.sleep(0.2)

    watch = await EventWatch(system.backends.nats_url, system.backends.events_prefix).start()
    audio = known_audio(args.seconds)
    calls: list[Call] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(args.calls):
        queue.put_nowait(n)
    started = time.monotonic()
    async with Caller(domain=system.domain) as caller:

        async def worker(user: str) -> None:
            while True:
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                calls.append(await one_call(system, caller, user, audio))

        async with asyncio.TaskGroup() as group:
            for user in users:
                group.create_task(worker(user))
    elapsed = time.monotonic() - started

    by_call = {}
    for call in calls:
        event = await watch.wait_for("message.created", limit=30, call_id=call.call_id)
        by_call[call.call_id] = event
    await watch.close()
    mails = await asyncio.to_thread(system.smtp.wait_for, args.calls, 60)
    mail_at = {int(str(m.message["X-Sipum-Message-Id"])): m.accepted_at for m in mails}
    conn = await asyncpg.connect(system.backends.database_url)
    try:
        rows = await conn.fetch(
            "SELECT id, duration_ms, extract(epoch FROM created_at) AS t FROM messages"
        )
    finally:
        await conn.close()
    row_at = {r["id"]: float(r["t"]) for r in rows}
    durations = [r["duration_ms"] / 1000 for r in rows]

    result: dict[str, list[float]] = {
        "BYE -> message row": [],
        "BYE -> message.created": [],
        "message.created -> SMTP 250": [],
    }
    for call in calls:
        event = by_call[call.call_id]
        message_id = event.data["message_id"]
        result["BYE -> message row"].append(row_at[message_id] - call.bye_at)
        result["BYE -> message.created"].append(event.at - call.bye_at)
        result["message.created -> SMTP 250"].append(mail_at[message_id] - event.at)
    print(
        f"{len(calls)} calls through Kamailio, {args.concurrency} at a time, "
        f"{args.seconds:g} s of audio each, {elapsed:.1f} s in all; "
        f"{len(rows)} messages (duration {min(durations):.2f}-{max(durations):.2f} s), "
        f"{len(mails)} mails"
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="audio per call")
    parser.add_argument("--json", action="store_true", help="also print the raw figures")
    args = parser.parse_args()

    token = uuid.uuid4().hex[:12]
    prefix, stream = f"bench{token}", f"BENCH_{token}"
    with temporary_database(ADMIN_DSN) as database, moto_server() as s3:
        dsn = dsn_for(ADMIN_DSN, database)

        async def migrate() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await apply_migrations(conn)
            finally:
                await conn.close()

        asyncio.run(migrate())
        backends = Backends(
            database_url=dsn,
            nats_url=NATS_URL,
            events_prefix=prefix,
            events_stream=stream,
            s3_endpoint=s3,
            s3_bucket=f"bench-{token}",
            s3_access_key=S3_KEY,
            s3_secret_key=S3_SECRET,
        )
        system = start_system(backends)
        try:
            result = asyncio.run(run(system, args))
        finally:
            system.stop()

            async def delete_stream() -> None:
                bus = await EventBus.connect(
                    NATS_URL, "bench-cleanup", prefix=prefix, stream=stream
                )
                try:
                    await bus.delete_stream()
                finally:
                    await bus.close()

            asyncio.run(delete_stream())

    print(f"{'interval':<30} {'n':>4} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in result.items():
        ms = [v * 1000 for v in values]
        print(
            f"{name:<30} {len(ms):>4} {statistics.median(ms):>8.1f} {percentile(ms, 0.9):>8.1f}"
            f" {percentile(ms, 0.99):>8.1f} {max(ms):>8.1f}"
        )
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
