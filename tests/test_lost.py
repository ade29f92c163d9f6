"""LostLog: the one lost-data rule (overflow intervals, stray ends and missed/error events as points)."""
from __future__ import annotations

import numpy as np

from timetag.chunk import ERROR, LOST_DTYPE, MISSED, OVERFLOW_BEGIN, OVERFLOW_END
from timetag.lost import LostLog, LostSpan


def _events(*evs):
    a = np.zeros(len(evs), LOST_DTYPE)
    for i, e in enumerate(evs):
        a[i]["time"], a[i]["kind"] = e[0], e[1]
        if len(e) > 2:
            a[i]["channel"], a[i]["count"] = e[2], e[3]
    return a


def test_intervals_points_and_counts():
    log = LostLog()
    spans = log.add(_events((5, OVERFLOW_END), (10, OVERFLOW_BEGIN), (12, OVERFLOW_BEGIN), (20, OVERFLOW_END),
                            (30, MISSED, 3, 7), (40, ERROR)))
    assert spans == [LostSpan("overflow", 5, 5), LostSpan("overflow", 10, 20), LostSpan("missed", 30, 30, 3, 7),
                     LostSpan("error", 40, 40)]
    assert log.intervals == [(10, 20)] and log.points == [5, 30, 40]
    assert log.counts == {"overflow_begin": 2, "overflow_end": 2, "missed": 1, "error": 1, "missed_tags": 7}


def test_an_overflow_open_across_chunks():
    log = LostLog()
    assert log.add(_events((10, OVERFLOW_BEGIN))) == []
    begins, ends, points = log.arrays()
    assert begins.tolist() == [10] and ends.tolist() == [1 << 62] and points.size == 0
    assert log.open_span == LostSpan("overflow", 10, None)
    assert log.add(_events((50, OVERFLOW_END))) == [LostSpan("overflow", 10, 50)]
    assert log.open_span is None


def test_forget_before():
    log = LostLog()
    log.add(_events((1, OVERFLOW_BEGIN), (5, OVERFLOW_END), (6, ERROR), (10, OVERFLOW_BEGIN), (20, OVERFLOW_END)))
    log.forget_before(6)
    assert log.intervals == [(10, 20)] and log.points == [6]
    log.forget_before(21)
    assert log.arrays()[0].size == 0 and log.points == []


def test_nothing_lost():
    assert all(a.size == 0 for a in LostLog().arrays())
