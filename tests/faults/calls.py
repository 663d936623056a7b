"""What the fault tests share: alice's mailbox, callers through Kamailio, counting from outside.

A fault test reads::

    await sign_up_alice(system)
    async with CallsInProgress(system, speech_seconds=SPEECH) as calls:  # all are speaking
        ...inject the fault...
        await calls.ended()
        outcome = await calls.count()
    outcome.report("the fault", ...)
    outcome.assert_none_lost_or_doubled()

:class:`CallsInProgress` places ``CALLS`` (20, issue 15) calls through Kamailio at once and
returns when every caller heard the greeting and the beep and started to speak;
:meth:`CallsInProgress.count` waits for a row and a mail per call, waits ``settle`` seconds more
(a doubled row or mail would arrive then) and counts expected vs stored vs e-mailed.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import asyncpg
import httpx
import numpy as np

from ..e2e.firstcall.audio import known_audio
from ..e2e.firstcall.phone import PTIME, Caller, RtpPeer, wait_event
from ..e2e.firstcall.system import FirstCallSystem, Mail
from ..e2e.firstcall.watch import EventWatch, set_ring_timeout

CALLS = 20
"""Calls in progress through Kamailio when each fault strikes (issue 15)."""
SPEECH_SECONDS = 4.0


@dataclass
class Placed:
    index: int
    call_id: str
    speech_start: float = 0.0
    """``time.monotonic()`` when its first RTP packet of speech left."""
    ended_at: float = 0.0
    ended_by: str = ""
    """``remote-bye`` (the agent hung up) or ``local-bye`` (the caller did)."""
    rtp: RtpPeer | None = None
    caller: Caller | None = None
    """The call's user agent (a test's own subclass, e.g. one that follows a re-INVITE)."""
    speech_seq: int = 0
    """The caller's RTP sequence number (not wrapped) when its speech began."""

    def spoken(self) -> float:
        """Seconds of speech sent so far (packets out × 20 ms: not the wall clock, which runs
        ahead of a loaded sender)."""
        if self.rtp is None or not self.speech_start:
            return 0.0
        return (self.rtp.seq - self.speech_seq) * PTIME


async def sign_up_alice(system: FirstCallSystem) -> None:
    async with httpx.AsyncClient(base_url=system.web_url, timeout=10) as http:
        response = await http.post(
            "/api/v1/signup",
            json={
                "username": "alice",
                "password": "alice-password-1",
                "email": "alice@mail.test",
                "pin": "2468",
                "display_name": "Alice",
            },
        )
        assert response.status_code == 201, response.text
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    agent = f"127.0.0.1:{system.agent_sip_port}"
    while not any(agent in c.address for c in system.kamailio.lookup("alice")):
        assert loop.time() < deadline, "alice's voicemail contact was never registered"
        await asyncio.sleep(0.2)
    await set_ring_timeout(system.backends.database_url, "alice", 1)


CallerFactory = Callable[[int, RtpPeer], Caller]
"""(call index, its RTP) → the user agent that places the call (default: a plain
:class:`Caller` named ``caller<index>``)."""


def spoken_audio(index: int, seconds: float) -> np.ndarray:
    """What caller ``index`` says: its own known audio (8 kHz int16)."""
    return known_audio(seconds, seed=100 + index)


async def place_call(
    system: FirstCallSystem,
    index: int,
    speaking: asyncio.Event,
    out: list[Placed],
    *,
    speech_seconds: float = SPEECH_SECONDS,
    caller: CallerFactory | None = None,
    linger: float = 0.0,
    callee: str = "alice",
) -> None:
    """One caller: dial ``callee`` (alice), wait out the greeting and the beep, speak its own known audio
    (:func:`spoken_audio`), ``linger`` seconds more, hang up (unless the far end hung up
    first)."""
    rtp = await RtpPeer().open()
    make = caller or (lambda i, _rtp: Caller(user=f"caller{i}", domain=system.domain))
    try:
        async with make(index, rtp) as phone:
            record = phone.invite(f"sip:{callee}@{system.domain}", system.proxy, rtp.offer())
            placed = Placed(index, record.call.call_id, rtp=rtp, caller=phone)
            out.append(placed)
            await wait_event(record.answered, 30, f"call {index} answered", phone)
            assert record.call.remote_sdp is not None
            rtp.use_answer(record.call.remote_sdp)
            await rtp.wait_beep_then_quiet(after=25, limit=40)  # the greeting, the beep
            placed.speech_seq = rtp.seq
            placed.speech_start = time.monotonic()
            speaking.set()
            sender = asyncio.create_task(rtp.send_audio(spoken_audio(index, speech_seconds)))
            ended = asyncio.create_task(record.ended.wait())
            await asyncio.wait({sender, ended}, return_when=asyncio.FIRST_COMPLETED)
            if not record.ended.is_set() and linger:
                await asyncio.sleep(linger)
            sender.cancel()
            if not record.ended.is_set():
                record.call.hangup(phone.endpoint.now())
            await wait_event(record.ended, 10, f"call {index} ended", phone)
            placed.ended_at = time.monotonic()
            placed.ended_by = record.end_reason or ""
    finally:
        rtp.close()


async def wait_for_count(watch: EventWatch, kind: str, count: int, *, limit: float) -> list:  # type: ignore[type-arg]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while len(watch.of(kind)) < count:
        if loop.time() > deadline:
            seen = Counter(e.kind for e in watch.seen)
            ended = Counter(str(e.data.get("end_reason")) for e in watch.of("call.ended"))
            raise AssertionError(
                f"{len(watch.of(kind))} {kind} within {limit} s (seen {dict(seen)};"
                f" calls ended by {dict(ended)})"
            )
        await asyncio.sleep(0.1)
    return watch.of(kind)


async def stored_rows(database_url: str, username: str = "alice") -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return list(
            await conn.fetch(
                "SELECT m.id, m.idempotency_key, m.duration_ms, m.interrupted FROM messages m"
                " JOIN users u ON u.id = m.owner_id WHERE u.username = $1",
                username,
            )
        )
    finally:
        await conn.close()


async def wait_for_rows(
    database_url: str, count: int, *, limit: float, username: str = "alice"
) -> list[asyncpg.Record]:
    """The user's messages once there are at least ``count`` (polled: no event stream needed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        rows = await stored_rows(database_url, username)
        if len(rows) >= count:
            return rows
        assert loop.time() < deadline, f"{len(rows)} messages stored within {limit} s"
        await asyncio.sleep(0.2)


def table(rows: list[dict[str, object]]) -> str:
    """The fault table (markdown), one row per fault."""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n" + "\n".join(lines)


# ---------------------------------------------------------------------------------- one fault


@dataclass
class Outcome:
    """What came out of ``expected`` calls, counted from outside: alice's rows in PostgreSQL
    (one per call: the idempotency key is the recording session) and the SMTP server's mails
    (``X-Sipum-Message-Id`` names the row)."""

    expected: int
    placed: list[Placed]
    rows: list[asyncpg.Record]
    mails: list[Mail]

    @property
    def sessions(self) -> dict[str, list[asyncpg.Record]]:
        """Rows by idempotency key (the recording session)."""
        by_session: dict[str, list[asyncpg.Record]] = {}
        for row in self.rows:
            by_session.setdefault(row["idempotency_key"], []).append(row)
        return by_session

    @property
    def mail_ids(self) -> list[str]:
        return [str(m.message["X-Sipum-Message-Id"]) for m in self.mails]

    @property
    def stored(self) -> int:
        """Calls with a message (at most ``expected``: an extra session counts as doubled)."""
        return min(self.expected, len(self.sessions))

    @property
    def emailed(self) -> int:
        """Stored messages that reached the SMTP server."""
        return len({str(r["id"]) for r in self.rows} & set(self.mail_ids))

    @property
    def lost(self) -> int:
        return self.expected - min(self.stored, self.emailed)

    @property
    def doubled(self) -> int:
        """Rows or mails beyond one per call."""
        sessions = len(self.sessions)
        extra_rows = (len(self.rows) - sessions) + max(0, sessions - self.expected)
        return extra_rows + len(self.mail_ids) - len(set(self.mail_ids))

    @property
    def interrupted(self) -> list[asyncpg.Record]:
        return [r for r in self.rows if r["interrupted"]]

    @property
    def durations(self) -> list[float]:
        return sorted(r["duration_ms"] / 1000 for r in self.rows)

    def row(self, fault: str, **extra: object) -> dict[str, object]:
        """The fault's row of the table: expected, stored, e-mailed, lost, doubled, interrupted,
        then ``extra`` columns."""
        return {
            "fault": fault,
            "expected": self.expected,
            "stored": self.stored,
            "e-mailed": self.emailed,
            "lost": self.lost,
            "doubled": self.doubled,
            "interrupted": len(self.interrupted),
            **extra,
        }

    def report(self, fault: str, **extra: object) -> None:
        """Print the fault's table (``pytest -s`` shows it)."""
        print(table([self.row(fault, **extra)]))

    def assert_none_lost_or_doubled(self, *, interrupted: bool = False) -> None:
        """0 lost, 0 doubled: a row per call, a mail per row; none flagged interrupted unless
        ``interrupted`` (then some may be: the test checks which)."""
        assert (self.stored, self.emailed) == (self.expected, self.expected), self.row("")
        assert self.lost == 0 and self.doubled == 0, self.row("")
        if not interrupted:
            assert self.interrupted == [], self.row("")


@dataclass
class CallsInProgress:
    """``calls`` callers through Kamailio at once (``async with``: entered when every one of
    them speaks); with ``watch_events`` an :class:`EventWatch` on the system's events
    (``watch``) is open from before the first call until the end."""

    system: FirstCallSystem
    calls: int = CALLS
    speech_seconds: float = SPEECH_SECONDS
    watch_events: bool = True
    start_limit: float = 60.0
    caller: CallerFactory | None = None
    linger: float = 0.0
    """Seconds each caller stays on after its speech before it hangs up."""
    callee: str = "alice"
    """The mailbox called (signed up by the test) and counted."""
    placed: list[Placed] = field(default_factory=list)
    _watch: EventWatch | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def watch(self) -> EventWatch:
        assert self._watch is not None, "CallsInProgress(watch_events=False)"
        return self._watch

    async def __aenter__(self) -> CallsInProgress:
        system = self.system
        if self.watch_events:
            self._watch = await EventWatch(
                system.backends.nats_url, system.backends.events_prefix
            ).start()
        speaking = [asyncio.Event() for _ in range(self.calls)]
        self._tasks = [
            asyncio.create_task(
                place_call(
                    system,
                    i,
                    speaking[i],
                    self.placed,
                    speech_seconds=self.speech_seconds,
                    caller=self.caller,
                    linger=self.linger,
                    callee=self.callee,
                )
            )
            for i in range(self.calls)
        ]
        try:
            await self._until(asyncio.gather(*(e.wait() for e in speaking)), self.start_limit)
        except BaseException:
            await self._abandon()
            print(self.system.diagnostics(40))  # pytest shows it with the failure
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._abandon()
        if exc is not None:  # pytest shows it with the failure
            print(self.system.diagnostics(40))

    async def _until(self, awaitable: Any, limit: float) -> None:
        """Await ``awaitable``, but fail at once with a caller's error (not at the limit)."""
        waiting = asyncio.ensure_future(awaitable)
        try:
            async with asyncio.timeout(limit):
                while not waiting.done():
                    failed = [t for t in self._tasks if t.done() and t.exception() is not None]
                    if failed:
                        failed[0].result()
                    running = {t for t in self._tasks if not t.done()}
                    await asyncio.wait({waiting, *running}, return_when=asyncio.FIRST_COMPLETED)
            waiting.result()
        finally:
            if waiting.done() and not waiting.cancelled():
                waiting.exception()  # retrieved (the caller's own error was raised instead)
            waiting.cancel()

    async def _abandon(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._watch is not None:
            await self._watch.close()
            self._watch = None

    async def ended(self, limit: float = 60.0) -> None:
        """Every call ended (its caller hung up after speaking, or the far end did)."""
        await self._until(asyncio.gather(*self._tasks), limit)

    async def count(
        self, *, store_limit: float = 40.0, mail_limit: float = 40.0, settle: float = 1.0
    ) -> Outcome:
        """Wait for a row per call and a mail for each of those rows (other mails of the test
        do not count), then ``settle`` seconds for anything doubled, and count."""
        url = self.system.backends.database_url
        rows = await wait_for_rows(url, self.calls, limit=store_limit, username=self.callee)
        ids = {str(r["id"]) for r in rows}

        def mailed() -> int:
            return len(ids & {str(m.message["X-Sipum-Message-Id"]) for m in self.system.smtp.mails})

        loop = asyncio.get_running_loop()
        deadline = loop.time() + mail_limit
        while mailed() < len(ids):
            assert loop.time() < deadline, f"{mailed()} of {len(ids)} mailed in {mail_limit} s"
            await asyncio.sleep(0.1)
        await asyncio.sleep(settle)
        rows = await stored_rows(url, self.callee)
        ids = {str(r["id"]) for r in rows}
        mails = [m for m in self.system.smtp.mails if m.message["X-Sipum-Message-Id"] in ids]
        return Outcome(self.calls, list(self.placed), rows, mails)


RECORDERS = {"e2e-recorder": "media-recorder", "e2e-recorder-2": "media-recorder-2"}
"""Recorder id → its key in ``system.services`` (``conftest.system`` starts two)."""


@dataclass(frozen=True)
class RecorderKill:
    victim: str
    """The killed replica's recorder id."""
    killed_at: float
    """``time.monotonic()`` of the SIGKILL."""
    answered: dict[str, dict[str, Any]]
    """``call.answered`` by Call-ID (``session_id``, ``recorder_id``)."""
    on_victim: list[Placed]
    """The calls the killed replica held."""

    def session(self, placed: Placed) -> str:
        return str(self.answered[placed.call_id]["session_id"])


async def kill_the_busier_recorder(
    calls: CallsInProgress, killed: set[str], *, after: float
) -> RecorderKill:
    """SIGKILL the replica holding the most calls, ``after`` seconds after the last caller
    began to speak (``call.answered`` names each call's recorder)."""
    answered = {e.data["call_id"]: e.data for e in calls.watch.of("call.answered")}
    holders = [answered[p.call_id]["recorder_id"] for p in calls.placed]
    victim = max(RECORDERS, key=holders.count)
    last = max(p.speech_start for p in calls.placed)
    await asyncio.sleep(max(0.0, last + after - time.monotonic()))
    killed.add(RECORDERS[victim])
    calls.system.services[RECORDERS[victim]].proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    on_victim = [p for p in calls.placed if answered[p.call_id]["recorder_id"] == victim]
    return RecorderKill(victim, killed_at, answered, on_victim)
