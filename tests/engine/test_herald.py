"""Herald stage: hand-made streams with hand-derived heralds, the arrival histogram, the sync rows."""
from __future__ import annotations

import numpy as np
import pytest

from engine_cases import (END, assert_same, psi_plus_round_tags, run, A_H, A_V, B_H, B_V, READY, SYNC, UNUSED, alice,
                          alice_dict, random_stream, stream)

from timetag.chunk import TagChunk, split
from timetag.engine import HeraldStage
from timetag.records import PATTERN_OTHER, PATTERN_PSI_MINUS, PATTERN_PSI_PLUS
from timetag.setupfile import setup_from_dict



def test_psi_plus_herald_and_its_round():
    rounds, heralds, pl = run(alice(), psi_plus_round_tags())
    assert heralds.tolist() == [(1030, 1000, PATTERN_PSI_PLUS, A_H, A_V, 20, 30, 2)]
    assert rounds.tolist() == [(0, 1130, 1030, PATTERN_PSI_PLUS, 2, 3, 1, 0)]
    s = pl.summary
    assert s["heralds"]["psi+"] == 1 and s["rounds"] == 1 and s["readies"] == 1 and s["clicks_accepted"] == 2
    # arrival histogram [-100, 100) in 7 ps bins: dt 20 -> bin 17 of A_H, dt 30 -> bin 18 of A_V
    arr = pl.histograms["arrival"]
    assert arr[0, 17] == 1 and arr[1, 18] == 1 and arr.sum() == 2  # the read-out clicks (dt >= 190) are out of range
    assert pl.histograms["fluorescence_counts"].tolist() == [0, 0, 0, 1, 0, 0]


@pytest.mark.parametrize("d1, d2, pattern", [
    (A_H, B_V, PATTERN_PSI_MINUS), (A_V, B_H, PATTERN_PSI_MINUS), (B_H, B_V, PATTERN_PSI_PLUS),
    (A_H, B_H, PATTERN_OTHER), (B_V, B_V, PATTERN_OTHER)])
def test_two_click_patterns(d1, d2, pattern):
    delays = {}
    tags = [(0, SYNC), (15, d1), (40, d2), END]
    _, heralds, _ = run(alice(delays=delays), tags)
    assert heralds["pattern"].tolist() == [pattern]
    assert heralds[["det1", "det2", "dt1", "dt2", "nclicks"]].tolist() == [(d1, d2, 15, 40, 2)]


def test_single_click_three_clicks_and_coincidence():
    lab = alice(delays={})
    # attempt 1: one click; attempt 2: three clicks; attempt 3: two clicks 34 ps apart (> 30)
    tags = [(0, SYNC), (20, A_H), (100, SYNC), (111, A_H), (120, A_V), (130, B_H),
            (200, SYNC), (211, A_H), (245, A_V), END]
    _, heralds, pl = run(lab, tags)
    assert heralds[["time", "pattern", "nclicks"]].tolist() == [(130, PATTERN_OTHER, 3), (245, PATTERN_OTHER, 2)]
    assert pl.summary["clicks_accepted"] == 6


def test_time_filter_rejects_clicks_outside_the_window_but_histograms_them():
    lab = alice(delays={})
    tags = [(0, SYNC), (5, A_H), (20, A_V), (50, B_H), (100, SYNC), END]  # dt 5 and 50 rejected
    _, heralds, pl = run(lab, tags)
    assert len(heralds) == 0
    assert pl.summary["clicks"] == 3 and pl.summary["clicks_accepted"] == 1
    assert pl.histograms["arrival"].sum() == 3


def test_sync_reference_next():
    lab = alice(ref="next")  # window [-50, -10) before the sync that follows the clicks
    tags = [(1003, A_H), (1008, A_V), (1040, SYNC), (1090, B_H), (1100, SYNC), END]
    _, heralds, _ = run(lab, tags)
    assert heralds.tolist() == [(1010, 1040, PATTERN_PSI_PLUS, A_H, A_V, -40, -30, 2)]


def test_sync_at_the_same_time_as_a_click_counts_for_both_references():
    # 'previous': the sync at 40 is "at or before" the B_H click at 40 -> dt 0 (bin (0 + 100) // 7 = 14)
    _, heralds, pl = run(alice(delays={}), [(0, SYNC), (12, A_H), (40, SYNC), (40, B_H), END])
    assert pl.histograms["arrival"][2].tolist().index(1) == 14 and len(heralds) == 0
    # 'next': the sync at 40 is "at or after" the B_H click at 40 -> dt 0 again, not -20 from the sync at 60
    _, heralds, pl = run(alice(ref="next", delays={}), [(0, A_H), (29, A_V), (40, SYNC), (40, B_H), (60, SYNC), END])
    assert pl.histograms["arrival"][2].tolist().index(1) == 14
    assert heralds.tolist() == [(29, 40, PATTERN_PSI_PLUS, A_H, A_V, -40, -11, 2)]


@pytest.mark.parametrize("span", [(-100, 100, 7), (-70_001, 70_000, 13), (-(2**30), 2**30 - 1, 1_000_003),
                                  (-70_001, 70_000, 1), (-(2**20), 2**20, 1024), (-145_250, 145_250, 500)])
@pytest.mark.parametrize("ref", ["previous", "next"])
def test_arrival_histogram_bins_by_table_and_by_reciprocal(span, ref):
    """Spans up to 64 k ps use a lookup table, longer ones the high word of a multiplication by a
    64-bit reciprocal (a bin of 1 ps: no multiplication; a power of two; the span and bin of lmu2022); all must
    bin every click like the reference's integer division."""
    lo, hi, width = span
    d = alice_dict(ref=ref)
    d["histograms"] = {"arrival_bin_ps": width, "arrival_range_ps": [lo, hi], "max_count": 5}
    lab = setup_from_dict({"labs": {"alice": d}}).lab("alice")
    hs = HeraldStage(lab)
    assert (hs._lut.size > 0) == (hi - lo <= 1 << 16)
    rng = np.random.default_rng(9)
    s = random_stream(rng, 2000, max_step=40, n_lost=0)
    # spread the clicks over the whole span: long gaps between some syncs
    t = s.time + np.cumsum(rng.integers(0, 2, s.time.size) * rng.integers(0, max(1, (hi - lo) // 50), s.time.size))
    wide = TagChunk(t, s.channel, s.lost)
    _, _, pl = assert_same(lab, wide, list(split(wide, [700, 1400])))
    assert pl.histograms["arrival"].sum() > 100


@pytest.mark.parametrize("ref", ["previous", "next"])
def test_attempts_kept_by_index_across_long_chunks(ref):
    """The kernels keep only the attempts a click may still update at the start of their buffer
    (dropping the others after each sub-block of 8192 tags), and give the one left open at a
    chunk's end back at its index: a chunk of two sub-blocks cut between the two clicks of an
    attempt ('previous', the attempt is carried to the next chunk) or between the clicks and their
    sync ('next')."""
    lab = alice(ref=ref, delays={}, trigger="herald")
    n = 3500
    t0 = 1000 + 100 * np.arange(n, dtype=np.int64)
    if ref == "previous":  # sync, then its clicks 20 and 25 ps later
        times, chans = np.stack([t0, t0 + 20, t0 + 25], 1), [SYNC, A_H, A_V]
    else:  # clicks 40 and 35 ps before their sync
        times, chans = np.stack([t0 - 40, t0 - 35, t0], 1), [A_H, A_V, SYNC]
    s = stream(list(zip(times.ravel().tolist(), chans * n)) + [(int(t0[-1]) + 1000, UNUSED)])
    cuts = [3 * 3000 + 2]  # the first chunk: two sub-blocks, ending in an attempt with one click ('previous')
    _, heralds, _ = assert_same(lab, s, list(split(s, cuts)))
    assert len(heralds) == n and set(heralds["pattern"].tolist()) == {PATTERN_PSI_PLUS}


def test_clicks_waiting_for_a_next_sync_stay_bounded():
    """'next': a click waits for the sync after it, but only while that sync could still put it
    inside the window or the histogram range; with a dead sync channel memory does not grow."""
    lab = alice(ref="next", delays={})
    hs = HeraldStage(lab)
    lower = min(lab.herald.window_start_ps, lab.histograms.arrival_range_ps[0])
    t = 0
    for _ in range(50):
        times = t + 7 * np.arange(2000, dtype=np.int64)
        t = int(times[-1]) + 7
        hs.process(TagChunk(times, np.full(times.size, A_H, np.int32)))
        waiting = hs.rows.row(hs.rows.bsm_slots[0], 0)
        assert waiting.size <= -lower // 7 + 2
        assert waiting.size == 0 or waiting[0] >= hs.horizon + lower
    hs.flush()
    assert hs.counters["clicks"] == 100_000 and hs.counters["clicks_accepted"] == 0
    assert hs.counters["clicks_without_sync"] <= -lower // 7 + 2


@pytest.mark.parametrize("ref", ["previous", "next"])
def test_clicks_after_long_runs_of_syncs(ref):
    """The sync search covers 16 syncs without a branch, then loops: gaps of tens of syncs
    between the clicks of a row take the loop."""
    lab = alice(ref=ref, trigger="herald")
    for seed in range(4):
        rng = np.random.default_rng(seed)
        # by position: sync weight 3+4+4+4+4 = 19, then BSM channels 2..5 at 1, 0.4, 0.4, 0.4
        s = random_stream(rng, 4000, channels=(SYNC, SYNC, SYNC, SYNC, SYNC, A_H, A_V, B_H, B_V, READY, UNUSED),
                          max_step=40)
        syncs_per_click = np.count_nonzero(s.channel == SYNC) / np.count_nonzero(np.isin(s.channel, [2, 3, 4, 5]))
        assert syncs_per_click > 6
        _, _, pl = assert_same(lab, s, list(split(s, [1000, 2500])))
        assert pl.summary["clicks_accepted"] > 20  # the clicks did find their attempts



@pytest.mark.parametrize("ref", ["previous", "next"])
@pytest.mark.parametrize("bins", [(-100, 100, 7), (-70_001, 70_000, 13), (-70_001, 70_000, 1)])
def test_two_row_loop_on_a_sparse_sync_stream(ref, bins, split_kind):
    """The lmu2022 shape: a sync only near some clicks (after them for 'next', before for 'previous'),
    several syncs between two clicks of a row, about half the clicks in the histogram's range and a
    quarter accepted.  The two-row loop takes the clicks whose attempt is known (compiled once per
    way of binning: table, reciprocal, 1 ps bins) and leaves the rest to the single-row loop: a row
    starting with clicks before the first sync ('previous'), clicks after the last known sync
    ('next'), rejected clicks (counted apart from the accepted ones), equal click times in two rows
    of one attempt; across sub-blocks of 8192 tags and chunk cuts."""
    lo, hi, width = bins
    d = alice_dict(ref=ref, trigger="herald")
    d["histograms"] = {"arrival_bin_ps": width, "arrival_range_ps": [lo, hi], "max_count": 5}
    lab = setup_from_dict({"labs": {"alice": d}}).lab("alice")
    rng = np.random.default_rng(18)
    sign = 1 if ref == "previous" else -1  # where the window lies from its sync
    tags = [(500, A_H), (510, A_H), (520, A_V)]  # clicks before the first sync
    t = 1000
    while len(tags) < 9000:
        t += int(rng.integers(200, 2000))
        if rng.random() < 0.6:  # an attempt: a sync and its clicks, most near the window, some far
            tags.append((t, SYNC))
            for row in rng.choice([A_H, A_V, B_H, B_V], size=int(rng.integers(1, 4)), replace=False):
                dt = int(rng.integers(0, 90)) if rng.random() < 0.7 else int(rng.integers(90, 600))
                tags.append((t + sign * dt, int(row)))
            if rng.random() < 0.1:  # two rows with one corrected time: equal keys but for the row
                tags += [(t + sign * 30 + 3, A_H), (t + sign * 30 - 2, A_V)]
        else:  # a click of no attempt
            tags.append((t, int(rng.choice([A_H, A_V, B_H, B_V]))))
    tags.append((t + 3000, A_H))  # after the last sync
    s = stream(tags + [(t + 10_000, UNUSED)])
    _, heralds, pl = assert_same(lab, s, [s])
    assert 0 < pl.summary["clicks_accepted"] < 0.6 * pl.summary["clicks"]
    assert len(heralds) > 100
    assert_same(lab, s, list(split(s, [2500, 5003, 8500])))
