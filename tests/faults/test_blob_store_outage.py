"""Fault: the blob store is unavailable for 10 s (every connection refused or cut) while calls
through Kamailio are in progress and end. The recorders keep the audio (the spool retries its
puts, the finished message is stored with back-off once the store is back); nothing is lost,
nothing doubled, nothing flagged interrupted, every message mailed once with its audio."""

from __future__ import annotations

import asyncio
import time

import pytest
from sipum_testing.tcp_proxy import TcpProxy

from ..e2e.firstcall.system import FirstCallSystem
from ..e2e.firstcall.watch import EventWatch
from .calls import Placed, place_call, sign_up_alice, stored_rows, table, wait_for_count

pytestmark = pytest.mark.timeout(180)

CALLS = 4
SPEECH = 3.0
OUTAGE = 10.0


async def test_blob_store_away_for_10_s_with_calls_in_progress(
    system: FirstCallSystem, s3_proxy: TcpProxy
) -> None:
    await sign_up_alice(system)
    watch = await EventWatch(system.backends.nats_url, system.backends.events_prefix).start()
    try:
        placed: list[Placed] = []
        speaking = [asyncio.Event() for _ in range(CALLS)]
        calls = [
            asyncio.create_task(place_call(system, i, speaking[i], placed, speech_seconds=SPEECH))
            for i in range(CALLS)
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in speaking)), 60)
        await asyncio.to_thread(s3_proxy.down)
        down_at = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*calls), 60)  # they hang up during the outage
        assert watch.of("message.created") == []  # nothing could be stored yet
        await asyncio.sleep(max(0.0, down_at + OUTAGE - time.monotonic()))
        await asyncio.to_thread(s3_proxy.up)
        up_at = time.monotonic()
        await wait_for_count(watch, "message.created", CALLS, limit=30)
        stored_after = time.monotonic() - up_at
        mails = await asyncio.to_thread(system.smtp.wait_for, CALLS, 40)
        await asyncio.sleep(1.0)
        rows = await stored_rows(system.backends.database_url)
    finally:
        await watch.close()
    mail_ids = [m.message["X-Sipum-Message-Id"] for m in mails]
    stored = len({r["idempotency_key"] for r in rows})
    emailed = len({str(r["id"]) for r in rows} & set(mail_ids))
    doubled = (len(rows) - stored) + (len(mail_ids) - len(set(mail_ids)))
    durations = sorted(r["duration_ms"] / 1000 for r in rows)
    print(
        table(
            [
                {
                    "fault": f"blob store away {OUTAGE:.0f} s (calls end during it)",
                    "calls": CALLS,
                    "stored": stored,
                    "e-mailed": emailed,
                    "lost": CALLS - min(stored, emailed),
                    "doubled": doubled,
                    "interrupted": sum(1 for r in rows if r["interrupted"]),
                    "all stored after the store is back": f"{stored_after:.1f} s",
                    "open connections cut": s3_proxy.refused,
                }
            ]
        )
    )
    assert stored == CALLS and emailed == CALLS and doubled == 0
    assert not any(r["interrupted"] for r in rows)
    assert all(abs(d - SPEECH) < 0.3 for d in durations), durations  # whole messages
    attached = [
        part
        for mail in mails
        for part in mail.message.iter_attachments()
        if part.get_content_type().startswith("audio/")
    ]
    assert len(attached) == CALLS
