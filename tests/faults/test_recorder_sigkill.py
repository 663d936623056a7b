"""Fault injection, one fault at a time, with calls in progress through Kamailio (issue 15).

The whole system as processes (``tests/e2e/firstcall/system.py``) with **two** media-recorder
replicas. ``CALLS`` callers dial alice through Kamailio at once; each waits for the greeting and
the beep, then speaks ``SPEECH_SECONDS`` of known audio and hangs up. ``KILL_AFTER`` seconds
into the speech the replica holding the most calls is killed with SIGKILL. Then, counted from
outside (PostgreSQL rows, the SMTP server's mails, the events on NATS):

* expected = calls placed; stored = messages (one per call, by session); e-mailed = mails (one per
  message); lost = expected − stored; doubled = extra rows or mails for one call;
* the killed replica's calls: ended by the agent with BYE within 2 s (+ the proxy hop) of the
  kill, their messages stored by the survivor, flagged ``interrupted``, at most 0.5 s of the
  speech said before the kill missing; the survivor's calls: whole messages, not interrupted.

A table is printed (``pytest -s``). Bounded: about 30 s on a loaded 2-core machine.
"""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
import pytest

from ..e2e.firstcall.system import FirstCallSystem
from ..e2e.firstcall.watch import EventWatch
from .calls import (
    SPEECH_SECONDS,
    Placed,
    place_call,
    sign_up_alice,
    stored_rows,
    table,
    wait_for_count,
)

pytestmark = pytest.mark.timeout(180)

CALLS = 6
KILL_AFTER = 2.0
RECORDERS = {"e2e-recorder": "media-recorder", "e2e-recorder-2": "media-recorder-2"}


@pytest.fixture
def agent_env() -> dict[str, str]:
    """The fallback path: the agent does not move the calls (test_recorder_sigkill_move.py
    has the move), it ends them with BYE and recovery stores their messages."""
    return {"SIPUM_RECORDER_MOVE_CALLS": "false"}


async def test_sigkill_of_a_media_recorder_with_calls_in_progress(
    system: FirstCallSystem, killed: set[str]
) -> None:
    await sign_up_alice(system)
    watch = await EventWatch(system.backends.nats_url, system.backends.events_prefix).start()
    try:
        placed: list[Placed] = []
        speaking = [asyncio.Event() for _ in range(CALLS)]
        calls = [
            asyncio.create_task(place_call(system, i, speaking[i], placed)) for i in range(CALLS)
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in speaking)), 60)
        # which replica holds which call (call.answered names the recorder)
        answered = {e.data["call_id"]: e.data for e in watch.of("call.answered")}
        holders = [answered[p.call_id]["recorder_id"] for p in placed]
        victim = max(RECORDERS, key=holders.count)
        await asyncio.sleep(
            max(0.0, max(p.speech_start for p in placed) + KILL_AFTER - time.monotonic())
        )
        killed.add(RECORDERS[victim])
        system.services[RECORDERS[victim]].proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*calls), 60)
        created = await wait_for_count(watch, "message.created", CALLS, limit=20)
        mails = await asyncio.to_thread(system.smtp.wait_for, CALLS, 40)
        await asyncio.sleep(1.0)  # anything doubled would arrive now
        rows = await stored_rows(system.backends.database_url)
    finally:
        await watch.close()

    sessions = {p.call_id: answered[p.call_id]["session_id"] for p in placed}
    on_victim = [p for p in placed if answered[p.call_id]["recorder_id"] == victim]
    by_session: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        by_session.setdefault(row["idempotency_key"], []).append(row)
    mail_ids = [m.message["X-Sipum-Message-Id"] for m in system.smtp.mails]
    stored = sum(1 for p in placed if by_session.get(sessions[p.call_id]))
    doubled_rows = sum(max(0, len(v) - 1) for v in by_session.values()) + max(0, len(rows) - CALLS)
    doubled_mails = len(mail_ids) - len(set(mail_ids))
    emailed = len({str(r["id"]) for r in rows} & set(mail_ids))
    interrupted = [r for r in rows if r["interrupted"]]
    bye_after = [p.ended_at - killed_at for p in on_victim]
    speech_lost = []
    for p in on_victim:
        (row,) = by_session[sessions[p.call_id]]
        said = min(SPEECH_SECONDS, killed_at - p.speech_start)
        speech_lost.append(said - row["duration_ms"] / 1000)

    print(
        table(
            [
                {
                    "fault": "SIGKILL media-recorder",
                    "calls": CALLS,
                    "on killed": len(on_victim),
                    "stored": stored,
                    "e-mailed": emailed,
                    "lost": CALLS - stored,
                    "doubled": doubled_rows + doubled_mails,
                    "interrupted": len(interrupted),
                    "BYE after kill (max)": f"{max(bye_after):.2f} s",
                    "speech lost (max)": f"{max(speech_lost):.2f} s",
                }
            ]
        )
    )
    assert len(created) == CALLS
    assert stored == CALLS and doubled_rows == 0  # 0 lost, 0 doubled
    assert emailed == CALLS and doubled_mails == 0 and len(mails) == CALLS
    assert {sessions[p.call_id] for p in on_victim} == {r["idempotency_key"] for r in interrupted}
    for p in on_victim:
        assert p.ended_by == "remote-bye"  # the agent ended it, the caller did not have to
    assert max(bye_after) <= 2.5, bye_after  # 2 s + the proxy hop and a loaded machine
    assert max(speech_lost) <= 0.5, speech_lost
    for p in placed:
        if p not in on_victim:
            (row,) = by_session[sessions[p.call_id]]
            assert not row["interrupted"] and abs(row["duration_ms"] / 1000 - SPEECH_SECONDS) < 0.3
    cut_off = [m for m in system.smtp.mails if "cut off" in m.message.get_body().get_content()]
    assert len(cut_off) == len(on_victim)
