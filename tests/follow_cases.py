"""Helpers of the follow-mode tests: dump records appended while a follower reads."""
from __future__ import annotations

import threading
import time
import warnings
import numpy as np
from timetag.chunk import concat
from timetag.errors import DataValidationError, FormatError, TimetagWarning
from timetag.formats.dump import RECORD_DTYPE


POLL = 0.01


HOUR_PS = 3600 * 10**12


def _rec(times, types=None) -> bytes:
    rec = np.zeros(len(times), RECORD_DTYPE)
    rec["time"] = times
    rec["channel"] = 1
    if types is not None:
        rec["type"] = types
    return rec.tobytes()


def _append(path, times, types=None):
    with open(path, "ab") as fh:
        fh.write(_rec(times, types))


def _later(*steps) -> threading.Thread:
    """A writer in a background thread: each step is (seconds to wait, action)."""
    def run():
        for delay, action in steps:
            time.sleep(delay)
            action()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def _drain(src, until=lambda batches: False, timeout: float = 2.0):
    """(batches, error or None): iterate until ``until(batches)``, an error, the source's end or the timeout."""
    batches = []
    deadline = time.monotonic() + timeout
    try:
        for b in src:
            batches.append(b)
            if until(batches) or time.monotonic() > deadline:
                break
    except (DataValidationError, FormatError) as exc:
        return batches, exc
    return batches, None


def _tags(batches) -> list[int]:
    return concat(b.chunks["alice"] for b in batches).time.tolist()


def _n_tags(n):
    return lambda batches: sum(b.n_tags for b in batches) >= n


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TimetagWarning)
        return fn(*args, **kw)

