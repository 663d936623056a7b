"""``sipum.call.<session_id>.transfer`` served by the agent holding the call: a real agent, a
sipp caller and the fake media-recorder. The request makes the agent send an in-dialog REFER
with the target; the caller's phone accepts it (202) but NOTIFYs "486 Busy Here": the reply is
``failed`` 486 and the call goes on (the caller hangs up later). Once the call is over nobody
serves its transfer subject (``NoResponders``)."""

from __future__ import annotations

import asyncio

import pytest
from sipum.events import CallTransferRequest, EventBus, NoResponders
from sipum_testing.kamailio import KamailioServer
from sipum_testing.polling import wait_for

from .conftest import AgentRunner, EventLog, FakeRecorder, Sipp

DOMAIN = "sipum.test"

pytestmark = pytest.mark.timeout(60)


async def test_a_transfer_request_sends_refer_and_a_busy_target_is_failed(
    kamailio: KamailioServer,
    agents: AgentRunner,
    recorder: FakeRecorder,
    event_log: EventLog,
    event_bus: EventBus,
    sipp: Sipp,
) -> None:
    agent = await agents.start(f"127.0.0.1:{kamailio.port}")
    host, port = agent.sip_address
    caller = asyncio.create_task(
        sipp.direct(
            "refer_busy",
            agent,
            service="voicemail",
            keys={
                "ruri_host": f"{host}:{port};target=sip:alice%40{DOMAIN};cause=408",
                "to_host": DOMAIN,
                "refer_to": f"sip:operator@{DOMAIN}",  # checked by the scenario
            },
            timeout=30,
        )
    )
    await wait_for(lambda: event_log.of("call.answered"), what="call.answered")
    # at once: the agent waits for the ACK of its 2xx itself (a REFER needs the dialog confirmed)
    (request,) = recorder.requests
    transfer = CallTransferRequest(
        session_id="fake1",
        call_id=request.call_id,
        target_uri=f"sip:operator@{DOMAIN}",
        timeout_s=10,
    )
    reply = await event_bus.request_transfer(transfer, timeout=15)
    assert (reply.outcome, reply.status_code) == ("failed", 486)
    status, output = await caller  # REFER, 202, the NOTIFYs answered 200, the caller's BYE
    assert status == 0, output
    await wait_for(lambda: event_log.of("call.ended"), what="call.ended")
    (ended,) = event_log.of("call.ended")
    assert ended.end_reason == "bye"  # not transferred: the caller hung up
    with pytest.raises(NoResponders):
        await event_bus.request_transfer(transfer, timeout=2)
