"""A real browser for the dashboard's page tests: the distribution's Chromium driven through its chromedriver.

Without a browser (or selenium, or plotly) the page tests skip with the reason -- except in CI (``CI`` set) or with
``TIMETAG_REQUIRE_BROWSER=1``, where they fail: CI installs Chromium, and a page test that silently skipped there
would prove nothing.  ``TIMETAG_SAVE_SCREENSHOTS=DIR`` copies the screenshots the tests take into DIR (the docs'
images are made that way: ``TIMETAG_SAVE_SCREENSHOTS=docs/img``).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

# the helper module beside this file (tests are imported by path: this folder is not on sys.path otherwise)
sys.path.insert(0, str(Path(__file__).resolve().parent))

CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1500,2900", "--hide-scrollbars")


def browser_required() -> bool:
    ci = os.environ.get("CI", "").strip().lower()
    return ci not in ("", "0", "false", "no") or os.environ.get("TIMETAG_REQUIRE_BROWSER") == "1"


def missing(reason: str):
    if browser_required():
        pytest.fail(f"{reason} (required here: CI or TIMETAG_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


def _find(env: str, names: tuple[str, ...]) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    for n in names:
        path = shutil.which(n) or (f"/usr/bin/{n}" if Path(f"/usr/bin/{n}").is_file() else None)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def browser():
    try:
        import plotly  # noqa: F401  the page's plots come from it
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        missing(f"no {exc.name}: pip install 'timetag[web,test]'")
    chrome = _find("TIMETAG_CHROMIUM", ("chromium", "chromium-browser"))
    driver_path = _find("TIMETAG_CHROMEDRIVER", ("chromedriver",))
    if chrome is None or driver_path is None:
        missing("no Chromium/chromedriver found (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome  # with both paths given, selenium never tries to download a browser
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="timetag-chromium-")
    opts.add_argument(f"--user-data-dir={profile}")
    try:
        driver = webdriver.Chrome(options=opts, service=Service(driver_path))
    except Exception as exc:  # a browser that does not start is a missing browser, said with its reason
        missing(f"Chromium did not start: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
