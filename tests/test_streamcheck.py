"""cext/streamcheck: the small stream kernels shared by readers and the live status."""
from __future__ import annotations

import numpy as np
from hypothesis import given, strategies as st

from timetag._cext.streamcheck import count_channels, first_backward_step
from timetag.live.status import LabStats
from timetag.chunk import TagChunk


@given(chans=st.lists(st.integers(-(2**31), 2**31 - 1) | st.integers(-6, 6), max_size=60),
       size=st.integers(0, 13), offset=st.integers(-3, 8))
def test_count_channels_matches_numpy(chans, size, offset):
    ch = np.array(chans, np.int32)
    counts = np.arange(size, dtype=np.int64)  # counts add to what is there
    before = counts.copy()
    outside = count_channels(ch, counts, offset)
    idx = ch.astype(np.int64) + offset
    inside = (idx >= 0) & (idx < size)
    assert outside == int(np.count_nonzero(~inside))
    assert counts.tolist() == (before + np.bincount(idx[inside], minlength=size)[:size]).tolist()


def test_live_status_counts_every_channel_it_can_show():
    t = np.arange(10, dtype=np.int64)
    c = np.array([1, 1, 2, -3, 5000, 1, 2, 2, 2, 7], np.int32)  # 5000: beyond the table, in `tags` only
    stats = LabStats("alice", channels=(1, 2))
    stats.add_chunk(TagChunk(t, c))
    snap = stats.snapshot()
    assert snap["tags"] == 10
    assert snap["channel_totals"] == {"-3": 1, "1": 3, "2": 4, "7": 1}


@given(times=st.lists(st.integers(-50, 50), max_size=30), tol=st.integers(0, 3))
def test_first_backward_step_matches_a_loop(times, tol):
    t = np.array(times, np.int64)
    want, last = -1, -(2**63)
    for i, x in enumerate(times):
        if x < last - tol:
            want = i
            break
        last = max(last, x)
    assert first_backward_step(t, tol) == want
