"""UDP retransmission against a real peer: sipp loses half of our 486s, our timer G must make
up for it, and sipp's ACK (same branch) must stop it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sipum_protocol.sip.message import Headers, SipRequest, make_response
from sipum_protocol.sip.transaction import (
    Event,
    Peer,
    RequestReceived,
    TimerConfig,
    TransactionState,
    TransactionTerminated,
    TransactionTimeout,
)
from sipum_protocol.sip.transport import EndpointConfig, TransactionEndpoint
from sipum_testing.ports import free_udp_port, wait_until_udp_bound

pytestmark = pytest.mark.timeout(60)

SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="INVITE rejected, half of the 486s lost">
  <send retrans="200">
    <![CDATA[
      INVITE sip:vm@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:vm@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="486" lost="50"/>
  <send>
    <![CDATA[
      ACK sip:vm@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-3]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:vm@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""


def new_request(method: str, uri: str, *, cseq: int = 1) -> SipRequest:
    headers = Headers()
    headers.add("From", "<sip:alice@127.0.0.1>;tag=a1")
    headers.add("To", f"<{uri}>")
    headers.add("Call-ID", "sipp-uas-1@127.0.0.1")
    headers.add("CSeq", f"{cseq} {method}")
    return SipRequest(method, uri, headers)


async def test_sipp_lossy_reject_completes_every_call(tmp_path: Path) -> None:
    events: list[Event] = []
    terminated = 0
    all_terminated = asyncio.Event()

    def reject(endpoint: TransactionEndpoint, event: Event) -> None:
        nonlocal terminated
        events.append(event)
        if isinstance(event, TransactionTerminated):
            terminated += 1
            if terminated == calls:
                all_terminated.set()
        if isinstance(event, RequestReceived):
            endpoint.send_response(
                event.transaction, make_response(event.request, 486, to_tag="busy")
            )

    scenario = tmp_path / "reject.xml"
    scenario.write_text(SCENARIO)
    timers = TimerConfig(t1=0.05, t2=0.2, t4=0.2)
    calls = 20
    async with TransactionEndpoint(
        EndpointConfig(udp_port=0, timers=timers), on_event=reject
    ) as ep:
        host, port = ep.addresses["UDP"]
        process = await asyncio.create_subprocess_exec(
            "sipp", f"{host}:{port}", "-sf", str(scenario), "-m", str(calls), "-r", "10",
            "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mp", str(free_udp_port()),
            "-nostdin", "-timeout", "40s", "-timeout_error", "-max_recv_loops", "100",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(process.communicate(), 50)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, (out + err).decode(errors="replace")[-2000:]
        # Every INVITE reached the TU once; the lost 486s were made up by timer G.
        assert sum(isinstance(e, RequestReceived) for e in events) == calls
        assert ep.layer.counters.requests_received >= 2 * calls  # INVITE + ACK each
        # Let timer I run out: every transaction confirmed by sipp's ACK, none timed out (H).
        await asyncio.wait_for(all_terminated.wait(), 5)
        assert ep.layer.server_transactions == 0
        assert not [e for e in events if isinstance(e, TransactionTimeout)]
        # sipp dropped about half of the 486s; each loss cost at least one re-send.
        assert ep.layer.counters.retransmissions_sent >= 3


async def test_invite_client_against_sipp_uas() -> None:
    """Our client side against sipp's built-in UAS: INVITE -> 180 -> 200 (Accepted), our ACK
    for the 2xx sent stateless, then a BYE transaction; sipp exits 0 only if all of it was
    right."""
    port = free_udp_port()
    process = await asyncio.create_subprocess_exec(
        "sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-mp", str(free_udp_port()),
        "-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with TransactionEndpoint(EndpointConfig(udp_port=0)) as ep:
            peer = Peer("UDP", "127.0.0.1", port)
            uri = f"sip:service@127.0.0.1:{port}"
            invite = new_request("INVITE", uri)
            invite.headers.add("Contact", f"<sip:alice@{ep.sent_by()}>")
            statuses: list[int] = []
            await wait_until_udp_bound(port)
            pending = ep.send_request(invite, peer, on_response=lambda r: statuses.append(r.status))
            response = await asyncio.wait_for(pending, 5)
            assert response.status == 200
            assert statuses[-2:] == [180, 200]
            assert pending.transaction.state is TransactionState.ACCEPTED
            dialog_to = response.headers.get("To") or ""
            ack = new_request("ACK", uri)
            ack.headers.set("To", dialog_to)
            ack.headers.prepend("Via", ep.via())
            ep.send_stateless(ack, peer)
            bye = new_request("BYE", uri, cseq=2)
            bye.headers.set("To", dialog_to)
            assert (await asyncio.wait_for(ep.send_request(bye, peer), 5)).status == 200
        out, err = await asyncio.wait_for(process.communicate(), 20)
        assert process.returncode == 0, (out + err).decode(errors="replace")[-2000:]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
