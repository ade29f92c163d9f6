"""Helpers of the dashboard's page tests: the screenshot check, a ``timetag`` subprocess serving a page, waits."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = ["save_screenshot", "Served", "wait_for"]


def save_screenshot(driver, path: Path, name: str) -> Path:
    """Screenshot to ``path`` (checked to be a PNG), copied into $TIMETAG_SAVE_SCREENSHOTS/name when set."""
    assert driver.save_screenshot(str(path)), "the browser took no screenshot"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, f"{path}: not a plausible PNG ({len(data)} B)"
    target = os.environ.get("TIMETAG_SAVE_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / name)
    return path


class Served:
    """A ``timetag ...`` subprocess that prints ``dashboard: URL`` on stderr; stopped with SIGINT."""

    def __init__(self, argv: list[str], timeout: float = 90.0):
        self.proc = subprocess.Popen([sys.executable, "-m", "timetag", *argv], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.err: list[str] = []
        self.out: list[str] = []
        self._url = threading.Event()
        self.url = ""
        threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True).start()
        if not self._url.wait(timeout):
            self.stop()
            raise AssertionError(f"no dashboard URL within {timeout} s; stderr: {''.join(self.err)[-2000:]}")

    def _read(self, stream, lines):
        for line in stream:
            lines.append(line)
            m = re.match(r"dashboard: (http://\S+)", line)
            if m:
                self.url = m.group(1)
                self._url.set()

    def api(self, route: str) -> str:
        base, _, query = self.url.partition("?")
        return base + route + ("?" + query if query else "")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def wait_for(fn, timeout: float, what: str, interval: float = 0.25):
    """fn() until it returns a true value (which is returned), or fail saying ``what``."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = fn()
        except Exception as exc:  # the page is being redrawn: elements come and go
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
