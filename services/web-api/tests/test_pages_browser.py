"""The settings, greetings and admin pages in headless Chromium (Selenium), on a served web-api
with real PostgreSQL and NATS: every action through the page, its effect checked in the
database; screenshots kept in the test's tmp directory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sipum.blobstore import FileBlobStore
from sipum.config import ServiceSettings
from sipum.db import admins, domains, greetings, settings, users
from sipum.runtime import HealthRegistry, ServiceContext
from sipum.runtime.http import start_http, stop_http
from sipum_testing.browser import CHROMEDRIVER, CHROMIUM, FAKE_MICROPHONE, chromium
from sipum_web_api.app import create_app
from sipum_web_api.routes.admin import Settings as AdminSettings

from .test_browser import tone_wav

pytestmark = pytest.mark.timeout(180)
Check = Callable[[Callable[[], Any]], Any]


@pytest.fixture
async def served(pg_pool, event_bus, tmp_path: Path):
    assert CHROMIUM and CHROMEDRIVER, "deploy/local/install installs chromium and chromium-driver"
    await domains.ensure(pg_pool, "example.com")
    alice = await users.create(pg_pool, "alice", "example.com", "alice-password-1")
    await admins.create(pg_pool, "root", "admin-password-1")
    ctx = ServiceContext(
        settings=ServiceSettings(domain="example.com", secret_key=SecretStr("pages-secret")),
        health=HealthRegistry("web-api"),
        pool=pg_pool,
        bus=event_bus,
        blobs=FileBlobStore(tmp_path / "blobs"),
    )
    server, task, port = await start_http(create_app(ctx), "127.0.0.1", 0)
    loop = asyncio.get_running_loop()

    def check(query: Callable[[], Any]) -> Any:
        """Run a database coroutine from the browser thread."""
        return asyncio.run_coroutine_threadsafe(query(), loop).result(10)

    yield {"url": f"http://127.0.0.1:{port}", "pool": pg_pool, "alice": alice, "check": check}
    await stop_http(server, task)


def wait_text(driver: Any, element_id: str, text: str, limit: float = 20) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, limit).until(
        ec.text_to_be_present_in_element((By.ID, element_id), text),
        f"{text!r} in #{element_id}",
    )


def sign_in(driver: Any, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url + "/")
    form = WebDriverWait(driver, 20).until(ec.visibility_of_element_located((By.ID, "login")))
    form.find_element(By.NAME, "username").send_keys("alice")
    form.find_element(By.NAME, "password").send_keys("alice-password-1")
    form.find_element(By.TAG_NAME, "button").click()
    wait_text(driver, "summary", "message(s)")


def drive_settings(url: str, pool: Any, check: Check, alice_id: int, shot: Path) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    effective = lambda: check(lambda: users.settings_report(pool, alice_id))  # noqa: E731
    driver = chromium()
    out: dict[str, Any] = {}
    try:
        sign_in(driver, url)
        driver.find_element(By.ID, "settings-link").click()
        wait_text(driver, "own", "ring_timeout_seconds")
        row = driver.find_element(By.CSS_SELECTOR, "tr[data-key=ring_timeout_seconds]")
        out["default_cell"] = row.find_element(By.CLASS_NAME, "default").text
        out["listed"] = [
            r.get_attribute("data-key") for r in driver.find_elements(By.CSS_SELECTOR, "#own tr")
        ]
        out["admin_set"] = [
            r.get_attribute("data-key")
            for r in driver.find_elements(By.CSS_SELECTOR, "#admin-set tr")
        ]
        field = row.find_element(By.NAME, "ring_timeout_seconds")
        field.clear()
        field.send_keys("400")
        row.find_element(By.CLASS_NAME, "save").click()
        wait_text(driver, "error", "0 to 300")
        out["after_bad"] = effective()["ring_timeout_seconds"].source
        row = driver.find_element(By.CSS_SELECTOR, "tr[data-key=ring_timeout_seconds]")
        field = row.find_element(By.NAME, "ring_timeout_seconds")
        field.clear()
        field.send_keys("25")
        row.find_element(By.CLASS_NAME, "save").click()
        wait_text(driver, "status", "ring_timeout_seconds saved.")
        got = effective()["ring_timeout_seconds"]
        out["after_save"] = (got.value, got.source)
        row = driver.find_element(By.CSS_SELECTOR, "tr[data-key=ring_timeout_seconds]")
        out["badge"] = row.find_element(By.CLASS_NAME, "source").text
        tz = driver.find_element(By.CSS_SELECTOR, "tr[data-key=time_zone]")
        field = tz.find_element(By.NAME, "time_zone")
        field.clear()
        field.send_keys("Europe/Berlin")
        tz.find_element(By.CLASS_NAME, "save").click()
        wait_text(driver, "status", "time_zone saved.")
        driver.save_screenshot(str(shot))
        row = driver.find_element(By.CSS_SELECTOR, "tr[data-key=ring_timeout_seconds]")
        row.find_element(By.CLASS_NAME, "reset").click()
        wait_text(driver, "status", "ring_timeout_seconds is the default again.")
        report = effective()
        out["after_reset"] = (
            report["ring_timeout_seconds"].value,
            report["ring_timeout_seconds"].source,
        )
        out["time_zone"] = report["time_zone"].value
        return out
    finally:
        driver.quit()


async def test_settings_page(served, tmp_path: Path) -> None:
    shot = tmp_path / "settings.png"
    out = await asyncio.wait_for(
        asyncio.to_thread(
            drive_settings, served["url"], served["pool"], served["check"], served["alice"].id, shot
        ),
        120,
    )
    assert out["listed"] == list(settings.USER_SETTABLE)  # every overridable setting
    assert set(out["admin_set"]) == set(settings.SETTINGS) - set(settings.USER_SETTABLE)
    assert "10" in out["default_cell"] and "domain" in out["default_cell"]
    assert out["after_bad"] == "domain"  # refused, nothing stored
    assert out["after_save"] == (25, "user") and out["badge"] == "yours"
    assert out["after_reset"] == (10, "domain") and out["time_zone"] == "Europe/Berlin"
    assert shot.stat().st_size > 10_000


def drive_greetings(
    url: str, pool: Any, check: Check, alice_id: int, wav: Path, shot: Path
) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    driver = chromium(FAKE_MICROPHONE)
    out: dict[str, Any] = {}
    try:
        sign_in(driver, url)
        driver.find_element(By.ID, "greetings-link").click()
        wait_text(driver, "rows", "Unavailable")
        # upload a file for "unavailable"
        row = driver.find_element(By.CSS_SELECTOR, "tr[data-kind=unavailable]")
        row.find_element(By.CLASS_NAME, "file").send_keys(str(wav))
        wait_text(driver, "status", "Unavailable greeting stored.")
        wait_text(driver, "rows", "1.5 s")
        out["played_s"] = driver.execute_async_script(
            """const done = arguments[arguments.length - 1];
               const audio = document.querySelector('tr[data-kind=unavailable] audio');
               if (audio.readyState >= 1) { done(audio.duration); return; }
               audio.addEventListener('loadedmetadata', () => done(audio.duration));
               audio.addEventListener('error', () => done(-1)); audio.load();"""
        )
        # record "busy" in the browser (Chromium's fake microphone), about 1.5 s
        row = driver.find_element(By.CSS_SELECTOR, "tr[data-kind=busy]")
        row.find_element(By.CLASS_NAME, "record").click()
        time.sleep(0.3)
        out["recording_label"] = row.find_element(By.CLASS_NAME, "record").text
        time.sleep(1.5)
        row.find_element(By.CLASS_NAME, "record").click()
        wait_text(driver, "status", "Busy greeting recorded.", limit=30)
        busy = check(lambda: greetings.get(pool, alice_id, "busy"))
        out["busy_ms"] = None if busy is None else busy.duration_ms
        # which greeting callers hear
        driver.find_element(By.CSS_SELECTOR, "#mode input[value=system]").click()
        wait_text(driver, "status", "Callers hear the system greeting.")
        report = check(lambda: users.settings_report(pool, alice_id))
        out["mode"] = report["greeting_mode"].value
        driver.save_screenshot(str(shot))
        row = driver.find_element(By.CSS_SELECTOR, "tr[data-kind=busy]")
        row.find_element(By.CLASS_NAME, "delete").click()
        wait_text(driver, "status", "Busy greeting deleted.")
        out["busy_after_delete"] = check(lambda: greetings.get(pool, alice_id, "busy"))
        out["kinds_left"] = [
            g.kind.value for g in check(lambda: greetings.list_for_user(pool, alice_id))
        ]
        return out
    finally:
        driver.quit()


async def test_greetings_page(served, tmp_path: Path) -> None:
    wav = tmp_path / "hello.wav"
    wav.write_bytes(tone_wav(1.5))
    shot = tmp_path / "greetings.png"
    out = await asyncio.wait_for(
        asyncio.to_thread(
            drive_greetings,
            served["url"],
            served["pool"],
            served["check"],
            served["alice"].id,
            wav,
            shot,
        ),
        150,
    )
    assert abs(float(out["played_s"]) - 1.5) < 0.05  # normalised WAV, played by the browser
    assert out["recording_label"] == "Stop"
    assert out["busy_ms"] is not None and 1000 <= out["busy_ms"] <= 3000, out["busy_ms"]
    assert out["mode"] == "system"
    assert out["busy_after_delete"] is None and out["kinds_left"] == ["unavailable"]
    assert shot.stat().st_size > 10_000


def drive_admin(url: str, pool: Any, check: Check, shot: Path) -> dict[str, Any]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = chromium()
    out: dict[str, Any] = {}
    try:
        driver.get(url + "/admin")
        form = WebDriverWait(driver, 20).until(ec.visibility_of_element_located((By.ID, "login")))
        form.find_element(By.NAME, "username").send_keys("root")
        form.find_element(By.NAME, "password").send_keys("wrong")
        form.find_element(By.TAG_NAME, "button").click()
        wait_text(driver, "error", "wrong administrator name or password")
        form.find_element(By.NAME, "password").clear()
        form.find_element(By.NAME, "password").send_keys("admin-password-1")
        form.find_element(By.TAG_NAME, "button").click()
        wait_text(driver, "domains", "example.com")
        wait_text(driver, "users", "alice@example.com")
        wait_text(driver, "quotas", "alice@example.com")
        create = driver.find_element(By.ID, "domain-create")
        create.find_element(By.NAME, "name").send_keys("voice.test")
        create.find_element(By.NAME, "ring_timeout_seconds").send_keys("5")
        create.find_element(By.TAG_NAME, "button").click()
        wait_text(driver, "status", "domain voice.test created.")
        out["voice"] = check(lambda: domains.get_by_name(pool, "voice.test"))
        WebDriverWait(driver, 10).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#setting-choice option")) > 5
        )
        out["setting_choices"] = [
            o.get_attribute("value")
            for o in driver.find_elements(By.CSS_SELECTOR, "#setting-choice option")
        ]
        setter = driver.find_element(By.ID, "domain-set")
        Select(setter.find_element(By.NAME, "domain")).select_by_value("example.com")
        Select(setter.find_element(By.NAME, "key")).select_by_value("mail_from")
        setter.find_element(By.NAME, "value").send_keys("Voicemail <vm@example.com>")
        setter.find_element(By.TAG_NAME, "button").click()
        wait_text(driver, "status", "example.com: mail_from set.")
        wait_text(driver, "domains", "Voicemail <vm@example.com>")
        row = driver.find_element(By.CSS_SELECTOR, "tr[data-address='alice@example.com']")
        row.find_element(By.CLASS_NAME, "toggle").click()
        wait_text(driver, "status", "alice@example.com disabled.")
        out["alice"] = check(lambda: users.get_by_address(pool, "alice", "example.com"))
        wait_text(driver, "users", "disabled")
        driver.save_screenshot(str(shot))
        out["example"] = check(lambda: domains.get_by_name(pool, "example.com"))
        return out
    finally:
        driver.quit()


async def test_admin_pages(served, tmp_path: Path) -> None:
    shot = tmp_path / "admin.png"
    out = await asyncio.wait_for(
        asyncio.to_thread(drive_admin, served["url"], served["pool"], served["check"], shot), 120
    )
    assert out["voice"] is not None and out["voice"].ring_timeout_seconds == 5
    assert out["example"].mail_from == "Voicemail <vm@example.com>"
    assert out["alice"].disabled
    assert set(out["setting_choices"]) == set(settings.DOMAIN_COLUMNS)
    assert shot.stat().st_size > 10_000


def test_the_admin_model_has_every_setting() -> None:
    assert set(AdminSettings.model_fields) == set(settings.DOMAIN_COLUMNS)
