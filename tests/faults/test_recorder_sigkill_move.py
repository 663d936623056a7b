"""SIGKILL of the media-recorder holding calls, and the calls MOVE to the survivor (issue 15).

The system as processes with two media-recorder replicas behind Kamailio (``conftest.system``).
``CALLS`` callers — SIP user agents that, like a real phone, follow a re-INVITE: their RTP goes
to the address of the new offer from the next packet on — dial alice, wait for the greeting and
the beep and speak ``SPEECH_SECONDS`` of known audio, then hang up themselves. ``KILL_AFTER``
seconds into the speech the replica holding the most calls is SIGKILLed. The agent notices
(heartbeats), allocates each of its calls on the survivor with ``continue_session_id`` and
re-INVITEs the caller with the survivor's SDP.

Counted from outside (PostgreSQL rows, the SMTP server's mails, the message WAVs in the bucket):

* every call: one message (by session), one mail — 0 lost, 0 doubled (the survivor's recovery
  sweep does not store the moved recordings a second time);
* the killed replica's calls: not ended by the agent (the caller hangs up after its speech), a
  re-INVITE within ``MOVE_LIMIT`` of the kill; one message holding speech from before the kill
  AND from after the move (found by correlation with what was sent), as long as what was said
  less the speech sent in the gap (kill → re-INVITE, counted in RTP packets) less at most 0.5 s;
  flagged ``interrupted`` (audio was lost in the gap);
* the survivor's calls: whole messages, not interrupted.

A table with the figures (gap lost, time to move) is printed (``pytest -s``).

The fallback: callers that refuse the re-INVITE (488), or never answer it (its datagrams are
dropped), are hung up by the agent (BYE) right after the 488 / after
``recorder_move_reinvite_seconds`` (4 s); their message — what was said before the kill — is
stored once, by the session the move allocated (not doubled by recovery).
"""

from __future__ import annotations

import time

import asyncpg
import numpy as np
import pytest
from sipum.blobstore import S3BlobStore
from sipum_protocol.sip.transaction import Peer
from sipum_protocol.sip.ua import NotAcceptableOffer, SessionModified, UserAgentEvent

from ..e2e.firstcall.audio import find, through_ulaw, wav_pcm
from ..e2e.firstcall.phone import PTIME, Caller, RtpPeer
from ..e2e.firstcall.system import FirstCallSystem
from .calls import (
    CALLS,
    CallerFactory,
    CallsInProgress,
    Placed,
    kill_the_busier_recorder,
    sign_up_alice,
    spoken_audio,
    table,
)

pytestmark = pytest.mark.timeout(180)

FALLBACK_CALLS = CALLS
"""Calls of the refusing/deaf variants (the same 20)."""
SPEECH_SECONDS = 7.0
KILL_AFTER = 2.5
MOVE_LIMIT = 6.0
"""Kill → re-INVITE at the caller: the agent's 1.5 s of missed heartbeats, the allocations on
the survivor and the proxy hop. With 20 calls the survivor takes over about 10 at once, each
reading the dead replica's spool (manifest, list, every chunk) and writing its manifest: some
150 requests to the test's S3 emulator (moto_server, about 100 requests/s in all), on top of the
survivor's own calls' chunk uploads — 0.2–0.5 s alone, more than 2 s (the agent's default
``media_timeout``) with other systems on the machine. Hence ``ALLOCATION_WAIT``."""
ALLOCATION_WAIT = 4.0
"""The agent's ``media_timeout`` here: long enough for the emulator's queue (see above)."""


@pytest.fixture
def agent_env() -> dict[str, str]:
    return {"SIPUM_MEDIA_TIMEOUT": str(ALLOCATION_WAIT)}


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
        self.moved_seq = 0
        """The caller's RTP sequence number (not wrapped) then."""
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
                self.moved_seq = self.rtp.seq
        super()._on_event(event)


def following(domain: str, *, refuse: bool = False, deaf: bool = False) -> CallerFactory:
    """Callers that follow a re-INVITE (or, ``refuse``/``deaf``, do not)."""

    def make(index: int, rtp: RtpPeer) -> FollowingCaller:
        return FollowingCaller(
            user=f"caller{index}", domain=domain, rtp=rtp, refuse=refuse, deaf=deaf
        )

    return make


def moved_at(placed: Placed) -> float | None:
    assert isinstance(placed.caller, FollowingCaller)
    return placed.caller.moved_at


def spoken_before_move(placed: Placed) -> float:
    """Seconds of speech the caller had sent when the re-INVITE came (in RTP packets: a
    loaded sender runs behind the wall clock)."""
    assert isinstance(placed.caller, FollowingCaller)
    return (placed.caller.moved_seq - placed.speech_seq) * PTIME


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
    async with CallsInProgress(
        system, speech_seconds=SPEECH_SECONDS, caller=following(system.domain), linger=0.3
    ) as calls:
        kill = await kill_the_busier_recorder(calls, killed, after=KILL_AFTER)
        said = {p.index: p.spoken() for p in calls.placed}  # sent before the kill
        killed_at, on_victim = kill.killed_at, kill.on_victim
        await calls.ended()
        # the survivor's recovery pass for the dead replica runs after its move grace (3 s
        # after the last write): anything doubled would arrive by now
        outcome = await calls.count(
            store_limit=20, settle=max(1.0, killed_at + 5.0 - time.monotonic())
        )
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

    placed = outcome.placed
    by_session = outcome.sessions
    moved = [p for p in on_victim if moved_at(p) is not None]
    move_after = [t - killed_at for p in moved if (t := moved_at(p)) is not None]
    figures = []
    for p in on_victim:
        (row,) = by_session[kill.session(p)]
        pcm = audio[kill.session(p)]
        sent = through_ulaw(spoken_audio(p.index, SPEECH_SECONDS))
        gap = (moved_at(p) or killed_at) - killed_at
        # the speech sent in the gap (the sender's packets, not the wall clock)
        unheard = spoken_before_move(p) - said[p.index] if moved_at(p) else 0.0
        before_at = int((said[p.index] - 1.5) * 8000)  # a second, ending 0.5 s before the kill
        after_at = int((said[p.index] + unheard + 0.5) * 8000)  # from 0.5 s after the move
        before_score, before_where = find(pcm, sent[before_at : before_at + 8000])
        after_score, after_where = (
            find(pcm, sent[after_at : after_at + 8000])
            if after_at + 8000 <= len(sent)
            else (0.0, -1)
        )
        figures.append(
            {
                "call": p.index,
                "gap (kill → re-INVITE)": round(gap, 2),
                "speech in the gap": round(unheard, 2),
                "stored": round(row["duration_ms"] / 1000, 2),
                "lost": round(SPEECH_SECONDS - row["duration_ms"] / 1000, 2),
                "before kill": round(before_score, 2),
                "after move": round(after_score, 2),
                "row": row,
                "where": (before_where, after_where),
            }
        )
    outcome.report(
        "SIGKILL media-recorder, calls moved",
        **{
            "on killed": len(on_victim),
            "moved": len(moved),
            "time to move (max)": f"{max(move_after, default=0.0):.2f} s",
            "audio lost (max)": f"{max((f['lost'] for f in figures), default=0):.2f} s",
        },
    )
    print(
        table([{k: v for k, v in f.items() if k not in ("row", "where")} for f in figures])
        if figures
        else ""
    )
    assert on_victim, "the killed replica held no call"
    assert set(by_session) == {kill.session(p) for p in placed}  # a message for each call
    outcome.assert_none_lost_or_doubled(interrupted=True)  # which: below
    assert len(moved) == len(on_victim), [p.index for p in on_victim if moved_at(p) is None]
    assert max(move_after) <= MOVE_LIMIT, move_after
    for p, f in zip(on_victim, figures, strict=True):
        row = f["row"]
        assert p.ended_by == "local-bye", (p.index, p.ended_by)  # the call went on: we hung up
        assert row["interrupted"]  # the caller spoke into the dead replica for a while
        before_where, after_where = f["where"]
        assert f["before kill"] > 0.9 and f["after move"] > 0.9, f
        assert before_where < after_where, f  # both parts, in order, in one message
        # the speech sent in the gap, ≤ 0.5 s before the kill, jitter
        assert f["lost"] <= f["speech in the gap"] + 0.5 + 0.3, f
    for p in placed:
        if p not in on_victim:
            (row,) = by_session[kill.session(p)]
            assert moved_at(p) is None and p.ended_by == "local-bye"
            assert not row["interrupted"], row
            assert abs(row["duration_ms"] / 1000 - SPEECH_SECONDS) < 0.6, row
    assert np.all([len(a) > 0 for a in audio.values()])


@pytest.mark.parametrize("caller_kind", ["refuses", "deaf"])
async def test_a_caller_not_following_the_reinvite_is_hung_up_and_its_message_kept_once(
    system: FirstCallSystem, killed: set[str], caller_kind: str
) -> None:
    deaf = caller_kind == "deaf"
    await sign_up_alice(system)
    async with CallsInProgress(
        system,
        calls=FALLBACK_CALLS,
        caller=following(system.domain, refuse=not deaf, deaf=deaf),
        # a deaf caller must still be talking when the agent gives up on it
        speech_seconds=SPEECH_SECONDS + (4.0 if deaf else 0.0),
        linger=0.3,
    ) as calls:
        kill = await kill_the_busier_recorder(calls, killed, after=KILL_AFTER)
        said = {p.index: p.spoken() for p in calls.placed}  # sent before the kill
        await calls.ended()
        outcome = await calls.count(
            store_limit=20, settle=max(1.0, kill.killed_at + 5.0 - time.monotonic())
        )
        ended = {e.data["call_id"]: e.data for e in calls.watch.of("call.ended")}
    by_session = outcome.sessions
    bye_after = [p.ended_at - kill.killed_at for p in kill.on_victim]
    outcome.report(
        f"SIGKILL media-recorder, caller {caller_kind}",
        **{
            "on killed": len(kill.on_victim),
            "BYE after kill (max)": f"{max(bye_after, default=0.0):.2f} s",
        },
    )
    assert kill.on_victim
    outcome.assert_none_lost_or_doubled(interrupted=True)  # which: below
    for p in kill.on_victim:
        (row,) = by_session[kill.session(p)]
        assert p.ended_by == "remote-bye"  # the agent hung up after the 488 / the 4 s
        assert ended[p.call_id]["end_reason"] == "media_lost"
        assert row["interrupted"]
        # what was said before the kill (less at most 0.5 s), and perhaps the new session's
        # trailing silence (0.5 s) before our BYE
        assert said[p.index] - 0.6 <= row["duration_ms"] / 1000 <= said[p.index] + 0.8, (
            row,
            said[p.index],
        )
    assert len(outcome.interrupted) == len(kill.on_victim)
    # the 488 comes at once; a deaf caller is given recorder_move_reinvite_seconds (4 s)
    assert max(bye_after) <= MOVE_LIMIT + (4.0 if deaf else 0.0) + 0.5, bye_after
    if deaf:
        assert min(bye_after) >= 4.0, bye_after
