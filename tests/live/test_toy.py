"""The toy pipeline of the live-mode tests (tests/live_cases.py) checked on its own: incremental and
chunk-invariant."""
from __future__ import annotations

import numpy as np
from hypothesis import given, strategies as st

from timetag.chunk import OVERFLOW_BEGIN, OVERFLOW_END, split
from timetag.records import FLAG_LOST_DATA
from live_cases import ToyPipeline, make_stream, run_toy, toy_setup

def test_toy_emits_incrementally_and_counts_windows():
    setup = toy_setup()
    whole = make_stream(20, seed=3)
    p = ToyPipeline(setup.lab("alice"))
    first, _ = p.process(whole)
    assert 0 < len(first) < 20  # the last rounds wait for data past their windows
    rest, _ = p.flush()
    r = np.concatenate([first, rest])
    assert np.array_equal(r["index"], np.arange(20))
    # independent recount of one round's fluorescence window
    trig = int(r["trigger_time"][5])
    sel = (whole.time >= trig + 5_000_000) & (whole.time < trig + 25_000_000) & np.isin(whole.channel, [2, 3])
    assert r["count"][5] == sel.sum()


@given(st.lists(st.integers(0, 400), max_size=6))
def test_toy_is_chunk_invariant(cuts):
    setup = toy_setup()
    whole = make_stream(8, seed=1, lost=[(60_000_000, OVERFLOW_BEGIN), (140_000_000, OVERFLOW_END)])
    ref = run_toy([whole], setup.lab("alice"))
    got = run_toy(split(whole, sorted(min(x, len(whole)) for x in cuts)), setup.lab("alice"))
    assert np.array_equal(ref, got)
    assert (ref["flags"] & FLAG_LOST_DATA).any()
