"""The caller's options and the PIN lockout end to end: sipp through Kamailio, RFC 4733 digits,
two media-recorder replicas.

* A caller leaves a message, presses ``#`` (the review's keys), ``2`` (hears the recording
  back: what sipp was sent, read off the loopback interface, holds the audio it spoke) and
  ``4``: the stored message is urgent and its audio is the spoken one. Another presses ``#``,
  ``3``, speaks a second take, ``#``, ``1``: only the second take is stored.
* Wrong PINs at alice's main menu (an untrusted caller) in separate calls, served by both
  replicas, add up in ``pin_lockouts``: the configured failure locks the mailbox
  (``mailbox.locked``), and a call with the right PIN is then refused.
"""

from __future__ import annotations

import asyncio
import struct
import types
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sipum.blobstore import open_blob_store
from sipum_media_recorder.audio import decode_audio
from sipum_protocol.media.codecs import alaw_encode
from sipum_protocol.media.codecs.g711 import alaw_decode
from sipum_protocol.media.prompts import PromptLibrary
from sipum_testing.rtp_caller import best_correlation, distinct_voice

from .firstcall.audio import RATE
from .firstcall.capture import LoopbackRtpCapture, write_dtmf_pcap
from .firstcall.fixtures import two_recorder_system  # noqa: F401 - the fixture
from .firstcall.phone import free_udp_port, run_sipp, sipp_argv
from .firstcall.speech_pcap import write_alaw_pcap
from .firstcall.system import REPO, FirstCallSystem
from .firstcall.watch import EventWatch
from .test_first_call import PIN, explained, sign_up, wait_registered
from .test_main_menu import prompt, seconds_of
from .test_phone_paths import call_with_capture, sql

pytestmark = pytest.mark.timeout(240)

PCMA = 8
SPEECH_SSRC = 0x5150_4D31  # write_alaw_pcap's: the digits go in the same RTP stream


@pytest.fixture
async def watch(two_recorder_system: FirstCallSystem) -> AsyncIterator[EventWatch]:  # noqa: F811
    backends = two_recorder_system.backends
    watcher = await EventWatch(backends.nats_url, backends.events_prefix).start()
    try:
        yield watcher
    finally:
        await watcher.close()


def through_alaw(pcm: np.ndarray) -> np.ndarray:
    return alaw_decode(alaw_encode(np.asarray(pcm, dtype=np.int16)))


async def stored_audio(system: FirstCallSystem, key: str) -> np.ndarray:
    b = system.backends
    blobs = open_blob_store(
        types.SimpleNamespace(
            s3_endpoint=b.s3_endpoint, s3_access_key=b.s3_access_key,
            s3_secret_key=b.s3_secret_key, s3_bucket=b.s3_bucket, s3_region=b.s3_region,
        )
    )  # fmt: skip
    pcm: np.ndarray = decode_audio(await blobs.get(key)).pcm
    return pcm


PCAP_HEADER, RECORD_HEADER, UDP_AT = 24, 16, 14 + 20  # after Ethernet + IPv4


def joined_pcap(path: Path, parts: list[tuple[Path, float]]) -> None:
    """One capture of several (each: a capture and its start in s), every packet from and to
    the same UDP ports."""
    out = bytearray()
    for part, start in parts:
        data = part.read_bytes()
        out = out or bytearray(data[:PCAP_HEADER])
        at = PCAP_HEADER
        while at < len(data):
            sec, usec, length, _ = struct.unpack_from("<IIII", data, at)
            frame = bytearray(data[at + RECORD_HEADER : at + RECORD_HEADER + length])
            # one pair of ports for all: sipp sends a packet to the answer's port plus its
            # destination port's distance from the capture's lowest one (RTP and RTCP)
            struct.pack_into("!HH", frame, UDP_AT, 4000, 4002)
            micros = round((start + sec + usec / 1e6) * 1e6)
            out += struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, length, length)
            out += frame
            at += RECORD_HEADER + length
    path.write_bytes(bytes(out))


async def test_hash_2_plays_the_recording_back_then_4_stores_it_urgent(
    two_recorder_system: FirstCallSystem,  # noqa: F811 - the fixture imported above
    watch: EventWatch,
    tmp_path: Path,
) -> None:
    system = two_recorder_system
    library = await asyncio.to_thread(PromptLibrary, REPO / "var" / "prompts")
    spoken = through_alaw(distinct_voice(3.0, seed=61))
    with explained(system):
        async with httpx.AsyncClient(base_url=system.web_url, timeout=15) as http:
            await sign_up(http, "ulla", "ulla-password-1")
        await wait_registered(system, "ulla")

        seconds = write_alaw_pcap(spoken, tmp_path / "speech.pcap", ssrc=SPEECH_SSRC)
        frames = round(seconds * RATE) // 160
        seq, ts = frames, frames * 160 + 8000
        for name, digit in (("hash", "#"), ("first", "2"), ("second", "4")):
            seq, ts = write_dtmf_pcap(
                tmp_path / f"{name}.pcap", digit, first_seq=seq, first_timestamp=ts,
                ssrc=SPEECH_SSRC,
            )  # fmt: skip
        keys = seconds_of(library, ["review-message"])
        media_port = free_udp_port()
        argv = sipp_argv(
            "caller_review",
            system.proxy,
            port=free_udp_port(),
            keys={
                "domain": system.domain,
                "speech_ms": str(round((seconds + 0.3) * 1000)),
                # the keys said in full, then 2; the playback, the keys again (half): then 4
                "first_ms": str(round((0.4 + keys + 0.8) * 1000)),
                "second_ms": str(round((0.4 + seconds + 1.0 + keys / 2) * 1000)),
            },
            timeout=90,
            extra=["-s", "ulla"],
        )
        argv[argv.index("-mp") + 1] = str(media_port)
        capture = LoopbackRtpCapture(media_port).start()
        try:
            code, out = await asyncio.to_thread(run_sipp, argv, cwd=tmp_path, limit=100)
        finally:
            capture.stop()
        assert code == 0, f"the sipp caller failed: {out}"
        heard = alaw_decode(b"".join(p for _, pt, _, p in capture.packets if pt == PCMA))

        def at(needle: np.ndarray, limit: float = 0.9) -> float:
            score, where = best_correlation(heard, needle)
            assert score > limit, (score, len(heard) / RATE)
            return float(where / RATE)

        # the keys, then what was spoken played back (as recorded), then urgent + sent
        t_keys = at(prompt(library, "review-message")[: RATE * 2])
        t_back = at(spoken[RATE // 4 : -RATE // 4], limit=0.95)
        t_urgent = at(prompt(library, "marked-urgent"))
        t_sent = at(prompt(library, "message-sent"))
        assert t_keys < t_back < t_urgent < t_sent, (t_keys, t_back, t_urgent, t_sent)

        created = await watch.wait_for("message.created", limit=20, username="ulla")
        assert created.data["urgent"] is True, created.data
        [row] = await sql(
            system,
            "SELECT m.id, m.urgent, m.blob_key FROM messages m"
            " JOIN users u ON u.id = m.owner_id WHERE u.username = 'ulla'",
        )
        assert row["urgent"] and row["id"] == created.data["message_id"]
        stored = await stored_audio(system, row["blob_key"])
        assert best_correlation(stored, spoken[RATE // 4 : -RATE // 4])[0] > 0.95
        assert abs(len(stored) / RATE - seconds) < 1.5, (len(stored) / RATE, seconds)


async def test_wrong_pins_add_up_across_calls_and_replicas_then_the_right_pin_is_refused(
    two_recorder_system: FirstCallSystem,  # noqa: F811
    watch: EventWatch,
    tmp_path: Path,
) -> None:
    """Untrusted calls to ``sip:alice-retrieve@…``, three wrong PINs each (``pin_attempts``):
    NATS hands each call to either replica, so calls go on until both have served one; then
    the domain's ``pin_lockout_failures`` is set to one more than the failures so far — the
    next call's first wrong PIN locks the mailbox (the count held the failures of both
    replicas' calls), and a call with the right PIN hears "locked", not the count."""
    system = two_recorder_system
    library = await asyncio.to_thread(PromptLibrary, REPO / "var" / "prompts")
    with explained(system):
        async with httpx.AsyncClient(base_url=system.web_url, timeout=15) as http:
            await sign_up(http, "alice", "alice-password-1")
        await wait_registered(system, "alice")
        status = await sql(
            system, "UPDATE domains SET pin_lockout_failures = 100 WHERE name = $1 RETURNING id",
            system.domain,
        )  # fmt: skip
        assert len(status) == 1

        served: list[str] = []
        for _ in range(10):  # both replicas served one: 1 - 2^-9
            write_dtmf_pcap(tmp_path / "pin.pcap", "1357#    " * 3)
            heard, _ = await call_with_capture(system, "access_refused", "alice-retrieve", tmp_path)
            answered = await watch.wait_for("call.answered", limit=15, username="alice")
            ended = await watch.wait_for("call.ended", limit=15, username="alice")
            assert ended.data["end_reason"] == "rejected", ended.data
            assert best_correlation(heard, prompt(library, "wrong-pin"))[0] > 0.9
            served.append(str(answered.data["recorder_id"]))
            watch.seen.clear()
            if len(set(served)) == 2:
                break
        assert set(served) == {"e2e-recorder", "e2e-recorder-2"}, served
        [state] = await sql(
            system,
            "SELECT p.failures, p.locked_until FROM pin_lockouts p"
            " JOIN users u ON u.id = p.user_id WHERE u.username = 'alice'",
        )
        failures = 3 * len(served)
        assert state["failures"] == failures and state["locked_until"] is None, dict(state)

        await sql(
            system, "UPDATE domains SET pin_lockout_failures = $1 WHERE name = $2",
            failures + 1, system.domain,
        )  # fmt: skip
        write_dtmf_pcap(tmp_path / "pin.pcap", "1357#    " * 3)
        heard, _ = await call_with_capture(system, "access_refused", "alice-retrieve", tmp_path)
        locked = await watch.wait_for("mailbox.locked", limit=15, username="alice")
        assert (locked.data["failures"], locked.data["lockouts"]) == (failures + 1, 1)
        assert best_correlation(heard, prompt(library, "mailbox-locked"))[0] > 0.9
        watch.seen.clear()
        [state] = await sql(
            system,
            "SELECT p.failures, p.lockouts, p.locked_until FROM pin_lockouts p"
            " JOIN users u ON u.id = p.user_id WHERE u.username = 'alice'",
        )
        assert state["lockouts"] == 1 and state["locked_until"] is not None, dict(state)

        # the right PIN: refused all the same (not asked; "locked", goodbye, BYE)
        write_dtmf_pcap(tmp_path / "pin.pcap", PIN + "#")
        heard, _ = await call_with_capture(system, "access_refused", "alice-retrieve", tmp_path)
        ended = await watch.wait_for("call.ended", limit=15, username="alice")
        assert ended.data["end_reason"] == "rejected", ended.data
        assert best_correlation(heard, prompt(library, "mailbox-locked"))[0] > 0.9
        assert best_correlation(heard, prompt(library, "you-have"))[0] < 0.5


async def test_hash_3_records_again_and_only_the_second_take_is_kept(
    two_recorder_system: FirstCallSystem,  # noqa: F811
    watch: EventWatch,
    tmp_path: Path,
) -> None:
    """``#``, ``3`` (a beep), a second take, ``#``, ``1``: one message, not urgent, whose
    audio is the second take (not the first)."""
    system = two_recorder_system
    library = await asyncio.to_thread(PromptLibrary, REPO / "var" / "prompts")
    take1 = through_alaw(distinct_voice(3.0, seed=62))
    take2 = through_alaw(distinct_voice(2.5, seed=63))
    with explained(system):
        async with httpx.AsyncClient(base_url=system.web_url, timeout=15) as http:
            await sign_up(http, "vera", "vera-password-1")
        await wait_registered(system, "vera")

        seconds1 = write_alaw_pcap(take1, tmp_path / "speech.pcap", ssrc=SPEECH_SSRC)
        frames = round(seconds1 * RATE) // 160
        seq, ts = write_dtmf_pcap(
            tmp_path / "hash.pcap", "#", first_seq=frames, first_timestamp=frames * 160 + 8000,
            ssrc=SPEECH_SSRC,
        )  # fmt: skip
        seq, ts = write_dtmf_pcap(
            tmp_path / "first.pcap", "3", first_seq=seq, first_timestamp=ts, ssrc=SPEECH_SSRC
        )
        # the second take, then # and, once the keys are said, 1: one capture (second.pcap),
        # a new RTP stream (SSRC) as a phone that restarted its sender sends
        keys = seconds_of(library, ["review-message"])
        waits = {
            "speech_ms": round((seconds1 + 0.3) * 1000),
            "first_ms": round((0.4 + keys + 0.8) * 1000),  # the keys, then 3
            "second_ms": round((0.4 + seconds_of(library, ["beep"]) + 0.8) * 1000),
        }
        seconds2 = write_alaw_pcap(take2, tmp_path / "take2.pcap", ssrc=SPEECH_SSRC + 1)
        frames2 = round(seconds2 * RATE) // 160
        seq2, ts2 = write_dtmf_pcap(
            tmp_path / "hash2.pcap", "#", first_seq=frames2,
            first_timestamp=frames2 * 160 + 8000, ssrc=SPEECH_SSRC + 1,
        )  # fmt: skip
        write_dtmf_pcap(
            tmp_path / "one.pcap", "1", first_seq=seq2, first_timestamp=ts2, ssrc=SPEECH_SSRC + 1
        )
        hash_at = seconds2 + 0.3
        joined_pcap(
            tmp_path / "second.pcap",
            [
                (tmp_path / "take2.pcap", 0.0),
                (tmp_path / "hash2.pcap", hash_at),
                (tmp_path / "one.pcap", hash_at + 0.4 + keys + 0.8),
            ],
        )
        media_port = free_udp_port()
        argv = sipp_argv(
            "caller_review",
            system.proxy,
            port=free_udp_port(),
            keys={
                "domain": system.domain,
                **{name: str(ms) for name, ms in waits.items()},
            },
            timeout=90,
            extra=["-s", "vera"],
        )
        argv[argv.index("-mp") + 1] = str(media_port)
        capture = LoopbackRtpCapture(media_port).start()
        try:
            code, out = await asyncio.to_thread(run_sipp, argv, cwd=tmp_path, limit=100)
        finally:
            capture.stop()
        assert code == 0, f"the sipp caller failed: {out}"
        heard = alaw_decode(b"".join(p for _, pt, _, p in capture.packets if pt == PCMA))
        assert best_correlation(heard, prompt(library, "message-sent"))[0] > 0.9

        created = await watch.wait_for("message.created", limit=20, username="vera")
        assert created.data["urgent"] is False, created.data
        [row] = await sql(
            system,
            "SELECT m.id, m.urgent, m.blob_key FROM messages m"
            " JOIN users u ON u.id = m.owner_id WHERE u.username = 'vera'",
        )
        assert not row["urgent"] and row["id"] == created.data["message_id"]
        stored = await stored_audio(system, row["blob_key"])
        assert best_correlation(stored, take2[RATE // 4 : -RATE // 4])[0] > 0.95
        assert best_correlation(stored, take1[RATE // 4 : RATE * 2])[0] < 0.5
        assert abs(len(stored) / RATE - seconds2) < 1.5, (len(stored) / RATE, seconds2)
