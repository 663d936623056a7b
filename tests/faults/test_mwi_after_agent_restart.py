"""Fault: a phone's MWI subscription (RFC 3842 over RFC 6665) survives a SIGKILL of the
registrar-agent.

A phone made of our SIP stack subscribes to alice's ``message-summary`` through Kamailio
(record-routed; the agent challenges it, 401 → credentials → 200 → NOTIFY ``no``). The agent
is SIGKILLed; while it is down a message is stored for alice *without any event* (so only the
restored subscription can tell the phone). The restarted agent reads the subscription back
from PostgreSQL and NOTIFYs in the same dialog (same Call-ID and tags, a higher CSeq) with
``Messages-Waiting: yes`` and ``1/0``; the phone's refresh inside the dialog is answered 200,
not 481 — the dialog is the restarted agent's now."""

from __future__ import annotations

import asyncio
import signal

import asyncpg
import pytest
from sipum.db import messages
from sipum_protocol.sip.message import SipRequest
from sipum_protocol.sip.mwi import parse_summary

from ..e2e.firstcall.system import FirstCallSystem
from .calls import sign_up_alice, table
from .mwi_phone import MwiPhone

pytestmark = pytest.mark.timeout(150)


async def store_message_silently(database_url: str) -> None:
    """A message row for alice and no ``message.created``: only a restored subscription's
    NOTIFY can tell the phone."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        owner = await conn.fetchval("SELECT id FROM users WHERE username = 'alice'")
        await messages.insert_idempotent(
            conn,
            owner_id=owner,
            idempotency_key="mwi-restart-1",
            caller_uri="sip:bob@sipum.test",
            called_uri="sip:alice@sipum.test",
            duration_ms=2000,
            codec="PCMU",
            size_bytes=32000,
            blob_key="test/mwi-restart-1.wav",
        )
        rows = await conn.fetchval("SELECT count(*) FROM mwi_subscriptions")
    finally:
        await conn.close()
    assert rows == 1  # the subscription is in the store


def cseq(request: SipRequest) -> int:
    return request.cseq[0]


async def test_mwi_subscription_survives_sigkill_of_the_agent(
    system: FirstCallSystem, killed: set[str]
) -> None:
    await sign_up_alice(system)
    async with MwiPhone(system, "alice") as phone:
        await phone.subscribe()
        first = await phone.next_notify(10, since=0)
        summary = parse_summary(first.body)
        assert summary.waiting is False
        assert "active" in (first.headers.get("Subscription-State") or "")

        killed.add("registrar-agent")
        system.services["registrar-agent"].proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(system.services["registrar-agent"].proc.wait, 10)
        await store_message_silently(system.backends.database_url)
        loop = asyncio.get_running_loop()
        before = len(phone.notifies)
        restarted = loop.time()
        await asyncio.to_thread(system.restart, "registrar-agent")
        after = await phone.next_notify(20, since=before)
        notify_s = loop.time() - restarted

        summary = parse_summary(after.body)
        assert summary.waiting is True, after.body
        assert summary.voice is not None, after.body
        assert (summary.voice.new, summary.voice.old) == (1, 0), after.body
        # the same dialog, a higher CSeq (RFC 3261 §12.2.1.1)
        assert after.call_id == first.call_id
        assert after.from_.tag == first.from_.tag and after.to.tag == first.to.tag
        assert cseq(after) > cseq(first)
        assert "active" in (after.headers.get("Subscription-State") or "")
        # the restarted agent knows the dialog: a refresh is 200, not 481
        refresh = await phone.refresh()
        assert refresh.status == 200, refresh.status
        print(
            table(
                [
                    {
                        "fault": "SIGKILL registrar-agent with an MWI subscription",
                        "NOTIFY after restart (s)": f"{notify_s:.2f}",
                        "Messages-Waiting": "yes" if summary.waiting else "no",
                        "CSeq before/after": f"{cseq(first)}/{cseq(after)}",
                        "refresh": refresh.status,
                    }
                ]
            )
        )
