"""The web inbox in a real browser (headless Chromium driven by Selenium): log in through the
form, see the message, play its audio (the browser fetches the WAV from the API), save it."""

from __future__ import annotations

import asyncio
import io
import math
import struct
import time
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr
from sipum.blobstore import FileBlobStore
from sipum.blobstore.keys import message_key
from sipum.config import ServiceSettings
from sipum.db import domains, messages, users
from sipum.events import MessageCreated
from sipum.runtime import HealthRegistry, ServiceContext
from sipum.runtime.http import start_http, stop_http
from sipum_testing.browser import CHROMEDRIVER, CHROMIUM, chromium
from sipum_web_api.app import create_app


def tone_wav(seconds: float) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        samples = (
            int(8000 * 0.3 * math.sin(2 * math.pi * 440 * n / 8000))
            for n in range(int(seconds * 8000))
        )
        w.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return out.getvalue()


def browser():  # type: ignore[no-untyped-def]
    return chromium()


@pytest.fixture
async def served_inbox(pg_pool, event_bus, tmp_path: Path):
    await domains.ensure(pg_pool, "example.com")
    alice = await users.create(pg_pool, "alice", "example.com", "alice-password-1")
    ctx = ServiceContext(
        settings=ServiceSettings(domain="example.com", secret_key=SecretStr("browser-secret")),
        health=HealthRegistry("web-api"),
        pool=pg_pool,
        bus=event_bus,
        blobs=FileBlobStore(tmp_path / "blobs"),
    )
    message_id = await messages.allocate_id(pg_pool)
    key = message_key("example.com", "alice", message_id)
    data = tone_wav(2.0)
    await ctx.blobs.put(key, data)
    await messages.insert_idempotent(
        pg_pool, owner_id=alice.id, idempotency_key=f"b-{message_id}", caller_uri="sip:bob@example.com",
        caller_display_name="Bob Caller", called_uri="sip:alice@example.com", duration_ms=2000,
        codec="PCMU", size_bytes=len(data), blob_key=key, message_id=message_id,
    )  # fmt: skip
    app = create_app(ctx)
    app.state.web.deregister_wait = 0.2  # no registrar-agent to confirm a de-registration here
    server, task, port = await start_http(app, "127.0.0.1", 0)
    yield {
        "url": f"http://127.0.0.1:{port}/",
        "message_id": message_id,
        "message_key": key,
        "pool": pg_pool,
        "alice": alice,
        "blobs": ctx.blobs,
        "bus": event_bus,
    }
    await stop_http(server, task)


def drive_inbox(url: str, screenshot: Path) -> dict[str, object]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser()
    try:
        wait = WebDriverWait(driver, 20)
        driver.get(url)
        form = wait.until(ec.visibility_of_element_located((By.ID, "login")))
        # a wrong password first: the page says so and stays on the form
        form.find_element(By.NAME, "username").send_keys("alice")
        form.find_element(By.NAME, "password").send_keys("wrong-password")
        form.find_element(By.TAG_NAME, "button").click()
        wait.until(
            ec.text_to_be_present_in_element((By.ID, "auth-error"), "wrong user name or password")
        )
        form.find_element(By.NAME, "password").clear()
        form.find_element(By.NAME, "password").send_keys("alice-password-1")
        form.find_element(By.TAG_NAME, "button").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "summary"), "1 message(s), 1 new"))
        row = driver.find_element(By.CSS_SELECTOR, "#rows tr")
        result: dict[str, object] = {
            "who": driver.find_element(By.ID, "who").text,
            "row": row.text,
            "row_class": row.get_attribute("class"),
        }
        # Play: the browser fetches the WAV through the API with the session cookie.
        duration = driver.execute_async_script(
            """const done = arguments[arguments.length - 1];
               const audio = document.querySelector('#rows audio');
               audio.addEventListener('loadedmetadata', () => done(audio.duration));
               audio.addEventListener('error', () => done(-1));
               audio.muted = true; audio.play().catch(() => {});"""
        )
        result["duration"] = duration
        wait.until(
            lambda d: d.find_element(By.CSS_SELECTOR, "#rows tr").get_attribute("class") == ""
        )
        driver.save_screenshot(str(screenshot))
        # Save it: it leaves the inbox and shows under "Saved".
        next(b for b in row.find_elements(By.TAG_NAME, "button") if b.text == "Save").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "summary"), "0 message(s)"))
        driver.find_element(By.CSS_SELECTOR, "nav button[data-folder=saved]").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "summary"), "1 message(s), 0 new"))
        result["saved_row"] = driver.find_element(By.CSS_SELECTOR, "#rows tr").text
        return result
    finally:
        driver.quit()


async def test_inbox_in_chromium(served_inbox, tmp_path: Path) -> None:
    assert CHROMIUM and CHROMEDRIVER, "deploy/local/install installs chromium and chromium-driver"
    shot = tmp_path / "inbox.png"
    result = await asyncio.wait_for(asyncio.to_thread(drive_inbox, served_inbox["url"], shot), 90)
    assert result["who"] == "alice@example.com"
    assert "Bob Caller <sip:bob@example.com>" in str(result["row"]) and "2.0 s" in str(
        result["row"]
    )
    assert result["row_class"] == "unheard"
    assert abs(float(result["duration"]) - 2.0) < 0.05  # the browser decoded our WAV
    assert shot.stat().st_size > 10_000
    assert "Bob Caller" in str(result["saved_row"])
    message = await messages.get(served_inbox["pool"], served_inbox["message_id"])
    assert message is not None and message.heard and message.folder.value == "saved"


def drive_account(url: str, check: Callable[[str], bool]) -> dict[str, object]:
    """Change the PIN and the password in the page's account section, then delete the
    account (cancelling the confirmation once). ``check(what)`` asks the database."""
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
        wait.until(ec.visibility_of_element_located((By.ID, "account")))
        result: dict[str, object] = {}

        def submit(form_id: str, **fields: str) -> None:
            form = driver.find_element(By.ID, form_id)
            for name, value in fields.items():
                field = form.find_element(By.NAME, name)
                field.clear()
                field.send_keys(value)
            form.find_element(By.TAG_NAME, "button").click()

        submit("pin-form", pin="12")
        wait.until(ec.text_to_be_present_in_element((By.ID, "account-error"), "PIN must be"))
        result["bad_pin_kept"] = check("old pin")
        submit("pin-form", pin="97531")
        wait.until(ec.text_to_be_present_in_element((By.ID, "account-status"), "PIN changed."))
        result["pin_changed"] = check("new pin")
        submit("password-form", current_password="not-my-password", new_password="rabbit-hole-3")
        wait.until(
            ec.text_to_be_present_in_element(
                (By.ID, "account-error"), "the current password is wrong"
            )
        )
        submit("password-form", current_password="alice-password-1", new_password="rabbit-hole-3")
        wait.until(ec.text_to_be_present_in_element((By.ID, "account-status"), "Password changed"))
        result["password_changed"] = check("new password")
        # Delete: cancelling the confirmation keeps everything; accepting deletes.
        submit("delete-form", password="rabbit-hole-3")
        wait.until(ec.alert_is_present())
        result["confirm_text"] = driver.switch_to.alert.text
        driver.switch_to.alert.dismiss()
        result["kept_after_cancel"] = check("exists")
        driver.find_element(By.CSS_SELECTOR, "#delete-form button").click()
        wait.until(ec.alert_is_present())
        driver.switch_to.alert.accept()
        wait.until(ec.visibility_of_element_located((By.ID, "login")))
        wait.until(
            ec.text_to_be_present_in_element((By.ID, "auth-status"), "Your account was deleted.")
        )
        result["account_hidden"] = not driver.find_element(By.ID, "account").is_displayed()
        return result
    finally:
        driver.quit()


async def test_account_section_in_chromium(served_inbox) -> None:
    assert CHROMIUM and CHROMEDRIVER, "deploy/local/install installs chromium and chromium-driver"
    pool, alice = served_inbox["pool"], served_inbox["alice"]
    loop = asyncio.get_running_loop()

    async def ask(what: str) -> bool:
        if what == "old pin":  # alice had none, and "12" did not become one
            stored = await users.get(pool, alice.id)
            return stored is not None and not stored.has_pin
        if what == "new pin":
            return await users.verify_pin(pool, alice.id, "97531")
        if what == "new password":
            return (
                await users.authenticate(pool, "alice", "example.com", "rabbit-hole-3") is not None
            )
        return await users.get(pool, alice.id) is not None

    def check(what: str) -> bool:
        return asyncio.run_coroutine_threadsafe(ask(what), loop).result(10)

    result = await asyncio.wait_for(
        asyncio.to_thread(drive_account, served_inbox["url"], check), 90
    )
    assert result == {
        "bad_pin_kept": True,
        "pin_changed": True,
        "password_changed": True,
        "confirm_text": "Delete alice@example.com with all messages and greetings? "
        "This cannot be undone.",
        "kept_after_cancel": True,
        "account_hidden": True,
    }
    assert await users.get(pool, alice.id) is None
    assert await messages.get(pool, served_inbox["message_id"]) is None
    assert not await served_inbox["blobs"].exists(served_inbox["message_key"])


def drive_live_inbox(url: str, arrive: Callable[[], None], screenshot: Path) -> dict[str, object]:
    """Log in, keep the inbox open, let a message arrive (``arrive()``), and time how long the
    page takes to show it without a reload."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser()
    try:
        wait = WebDriverWait(driver, 20, poll_frequency=0.05)
        driver.get(url)
        form = wait.until(ec.visibility_of_element_located((By.ID, "login")))
        form.find_element(By.NAME, "username").send_keys("alice")
        form.find_element(By.NAME, "password").send_keys("alice-password-1")
        form.find_element(By.TAG_NAME, "button").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "summary"), "1 message(s), 1 new"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "live"), "live"))
        driver.execute_script("window.__sameDocument = true")  # gone if the page reloads
        started = time.monotonic()
        arrive()
        wait.until(ec.text_to_be_present_in_element((By.ID, "summary"), "2 message(s), 2 new"))
        seconds = time.monotonic() - started
        driver.save_screenshot(str(screenshot))
        return {
            "seconds": seconds,
            "rows": [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#rows tr")],
            "same_document": driver.execute_script("return window.__sameDocument === true"),
        }
    finally:
        driver.quit()


async def test_a_new_message_appears_in_the_open_inbox(served_inbox, tmp_path: Path) -> None:
    assert CHROMIUM and CHROMEDRIVER, "deploy/local/install installs chromium and chromium-driver"
    pool, alice, bus = served_inbox["pool"], served_inbox["alice"], served_inbox["bus"]
    loop = asyncio.get_running_loop()

    async def store_and_announce() -> None:
        # What the media-recorder does when a call ends: the row, then message.created.
        message_id = await messages.allocate_id(pool)
        key = message_key("example.com", "alice", message_id)
        data = tone_wav(1.0)
        await served_inbox["blobs"].put(key, data)
        message, _ = await messages.insert_idempotent(
            pool, owner_id=alice.id, idempotency_key=f"live-{message_id}",
            caller_uri="sip:carol@example.com", caller_display_name="Carol Live",
            called_uri="sip:alice@example.com", duration_ms=1000, codec="PCMU",
            size_bytes=len(data), blob_key=key, message_id=message_id,
        )  # fmt: skip
        await bus.publish(
            MessageCreated(
                username="alice",
                domain="example.com",
                message_id=message.id,
                caller_uri=message.caller_uri,
                caller_display="Carol Live",
                called_uri=message.called_uri,
                received_at=message.received_at,
                duration_s=1.0,
                codec="PCMU",
                size=len(data),
                blob_key=key,
            )  # fmt: skip
        )

    def arrive() -> None:
        asyncio.run_coroutine_threadsafe(store_and_announce(), loop).result(10)

    shot = tmp_path / "live-inbox.png"
    result = await asyncio.wait_for(
        asyncio.to_thread(drive_live_inbox, served_inbox["url"], arrive, shot), 90
    )
    assert result["same_document"] is True  # no reload
    assert float(result["seconds"]) < 2.0
    assert "Carol Live" in str(result["rows"][0])  # newest first
    assert shot.stat().st_size > 10_000
