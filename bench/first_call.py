"""Latency of the first call's back half: caller's BYE → stored message → e-mail.

    uv run python bench/first_call.py [--calls 50] [--concurrency 5] [--seconds 2]

Starts the whole system as processes (``scratch_system``: what ``tests/e2e/test_first_call.py``
uses — Kamailio with the users from PostgreSQL, moto_server as S3, an aiosmtpd SMTP server, the
five services — on a fresh database, NATS namespace and bucket, removed at the end). Signs up
one mailbox per concurrent caller through the REST API (ring timeout 0, so the forked call is
answered at once) and places ``--calls`` calls through Kamailio, ``--concurrency`` at a time: each caller waits for
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
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import asyncpg  # noqa: E402
from firstcall.audio import known_audio  # noqa: E402
from firstcall.phone import Caller, RtpPeer, wait_event  # noqa: E402
from firstcall.system import FirstCallSystem  # noqa: E402
from firstcall.watch import EventWatch  # noqa: E402
from scratch_system import percentile, scratch_system, sign_up_mailboxes  # noqa: E402


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
        await rtp.wait_beep_then_quiet(after=25, limit=30)  # greeting + beep
        await rtp.send_audio(audio)  # type: ignore[arg-type]
        bye_at = time.time()
        record.call.hangup(caller.endpoint.now())
        await wait_event(record.ended, 10, "end of call", caller)
        return Call(record.call.call_id, user, bye_at)
    finally:
        rtp.close()


async def run(system: FirstCallSystem, args: argparse.Namespace) -> dict[str, list[float]]:
    users = [f"bench{i}" for i in range(args.concurrency)]
    await sign_up_mailboxes(system, users, limit=20)

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

    with scratch_system() as system:
        result = asyncio.run(run(system, args))

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
