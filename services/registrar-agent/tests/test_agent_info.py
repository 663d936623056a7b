"""SIP INFO digits through the agent (sipp, real NATS and PostgreSQL, the fake recorder): the
agent answers each DTMF INFO 200 and relays its digit to the session's recorder
(``sipum.media.session.<id>.dtmf``) in the order typed; another INFO body gets 415 and relays
nothing; the call goes on to its BYE."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sipum.events import SessionDtmf
from sipum_testing.kamailio import KamailioServer

pytestmark = pytest.mark.timeout(60)


async def test_info_digits_are_relayed_to_the_recorder_in_order(
    kamailio: KamailioServer, agents: Any, recorder: Any, event_log: Any, sipp: Any
) -> None:
    agent = await agents.start(f"127.0.0.1:{kamailio.port}")
    status, output = await sipp.direct("info_digits", agent, service="bob")
    assert status == 0, output  # every INFO got the status the scenario expects
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while len([c for c in recorder.commands if isinstance(c, SessionDtmf)]) < 3:
        assert loop.time() < deadline, recorder.commands
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # nothing more comes
    digits = [c for c in recorder.commands if isinstance(c, SessionDtmf)]
    assert [(d.session_id, d.digit, d.duration_ms) for d in digits] == [
        ("fake1", "1", 160), ("fake1", "#", 100), ("fake1", "*", 100),
    ]  # fmt: skip
