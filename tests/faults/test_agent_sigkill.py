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
from .calls import CallsInProgress, sign_up_alice

pytestmark = pytest.mark.timeout(180)

SPEECH = 2.0


async def test_sigkill_of_the_registrar_agent_with_calls_in_progress(
    system: FirstCallSystem, killed: set[str]
) -> None:
    await sign_up_alice(system)
    async with CallsInProgress(system, speech_seconds=SPEECH, watch_events=False) as calls:
        killed.add("registrar-agent")
        system.services["registrar-agent"].proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(system.services["registrar-agent"].proc.wait, 10)
        await asyncio.to_thread(system.restart, "registrar-agent")
        await calls.ended()  # each caller hangs up after speaking
        outcome = await calls.count()
    durations = outcome.durations
    outcome.report(
        "SIGKILL registrar-agent mid-call (restarted)",
        durations=f"{durations[0]:.2f}-{durations[-1]:.2f} s",
    )
    outcome.assert_none_lost_or_doubled()
    # the whole speech, plus at most the 0.5 s of trailing silence the recorder keeps
    assert all(SPEECH - 0.3 <= d <= SPEECH + 0.6 for d in durations), durations
