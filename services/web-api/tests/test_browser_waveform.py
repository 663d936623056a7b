"""The inbox's waveform player and browser notifications in headless Chromium: the peaks are
drawn (loud half tall, silent half flat), a click on the waveform seeks the <audio>
(``currentTime`` changes to that point) and colours the part before it; a message deleted
after e-mail says so; with the notification permission granted (through the DevTools protocol,
as the user's "Allow") a message arriving while the tab is hidden shows a notification, and
one arriving while it is visible does not."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sipum.blobstore.keys import message_key
from sipum.db import messages
from sipum.events import MessageCreated
from sipum_protocol.media.recording import wav_bytes
from sipum_testing.browser import CHROMEDRIVER, CHROMIUM

from .test_browser import browser, served_inbox, tone_wav  # noqa: F401 - the fixture

# A pixel column of the canvas: how many of its pixels are painted, and the colour at its middle.
COLUMN = """const c = document.querySelector('#rows canvas.wave');
            const px = c.getContext('2d').getImageData(arguments[0], 0, 1, c.height).data;
            let painted = 0; for (let i = 3; i < px.length; i += 4) if (px[i] > 0) painted++;
            const mid = 4 * Math.floor(c.height / 2);
            return [painted, [px[mid], px[mid + 1], px[mid + 2]]];"""


def log_in(driver, url: str) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    form = WebDriverWait(driver, 20).until(ec.visibility_of_element_located((By.ID, "login")))
    form.find_element(By.NAME, "username").send_keys("alice")
    form.find_element(By.NAME, "password").send_keys("alice-password-1")
    form.find_element(By.TAG_NAME, "button").click()


def drive_waveform(url: str, screenshot: Path) -> dict[str, object]:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser()
    try:
        wait = WebDriverWait(driver, 20, poll_frequency=0.05)
        log_in(driver, url)
        canvas = wait.until(
            lambda d: d.find_element(By.CSS_SELECTOR, "#rows canvas.wave[data-peaks]")
        )
        result: dict[str, object] = {
            "peaks": canvas.get_attribute("data-peaks"),
            "row": driver.find_element(By.CSS_SELECTOR, "#rows tr").text,
            "loud": driver.execute_script(COLUMN, 50),  # 0.23 of the width: the tone
            "quiet": driver.execute_script(COLUMN, 170),  # 0.77: the silence
            "before": driver.execute_script("return document.querySelector('#rows audio').currentTime"),
        }  # fmt: skip
        width = canvas.size["width"]
        # Click at three quarters of the width (Selenium's offsets are from the centre).
        ActionChains(driver).move_to_element_with_offset(canvas, width // 4, 0).click().perform()
        wait.until(
            lambda d: (
                d.execute_script("return document.querySelector('#rows audio').currentTime") > 1.0
            )
        )
        result["after"] = driver.execute_script(
            "return document.querySelector('#rows audio').currentTime"
        )
        result["played_colour"] = driver.execute_script(COLUMN, 100)[1]
        result["unplayed_colour"] = driver.execute_script(COLUMN, 200)[1]
        result["paused"] = driver.execute_script(
            "return document.querySelector('#rows audio').paused"
        )
        driver.save_screenshot(str(screenshot))
        return result
    finally:
        driver.quit()


async def test_the_waveform_draws_and_a_click_seeks(served_inbox, tmp_path: Path) -> None:  # noqa: F811
    assert CHROMIUM and CHROMEDRIVER, "deploy/local/install installs chromium and chromium-driver"
    # The message's audio: 1 s of a loud tone, then 1 s of silence (no stored peaks: the API
    # computes them on the first request, as for a message recorded before peaks existed).
    t = np.arange(8000) / 8000
    tone = np.round(24000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    pcm = np.concatenate([tone, np.zeros(8000, dtype=np.int16)])
    await served_inbox["blobs"].put(served_inbox["message_key"], wav_bytes(pcm, 8000))
    when = datetime.now(UTC) + timedelta(days=1)
    await messages.set_expiry(served_inbox["pool"], served_inbox["message_id"], when)
    shot = tmp_path / "waveform.png"
    result = await asyncio.wait_for(
        asyncio.to_thread(drive_waveform, served_inbox["url"], shot), 90
    )
    assert result["peaks"] == "400"
    loud, _ = result["loud"]
    quiet, _ = result["quiet"]
    assert loud >= 0.7 * 36 * 24000 / 32768 and quiet <= 2, result  # tall bars, then flat
    assert result["before"] == 0
    assert abs(float(result["after"]) - 1.5) < 0.1, result  # 3/4 of 2 s
    assert result["paused"] is True  # a seek, not a play
    # the part before the click in the played colour (#1d3557), the rest in the light one
    assert sum(result["played_colour"]) < 200 and sum(result["unplayed_colour"]) > 450, result
    assert "deleted from the server on" in str(result["row"])
    assert shot.stat().st_size > 10_000


# Records every notification the page creates and tells the other tab (a BroadcastChannel), so
# the test can watch while the inbox tab is hidden.
RECORD_NOTIFICATIONS = """
window.__notes = [];
const Real = window.Notification;
const channel = new BroadcastChannel("sipum-test");
class Recording extends Real {
  constructor(title, options) {
    super(title, options);
    const note = { title, body: options && options.body, hidden: document.hidden };
    window.__notes.push(note); channel.postMessage(note);
  }
}
window.Notification = Recording;
"""

LISTEN = """window.__got = []; window.__channel = new BroadcastChannel("sipum-test");
            window.__channel.onmessage = (e) => window.__got.push(e.data);"""


def drive_notifications(url: str, arrive: Callable[[str], None]) -> dict[str, object]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser()
    try:
        wait = WebDriverWait(driver, 20, poll_frequency=0.05)
        driver.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_NOTIFICATIONS}
        )
        log_in(driver, url)
        wait.until(ec.text_to_be_present_in_element((By.ID, "live"), "live"))
        button = driver.find_element(By.ID, "notify")
        result: dict[str, object] = {"offered": button.is_displayed()}
        # The user clicks "Notify me…" and allows: the grant is what the permission prompt's
        # "Allow" would do (headless Chromium shows no prompt).
        driver.execute_cdp_cmd(
            "Browser.grantPermissions",
            {"origin": url.rstrip("/"), "permissions": ["notifications"]},
        )
        button.click()
        wait.until(lambda d: not d.find_element(By.ID, "notify").is_displayed())
        result["permission"] = driver.execute_script("return Notification.permission")
        # A message while the tab is visible: the list updates, no notification.
        arrive("Visible Vera")
        wait.until(ec.text_to_be_present_in_element((By.ID, "summary"), "2 message(s)"))
        inbox = driver.current_window_handle
        # Another tab in front: the inbox is hidden now. A message arrives.
        driver.switch_to.new_window("tab")
        driver.get(url + "health")  # same origin, so it hears the inbox tab's channel
        driver.execute_script(LISTEN)
        arrive("Hidden Hank")
        wait.until(lambda d: d.execute_script("return window.__got.length") > 0)
        [result["note"]] = driver.execute_script("return window.__got")
        driver.switch_to.window(inbox)
        result["notes"] = driver.execute_script("return window.__notes")
        return result
    finally:
        driver.quit()


async def test_a_browser_notification_when_the_tab_is_hidden(served_inbox) -> None:  # noqa: F811
    assert CHROMIUM and CHROMEDRIVER, "deploy/local/install installs chromium and chromium-driver"
    pool, alice, bus = served_inbox["pool"], served_inbox["alice"], served_inbox["bus"]
    loop = asyncio.get_running_loop()

    async def store_and_announce(name: str) -> None:
        message_id = await messages.allocate_id(pool)
        key = message_key("example.com", "alice", message_id)
        data = tone_wav(1.0)
        await served_inbox["blobs"].put(key, data)
        message, _ = await messages.insert_idempotent(
            pool, owner_id=alice.id, idempotency_key=f"note-{message_id}",
            caller_uri="sip:carol@example.com", caller_display_name=name,
            called_uri="sip:alice@example.com", duration_ms=1000, codec="PCMU",
            size_bytes=len(data), blob_key=key, message_id=message_id,
        )  # fmt: skip
        await bus.publish(
            MessageCreated(
                username="alice",
                domain="example.com",
                message_id=message.id,
                caller_uri=message.caller_uri,
                caller_display=name,
                called_uri=message.called_uri,
                received_at=message.received_at,
                duration_s=1.0,
                codec="PCMU",
                size=len(data),
                blob_key=key,
            )  # fmt: skip
        )

    def arrive(name: str) -> None:
        asyncio.run_coroutine_threadsafe(store_and_announce(name), loop).result(10)

    result = await asyncio.wait_for(
        asyncio.to_thread(drive_notifications, served_inbox["url"], arrive), 90
    )
    assert result["offered"] is True and result["permission"] == "granted", result
    assert result["note"] == {
        "title": "New voicemail",
        "body": "Hidden Hank (1 s)",
        "hidden": True,
    }, result
    assert result["notes"] == [result["note"]]  # none for the message that came while visible
