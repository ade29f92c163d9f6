"""CountHistogram: counts per round binned, the overflow in the last bin; any split gives the same histogram."""
from __future__ import annotations

import numpy as np
import pytest

from timetag.records import empty_heralds, empty_rounds
from timetag.stream import Collect, CountHistogram, RoundsEvent, run_stream


def _rounds(counts):
    r = empty_rounds(len(counts))
    r["count"] = counts
    return RoundsEvent(r, empty_heralds())


def test_bins_and_overflow():
    sink = Collect()
    h = CountHistogram(3, sink)
    events = [_rounds([0, 1, 1, 7]), _rounds([]), _rounds([3, 2])]
    run_stream(events, h)
    assert h.histogram.tolist() == [1, 2, 1, 2]
    assert sink.events == events


def test_any_split():
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 30, 500)
    whole = CountHistogram(20)
    run_stream([_rounds(counts)], whole)
    parts = CountHistogram(20)
    run_stream([_rounds(c) for c in np.array_split(counts, 7)], parts)
    assert parts.histogram.tolist() == whole.histogram.tolist() and whole.histogram.sum() == 500


def test_refuses_negative_binning():
    with pytest.raises(ValueError):
        CountHistogram(-1)
