"""Calibration histograms: numba kernels against plain-Python references, chunk-split invariance."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from calibrate.darkcounts import DarkCounter
from calibrate.histograms import ArrivalHistogrammer, CountHistogrammer, arrival_histograms, count_histogram
from calibrate.synthetic import SynthParams, make_setup, make_streams
from timetag.chunk import TagChunk, split


def _small(mode="every", seed=3):
    p = SynthParams(duration_ps=60_000_000_000, photon_prob=0.05, dark_hz=20_000, ready_rate_hz=1000,
                    sync_mode=mode, seed=seed)
    a, b, truth = make_streams(p)
    return p, a, b, make_setup(p)


def _ref_arrival(chunk, lab, edges):
    """Plain Python: corrected click - corrected sync, previous/next sync by corrected time order of syncs."""
    d = lab.delays_ps
    chans = [x.channel for x in lab.bsm]
    syncs = sorted(int(t) - d.get(lab.sync_channel, 0) for t, c in zip(chunk.time, chunk.channel)
                   if c == lab.sync_channel)
    out = np.zeros((len(chans), len(edges) - 1), np.int64)
    import bisect
    for t, c in zip(chunk.time.tolist(), chunk.channel.tolist()):
        if c not in chans:
            continue
        tc = t - d.get(c, 0)
        if lab.herald.sync_reference == "previous":
            # the kernel picks the last sync *tag* before the click tag (raw order)
            raw_syncs = [s for s in syncs if s + d.get(lab.sync_channel, 0) <= t]
            if not raw_syncs:
                continue
            dt = tc - raw_syncs[-1]
        else:
            i = bisect.bisect_right(syncs, tc)
            if i == len(syncs):
                continue
            dt = tc - syncs[i]
        k = (dt - edges[0]) // (edges[1] - edges[0])
        if edges[0] <= dt < edges[-1]:
            out[chans.index(c), k] += 1
    return out


@pytest.mark.parametrize("mode", ["every", "conditional"])
def test_arrival_matches_reference(mode):
    p, a, _, setup = _small(mode)
    lab = setup.lab("alice")
    # keep it short for the quadratic reference
    n = 6000
    chunk = TagChunk(a.time[:n], a.channel[:n])
    h = arrival_histograms([chunk], lab)
    ref = _ref_arrival(chunk, lab, h.edges)
    assert h.counts.sum() > 50
    np.testing.assert_array_equal(h.counts, ref)


@pytest.mark.parametrize("mode", ["every", "conditional"])
@given(cuts=st.lists(st.integers(0, 40_000), max_size=6))
def test_arrival_chunk_invariance(mode, cuts):
    p, a, _, setup = _SMALL[mode]
    lab = setup.lab("alice")
    whole = arrival_histograms([a], lab)
    parts = arrival_histograms(split(a, sorted(cuts)), lab)
    np.testing.assert_array_equal(whole.counts, parts.counts)
    assert whole.n_syncs == parts.n_syncs


_SMALL = {m: _small(m) for m in ("every", "conditional")}


@given(cuts=st.lists(st.integers(0, 40_000), max_size=6))
def test_arrival_guard_chunk_invariance_and_reference(cuts):
    """'next' with a guard: clicks less than guard_ps after a recorded (corrected) sync are left out."""
    p, a, _, setup = _SMALL["conditional"]
    lab = setup.lab("alice")
    guard = 10_000
    whole = arrival_histograms([a], lab, guard_ps=guard)
    parts = arrival_histograms(split(a, sorted(cuts)), lab, guard_ps=guard)
    np.testing.assert_array_equal(whole.counts, parts.counts)
    plain = arrival_histograms([a], lab)
    assert np.all(whole.counts <= plain.counts) and whole.counts.sum() < plain.counts.sum()
    # reference on a prefix: drop the guarded clicks, then the plain rule
    n = 6000
    chunk = TagChunk(a.time[:n], a.channel[:n])
    d = lab.delays_ps
    syncs = np.sort(chunk.time[chunk.channel == lab.sync_channel] - d[lab.sync_channel])
    keep = np.ones(n, bool)
    for i, (t, c) in enumerate(zip(chunk.time.tolist(), chunk.channel.tolist())):
        if c in [x.channel for x in lab.bsm]:
            tc = t - d.get(c, 0)
            k = np.searchsorted(syncs, tc, "right")
            keep[i] = not (k > 0 and tc - syncs[k - 1] < guard)
    h = arrival_histograms([chunk], lab, guard_ps=guard)
    np.testing.assert_array_equal(h.counts, _ref_arrival(TagChunk(chunk.time[keep], chunk.channel[keep]), lab,
                                                         h.edges))


def test_arrival_empty_and_one_tag():
    p, a, _, setup = _SMALL["every"]
    lab = setup.lab("alice")
    h = arrival_histograms([TagChunk(np.zeros(0, np.int64), np.zeros(0, np.int32))], lab)
    assert h.counts.sum() == 0 and h.n_syncs == 0
    h = arrival_histograms([TagChunk(np.array([5]), np.array([2]))], lab)
    assert h.counts.sum() == 0 and h.n_clicks.sum() == 1


def _ref_counts(chunk, lab):
    d = lab.delays_ps
    w0, w1 = lab.round.fluorescence_window_ps
    fl = np.sort(np.array([t - d.get(c, 0) for t, c in zip(chunk.time.tolist(), chunk.channel.tolist())
                           if c in lab.fluorescence_channels], np.int64))
    last = int(chunk.time[-1])
    out = []
    for t, c in zip(chunk.time.tolist(), chunk.channel.tolist()):
        if c == lab.ready_channel:
            tr = t - d.get(c, 0)
            if tr + w1 > last:
                continue
            out.append(int(np.count_nonzero((fl >= tr + w0) & (fl < tr + w1))))
    return np.array(out)


@pytest.mark.parametrize("lab_name", ["alice", "bob"])
def test_counts_match_reference(lab_name):
    p, a, b, setup = _SMALL["every"]
    lab = setup.lab(lab_name)
    chunk = a if lab_name == "alice" else b
    h = CountHistogrammer(lab)
    h.process(chunk)
    h.flush()
    ref = _ref_counts(chunk, lab)
    assert ref.size > 10 and ref.max() > 5
    np.testing.assert_array_equal(h.counts, ref)


@given(cuts=st.lists(st.integers(0, 40_000), max_size=6))
def test_counts_chunk_invariance(cuts):
    p, a, b, setup = _SMALL["every"]
    lab = setup.lab("alice")
    res = []
    for chunks in ([a], list(split(a, sorted(cuts)))):
        h = CountHistogrammer(lab)
        for c in chunks:
            h.process(c)
        h.flush()
        res.append(h.counts)
    np.testing.assert_array_equal(res[0], res[1])


def test_count_histogram_overflow_bin():
    h = count_histogram([0, 1, 1, 7, 30], max_count=5)
    np.testing.assert_array_equal(h, [1, 2, 0, 0, 0, 2])


def _dark(chunks, lab):
    ex = {lab.sync_channel: [(0, 200_000)], lab.ready_channel: [(-1_000_000, 26_000_000)]}
    d = DarkCounter([2, 3, 4, 5], ex, afterpulse_ps=(50_000, 500_000))
    for c in chunks:
        d.process(c)
    d.flush()
    return d.result()


@given(cuts=st.lists(st.integers(0, 40_000), max_size=5))
def test_darkcounts_chunk_invariance(cuts):
    p, a, _, setup = _SMALL["every"]
    lab = setup.lab("alice")
    r1 = _dark([a], lab)
    r2 = _dark(split(a, sorted(cuts)), lab)
    np.testing.assert_array_equal(r1.quiet_clicks, r2.quiet_clicks)
    np.testing.assert_array_equal(r1.clicks, r2.clicks)
    np.testing.assert_array_equal(r1.afterpulse_prob, r2.afterpulse_prob)
    assert r1.quiet_s == r2.quiet_s


def test_darkcounts_recover_rate_and_afterpulses():
    rng = np.random.default_rng(5)
    dur = 20e12
    rate = 5_000.0
    t = np.sort(rng.uniform(0, dur, rng.poisson(rate * dur * 1e-12))).astype(np.int64)
    # afterpulses: 3 % of clicks, 100-300 ns later
    ap = rng.random(t.size) < 0.03
    tap = t[ap] + rng.uniform(100_000, 300_000, ap.sum()).astype(np.int64)
    # an anchor channel (9) every 50 ms with a read-out-like burst of 200 clicks in the next 10 ms (excluded);
    # the control interval subtracts such bunching because it is flat on the microsecond scale
    anchors = np.arange(0, int(dur), 50_000_000_000, dtype=np.int64)
    burst = np.repeat(anchors, 200) + rng.uniform(0, 10_000_000_000, anchors.size * 200).astype(np.int64)
    times = np.concatenate([t, tap, anchors, burst])
    chans = np.concatenate([np.full(t.size + tap.size, 2), np.full(anchors.size, 9), np.full(burst.size, 2)])
    o = np.argsort(times, kind="stable")
    chunk = TagChunk(times[o], chans[o].astype(np.int32))
    d = DarkCounter([2], {9: [(0, 10_000_000_000)]}, afterpulse_ps=(50_000, 1_000_000))
    for c in split(chunk, [len(chunk) // 3, 2 * len(chunk) // 3]):
        d.process(c)
    d.flush()
    r = d.result()
    # quiet rate: dark + their afterpulses (~ rate * 1.03); the bursts are excluded
    assert r.quiet_s == pytest.approx(dur * 1e-12 * 0.8, rel=1e-3)
    assert r.rate_hz[0] == pytest.approx(rate * 1.03, rel=4 * r.rate_err_hz[0] / rate)
    # afterpulse probability per click: 3 % of the dark clicks, diluted by the burst clicks
    expected = 0.03 * t.size / (t.size + tap.size + burst.size)
    assert abs(r.afterpulse_prob[0] - expected) < 4 * r.afterpulse_err[0] + 0.002
    assert r.afterpulse_prob[0] > 5 * r.afterpulse_err[0]
