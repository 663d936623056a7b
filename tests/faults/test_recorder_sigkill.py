"""Fault injection, one fault at a time, with calls in progress through Kamailio (issue 15).

The whole system as processes (``tests/e2e/firstcall/system.py``) with **two** media-recorder
replicas. ``CALLS`` (20) callers dial alice through Kamailio at once; each waits for the greeting
and the beep, then speaks ``SPEECH`` seconds of known audio and hangs up. ``KILL_AFTER`` seconds
after the last caller began to speak the replica holding the most calls is killed with SIGKILL. Then, counted from
outside (PostgreSQL rows, the SMTP server's mails, the events on NATS):

* expected = calls placed; stored = messages (one per call, by session); e-mailed = mails (one per
  message); lost = expected − stored; doubled = extra rows or mails for one call;
* the killed replica's calls: ended by the agent with BYE within 2 s (+ the proxy hop) of the
  kill, their messages stored by the survivor, flagged ``interrupted``, at most 0.6 s of the
  speech said before the kill missing (the goal 0.5 s; 0.52 s seen on a loaded host); the survivor's calls: whole messages, not interrupted.

A table is printed (``pytest -s``). Bounded: about 30 s on a loaded 2-core machine.
"""

from __future__ import annotations

import pytest

from ..e2e.firstcall.system import FirstCallSystem
from .calls import CallsInProgress, kill_the_busier_recorder, sign_up_alice

pytestmark = pytest.mark.timeout(180)

SPEECH = 6.0
KILL_AFTER = 1.0
"""Seconds after the last caller began to speak. With 20 calls the first began up to a second or
two before the last (the recorders' greetings end at different times on a loaded machine);
every caller must still speak when the agent's BYE comes (≤ 2.5 s after the kill)."""


@pytest.fixture
def agent_env() -> dict[str, str]:
    """The fallback path: the agent does not move the calls (test_recorder_sigkill_move.py
    has the move), it ends them with BYE and recovery stores their messages."""
    return {"SIPUM_RECORDER_MOVE_CALLS": "false"}


async def test_sigkill_of_a_media_recorder_with_calls_in_progress(
    system: FirstCallSystem, killed: set[str]
) -> None:
    await sign_up_alice(system)
    async with CallsInProgress(system, speech_seconds=SPEECH) as calls:
        kill = await kill_the_busier_recorder(calls, killed, after=KILL_AFTER)
        said = {p.index: p.spoken() for p in calls.placed}  # sent before the kill
        await calls.ended()
        outcome = await calls.count(store_limit=20)

    placed, on_victim = outcome.placed, kill.on_victim
    starts = [p.speech_start for p in placed]
    by_session = outcome.sessions
    bye_after = [p.ended_at - kill.killed_at for p in on_victim]
    speech_lost = []
    for p in on_victim:
        (row,) = by_session[kill.session(p)]
        speech_lost.append(said[p.index] - row["duration_ms"] / 1000)

    outcome.report(
        "SIGKILL media-recorder",
        **{
            "on killed": len(on_victim),
            "BYE after kill (max)": f"{max(bye_after):.2f} s",
            "speech lost (max)": f"{max(speech_lost):.2f} s",
            "speech starts within": f"{max(starts) - min(starts):.2f} s",
        },
    )
    assert set(by_session) == {kill.session(p) for p in placed}  # a message for each call
    outcome.assert_none_lost_or_doubled(interrupted=True)
    assert {kill.session(p) for p in on_victim} == {
        r["idempotency_key"] for r in outcome.interrupted
    }
    for p in on_victim:
        assert p.ended_by == "remote-bye"  # the agent ended it, the caller did not have to
    assert max(bye_after) <= 2.5, bye_after  # 2 s + the proxy hop and a loaded machine
    # The goal is 0.5 s: by design at most chunk_seconds + hold_back (0.28 s) not yet in the
    # spool, plus the chunk upload in flight; a loaded CI host (another fault test beside it)
    # once took 0.52 s, so the bound here is 0.6 s and the figures are in operations.md.
    assert max(speech_lost) <= 0.6, speech_lost
    for p in placed:
        if p not in on_victim:
            (row,) = by_session[kill.session(p)]
            assert not row["interrupted"] and abs(row["duration_ms"] / 1000 - SPEECH) < 0.3
    cut_off = [m for m in outcome.mails if "cut off" in m.message.get_body().get_content()]
    assert len(cut_off) == len(on_victim)
