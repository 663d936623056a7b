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
from .calls import CallsInProgress, sign_up_alice, wait_for_count

pytestmark = pytest.mark.timeout(180)


async def test_sigkill_of_the_notifier_with_calls_in_progress(
    system: FirstCallSystem, killed: set[str]
) -> None:
    await sign_up_alice(system)
    async with CallsInProgress(system, speech_seconds=2.0) as calls:
        killed.add("notifier")
        system.services["notifier"].proc.send_signal(signal.SIGKILL)
        await calls.ended()
        await wait_for_count(calls.watch, "message.created", calls.calls, limit=20)
        assert system.smtp.mails == []  # nobody was there to mail them
        await asyncio.to_thread(system.restart, "notifier")
        outcome = await calls.count(settle=2.0)  # a doubled mail would arrive then
    outcome.report("SIGKILL notifier (restarted after the calls)")
    outcome.assert_none_lost_or_doubled()
