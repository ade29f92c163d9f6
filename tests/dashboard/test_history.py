"""History: bounded, the whole run kept at halved resolution, the newest row always last."""
from __future__ import annotations

import math

import pytest

from timetag.dashboard.history import History


def test_short_history_keeps_every_row_in_order():
    h = History(8)
    for i in range(5):
        h.append({"t": i, "x": 2 * i})
    assert h.columns() == {"t": [0, 1, 2, 3, 4], "x": [0, 2, 4, 6, 8]}


def test_long_history_stays_bounded_and_spans_the_whole_run():
    h = History(16)
    for i in range(10_000):
        h.append({"t": i})
    t = h.columns()["t"]
    assert len(t) <= 16
    assert t[-1] == 9999  # the newest point is always drawn
    assert t[0] < 10_000 / 16 * 2  # and the start of the run is still on the plot
    assert t == sorted(t)
    steps = {b - a for a, b in zip(t[:-2], t[1:-1])}  # the newest point may stand off the even grid
    assert len(steps) == 1, f"kept rows are not evenly spaced: {t}"


def test_missing_and_non_finite_values_become_gaps():
    h = History(4)
    h.append({"a": 1.0})
    h.append({"a": math.nan, "b": 2})
    h.append({"a": math.inf})
    assert h.columns() == {"a": [1.0, None, None], "b": [None, 2, None]}


def test_empty_history_and_bad_size():
    assert History(4).columns() == {}
    with pytest.raises(ValueError, match="maxlen"):
        History(2)
