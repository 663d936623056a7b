"""Fault: the SMTP server is away (stopped: connections refused) for 10 s while calls through
Kamailio end and their messages are stored. The notifier's attempts fail, each publishes
``notification.failed`` (``will_retry``) and JetStream redelivers the event (after 1 s, 5 s,
15 s, …); once the server is back on its port every message is mailed exactly once.

Why 10 s and not the issue's 60 s: the back-off steps are 1 s, 5 s, 15 s, 60 s, so an outage of
10 s already makes every message fail three times and wait out the 15 s step; 60 s would only
add the 60 s step and a minute to every CI run (the retry code is the same).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from ..e2e.firstcall.system import FirstCallSystem
from ..e2e.firstcall.watch import EventWatch
from .calls import Placed, place_call, sign_up_alice, stored_rows, table, wait_for_count

pytestmark = pytest.mark.timeout(180)

CALLS = 4
SPEECH = 2.0
OUTAGE = 10.0


async def test_smtp_away_for_10_s_while_messages_are_stored(system: FirstCallSystem) -> None:
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
        port = system.smtp.port
        await asyncio.to_thread(system.smtp.stop)
        down_at = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*calls), 60)
        await wait_for_count(watch, "message.created", CALLS, limit=20)
        failed = await wait_for_count(watch, "notification.failed", CALLS, limit=20)
        assert system.smtp.mails == []  # nobody was there to take them
        await asyncio.sleep(max(0.0, down_at + OUTAGE - time.monotonic()))
        await asyncio.to_thread(system.smtp.start, port)
        up_at = time.monotonic()
        mails = await asyncio.to_thread(system.smtp.wait_for, CALLS, 40)
        mailed_after = time.monotonic() - up_at
        await asyncio.sleep(2.0)  # a doubled mail would arrive now
        failed = watch.of("notification.failed")
        sent = watch.of("notification.sent")
        rows = await stored_rows(system.backends.database_url)
    finally:
        await watch.close()
    mail_ids = [m.message["X-Sipum-Message-Id"] for m in system.smtp.mails]
    stored = len({r["idempotency_key"] for r in rows})
    emailed = len({str(r["id"]) for r in rows} & set(mail_ids))
    doubled = (len(rows) - stored) + (len(mail_ids) - len(set(mail_ids)))
    print(
        table(
            [
                {
                    "fault": f"SMTP server away {OUTAGE:.0f} s (messages stored during it)",
                    "calls": CALLS,
                    "stored": stored,
                    "e-mailed": emailed,
                    "lost": CALLS - min(stored, emailed),
                    "doubled": doubled,
                    "interrupted": sum(1 for r in rows if r["interrupted"]),
                    "failed attempts": len(failed),
                    "all mailed after SMTP is back": f"{mailed_after:.1f} s",
                }
            ]
        )
    )
    assert stored == CALLS and emailed == CALLS and doubled == 0
    assert len(mails) == CALLS
    assert not any(r["interrupted"] for r in rows)
    assert all(e.data["will_retry"] for e in failed), [e.data for e in failed]
    assert {e.data["message_id"] for e in failed} == {r["id"] for r in rows}
    assert len([e for e in sent if e.data.get("channel") == "email"]) == CALLS
