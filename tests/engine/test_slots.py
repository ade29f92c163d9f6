"""Slot rows (engine.slots): the vector and scalar split, lane tables, the key range, compacting and releasing rows."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from engine_cases import assert_same, A_H, A_V, B_H, B_V, READY, S0, S1, S2, SYNC, alice, alice_dict, random_stream

from timetag.chunk import TagChunk, split
from timetag.engine import HeraldStage
from timetag.setupfile import setup_from_dict



@pytest.mark.parametrize("ready, settings", [(6, [7, 8, 9, 10]), (40, [7, 8, 9, 10]), (300, [7, 70, 9, 10])])
def test_vector_and_scalar_split_agree_with_the_reference(ready, settings, split_kind):
    """The vector split gives 7 slots a lane (sync, BSM, fluorescence first) and counts the
    others behind a branch; its slot codes come from a byte shuffle for channel spans up to
    16 and from a table beyond.  Every combination against the reference, chunked."""
    d = alice_dict(ref="previous", trigger="both")
    d["ready_channel"], d["setting_channels"] = ready, settings
    d["delays_ps"].update({str(c): 0 for c in (ready, *settings) if str(c) not in d["delays_ps"]})
    lab = setup_from_dict({"labs": {"alice": d}}).lab("alice")
    chans = (1, 2, 3, 4, 5, ready, *settings, 11)
    n_rounds = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        s = random_stream(rng, 3000, channels=chans, n_lost=2)
        other = np.flatnonzero(s.channel == 11)  # some beyond both ends of the channel table
        s.channel[other[::3]], s.channel[other[1::3]] = -3, 5000
        r, _, pl = assert_same(lab, s, list(split(s, sorted(rng.integers(0, 3000, 7)))))
        n_rounds += len(r)
    assert n_rounds > 20
    assert pl.summary["tags_other_channels"] > 0


def test_split_tables_give_lanes_to_the_busy_roles():
    from timetag.engine.params import compile_lab
    from timetag.engine.slots import SlotRows

    p = compile_lab(alice())
    rows = SlotRows(p)
    lane_chans = p.slot_channel[rows.lane_slot].tolist()
    assert lane_chans == [SYNC, A_H, A_V, B_H, B_V, READY, S0]
    assert sorted(p.slot_channel[rows.scal_slot].tolist()) == [S1, S2, 10]
    # every channel's code leads back to its slot; channels outside the lab to the junk code
    for k, s in enumerate(rows.slot_of.tolist()):
        code = int(rows.split_code[k])
        back = rows.lane_slot[code] if code < 7 else (p.nslots if code == 7 else rows.scal_slot[code - 8])
        assert back == s


@pytest.mark.parametrize("offset", [2**60, -(2**60)])
def test_times_far_from_zero_sort_like_near_zero(offset):
    """Times far from zero (both signs, within the documented range) give the same heralds and
    rounds as near zero, shifted (agreement with the reference there): no sentinel or key overflows."""
    lab = alice(ref="previous", trigger="herald")
    s = random_stream(np.random.default_rng(3), 400, n_lost=2)
    shifted = TagChunk(s.time + offset, s.channel, s.lost.copy())
    shifted.lost["time"] += offset
    r1, h1, _ = assert_same(lab, shifted, list(split(shifted, [50, 51, 300])))
    r0, h0, _ = assert_same(lab, s, [s])
    assert len(h1) == len(h0) > 0 and np.array_equal(h1["time"] - offset, h0["time"])


def test_times_beyond_the_key_range_are_refused():
    from timetag.errors import DataValidationError

    hs = HeraldStage(alice())
    with pytest.raises(DataValidationError, match="tag times must stay inside"):
        hs.process(TagChunk(np.array([0, 2**62], np.int64), np.array([SYNC, SYNC], np.int32)))


@given(data=st.data(), nrows=st.integers(2, 6), cap=st.integers(1, 12), grow=st.booleans())
def test_compact_rows_keeps_every_unread_tag(data, nrows, cap, grow):
    """``compact_rows`` (the slot rows' make_room) against the numpy formulation it replaced."""
    from timetag._cext import engine_slots as k

    rows = np.arange(nrows * cap, dtype=np.int64).reshape(nrows, cap)
    hi = np.array([data.draw(st.integers(0, cap)) for _ in range(nrows)], np.int64)
    uses = np.array([[data.draw(st.booleans()) for _ in range(nrows)] for _ in range(3)])
    uses[:, -1] = False  # the junk row has no reader
    ptr = np.array([[data.draw(st.integers(0, int(h))) for h in hi] for _ in range(3)], np.int64)
    lo = np.where(uses, ptr, hi).min(axis=0)
    lo[-1] = 0
    want_hi = hi - lo
    want_hi[-1] = 0
    want_rows = [rows[s, lo[s]:hi[s]].copy() for s in range(nrows - 1)]
    want_ptr = np.maximum(ptr - lo, 0)
    assert k.longest_unread(hi, ptr, uses.view(np.uint8)) == int(want_hi[:-1].max(initial=0))
    dst = np.full((nrows, cap + 5), -1, np.int64) if grow else rows
    k.compact_rows(rows, dst, hi, ptr, uses.view(np.uint8))
    assert hi.tolist() == want_hi.tolist()
    for s in range(nrows - 1):
        assert dst[s, :hi[s]].tolist() == want_rows[s].tolist()
        assert ptr[:, s].tolist() == want_ptr[:, s].tolist()


@given(row=st.lists(st.integers(-50, 50), max_size=12), start=st.integers(0, 12), keep=st.integers(-60, 60),
       delay=st.integers(-5, 5))
def test_release_before_is_a_left_search_on_corrected_times(row, start, keep, delay):
    from timetag._cext import engine_slots as k

    r = np.sort(np.array(row, np.int64))
    rows = np.zeros((2, r.size + 8), np.int64)
    rows[0, :r.size] = r
    hi = np.array([r.size, 0], np.int64)
    start = min(start, r.size)
    ptr = np.array([start, 0], np.int64)
    k.release_before(rows, hi, ptr, np.array([delay, 0], np.int64), np.array([0], np.int64), keep)
    assert ptr[0] == start + int(np.searchsorted(r[start:], keep + delay, side="left"))

