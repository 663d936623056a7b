"""Headless Chromium (Debian's chromium and chromium-driver) driven by Selenium, for the tests
that use the web inbox as a user does."""

from __future__ import annotations

import shutil
from typing import Any

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

# No network beyond loopback here: without the background-networking flags Chromium keeps
# trying to reach its update and sync services.
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required", "--window-size=1100,800",
)  # fmt: skip


#: A microphone for ``getUserMedia`` without a device or a permission prompt: Chromium's fake
#: capture device (a beeping tone), for pages that record with MediaRecorder.
FAKE_MICROPHONE = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")


def chromium(extra_flags: tuple[str, ...] = ()) -> Any:
    """A new headless Chromium session (``driver.quit()`` it); ``extra_flags`` such as
    ``FAKE_MICROPHONE`` are added to the usual ones."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM and CHROMEDRIVER, "deploy/local/install installs chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, *extra_flags):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
