"""Debian's chromium, headless, driven by selenium through Debian's chromedriver (no download).

`browser()` starts a fresh profile; `requests_made()` and `console_errors()` read chromium's own
logs, so a test can check that no request left the site and that the console stayed clean.
Screenshots go to build/test-artifacts/hub/ (or $EBPM_TEST_ARTIFACTS) for people to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

__all__ = ["browser", "requests_made", "network_log", "console_errors", "screenshot",
           "require_browser"]

CHROMIUM = "chromium"
CHROMEDRIVER = "chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage", "--disable-features=Translate,MediaRouter,OptimizationHints",
         "--no-default-browser-check", "--disable-extensions")


def artifacts_dir() -> Path:
    root = os.environ.get("EBPM_TEST_ARTIFACTS")
    path = Path(root) if root else Path(__file__).resolve().parents[2] / "build" / \
        "test-artifacts" / "hub"
    path.mkdir(parents=True, exist_ok=True)
    return path


def require_browser() -> tuple[str, str]:
    """The chromium and chromedriver binaries; a feature-probe skip naming the missing one
    (never in CI, where a missing browser fails the run)."""
    found = {name: shutil.which(name) for name in (CHROMIUM, CHROMEDRIVER)}
    missing = [name for name, path in found.items() if path is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (python)")
    if missing:
        message = f"feature probe: {', '.join(missing)} not installed (scripts/bootstrap.sh)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return str(found[CHROMIUM]), str(found[CHROMEDRIVER])


@contextmanager
def browser(*, width: int = 1280, height: int = 900, javascript: bool = True) -> Iterator[Any]:
    """A headless chromium with a fresh profile, quit (and its profile removed) at the end."""
    chromium, chromedriver = require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ebpm-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def network_log(driver: Any) -> list[tuple[str, str]]:
    """(URL, blocked reason or "") of every request our pages started since the last call
    (chromium's performance log; its own chrome:// pages, such as the first new tab, left out).
    A request the Content-Security-Policy refused shows here with reason "csp"."""
    started: dict[str, str] = {}
    blocked: dict[str, str] = {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent":
            if str(params.get("documentURL", "")).startswith(("chrome://", "chrome-untrusted://")):
                continue
            started[params["requestId"]] = params["request"]["url"]
        elif message.get("method") == "Network.loadingFailed" and params.get("blockedReason"):
            blocked[params["requestId"]] = str(params["blockedReason"])
    return [(url, blocked.get(rid, "")) for rid, url in started.items()]


def requests_made(driver: Any) -> list[str]:
    """Every URL our pages asked for since the last call (see network_log)."""
    return [url for url, _ in network_log(driver)]


def console_errors(driver: Any) -> list[str]:
    """Console messages of level SEVERE since the last call (CSP violations, JS errors)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver: Any, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG of the page (the whole page's height when `full_page`)."""
    path = artifacts_dir() / f"{name}.png"
    if full_page:
        size = driver.get_window_size()
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(size["width"], min(max(height, 400), 6000))
        driver.save_screenshot(str(path))
        driver.set_window_size(size["width"], size["height"])
    else:
        driver.save_screenshot(str(path))
    return path
