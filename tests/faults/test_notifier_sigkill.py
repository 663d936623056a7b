"""Fault: SIGKILL of the notifier while calls are in progress through Kamailio; it is restarted
after every message was stored. The events wait in JetStream (durable consumers), so each
message is mailed exactly once by the new process: expected = stored = e-mailed, 0 doubled.

(The notifier's own window — killed after the SMTP server accepted a mail and before it marked
it sent — mails that message twice with the same Message-ID; see docs/notifier.md. This test
kills it before any mail, so it checks the hand-over, not that window.)
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from ..e2e.firstcall.system import FirstCallSystem
from ..e2e.firstcall.watch import EventWatch
from .calls import Placed, place_call, sign_up_alice, stored_rows, table, wait_for_count

pytestmark = pytest.mark.timeout(180)

CALLS = 4


async def test_sigkill_of_the_notifier_with_calls_in_progress(
    system: FirstCallSystem, killed: set[str]
) -> None:
    await sign_up_alice(system)
    watch = await EventWatch(system.backends.nats_url, system.backends.events_prefix).start()
    try:
        placed: list[Placed] = []
        speaking = [asyncio.Event() for _ in range(CALLS)]
        calls = [
            asyncio.create_task(place_call(system, i, speaking[i], placed, speech_seconds=2.0))
            for i in range(CALLS)
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in speaking)), 60)
        killed.add("notifier")
        system.services["notifier"].proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*calls), 60)
        await wait_for_count(watch, "message.created", CALLS, limit=20)
        assert system.smtp.mails == []  # nobody was there to mail them
        await asyncio.to_thread(system.restart, "notifier")
        await asyncio.to_thread(system.smtp.wait_for, CALLS, 40)
        await asyncio.sleep(2.0)  # a doubled mail would arrive now
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
                    "fault": "SIGKILL notifier (restarted after the calls)",
                    "calls": CALLS,
                    "stored": stored,
                    "e-mailed": emailed,
                    "lost": CALLS - min(stored, emailed),
                    "doubled": doubled,
                    "interrupted": sum(1 for r in rows if r["interrupted"]),
                }
            ]
        )
    )
    assert stored == CALLS and emailed == CALLS and doubled == 0
    assert not any(r["interrupted"] for r in rows)
