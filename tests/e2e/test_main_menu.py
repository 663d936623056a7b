"""The main voicemail menu end to end: sipp calls ``sip:alice-retrieve@<domain>`` through
Kamailio (which routes it to the registrar-agent that registered for alice), types the PIN and
then ``7`` and ``#`` as RFC 4733 events; what sipp heard (read off the loopback interface) is
the count prompt, then the message's envelope, then the stored audio, then the message menu and
"Message deleted."; the message is in the trash and ``message.updated`` said so. And ``8``:
the message forwarded, spelled on the keypad, to another mailbox of the domain."""

from __future__ import annotations

import asyncio
import wave
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import numpy as np
import pytest
from sipum.blobstore import message_key, open_blob_store
from sipum.db import messages
from sipum_media_recorder.audio import decode_audio
from sipum_media_recorder.menu import Entry, count_items, envelope_items
from sipum_protocol.media.prompts import PromptLibrary
from sipum_protocol.media.recording import wav_bytes
from sipum_testing.rtp_caller import best_correlation

from .firstcall.audio import RATE, known_audio, through_ulaw
from .firstcall.capture import LoopbackRtpCapture, write_dtmf_pcap
from .firstcall.fixtures import first_call_system  # noqa: F401 - the fixture
from .firstcall.phone import free_udp_port, run_sipp, sipp_argv
from .firstcall.system import REPO, FirstCallSystem
from .firstcall.watch import EventWatch
from .test_first_call import PIN, explained, sign_up, wait_registered, watch  # noqa: F401

pytestmark = pytest.mark.timeout(150)

CALLER = "sip:+15550100@example.org"


def prompt(library: PromptLibrary, name: str) -> np.ndarray:
    with wave.open(str(library.path(name, RATE)), "rb") as w:
        return through_ulaw(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"))


def seconds_of(library: PromptLibrary, names: list[object]) -> float:
    return sum(len(prompt(library, n)) for n in names if isinstance(n, str)) / RATE


async def store_message(system: FirstCallSystem, username: str, audio: np.ndarray) -> int:
    """A message in ``username``'s inbox, as the media-recorder stores one (blob, then row)."""
    b = system.backends
    conn = await asyncpg.connect(b.database_url)
    try:
        owner = await conn.fetchval("SELECT id FROM users WHERE username = $1", username)
        message_id = await messages.allocate_id(conn)
        key = message_key(system.domain, username, message_id)
        wav = wav_bytes(audio, RATE)
        await open_blob_store(b).put(key, wav, content_type="audio/wav")
        await messages.insert_idempotent(
            conn, owner_id=owner, idempotency_key=f"e2e-menu-{message_id}", caller_uri=CALLER,
            called_uri=f"sip:{username}@{system.domain}", duration_ms=round(len(audio) / 8),
            codec="pcmu", size_bytes=len(wav), blob_key=key, message_id=message_id,
        )  # fmt: skip
        return message_id
    finally:
        await conn.close()


async def mailbox_with_a_message(
    system: FirstCallSystem, username: str, audio: np.ndarray, *, also: tuple[str, ...] = ()
) -> int:
    """``username`` (and the mailboxes ``also``) signed up, registered by the agent, with one
    message of ``audio`` (2 s) in the inbox; its id."""
    async with httpx.AsyncClient(base_url=system.web_url, timeout=15) as http:
        for user in (username, *also):
            await sign_up(http, user, f"{user}-password-1")
    await wait_registered(system, username)
    return await store_message(system, username, audio)


def message_menu_starts(library: PromptLibrary, message_id: int) -> float:
    """Seconds into the call when the message menu plays: after the PIN's five keys, the count,
    the envelope and the 2 s message (the recorder's own prompt files say how long they are)."""
    entry = Entry(message_id, "inbox", False, CALLER, "", datetime.now(UTC), 2.0)
    said = [*count_items(1, 0), *envelope_items(1, entry, datetime.now(UTC), ZoneInfo("UTC"))]
    return 5 * 0.42 + seconds_of(library, said) + 2.0


async def owner_calls_the_menu(
    system: FirstCallSystem,
    username: str,
    directory: Path,
    *,
    keys: str,
    keys_after: float,
    exit_after: float,
) -> tuple[np.ndarray, list[int]]:
    """sipp calls ``sip:<username>-retrieve`` through Kamailio (``scenarios/main_menu.xml``):
    the PIN and ``#``, ``keys`` ``keys_after`` seconds into the call, ``#`` ``exit_after``
    seconds after those. What it was sent (decoded PCMU) and the RTP sequence numbers."""
    seq, ts = write_dtmf_pcap(directory / "pin.pcap", PIN + "#")
    seq, ts = write_dtmf_pcap(directory / "delete.pcap", keys, first_seq=seq, first_timestamp=ts)
    write_dtmf_pcap(directory / "exit.pcap", "#", first_seq=seq, first_timestamp=ts)
    media_port = free_udp_port()
    argv = sipp_argv(
        "main_menu",
        system.proxy,
        port=free_udp_port(),
        keys={
            "domain": system.domain,
            "delete_after": str(round(keys_after * 1000)),
            "exit_after": str(round(exit_after * 1000)),
        },
        timeout=90,
        extra=["-s", username],
    )
    argv[argv.index("-mp") + 1] = str(media_port)
    capture = LoopbackRtpCapture(media_port).start()
    try:
        code, out = await asyncio.to_thread(run_sipp, argv, cwd=directory, limit=100)
    finally:
        capture.stop()
    assert code == 0, f"the sipp owner failed: {out}"
    return capture.audio(), [seq for _, pt, seq, _ in capture.packets if pt == 0]


def heard_at(heard: np.ndarray, needle: np.ndarray) -> float:
    """Where in ``heard`` (seconds) ``needle`` was said; it must be there."""
    score, where = best_correlation(heard, needle)
    assert score > 0.9, (score, len(heard) / RATE)
    return where / RATE


async def test_main_menu_through_kamailio_count_envelope_audio_then_7_deletes(
    first_call_system: FirstCallSystem,  # noqa: F811 - the fixture imported above
    watch: EventWatch,  # noqa: F811
    tmp_path: Path,
) -> None:
    system = first_call_system
    library = await asyncio.to_thread(PromptLibrary, REPO / "var" / "prompts")
    audio = through_ulaw(known_audio(2.0, seed=41))
    with explained(system):
        message_id = await mailbox_with_a_message(system, "fiona", audio)
        heard, seqs = await owner_calls_the_menu(
            system,
            "fiona",
            tmp_path,
            keys="7",
            keys_after=message_menu_starts(library, message_id) + 3.0,
            exit_after=3.0,
        )
        lost = sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if (b - a) % 65536 != 1)
        assert lost == 0, f"{lost} gaps in what sipp was sent"
        t_count = heard_at(heard, prompt(library, "you-have"))
        t_envelope = heard_at(heard, prompt(library, "received"))
        t_audio = heard_at(heard, audio)
        t_menu = heard_at(heard, prompt(library, "message-menu")[: RATE * 2])
        t_deleted = heard_at(heard, prompt(library, "message-deleted"))
        assert t_count < t_envelope < t_audio < t_menu < t_deleted, (
            t_count, t_envelope, t_audio, t_menu, t_deleted,
        )  # fmt: skip
        assert best_correlation(heard, audio)[0] > 0.99  # the stored audio, as stored

        updated = await watch.wait_for("message.updated", limit=10, changed=["folder"])
        assert updated.data["message_id"] == message_id and updated.data["folder"] == "trash"
        conn = await asyncpg.connect(system.backends.database_url)
        try:
            row = await conn.fetchrow(
                "SELECT folder, heard FROM messages WHERE id = $1", message_id
            )
        finally:
            await conn.close()
        assert row["folder"] == "trash" and row["heard"]


async def test_main_menu_through_kamailio_8_forwards_to_another_mailbox_of_the_domain(
    first_call_system: FirstCallSystem,  # noqa: F811 - the fixture imported above
    watch: EventWatch,  # noqa: F811
    tmp_path: Path,
) -> None:
    """``8``, the target spelled on the keypad (``ivan`` = 4 8 2 6) and ``#``, ``2`` (no comment):
    ivan's inbox gets a new message whose audio is hanna's, from hanna, and ivan's
    ``message.created``; "Message forwarded." is heard after the message."""
    system = first_call_system
    library = await asyncio.to_thread(PromptLibrary, REPO / "var" / "prompts")
    audio = through_ulaw(known_audio(2.0, seed=43))
    with explained(system):
        message_id = await mailbox_with_a_message(system, "hanna", audio, also=("ivan",))
        # the forward — 8, i-v-a-n, #, 2 (without a comment); then the end of the digits, the
        # copy stored, "Message forwarded." said: then # exits
        heard, _ = await owner_calls_the_menu(
            system,
            "hanna",
            tmp_path,
            keys="84826#2",
            keys_after=message_menu_starts(library, message_id) + 3.0,
            exit_after=7 * 0.42 + seconds_of(library, ["message-forwarded"]) + 2.0,
        )
        assert heard_at(heard, audio) < heard_at(heard, prompt(library, "message-forwarded"))

        created = await watch.wait_for("message.created", limit=10, username="ivan")
        assert created.data["caller_uri"] == f"sip:hanna@{system.domain}"
        conn = await asyncpg.connect(system.backends.database_url)
        try:
            rows = await conn.fetch(
                "SELECT m.id, m.folder, m.blob_key, m.caller_uri FROM messages m"
                " JOIN users u ON u.id = m.owner_id WHERE u.username = 'ivan'"
            )
            original = await conn.fetchrow("SELECT folder FROM messages WHERE id = $1", message_id)
        finally:
            await conn.close()
        [copy] = rows
        assert copy["folder"] == "inbox" and copy["id"] == created.data["message_id"]
        assert copy["id"] != message_id and original["folder"] == "inbox"
        stored = decode_audio(await open_blob_store(system.backends).get(copy["blob_key"])).pcm
        assert best_correlation(stored, audio)[0] > 0.99  # the original's audio, as stored
