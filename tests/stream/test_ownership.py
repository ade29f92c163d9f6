"""KeepOwned: only owned rounds (by trigger time) and heralds (by time), renumbered from 0 across events."""
from __future__ import annotations

import numpy as np

from timetag.records import empty_heralds, empty_rounds
from timetag.stream import Collect, KeepOwned, RoundsEvent, run_stream


def _event(times, final=False):
    r = empty_rounds(len(times))
    r["trigger_time"] = times
    r["index"] = 100 + np.arange(len(times))
    h = empty_heralds(len(times))
    h["time"] = times
    return RoundsEvent(r, h, final)


def test_keeps_the_owned_interval_and_renumbers():
    sink = Collect()
    keep = KeepOwned(lambda t: (t >= 10) & (t < 20), sink)
    run_stream([_event([5, 10, 15]), _event([19, 20]), _event([], final=True)], keep)
    got = sink.of_type(RoundsEvent)
    assert [e.rounds["trigger_time"].tolist() for e in got] == [[10, 15], [19], []]
    assert [e.rounds["index"].tolist() for e in got] == [[0, 1], [2], []]
    assert [e.heralds["time"].tolist() for e in got] == [[10, 15], [19], []]
    assert got[-1].final and keep.kept == 3
