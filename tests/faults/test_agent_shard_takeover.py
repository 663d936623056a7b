"""Fault: two registrar-agents (shard_count 2) behind Kamailio; SIGKILL of agent 0.

Within a few seconds agent 1 (the live agent with the lowest index) REGISTERs shard 0's user
at Kamailio with its own contact, and a call for that user — forked by Kamailio to the dead
contact and to agent 1's — is answered by agent 1 and stored. Agent 0 restarted: it registers
its user again, says ``up``, and only then does agent 1 withdraw its binding (``Expires: 0``
for its own contact): at no moment is the user without a live voicemail contact.

The user's phone has an MWI subscription with agent 0 all along: agent 1 restores it from the
store at the takeover (and a new subscription made then reaches agent 1: Kamailio picks the
most recently refreshed agent contact) (a NOTIFY in the same dialog with agent 1's Contact, so the phone's
refresh goes to agent 1 — answered 200), NOTIFYs the new message, and gives it back with the
shard: agent 0 NOTIFYs it again (its Contact) once agent 1 no longer serves shard 0."""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
import httpx
import pytest
from sipum_protocol.sip.message import SipRequest
from sipum_protocol.sip.mwi import parse_summary
from sipum_registrar_agent.registrations import shard_of

from ..e2e.firstcall.audio import known_audio
from ..e2e.firstcall.phone import Caller, RtpPeer, wait_event
from ..e2e.firstcall.system import FirstCallSystem
from ..e2e.firstcall.watch import set_ring_timeout
from .calls import table
from .mwi_phone import MwiPhone

pytestmark = pytest.mark.timeout(180)

SHARD0_USER, SHARD1_USER = "frank", "alice"
SPEECH = 2.0


@pytest.fixture
def system_agents() -> int:
    return 2


async def sign_up(system: FirstCallSystem, username: str) -> None:
    async with httpx.AsyncClient(base_url=system.web_url, timeout=10) as http:
        response = await http.post(
            "/api/v1/signup",
            json={
                "username": username,
                "password": f"{username}-password-1",
                "email": f"{username}@mail.test",
                "pin": "2468",
                "display_name": username.title(),
            },
        )
        assert response.status_code == 201, response.text
    await set_ring_timeout(system.backends.database_url, username, 1)


def ports_of(system: FirstCallSystem, username: str) -> dict[int, str]:
    """Port of each contact bound to ``username`` → its Call-ID."""
    return {
        int(c.address.rsplit(":", 1)[1].split(";")[0].rstrip(">")): c.call_id
        for c in system.kamailio.lookup(username)
    }


async def wait_until(predicate: object, limit: float, what: str) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():  # type: ignore[operator]
        assert loop.time() - start < limit, f"not within {limit} s: {what}"
        await asyncio.sleep(0.05)
    return loop.time() - start


async def call_and_speak(system: FirstCallSystem, username: str) -> str:
    """A call through Kamailio for ``username``: answered, 2 s of speech, hang-up; returns
    the remote target of the dialog (the answering agent's Contact)."""
    rtp = await RtpPeer().open()
    try:
        async with Caller(user="caller0", domain=system.domain) as caller:
            record = caller.invite(f"sip:{username}@{system.domain}", system.proxy, rtp.offer())
            await wait_event(record.answered, 30, "call answered", caller)
            assert record.call.remote_sdp is not None and record.call.dialog is not None
            target = record.call.dialog.remote_target
            rtp.use_answer(record.call.remote_sdp)
            await rtp.wait_quiet(quiet=0.3, after=25, limit=40)  # greeting, beep
            await rtp.send_audio(known_audio(SPEECH, seed=7))
            record.call.hangup(caller.endpoint.now())
            await wait_event(record.ended, 10, "call ended", caller)
            return target
    finally:
        rtp.close()


def notify_from(port: int, request: SipRequest) -> bool:
    return f":{port}" in (request.headers.get("Contact") or "")


async def notify_matching(
    phone: MwiPhone, predicate: object, limit: float, what: str, *, since: int | None = None
) -> SipRequest:
    """The first NOTIFY for which ``predicate`` holds, among those after the first ``since``
    (default: from now on)."""
    seen = len(phone.notifies) if since is None else since
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        for request in phone.notifies[seen:]:
            if predicate(request):  # type: ignore[operator]
                return request
        seen = len(phone.notifies)
        assert loop.time() < deadline, f"no NOTIFY {what} within {limit} s"
        await asyncio.sleep(0.05)


def waiting(request: SipRequest) -> tuple[bool, int, int]:
    summary = parse_summary(request.body)
    voice = summary.voice
    return summary.waiting, voice.new if voice else 0, voice.old if voice else 0


async def stored_for(database_url: str, username: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return list(
            await conn.fetch(
                "SELECT m.id, m.duration_ms FROM messages m JOIN users u ON u.id = m.owner_id"
                " WHERE u.username = $1",
                username,
            )
        )
    finally:
        await conn.close()


async def test_sigkill_of_agent_0_agent_1_takes_its_shard_and_gives_it_back(
    system: FirstCallSystem, killed: set[str]
) -> None:
    async with MwiPhone(system, SHARD0_USER) as phone:
        try:
            await takeover_and_back(system, killed, phone)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{system.diagnostics(40)}") from None


async def takeover_and_back(system: FirstCallSystem, killed: set[str], phone: MwiPhone) -> None:
    assert shard_of(SHARD0_USER, system.domain, 2) == 0
    assert shard_of(SHARD1_USER, system.domain, 2) == 1
    port0 = system.agent_ports["registrar-agent"]
    port1 = system.agent_ports["registrar-agent-1"]
    await sign_up(system, SHARD0_USER)
    await sign_up(system, SHARD1_USER)
    await wait_until(lambda: port0 in ports_of(system, SHARD0_USER), 15, "frank at agent 0")
    await wait_until(lambda: port1 in ports_of(system, SHARD1_USER), 15, "alice at agent 1")
    assert port1 not in ports_of(system, SHARD0_USER)  # nothing taken while both live
    await asyncio.sleep(3.0)  # both agents beat for longer than the 2 s timeout
    assert set(ports_of(system, SHARD0_USER)) == {port0}
    old_call_id = ports_of(system, SHARD0_USER)[port0]
    await phone.subscribe()  # Kamailio sends it to frank's voicemail contact: agent 0's
    first = await notify_matching(phone, lambda n: notify_from(port0, n), 10, "from 0", since=0)
    assert waiting(first) == (False, 0, 0)

    # -- SIGKILL agent 0: agent 1 takes shard 0
    before_kill = len(phone.notifies)
    killed.add("registrar-agent")
    system.services["registrar-agent"].proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    await asyncio.to_thread(system.services["registrar-agent"].proc.wait, 10)
    await wait_until(lambda: port1 in ports_of(system, SHARD0_USER), 10, "frank at agent 1")
    takeover_s = time.monotonic() - killed_at
    agent1 = system.services["registrar-agent-1"]
    assert agent1.logged("took over a shard")[0]["shard"] == 0
    # the taker restored frank's MWI subscription: same dialog, its Contact, a higher CSeq
    restored = await notify_matching(
        phone, lambda n: notify_from(port1, n), 10, "from agent 1", since=before_kill
    )
    restored_s = time.monotonic() - killed_at
    assert restored.call_id == first.call_id and restored.to.tag == first.to.tag
    assert restored.cseq[0] > first.cseq[0] and waiting(restored) == (False, 0, 0)
    assert (await phone.refresh()).status == 200  # to agent 1 now (the new remote target)
    # a new subscription now (another phone of frank's) reaches the taker, not the dead contact
    async with MwiPhone(system, SHARD0_USER) as second_phone:
        await second_phone.subscribe()
        fresh = await notify_matching(second_phone, lambda n: True, 10, "new sub", since=0)
        assert notify_from(port1, fresh), fresh.headers.get("Contact")

    # -- a call for frank is answered (by agent 1) and stored
    target = await call_and_speak(system, SHARD0_USER)
    assert target.endswith(f":{port1}"), target  # agent 1 answered (its contact)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 40
    while not (rows := await stored_for(system.backends.database_url, SHARD0_USER)):
        assert loop.time() < deadline, "frank's message was never stored"
        await asyncio.sleep(0.2)
    lit = await notify_matching(phone, lambda n: waiting(n)[0], 10, "yes", since=before_kill)
    assert notify_from(port1, lit) and waiting(lit) == (True, 1, 0)

    # -- agent 0 back: it registers first, then agent 1 withdraws its own binding
    seen: list[dict[int, str]] = []
    before_restart = len(phone.notifies)
    restarted_at = time.monotonic()
    await asyncio.to_thread(system.restart, "registrar-agent")

    def handed_back() -> bool:
        now = ports_of(system, SHARD0_USER)
        seen.append(now)
        return set(now) == {port0} and now[port0] != old_call_id

    await wait_until(handed_back, 20, "frank back at agent 0 only")
    handback_s = time.monotonic() - restarted_at
    back = await notify_matching(
        phone, lambda n: notify_from(port0, n), 15, "from agent 0 again", since=before_restart
    )
    mwi_back_s = time.monotonic() - restarted_at
    assert back.call_id == first.call_id and back.cseq[0] > lit.cseq[0]
    assert waiting(back) == (True, 1, 0)
    assert (await phone.refresh()).status == 200  # agent 0 holds the dialog again
    # gapless: agent 1's contact only went away after agent 0's new REGISTER was bound
    for snapshot in seen:
        assert port1 in snapshot or snapshot.get(port0, old_call_id) != old_call_id, seen
    assert set(ports_of(system, SHARD1_USER)) == {port1}  # agent 1's own shard untouched
    assert agent1.logged("gave a shard back")[0]["shard"] == 0
    print(
        table(
            [
                {
                    "fault": "SIGKILL registrar-agent 0 of 2",
                    "takeover (s)": f"{takeover_s:.2f}",
                    "call for shard 0 answered by": target,
                    "stored": len(rows),
                    "MWI NOTIFY from agent 1 (s)": f"{restored_s:.2f}",
                    "hand-back after restart (s)": f"{handback_s:.2f}",
                    "MWI NOTIFY from agent 0 again (s)": f"{mwi_back_s:.2f}",
                    "snapshots without a live contact": sum(
                        1
                        for s in seen
                        if port1 not in s and s.get(port0, old_call_id) == old_call_id
                    ),
                }
            ]
        )
    )
    assert len(rows) == 1 and SPEECH - 0.3 <= rows[0]["duration_ms"] / 1000 <= SPEECH + 0.6
    assert takeover_s < 6.0, takeover_s
