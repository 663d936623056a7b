"""Transcription end to end (issue 14): a sipp caller speaks a known sentence through
Kamailio into a mailbox; the six services run as processes. The stored transcript is close
enough to the sentence (word error rate under the threshold stated for the default engine in
docs/transcriber.md), the e-mail (aiosmtpd) waited for it and carries it, the REST API's
search finds the message by a word that was said — and not by one that was not — and the web
inbox (Chromium) shows it under the message.

The speech is espeak-ng's (``sipum_testing.speech``), written as an A-law RTP capture that
sipp's ``play_pcap_audio`` plays after the greeting and the beep, like the README's caller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sipum_testing.browser import chromium
from sipum_testing.speech import SENTENCES, espeak_available, normalize, render, word_error_rate

from .firstcall.audio import wav_pcm
from .firstcall.fixtures import transcribing_system  # noqa: F401 - the fixture
from .firstcall.phone import SCENARIOS, free_udp_port, run_sipp, sipp_argv
from .firstcall.speech_pcap import write_alaw_pcap
from .firstcall.system import FirstCallSystem
from .firstcall.watch import EventWatch
from .test_first_call import explained, sign_up, wait_registered

pytestmark = pytest.mark.timeout(180)

SENTENCE = SENTENCES[0]  # "please call me back tomorrow morning", 3.1 s
WER_THRESHOLD = 0.90  # PocketSphinx on espeak through the telephone band (docs/transcriber.md)


@pytest.fixture
async def watch(transcribing_system: FirstCallSystem) -> AsyncIterator[EventWatch]:  # noqa: F811
    backends = transcribing_system.backends
    watcher = await EventWatch(backends.nats_url, backends.events_prefix).start()
    try:
        yield watcher
    finally:
        await watcher.close()


def inbox_transcript(url: str) -> list[str]:
    """The words the web inbox shows under tina's message (Chromium)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chromium()
    try:
        wait = WebDriverWait(driver, 20)
        driver.get(url)
        form = wait.until(ec.visibility_of_element_located((By.ID, "login")))
        form.find_element(By.NAME, "username").send_keys("tina")
        form.find_element(By.NAME, "password").send_keys("tina-password-1")
        form.find_element(By.TAG_NAME, "button").click()
        row = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#rows tr.transcript")))
        return [w.text for w in row.find_elements(By.CSS_SELECTOR, ".word")]
    finally:
        driver.quit()


def speech_scenario(tmp_path: Path) -> tuple[Path, float]:
    """leave_message.xml playing the known sentence instead of sipp's sample recording."""
    pcm, rate = wav_pcm(render(SENTENCE))
    assert rate == 8000
    pcap = tmp_path / "speech.pcap"
    seconds = write_alaw_pcap(pcm, pcap)
    scenario = (SCENARIOS / "leave_message.xml").read_text()
    for old, new in (
        ("/usr/share/sip-tester/g711a.pcap", str(pcap)),
        ('<pause milliseconds="7300"/>', f'<pause milliseconds="{round(seconds * 1000) + 300}"/>'),
    ):
        assert old in scenario
        scenario = scenario.replace(old, new)
    path = tmp_path / "leave_speech.xml"
    path.write_text(scenario)
    return path, seconds


async def test_a_spoken_message_is_transcribed_mailed_and_found(
    transcribing_system: FirstCallSystem,  # noqa: F811 - the fixture imported above
    watch: EventWatch,
    tmp_path: Path,
) -> None:
    assert espeak_available(), "deploy/local/install installs espeak-ng"
    system = transcribing_system
    scenario, seconds = speech_scenario(tmp_path)
    with explained(system):
        async with httpx.AsyncClient(base_url=system.web_url, timeout=15) as http:
            token = await sign_up(http, "tina", "tina-password-1")
            auth = {"Authorization": f"Bearer {token}"}
            await wait_registered(system, "tina")
            argv = sipp_argv(
                "leave_message",
                system.proxy,
                port=free_udp_port(),
                keys={"domain": system.domain},
                timeout=40,
                extra=["-s", "tina"],
            )
            argv[argv.index("-sf") + 1] = str(scenario)
            code, out = await asyncio.to_thread(run_sipp, argv, cwd=tmp_path, limit=60)
            hung_up = time.time()
            assert code == 0, f"the sipp caller failed: {out}"

            created = await watch.wait_for("message.created", limit=20, username="tina")
            message_id = created.data["message_id"]
            transcribed = await watch.wait_for("message.transcribed", limit=60, username="tina")
            assert transcribed.data["message_id"] == message_id
            r = await http.get(f"/api/v1/messages/{message_id}", headers=auth)
            assert r.status_code == 200, r.text
            message = r.json()
            assert abs(message["duration_s"] - seconds) < 0.5, (message["duration_s"], seconds)
            transcript = message["transcript"]
            assert transcript is not None and transcript["engine"] == "pocketsphinx"
            wer = word_error_rate(SENTENCE, transcript["text"])
            print(
                f"said {SENTENCE!r}, transcribed {transcript['text']!r}: WER {wer:.2f}; "
                f"hang-up → stored {transcribed.at - hung_up:.1f} s"
            )
            assert wer < WER_THRESHOLD, (SENTENCE, transcript["text"], wer)
            times = [(w["start"], w["end"]) for w in transcript["words"]]
            assert times and all(0 <= a <= b <= seconds + 0.5 for a, b in times), times

            # The e-mail waited for it (transcript_wait 10 s) and carries its text.
            [mail] = [
                m
                for m in await asyncio.to_thread(system.smtp.wait_for, 1, 30)
                if "tina@mail.test" in m.recipients
            ]
            body = mail.message.get_body(preferencelist=("plain",))
            assert body is not None
            text = " ".join(body.get_content().split())
            assert "machine transcript" in text
            assert " ".join(transcript["text"].split()) in text, text
            assert mail.accepted_at >= transcribed.at - 0.5
            print(
                f"message.created → transcript stored {transcribed.at - created.at:.1f} s, "
                f"→ mail accepted {mail.accepted_at - created.at:.1f} s"
            )

            # Search finds it by a word that was said (and recognised), not by another.
            said = set(normalize(SENTENCE)) & set(normalize(transcript["text"]))
            assert said, transcript["text"]
            word = max(said, key=len)
            r = await http.get("/api/v1/messages", params={"q": word}, headers=auth)
            assert [m["id"] for m in r.json()["items"]] == [message_id], (word, r.json())
            r = await http.get("/api/v1/messages", params={"q": "zebra"}, headers=auth)
            assert r.json()["items"] == [] and r.json()["total"] == 0

        # And the web inbox shows it under the message, word by word.
        shown = await asyncio.wait_for(asyncio.to_thread(inbox_transcript, system.web_url), 60)
        assert shown == [w["word"] for w in transcript["words"]]
