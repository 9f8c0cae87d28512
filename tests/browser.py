"""Headless Chromium through selenium for the site's browser tests and the README's screenshots.

Only the Debian packages are used (``/usr/bin/chromium``, ``/usr/bin/chromedriver``): selenium-manager never runs,
so nothing is downloaded, and every Chromium feature that would reach the network is off.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is missing (apt-get install -y chromium chromium-driver)"
    return None


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator:
    """A fresh headless Chromium (its own profile) that records the console's messages."""
    from selenium import webdriver

    with tempfile.TemporaryDirectory(prefix="robustad-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={width},{height}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))
        try:
            yield driver
        finally:
            driver.quit()
