"""The main menu's mailbox options end to end: sipp calls ``sip:<user>-retrieve@<domain>``
through Kamailio from a phone that is not the owner's asserted identity (so the PIN is asked)
and plays one pcap file holding the whole call's RTP — RFC 4733 digits and, for a greeting,
PCMU voice — on the pacing a person would keep (each prompt's length read from the recorder's
own prompt files, barge-in cutting the rest); what sipp was sent is read off the loopback
interface and correlated.

* ``0`` ``1``: the unavailable greeting recorded by phone, listened to (``2``: the voice comes
  back), kept (``1``); the greeting in PostgreSQL and S3 is the one the web API serves, and
  the next caller — diverted on no answer (History-Info ``cause=408``) — hears it.
* ``0`` ``5``: the PIN changed by phone (typed twice): a later call typing the old PIN is
  refused ("Wrong PIN", goodbye, ``rejected``), one typing the new PIN gets in.
"""

from __future__ import annotations

import asyncio
import struct
import types
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pytest
from sipum.blobstore import BlobStore, open_blob_store
from sipum_media_recorder.audio import decode_audio
from sipum_media_recorder.menu import Entry, count_items, envelope_items
from sipum_protocol.media.codecs.g711 import ulaw_encode
from sipum_protocol.media.prompts import PromptLibrary
from sipum_testing.rtp_caller import best_correlation, distinct_voice

from .firstcall.audio import RATE, through_ulaw
from .firstcall.capture import DTMF_EVENTS, _frame
from .firstcall.fixtures import first_call_system  # noqa: F401 - the fixture
from .firstcall.system import REPO, FirstCallSystem
from .firstcall.watch import EventWatch
from .test_first_call import PIN, explained, sign_up, wait_registered, watch  # noqa: F401
from .test_main_menu import CALLER, prompt, seconds_of, store_message
from .test_phone_paths import call_with_capture, sql

pytestmark = pytest.mark.timeout(240)

NEW_PIN = "5820"
HEAD = RATE * 6 // 10
"""The beginning of a prompt that a key 1.5 s after its start leaves heard for sure."""


class Script:
    """The RTP of one call, on a timeline: digits as RFC 4733 events, voice as PCMU (one SSRC;
    timestamps follow the timeline, an event's is the one of its start, RFC 4733 §2.5.1.2),
    written as the pcap that sipp's ``play_pcap_audio`` sends from its media port."""

    def __init__(self) -> None:
        self.at = 0.0
        self.records: list[tuple[float, bytes]] = []
        self.seq = 1000

    def _packet(self, payload_type: int, marker: bool, ts: int, payload: bytes) -> None:
        first = (0x80 if marker else 0) | payload_type
        header = struct.pack("!BBHII", 0x80, first, self.seq & 0xFFFF, ts, 0x5EED)
        self.records.append((self.at, header + payload))
        self.seq += 1

    def _ts(self) -> int:
        return 80_000 + int(round(self.at * RATE))

    def wait(self, seconds: float) -> Script:
        self.at += seconds
        return self

    def keys(self, digits: str) -> Script:
        for digit in digits:
            if digit == " ":  # a second without a key
                self.at += 1.0
                continue
            event, ts = DTMF_EVENTS[digit], self._ts()
            for n in range(1, 9):  # 8 × 20 ms of the event
                self._packet(101, n == 1, ts, struct.pack("!BBH", event, 10, 160 * n))
                self.at += 0.02
            for _ in range(3):  # the end, sent three times (RFC 4733 §2.5.1.4)
                self._packet(101, False, ts, struct.pack("!BBH", event, 0x80 | 10, 160 * 8))
            self.at += 0.26
        return self

    def voice(self, pcm: np.ndarray) -> Script:
        payload = ulaw_encode(pcm)
        for n, start in enumerate(range(0, len(payload), 160)):
            # the marker starts the talkspurt (RFC 3551 §4.1)
            self._packet(0, n == 0, self._ts(), payload[start : start + 160])
            self.at += 0.02
        return self

    def write(self, path: Path) -> float:
        """The pcap file; returns the script's length in seconds."""
        out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # Ethernet
        for when, rtp in self.records:
            frame = _frame(rtp, 4000, 4002)
            seconds = int(when)
            out.append(
                struct.pack("<IIII", seconds, int((when - seconds) * 1e6), len(frame), len(frame))
            )
            out.append(frame)
        path.write_bytes(b"".join(out))
        return self.at


async def menu_call(
    system: FirstCallSystem, user: str, script: Script, tmp_path: Path
) -> np.ndarray:
    """``sip:<user>-retrieve@…`` playing *script* (as ``pin.pcap`` of the ``access_refused``
    scenario: INVITE, the pcap, then sipum's BYE); what sipp was sent."""
    script.write(tmp_path / "pin.pcap")
    heard: np.ndarray
    heard, _ = await call_with_capture(system, "access_refused", f"{user}-retrieve", tmp_path)
    return heard


def message_menu_after(library: PromptLibrary, message_id: int, message: np.ndarray) -> float:
    """Seconds from the PIN's ``#`` to the message menu: the count, the envelope, the message
    (the recorder's own prompt files say how long they are), and two seconds to spare (the PIN
    checked, the mailbox read)."""
    entry = Entry(message_id, "inbox", False, CALLER, "", datetime.now(UTC), len(message) / RATE)
    said = [*count_items(1, 0), *envelope_items(1, entry, datetime.now(UTC), ZoneInfo("UTC"))]
    return float(seconds_of(library, said) + len(message) / RATE + 2.0)


def heard_at(heard: np.ndarray, needle: np.ndarray, floor: float = 0.9) -> float:
    score, where = best_correlation(heard, needle)
    assert score > floor, (score, len(heard) / RATE)
    return float(where / RATE)


def blob_store(system: FirstCallSystem) -> BlobStore:
    b = system.backends
    return open_blob_store(
        types.SimpleNamespace(
            s3_endpoint=b.s3_endpoint, s3_access_key=b.s3_access_key,
            s3_secret_key=b.s3_secret_key, s3_bucket=b.s3_bucket, s3_region=b.s3_region,
        )
    )  # fmt: skip


async def test_a_greeting_recorded_by_phone_through_kamailio_is_what_the_next_caller_hears(
    first_call_system: FirstCallSystem,  # noqa: F811 - the fixture imported above
    watch: EventWatch,  # noqa: F811
    tmp_path: Path,
) -> None:
    system = first_call_system
    library = await asyncio.to_thread(PromptLibrary, REPO / "var" / "prompts")
    spoken = through_ulaw(distinct_voice(2.0, seed=95))
    message = through_ulaw(distinct_voice(0.6, seed=96))
    with explained(system):
        async with httpx.AsyncClient(base_url=system.web_url, timeout=15) as http:
            token = await sign_up(http, "nora", "nora-password-1")
        await wait_registered(system, "nora")
        # an empty mailbox says goodbye at once: one message to reach the message menu
        message_id = await store_message(system, "nora", message)
        menu = message_menu_after(library, message_id, message)

        # PIN; the count, envelope and message play; 0 cuts the message menu: the
        # options; 1 cuts them: "speak after the tone" + beep; the voice; # → review menu;
        # 2 listens (the voice comes back), then 1 keeps it: "saved" + options; * back to the
        # message menu, # exits: goodbye, sipum's BYE
        script = Script().keys(PIN + "#").wait(menu).keys("0").wait(1.5).keys("1")
        script.wait(seconds_of(library, ["record-greeting", "beep"]) + 0.8).voice(spoken)
        script.wait(0.3).keys("#").wait(1.5).keys("2").wait(len(spoken) / RATE + 1.5)
        script.keys("1").wait(seconds_of(library, ["greeting-saved"]) + 1.0)
        script.keys("*").wait(1.0).keys("#")
        heard = await menu_call(system, "nora", script, tmp_path)

        # the message menu and the options come again at the end: find them before the beep
        t_beep = heard_at(heard, prompt(library, "beep"))
        before = heard[: round(t_beep * RATE)]
        t_menu = heard_at(before, prompt(library, "message-menu")[:HEAD])
        t_options = heard_at(before, prompt(library, "options-menu")[:HEAD])
        t_back = heard_at(heard, spoken)  # listened to: the voice comes back
        t_saved = heard_at(heard, prompt(library, "greeting-saved"))
        assert t_menu < t_options < t_beep < t_back < t_saved, (
            t_menu, t_options, t_beep, t_back, t_saved,
        )  # fmt: skip
        ended = await watch.wait_for("call.ended", limit=15, username="nora")
        assert ended.data["end_reason"] == "completed", ended.data

        # stored as the web's upload is: the row, the blob, and the web API serves that blob
        [row] = await sql(
            system,
            "SELECT g.blob_key, g.duration_ms FROM greetings g JOIN users u ON u.id = g.user_id"
            " WHERE u.username = 'nora' AND g.kind = 'unavailable'",
        )
        assert abs(row["duration_ms"] - 2000) < 500, row["duration_ms"]
        blob = await blob_store(system).get(row["blob_key"])
        assert best_correlation(decode_audio(blob).pcm, spoken)[0] > 0.95
        async with httpx.AsyncClient(base_url=system.web_url, timeout=15) as http:
            response = await http.get(
                "/api/v1/greetings/unavailable/audio",
                headers={"Authorization": f"Bearer {token}"},
            )
        assert response.status_code == 200, response.text
        assert response.content == blob

        # the next caller, diverted on no answer, hears that greeting
        watch.seen.clear()
        heard, _ = await call_with_capture(
            system, "diverted_call", "nora", tmp_path, cause="408", hold_ms="4000"
        )
        assert best_correlation(heard, spoken)[0] > 0.95
        started = await watch.wait_for("call.started", limit=10, username="nora")
        assert (started.data["reason"], started.data["diversion_cause"]) == ("diverted", "408")


async def test_a_pin_changed_by_phone_through_kamailio_refuses_the_old_one(
    first_call_system: FirstCallSystem,  # noqa: F811 - the fixture imported above
    watch: EventWatch,  # noqa: F811
    tmp_path: Path,
) -> None:
    system = first_call_system
    library = await asyncio.to_thread(PromptLibrary, REPO / "var" / "prompts")
    message = through_ulaw(distinct_voice(0.6, seed=97))
    with explained(system):
        async with httpx.AsyncClient(base_url=system.web_url, timeout=15) as http:
            await sign_up(http, "petra", "petra-password-1")
        await wait_registered(system, "petra")
        message_id = await store_message(system, "petra", message)
        menu = message_menu_after(library, message_id, message)

        # PIN; the message; 0: options; 5: "enter your new PIN"; it, # ; again, #; "changed" +
        # options; * back, # exits
        script = Script().keys(PIN + "#").wait(menu).keys("0").wait(1.0).keys("5").wait(1.0)
        script.keys(NEW_PIN + "#").wait(1.5).keys(NEW_PIN + "#")
        script.wait(seconds_of(library, ["pin-changed"]) + 1.0).keys("*").wait(1.0).keys("#")
        heard = await menu_call(system, "petra", script, tmp_path)
        assert heard_at(heard, prompt(library, "reenter-new-pin")[:HEAD]) < heard_at(
            heard, prompt(library, "pin-changed")
        )
        updated = await watch.wait_for("user.updated", limit=10, username="petra")
        assert updated.data["changed"] == ["pin"], updated.data
        assert NEW_PIN not in str(updated.data)  # the PIN is never published
        ended = await watch.wait_for("call.ended", limit=15, username="petra")
        assert ended.data["end_reason"] == "completed", ended.data

        # the old PIN, three times (each try heard out): refused
        watch.seen.clear()
        heard = await menu_call(system, "petra", Script().keys((PIN + "#    ") * 3), tmp_path)
        heard_at(heard, prompt(library, "wrong-pin"))
        heard_at(heard, prompt(library, "goodbye"))
        assert best_correlation(heard, prompt(library, "you-have"))[0] < 0.9
        assert best_correlation(heard, message)[0] < 0.5
        ended = await watch.wait_for("call.ended", limit=15, username="petra")
        assert ended.data["end_reason"] == "rejected", ended.data

        # the new one: in — the count, the message; # exits
        watch.seen.clear()
        script = Script().keys(NEW_PIN + "#").wait(menu).keys("#")
        heard = await menu_call(system, "petra", script, tmp_path)
        assert heard_at(heard, prompt(library, "you-have")) < heard_at(heard, message, 0.95)
        assert best_correlation(heard, prompt(library, "wrong-pin"))[0] < 0.9
        ended = await watch.wait_for("call.ended", limit=15, username="petra")
        assert ended.data["end_reason"] == "completed", ended.data
        [row] = await sql(
            system,
            "SELECT coalesce(sum(p.failures), 0) AS n FROM pin_lockouts p JOIN users u ON u.id = p.user_id"
            " WHERE u.username = 'petra'",
        )
        assert row["n"] == 0  # the right PIN forgot the three failures
