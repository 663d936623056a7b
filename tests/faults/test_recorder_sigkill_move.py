"""SIGKILL of the media-recorder holding calls, and the calls MOVE to the survivor (issue 15).

The system as processes with two media-recorder replicas behind Kamailio (``conftest.system``).
``CALLS`` callers — SIP user agents that, like a real phone, follow a re-INVITE: their RTP goes
to the address of the new offer from the next packet on — dial alice, wait for the greeting and
the beep and speak ``SPEECH_SECONDS`` of known audio, then hang up themselves. ``KILL_AFTER``
seconds into the speech the replica holding the most calls is SIGKILLed. The agent notices
(its liveness link to the replica closes), allocates each of its calls on the survivor with ``continue_session_id`` and
re-INVITEs the caller with the survivor's SDP.

Counted from outside (PostgreSQL rows, the SMTP server's mails, the message WAVs in the bucket):

* every call: one message (by session), one mail — 0 lost, 0 doubled (the survivor's recovery
  sweep does not store the moved recordings a second time);
* the killed replica's calls: not ended by the agent (the caller hangs up after its speech), a
  re-INVITE within ``MOVE_LIMIT`` of the kill; one message holding speech from before the kill
  AND from after the move (found by correlation with what was sent); the audio missing at the
  move (measured by aligning both parts with what was sent) at most the gap (kill → re-INVITE)
  plus what the replica had not spooled (``SPOOL_BOUND`` + ``PUT_LATENCY``) — whether it is
  within the issue's 0.5 s (``MISSING_GOAL``) is shown, not asserted; flagged ``interrupted`` (audio was lost in the gap);
* the survivor's calls: whole messages, not interrupted.

A table with the figures (gap lost, time to move) is printed (``pytest -s``).

The fallback: callers that refuse the re-INVITE (488), or never answer it (its datagrams are
dropped), are hung up by the agent (BYE) right after the 488 / after
``recorder_move_reinvite_seconds`` (4 s); their message — what was said before the kill — is
stored once, by the session the move allocated (not doubled by recovery).
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass

import asyncpg
import numpy as np
import pytest
from sipum.blobstore import S3BlobStore
from sipum_protocol.sip.transaction import Peer
from sipum_protocol.sip.ua import NotAcceptableOffer, SessionModified, UserAgentEvent

from ..e2e.firstcall.audio import find, known_audio, through_ulaw, wav_pcm
from ..e2e.firstcall.phone import Caller, RtpPeer, wait_event
from ..e2e.firstcall.system import FirstCallSystem
from ..e2e.firstcall.watch import EventWatch
from .calls import sign_up_alice, table, wait_for_count

pytestmark = pytest.mark.timeout(180)

CALLS = 4
SPEECH_SECONDS = 7.0
KILL_AFTER = 2.5
MOVE_LIMIT = 1.0
"""Kill → re-INVITE at the caller: the agent reading its liveness link's EOF (a few ms), the
continue allocation (the spool's manifest and listing, and its manifest rewrite, on the test's
S3 emulator; the chunks are fetched after the reply) and the proxy hop — 0.08–0.26 s measured —
with room for a loaded 2-core machine. (Heartbeats alone: 1.5 s.)"""
SPOOL_BOUND = 0.28
"""The most audio the killed replica can hold that the spool does not have yet (chunk_seconds
0.2 + hold_back 0.1 on 20 ms packets; test_spool.py)."""
PUT_LATENCY = 0.12
"""The last chunk's PUT still under way at the kill (the emulator, busy with every call)."""
MISSING_GOAL = 0.5
"""The issue's bound on the audio missing from a moved call's message: shown in the table,
not asserted — it is the gap (kill → re-INVITE, 0.08–0.26 s) plus what the killed replica had
not spooled (up to ``SPOOL_BOUND`` + its last PUT), so on this machine, loaded by other tests,
it holds in most runs, not in every one (docs/operations.md)."""
RECORDERS = {"e2e-recorder": "media-recorder", "e2e-recorder-2": "media-recorder-2"}


class FollowingCaller(Caller):
    """A caller whose RTP follows a re-INVITE (RFC 3264 §8: the new offer's address)."""

    def __init__(
        self, *, user: str, domain: str, rtp: RtpPeer, refuse: bool = False, deaf: bool = False
    ) -> None:
        super().__init__(user=user, domain=domain)
        self.rtp = rtp
        self.refuse = refuse
        """Answer every re-offer 488 (a phone that cannot follow)."""
        if deaf:
            # Never hears a re-INVITE (a caller only ever receives INVITEs in its dialog);
            # wrapped before start(), like the trace tap.
            receive = self.endpoint._receive

            def drop_invites(data: bytes, peer: Peer) -> None:
                if not data.startswith(b"INVITE "):
                    receive(data, peer)

            self.endpoint._receive = drop_invites  # type: ignore[method-assign]
        self.moved_at: float | None = None
        """``time.monotonic()`` when the re-INVITE with a new address arrived."""

    async def __aenter__(self) -> FollowingCaller:
        await super().__aenter__()
        if self.refuse:

            def refuse(_ours: bytes, _offer: bytes) -> bytes:
                raise NotAcceptableOffer("this phone does not follow re-INVITEs")

            self.endpoint.ua.session_answerer = refuse
        return self

    def _on_event(self, event: UserAgentEvent) -> None:
        if isinstance(event, SessionModified) and event.offer is not None:
            before = self.rtp.remote
            self.rtp.use_answer(event.offer)  # the far end's media address, from the offer
            if self.rtp.remote != before and self.moved_at is None:
                self.moved_at = time.monotonic()
        super()._on_event(event)


@dataclass
class MovedCall:
    index: int
    call_id: str = ""
    speech_start: float = 0.0
    moved_at: float | None = None
    ended_by: str = ""
    ended_at: float = 0.0


async def place_following_call(
    system: FirstCallSystem,
    index: int,
    speaking: asyncio.Event,
    out: list[MovedCall],
    *,
    refuse: bool = False,
    deaf: bool = False,
    speech_seconds: float = SPEECH_SECONDS,
) -> None:
    rtp = await RtpPeer().open()
    placed = MovedCall(index)
    out.append(placed)
    try:
        async with FollowingCaller(
            user=f"caller{index}", domain=system.domain, rtp=rtp, refuse=refuse, deaf=deaf
        ) as caller:
            record = caller.invite(f"sip:alice@{system.domain}", system.proxy, rtp.offer())
            placed.call_id = record.call.call_id
            await wait_event(record.answered, 30, f"call {index} answered", caller)
            assert record.call.remote_sdp is not None
            rtp.use_answer(record.call.remote_sdp)
            await rtp.wait_quiet(quiet=0.3, after=25, limit=40)  # greeting, beep
            placed.speech_start = time.monotonic()
            speaking.set()
            sender = asyncio.create_task(
                rtp.send_audio(known_audio(speech_seconds, seed=200 + index))
            )
            ended = asyncio.create_task(record.ended.wait())
            await asyncio.wait({sender, ended}, return_when=asyncio.FIRST_COMPLETED)
            if not record.ended.is_set():
                await asyncio.sleep(0.3)
                record.call.hangup(caller.endpoint.now())
            sender.cancel()
            await wait_event(record.ended, 10, f"call {index} ended", caller)
            placed.ended_by = record.end_reason or ""
            placed.ended_at = time.monotonic()
            placed.moved_at = caller.moved_at
    finally:
        rtp.close()


async def rows_with_blobs(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return list(
            await conn.fetch(
                "SELECT m.id, m.idempotency_key, m.duration_ms, m.interrupted, m.blob_key"
                " FROM messages m JOIN users u ON u.id = m.owner_id WHERE u.username = 'alice'"
            )
        )
    finally:
        await conn.close()


async def test_sigkill_of_a_media_recorder_moves_its_calls_to_the_survivor(
    system: FirstCallSystem, killed: set[str]
) -> None:
    await sign_up_alice(system)
    watch = await EventWatch(system.backends.nats_url, system.backends.events_prefix).start()
    try:
        placed: list[MovedCall] = []
        speaking = [asyncio.Event() for _ in range(CALLS)]
        calls = [
            asyncio.create_task(place_following_call(system, i, speaking[i], placed))
            for i in range(CALLS)
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in speaking)), 60)
        answered = {e.data["call_id"]: e.data for e in watch.of("call.answered")}
        holders = [answered[p.call_id]["recorder_id"] for p in placed]
        victim = max(RECORDERS, key=holders.count)
        await asyncio.sleep(
            max(0.0, max(p.speech_start for p in placed) + KILL_AFTER - time.monotonic())
        )
        killed.add(RECORDERS[victim])
        system.services[RECORDERS[victim]].proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*calls), 60)
        created = await wait_for_count(watch, "message.created", CALLS, limit=20)
        mails = await asyncio.to_thread(system.smtp.wait_for, CALLS, 40)
        # the survivor's recovery pass for the dead replica runs after its move grace (3 s
        # after the last write): anything doubled would arrive by now
        await asyncio.sleep(max(1.0, killed_at + 5.0 - time.monotonic()))
        rows = await rows_with_blobs(system.backends.database_url)
        b = system.backends
        blobs = S3BlobStore(
            endpoint=b.s3_endpoint,
            access_key=b.s3_access_key,
            secret_key=b.s3_secret_key,
            bucket=b.s3_bucket,
            region=b.s3_region,
        )
        audio = {r["idempotency_key"]: wav_pcm(await blobs.get(r["blob_key"]))[0] for r in rows}
    finally:
        await watch.close()

    sessions = {p.call_id: answered[p.call_id]["session_id"] for p in placed}
    on_victim = [p for p in placed if answered[p.call_id]["recorder_id"] == victim]
    by_session: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        by_session.setdefault(row["idempotency_key"], []).append(row)
    mail_ids = [m.message["X-Sipum-Message-Id"] for m in system.smtp.mails]
    stored = sum(1 for p in placed if by_session.get(sessions[p.call_id]))
    doubled_rows = sum(max(0, len(v) - 1) for v in by_session.values()) + max(0, len(rows) - CALLS)
    doubled_mails = len(mail_ids) - len(set(mail_ids))
    moved = [p for p in on_victim if p.moved_at is not None]
    move_after = [p.moved_at - killed_at for p in moved if p.moved_at is not None]
    figures = []
    for p in on_victim:
        (row,) = by_session[sessions[p.call_id]]
        pcm = audio[sessions[p.call_id]]
        sent = through_ulaw(known_audio(SPEECH_SECONDS, seed=200 + p.index))
        gap = (p.moved_at or killed_at) - killed_at
        before_at = int((killed_at - p.speech_start - 1.5) * 8000)  # a second before the kill
        after_at = int(((p.moved_at or killed_at) - p.speech_start + 0.5) * 8000)
        before_score, before_where = find(pcm, sent[before_at : before_at + 8000])
        after_score, after_where = (
            find(pcm, sent[after_at : after_at + 8000])
            if after_at + 8000 <= len(sent)
            else (0.0, -1)
        )
        # The audio missing at the move, exactly: how much further back in the message the
        # speech after the move sits than the speech before the kill (sent offset − stored
        # offset, after − before); the message's edges (silence trimmed, the caller's hang-up)
        # do not enter into it.
        missing = ((after_at - after_where) - (before_at - before_where)) / 8000
        figures.append(
            {
                "call": p.index,
                "gap (kill → re-INVITE)": round(gap, 2),
                "stored": round(row["duration_ms"] / 1000, 2),
                "lost": round(SPEECH_SECONDS - row["duration_ms"] / 1000, 2),
                "missing at the move": round(missing, 3),
                "before kill": round(before_score, 2),
                "after move": round(after_score, 2),
                "row": row,
                "where": (before_where, after_where),
            }
        )
    print(
        table(
            [
                {
                    "fault": "SIGKILL media-recorder, calls moved",
                    "calls": CALLS,
                    "on killed": len(on_victim),
                    "moved": len(moved),
                    "stored": stored,
                    "lost": CALLS - stored,
                    "doubled": doubled_rows + doubled_mails,
                    "time to move (max)": f"{max(move_after, default=0.0):.2f} s",
                    "audio lost (max)": f"{max((f['lost'] for f in figures), default=0):.2f} s",
                    "missing at the move (max)": (
                        f"{max((f['missing at the move'] for f in figures), default=0):.3f} s"
                    ),
                    f"≤ {MISSING_GOAL} s": all(
                        f["missing at the move"] <= MISSING_GOAL for f in figures
                    ),
                }
            ]
        )
    )
    print(
        table([{k: v for k, v in f.items() if k not in ("row", "where")} for f in figures])
        if figures
        else ""
    )
    agent = system.services["registrar-agent"]
    detected = agent.logged("media-recorder gone (liveness link closed)") or agent.logged(
        "media-recorder gone (no heartbeat)"
    )
    print(
        "agent:",
        [e["msg"] for e in detected],
        "lost → re-INVITE answered:",
        [e.get("took_s") for e in agent.logged("call moved")],
        "allocations tried again:",
        sum("allocation not answered, again" in line for line in agent.lines),
        "not moved:",
        [line[:300] for line in agent.lines if "not moved" in line],
    )
    assert on_victim, "the killed replica held no call"
    assert len(created) == CALLS
    assert stored == CALLS and doubled_rows == 0  # 0 lost, 0 doubled
    assert len(mails) == CALLS and doubled_mails == 0
    assert len(moved) == len(on_victim), [p.index for p in on_victim if p.moved_at is None]
    assert max(move_after) <= MOVE_LIMIT, move_after
    for p, f in zip(on_victim, figures, strict=True):
        row = f["row"]
        assert p.ended_by == "local-bye", (p.index, p.ended_by)  # the call went on: we hung up
        assert row["interrupted"]  # the caller spoke into the dead replica for a while
        before_where, after_where = f["where"]
        assert f["before kill"] > 0.9 and f["after move"] > 0.9, f
        assert before_where < after_where, f  # both parts, in order, in one message
        gap = f["gap (kill → re-INVITE)"]
        # what the caller said into the dead address, and what the dead replica had not
        # spooled yet — no more
        assert f["missing at the move"] <= gap + SPOOL_BOUND + PUT_LATENCY, f
        assert abs(f["lost"] - f["missing at the move"]) < 0.1, f  # nothing lost elsewhere
    for p in placed:
        if p not in on_victim:
            (row,) = by_session[sessions[p.call_id]]
            assert p.moved_at is None and p.ended_by == "local-bye"
            assert not row["interrupted"], row
            assert abs(row["duration_ms"] / 1000 - SPEECH_SECONDS) < 0.6, row
    assert np.all([len(a) > 0 for a in audio.values()])


@pytest.mark.parametrize("caller_kind", ["refuses", "deaf"])
async def test_a_caller_not_following_the_reinvite_is_hung_up_and_its_message_kept_once(
    system: FirstCallSystem, killed: set[str], caller_kind: str
) -> None:
    deaf = caller_kind == "deaf"
    await sign_up_alice(system)
    watch = await EventWatch(system.backends.nats_url, system.backends.events_prefix).start()
    calls_n = 2
    try:
        placed: list[MovedCall] = []
        speaking = [asyncio.Event() for _ in range(calls_n)]
        calls = [
            asyncio.create_task(
                place_following_call(
                    system,
                    i,
                    speaking[i],
                    placed,
                    refuse=not deaf,
                    deaf=deaf,
                    # a deaf caller must still be talking when the agent gives up on it
                    speech_seconds=SPEECH_SECONDS + (4.0 if deaf else 0.0),
                )
            )
            for i in range(calls_n)
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in speaking)), 60)
        answered = {e.data["call_id"]: e.data for e in watch.of("call.answered")}
        holders = [answered[p.call_id]["recorder_id"] for p in placed]
        victim = max(RECORDERS, key=holders.count)
        await asyncio.sleep(
            max(0.0, max(p.speech_start for p in placed) + KILL_AFTER - time.monotonic())
        )
        killed.add(RECORDERS[victim])
        system.services[RECORDERS[victim]].proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*calls), 60)
        created = await wait_for_count(watch, "message.created", calls_n, limit=20)
        await asyncio.sleep(max(1.0, killed_at + 5.0 - time.monotonic()))
        rows = await rows_with_blobs(system.backends.database_url)
        ended = {e.data["call_id"]: e.data for e in watch.of("call.ended")}
    finally:
        await watch.close()
    sessions = {p.call_id: answered[p.call_id]["session_id"] for p in placed}
    on_victim = [p for p in placed if answered[p.call_id]["recorder_id"] == victim]
    by_session: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        by_session.setdefault(row["idempotency_key"], []).append(row)
    bye_after = [p.ended_at - killed_at for p in on_victim]
    print(
        table(
            [
                {
                    "fault": f"SIGKILL media-recorder, caller {caller_kind}",
                    "calls": calls_n,
                    "on killed": len(on_victim),
                    "stored": sum(1 for p in placed if by_session.get(sessions[p.call_id])),
                    "rows": len(rows),
                    "BYE after kill (max)": f"{max(bye_after, default=0.0):.2f} s",
                }
            ]
        )
    )
    assert on_victim
    assert len(created) == calls_n and len(rows) == calls_n  # 0 lost, 0 doubled
    for p in on_victim:
        (row,) = by_session[sessions[p.call_id]]
        assert p.ended_by == "remote-bye"  # the agent hung up after the 488 / the 4 s
        assert ended[p.call_id]["end_reason"] == "media_lost"
        assert row["interrupted"]
        # what was said before the kill (less at most 0.5 s), and perhaps the new session's
        # trailing silence (0.5 s) before our BYE
        said = killed_at - p.speech_start
        assert said - 0.6 <= row["duration_ms"] / 1000 <= said + 0.8, (row, said)
    # the 488 comes at once; a deaf caller is given recorder_move_reinvite_seconds (4 s)
    assert max(bye_after) <= MOVE_LIMIT + (4.0 if deaf else 0.0) + 0.5, bye_after
    if deaf:
        assert min(bye_after) >= 4.0, bye_after
