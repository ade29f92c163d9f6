"""The read-out queue a herald fills (kernel.queue_readout) against a plain numpy merge: the tags not yet
consumed, then the round's ready / setting tags, then its fluorescence, stably sorted by time."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from timetag.simulator import kernel as K


def _reference(old_t, old_ch, old_src, ri, head_t, head_ch, head_src, fluo_t, fluo_ch, n_atom):
    src_f = np.full(fluo_t.size, K.SRC_FLUO_STRAY, np.int8)
    src_f[:n_atom] = K.SRC_FLUO_ATOM
    t = np.concatenate([old_t[ri:], head_t, fluo_t])
    ch = np.concatenate([old_ch[ri:], head_ch, fluo_ch])
    src = np.concatenate([old_src[ri:], head_src, src_f])
    o = np.argsort(t, kind="stable")
    return t[o], ch[o], src[o]


times = st.lists(st.integers(0, 40), max_size=30)  # a narrow range: many equal times


@settings(max_examples=300, deadline=None)
@given(old=times, head=times, fluo=times, data=st.data())
def test_queue_readout_is_the_stable_merge(old, head, fluo, data):
    old_t = np.sort(np.array(old, np.int64))
    ri = data.draw(st.integers(0, old_t.size))
    old_ch = np.arange(old_t.size, dtype=np.int32)
    old_src = np.full(old_t.size, K.SRC_SETTING, np.int8)
    head_t = np.array(head, np.int64)
    head_ch = 100 + np.arange(head_t.size, dtype=np.int32)
    head_src = np.full(head_t.size, K.SRC_READY, np.int8)
    fluo_t = np.array(fluo, np.int64)
    fluo_ch = 200 + np.arange(fluo_t.size, dtype=np.int32)
    n_atom = data.draw(st.integers(0, fluo_t.size))
    got = K.queue_readout(old_t, old_ch, old_src, ri, head_t, head_ch, head_src, fluo_t, fluo_ch, n_atom,
                          K.SRC_FLUO_ATOM, K.SRC_FLUO_STRAY)
    want = _reference(old_t, old_ch, old_src, ri, head_t, head_ch, head_src, fluo_t, fluo_ch, n_atom)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
