"""The main menu driven by SIP INFO digits end to end: sipp calls ``sip:jonas-retrieve@<domain>``
through Kamailio and sends every key as an in-dialog INFO (``application/dtmf-relay``), no RFC
4733 events at all (its SDP offers none). Kamailio routes the INFOs by Record-Route to the
registrar-agent holding the dialog, which answers 200 and relays each digit to the
media-recorder (``sipum.media.session.<id>.dtmf``). The PIN logs in, the first message is
heard after its envelope, ``9`` saves it (the row's folder changes, ``message.updated`` says
so, "Message saved." is heard after the audio), ``#`` exits."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import numpy as np
import pytest
from sipum_media_recorder.menu import Entry, count_items, envelope_items
from sipum_protocol.media.prompts import PromptLibrary
from sipum_testing.rtp_caller import best_correlation

from .firstcall.audio import RATE, known_audio, through_ulaw
from .firstcall.capture import LoopbackRtpCapture
from .firstcall.fixtures import first_call_system  # noqa: F401 - the fixture
from .firstcall.phone import free_udp_port, run_sipp, sipp_argv
from .firstcall.system import REPO, FirstCallSystem
from .firstcall.watch import EventWatch
from .test_first_call import PIN, explained, sign_up, wait_registered, watch  # noqa: F401
from .test_main_menu import CALLER, prompt, seconds_of, store_message

pytestmark = pytest.mark.timeout(150)


async def test_main_menu_by_sip_info_through_kamailio_pin_listen_9_saves(
    first_call_system: FirstCallSystem,  # noqa: F811 - the fixture imported above
    watch: EventWatch,  # noqa: F811
    tmp_path: Path,
) -> None:
    system = first_call_system
    library = await asyncio.to_thread(PromptLibrary, REPO / "var" / "prompts")
    audio = through_ulaw(known_audio(2.0, seed=47))
    with explained(system):
        async with httpx.AsyncClient(base_url=system.web_url, timeout=15) as http:
            await sign_up(http, "jonas", "jonas-password-1")
        await wait_registered(system, "jonas")
        message_id = await store_message(system, "jonas", audio)

        # the message menu is on after the PIN's INFOs, the count, the envelope and the message
        entry = Entry(message_id, "inbox", False, CALLER, "", datetime.now(UTC), 2.0)
        said = [*count_items(1, 0), *envelope_items(1, entry, datetime.now(UTC), ZoneInfo("UTC"))]
        menu_starts = 5 * 0.3 + seconds_of(library, said) + 2.0
        # after 9: "Message saved.", "There are no more messages." and the end menu's start
        saved_said = seconds_of(library, ["message-saved", "no-more-messages"]) + 2.0
        media_port = free_udp_port()
        argv = sipp_argv(
            "main_menu_info",
            system.proxy,
            port=free_udp_port(),
            keys={
                "domain": system.domain,
                **{f"p{i + 1}": digit for i, digit in enumerate(PIN)},
                "save_after": str(round((menu_starts + 3.0) * 1000)),
                "exit_after": str(round(saved_said * 1000)),
            },
            timeout=90,
            extra=["-s", "jonas"],
        )
        argv[argv.index("-mp") + 1] = str(media_port)
        capture = LoopbackRtpCapture(media_port).start()
        try:
            code, out = await asyncio.to_thread(run_sipp, argv, cwd=tmp_path, limit=100)
        finally:
            capture.stop()
        assert code == 0, f"the sipp owner failed: {out}"
        heard = capture.audio()

        def at(needle: np.ndarray) -> float:
            score, where = best_correlation(heard, needle)
            assert score > 0.9, (score, len(heard) / RATE)
            return where / RATE

        t_envelope = at(prompt(library, "received"))
        t_audio = at(audio)
        t_saved = at(prompt(library, "message-saved"))
        assert t_envelope < t_audio < t_saved, (t_envelope, t_audio, t_saved)
        assert best_correlation(heard, audio)[0] > 0.99  # the stored audio, as stored

        updated = await watch.wait_for("message.updated", limit=10, changed=["folder"])
        assert updated.data["message_id"] == message_id and updated.data["folder"] == "saved"
        conn = await asyncpg.connect(system.backends.database_url)
        try:
            row = await conn.fetchrow(
                "SELECT folder, heard FROM messages WHERE id = $1", message_id
            )
        finally:
            await conn.close()
        assert row["folder"] == "saved" and row["heard"]
