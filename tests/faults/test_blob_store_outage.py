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
from .calls import CallsInProgress, sign_up_alice

pytestmark = pytest.mark.timeout(180)

SPEECH = 3.0
OUTAGE = 10.0


async def test_blob_store_away_for_10_s_with_calls_in_progress(
    system: FirstCallSystem, s3_proxy: TcpProxy
) -> None:
    await sign_up_alice(system)
    async with CallsInProgress(system, speech_seconds=SPEECH) as calls:
        await asyncio.to_thread(s3_proxy.down)
        down_at = time.monotonic()
        await calls.ended()  # they hang up during the outage
        assert calls.watch.of("message.created") == []  # nothing could be stored yet
        await asyncio.sleep(max(0.0, down_at + OUTAGE - time.monotonic()))
        await asyncio.to_thread(s3_proxy.up)
        up_at = time.time()  # the clock of the events' arrival times
        outcome = await calls.count(store_limit=30)
        stored_after = max(e.at for e in calls.watch.of("message.created")) - up_at
    outcome.report(
        f"blob store away {OUTAGE:.0f} s (calls end during it)",
        **{
            "all stored after the store is back": f"{stored_after:.1f} s",
            "open connections cut": s3_proxy.refused,
        },
    )
    outcome.assert_none_lost_or_doubled()
    assert all(abs(d - SPEECH) < 0.3 for d in outcome.durations), outcome.durations  # whole
    attached = [
        part
        for mail in outcome.mails
        for part in mail.message.iter_attachments()
        if part.get_content_type().startswith("audio/")
    ]
    assert len(attached) == calls.calls
