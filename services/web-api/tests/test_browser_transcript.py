"""The transcript in the web inbox, in headless Chromium: it appears under its message when
``message.transcribed`` arrives (live, no reload), a click on a word plays the message from
that word's time, and the search box finds the message by what was said."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sipum.db import transcripts
from sipum.events import MessageTranscribed
from sipum_testing.browser import CHROMEDRIVER, CHROMIUM

from .test_browser import browser, served_inbox  # noqa: F401 - served_inbox is a fixture

WORDS = [("call", 0.1, 0.4), ("me", 0.4, 0.6), ("back", 0.6, 0.9), ("tomorrow", 1.2, 1.8)]


def drive(url: str, transcribe: Callable[[], None]) -> dict[str, object]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser()
    try:
        wait = WebDriverWait(driver, 20)
        driver.get(url)
        form = wait.until(ec.visibility_of_element_located((By.ID, "login")))
        form.find_element(By.NAME, "username").send_keys("alice")
        form.find_element(By.NAME, "password").send_keys("alice-password-1")
        form.find_element(By.TAG_NAME, "button").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "summary"), "1 message(s), 1 new"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "live"), "live"))
        result: dict[str, object] = {
            "before": len(driver.find_elements(By.CSS_SELECTOR, "#rows tr.transcript"))
        }
        transcribe()  # stored and announced while the page is open
        row = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#rows tr.transcript")))
        result["text"] = row.text
        result["words"] = [w.text for w in row.find_elements(By.CSS_SELECTOR, ".word")]
        result["unsure"] = [w.text for w in row.find_elements(By.CSS_SELECTOR, ".word.unsure")]
        # Click "tomorrow" (1.2 s): the player jumps there and plays.
        # The first position the player reports after the click: ~1.2 s if it seeked, ~0 if
        # it merely started from the beginning.
        driver.execute_script(
            "const a = document.querySelector('#rows audio'); a.muted = true;"
            "window.firstPosition = null;"
            "a.addEventListener('timeupdate', () => {"
            "  if (window.firstPosition === null) window.firstPosition = a.currentTime; });"
        )
        word = next(w for w in row.find_elements(By.CSS_SELECTOR, ".word") if w.text == "tomorrow")
        word.click()
        wait.until(
            lambda d: d.execute_script(
                "const a = document.querySelector('#rows audio');"
                "return !a.paused && a.currentTime >= 1.2;"
            )
        )
        result["position"] = wait.until(lambda d: d.execute_script("return window.firstPosition;"))
        wait.until(
            lambda d: (
                d.execute_script(
                    "const n = document.querySelector('#rows .word.now');"
                    "return n ? n.textContent : null;"
                )
                == "tomorrow"
            )
        )
        driver.execute_script("document.querySelector('#rows audio').pause();")
        # Search by what was said (stemmed: "tomorrows" finds "tomorrow").
        search = driver.find_element(By.CSS_SELECTOR, "#search input")
        search.send_keys("tomorrows")
        driver.find_element(By.CSS_SELECTOR, "#search button").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "summary"), "1 message(s) say"))
        result["found"] = driver.find_element(By.CSS_SELECTOR, "#rows tr").text
        search.clear()
        search.send_keys("zebra")
        driver.find_element(By.CSS_SELECTOR, "#search button").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "summary"), "0 message(s) say"))
        result["not_found_rows"] = len(driver.find_elements(By.CSS_SELECTOR, "#rows tr"))
        search.clear()
        driver.find_element(By.CSS_SELECTOR, "#search button").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "summary"), "1 message(s), 0 new"))
        return result
    finally:
        driver.quit()


async def test_transcript_under_the_message_seeks_the_player(served_inbox) -> None:  # noqa: F811
    assert CHROMIUM and CHROMEDRIVER, "deploy/local/install installs chromium and chromium-driver"
    loop = asyncio.get_running_loop()
    message_id = served_inbox["message_id"]

    async def store_and_announce() -> None:
        words = [
            transcripts.Word(w, start, end, 0.3 if w == "me" else 0.9) for w, start, end in WORDS
        ]
        assert await transcripts.store(
            served_inbox["pool"],
            message_id,
            language="en-US",
            text=" ".join(w for w, _, _ in WORDS),
            confidence=0.81,
            words=words,
            engine="pocketsphinx",
            engine_version="5.0.4",
            elapsed_ms=500,
        )
        await served_inbox["bus"].publish(
            MessageTranscribed(
                username="alice",
                domain="example.com",
                message_id=message_id,
                language="en-US",
                engine="pocketsphinx",
                engine_version="5.0.4",
                chars=22,
                words=len(words),
                confidence=0.81,
                elapsed_s=0.5,
            )
        )

    def transcribe() -> None:
        asyncio.run_coroutine_threadsafe(store_and_announce(), loop).result(10)

    result = await asyncio.wait_for(asyncio.to_thread(drive, served_inbox["url"], transcribe), 120)
    assert result["before"] == 0
    assert result["words"] == ["call", "me", "back", "tomorrow"]
    assert result["unsure"] == ["me"]
    assert "Transcript (81 % sure)" in str(result["text"])
    assert 1.15 <= float(result["position"]) < 1.6  # type: ignore[arg-type]
    assert "Bob Caller" in str(result["found"])
    assert result["not_found_rows"] == 0
