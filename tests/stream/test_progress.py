"""ReportProgress: records (tags + lost events) and rounds done, told after every chunk; everything forwarded."""
from __future__ import annotations

import numpy as np

from timetag.chunk import LOST_DTYPE, OVERFLOW_BEGIN
from timetag.records import empty_heralds, empty_rounds
from timetag.stream import Collect, ReportProgress, RoundsEvent, run_stream

from stream_cases import chunk


def test_counts_records_and_rounds():
    lost = np.zeros(1, LOST_DTYPE)
    lost["kind"] = OVERFLOW_BEGIN
    calls = []
    sink = Collect()
    events = [RoundsEvent(empty_rounds(2), empty_heralds()), chunk([1, 2], [1, 1], lost=lost),
              RoundsEvent(empty_rounds(1), empty_heralds()), chunk([3], [1])]
    run_stream(events, ReportProgress(lambda done, rounds: calls.append((done, rounds)), sink))
    assert calls == [(3, 2), (4, 3)]
    assert sink.events == events


def test_no_callback():
    p = ReportProgress(None)
    run_stream([chunk([1], [1])], p)
    assert p.records == 1
