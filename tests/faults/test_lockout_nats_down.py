"""Fault: NATS is down at the moment a wrong PIN locks a mailbox's phone access, so the
``mailbox.locked`` the recorder publishes then cannot be stored; the lock notice must still
reach the owner once NATS is back, and only once.

The system runs on a NATS server of its own (JetStream on disk), with the recorders restarted
so that two wrong PINs lock (``pin_lockout_failures=2``) and the sweep of untold locks runs
every ``RETRY`` s. A phone calls alice's main menu through Kamailio; once the call is up the
NATS server is stopped, the phone types two wrong PINs (RFC 4733, straight to the recorder),
the recorder locks the mailbox in PostgreSQL and fails to publish. NATS comes back after
``DOWN`` s. Then, counted from outside: one lock notice e-mail to alice (the SMTP server), the
lock's row says she was told (``notified_at``), and no second notice follows while the sweep
keeps running. A table is printed (``pytest -s``): which path delivered — the client's own
re-send of its buffered publish after reconnecting, or the sweep — is read off the recorder's
log; both carry the lock's one event id, so either gives one notice."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sipum_testing.nats import PrivateNatsServer

from ..e2e.firstcall.phone import Caller, RtpPeer, wait_event
from ..e2e.firstcall.system import FirstCallSystem
from .calls import sign_up_alice, table

pytestmark = pytest.mark.timeout(240)

DOWN = 8.0
RETRY = 3.0
RECORDERS = ("media-recorder", "media-recorder-2")
NOT_PUBLISHED = "mailbox.locked not published; the sweep will retry"
REPUBLISHED = "mailbox.locked published again (owner not told yet)"


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateNatsServer]:
    server = PrivateNatsServer(str(tmp_path / "jetstream")).start()
    yield server
    server.stop()


@pytest.fixture
def system_nats_url(private_nats: PrivateNatsServer) -> str:
    return private_nats.url


def restart_recorders(system: FirstCallSystem) -> None:
    """Both replicas again, locking after two wrong PINs and sweeping every RETRY s."""
    for key in RECORDERS:
        assert system.services[key].stop() == 0
        name, extra = system.started_with[key]
        service = system.start_service(
            name,
            key=key,
            **{
                **extra,
                "SIPUM_PIN_LOCKOUT_FAILURES": "2",
                "SIPUM_LOCKOUT_ANNOUNCE_RETRY_SECONDS": str(RETRY),
            },
        )
        service.wait_for_log("service started", timeout=60)


def lock_mails(system: FirstCallSystem) -> list:  # type: ignore[type-arg]
    return [m for m in system.smtp.mails if "is locked" in (m.message["Subject"] or "")]


async def test_a_lock_while_nats_is_down_is_still_told_to_the_owner_once(
    system: FirstCallSystem, private_nats: PrivateNatsServer
) -> None:
    await sign_up_alice(system)
    await asyncio.to_thread(restart_recorders, system)
    rtp = await RtpPeer().open()
    try:
        async with Caller(user="mallory", domain=system.domain) as caller:
            record = caller.invite(f"sip:alice-retrieve@{system.domain}", system.proxy, rtp.offer())
            await wait_event(record.answered, 30, "menu call answered", caller)
            assert record.call.remote_sdp is not None
            rtp.use_answer(record.call.remote_sdp)
            await rtp.wait_quiet(quiet=0.4, limit=20)  # "Please enter your PIN"
            await asyncio.to_thread(private_nats.stop)
            stopped = asyncio.get_running_loop().time()
            await rtp.send_digits("1357#")
            await rtp.wait_quiet(quiet=0.4, after=len(rtp.received) + 5, limit=20)  # wrong PIN
            await rtp.send_digits("9753#")  # the second: locks
            loop = asyncio.get_running_loop()
            while not any(system.services[k].logged(NOT_PUBLISHED) for k in RECORDERS):
                assert loop.time() < stopped + 30, "the lock was never tried to be published"
                await asyncio.sleep(0.2)
            await asyncio.sleep(max(0.0, stopped + DOWN - loop.time()))
            await asyncio.to_thread(private_nats.start)
            if not record.ended.is_set():
                record.call.hangup(caller.endpoint.now())
            await wait_event(record.ended, 20, "the call ended", caller)
    finally:
        rtp.close()
    mails = await asyncio.to_thread(system.smtp.wait_for, 1, 60)
    assert lock_mails(system), [m.message["Subject"] for m in mails]
    await asyncio.sleep(3 * RETRY)  # the sweep keeps running: nothing more to tell
    conn = await asyncpg.connect(system.backends.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT l.locked_until, l.notified_at, l.published_at FROM pin_lockouts l"
            " JOIN users u ON u.id = l.user_id WHERE u.username = 'alice'"
        )
    finally:
        await conn.close()
    told = lock_mails(system)
    republished = sum(len(system.services[k].logged(REPUBLISHED)) for k in RECORDERS)
    print(
        table(
            [
                {
                    "fault": f"NATS down {DOWN:.0f} s at the locking PIN",
                    "publish failed": "yes",
                    "re-published by the sweep": republished,
                    "lock notices": len(told),
                    "told (notified_at)": row["notified_at"] is not None,
                }
            ]
        )
    )
    assert len(told) == 1
    assert told[0].recipients == ["alice@mail.test"]
    assert row["locked_until"] is not None and row["notified_at"] is not None
