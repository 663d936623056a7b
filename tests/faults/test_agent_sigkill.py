"""Fault: SIGKILL of the registrar-agent while calls through Kamailio are in progress; it is
restarted at once (the same SIP port, so the registered contacts stay valid).

The callers' BYEs then reach nobody (Kamailio forwards them to the dead agent), so no hang-up
reaches the recorders: each recording ends after ``max_silence_seconds`` without RTP and is
stored with its trailing silence trimmed. Nothing lost, nothing doubled, nothing flagged
interrupted (the recorders did not die); every message mailed once."""

from __future__ import annotations

import asyncio
import signal

import pytest

from ..e2e.firstcall.system import FirstCallSystem
from .calls import Placed, place_call, sign_up_alice, stored_rows, table

pytestmark = pytest.mark.timeout(180)

CALLS = 4
SPEECH = 2.0


async def test_sigkill_of_the_registrar_agent_with_calls_in_progress(
    system: FirstCallSystem, killed: set[str]
) -> None:
    await sign_up_alice(system)
    placed: list[Placed] = []
    speaking = [asyncio.Event() for _ in range(CALLS)]
    calls = [
        asyncio.create_task(place_call(system, i, speaking[i], placed, speech_seconds=SPEECH))
        for i in range(CALLS)
    ]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in speaking)), 60)
    killed.add("registrar-agent")
    system.services["registrar-agent"].proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(system.services["registrar-agent"].proc.wait, 10)
    await asyncio.to_thread(system.restart, "registrar-agent")
    await asyncio.wait_for(asyncio.gather(*calls), 60)  # each caller hangs up after speaking
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 40
    while len(rows := await stored_rows(system.backends.database_url)) < CALLS:
        assert loop.time() < deadline, f"{len(rows)} messages stored"
        await asyncio.sleep(0.2)
    mails = await asyncio.to_thread(system.smtp.wait_for, CALLS, 40)
    await asyncio.sleep(1.0)
    rows = await stored_rows(system.backends.database_url)
    mail_ids = [m.message["X-Sipum-Message-Id"] for m in system.smtp.mails]
    stored = len({r["idempotency_key"] for r in rows})
    emailed = len({str(r["id"]) for r in rows} & set(mail_ids))
    doubled = (len(rows) - stored) + (len(mail_ids) - len(set(mail_ids)))
    durations = sorted(r["duration_ms"] / 1000 for r in rows)
    print(
        table(
            [
                {
                    "fault": "SIGKILL registrar-agent mid-call (restarted)",
                    "calls": CALLS,
                    "stored": stored,
                    "e-mailed": emailed,
                    "lost": CALLS - min(stored, emailed),
                    "doubled": doubled,
                    "interrupted": sum(1 for r in rows if r["interrupted"]),
                    "durations": ", ".join(f"{d:.2f}" for d in durations),
                }
            ]
        )
    )
    assert stored == CALLS and emailed == CALLS and doubled == 0 and len(mails) == CALLS
    assert not any(r["interrupted"] for r in rows)
    # the whole speech, plus at most the 0.5 s of trailing silence the recorder keeps
    assert all(SPEECH - 0.3 <= d <= SPEECH + 0.6 for d in durations), durations
