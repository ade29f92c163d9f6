"""Calibration's measurements (the engine's arrival histogram and read-out counts, the guarded edge histogram,
the dark-count counter) against plain-Python references, and chunk-split invariance."""
from __future__ import annotations

import bisect
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from calibrate.api import EDGE_BIN_PS, EDGE_GUARD_PS, arrival_range, measure
from calibrate.darkcounts import DarkCounter
from calibrate.histograms import (GuardedArrivalHistogram, ReadoutCounts, SyncPeriod, arrival_histogram,
                                  measurement_lab, readout_counts, trimmed)
from calibrate.synthetic import SynthParams, make_setup, make_streams
from timetag.chunk import TagChunk, split
from timetag.records import FLAG_LOST_DATA, FLAG_SETTING_MISSING, FLAG_TRUNCATED, empty_heralds, empty_rounds
from timetag.stream import Collect, RoundsEvent, run_stream


def _small(mode="every", seed=3):
    p = SynthParams(duration_ps=60_000_000_000, photon_prob=0.05, dark_hz=20_000, ready_rate_hz=1000,
                    sync_mode=mode, seed=seed)
    a, b, truth = make_streams(p)
    return p, a, b, make_setup(p)


_SMALL = {m: _small(m) for m in ("every", "conditional")}


def _ref_arrival(chunk, lab, edges):
    """Plain Python, the engine's rule: corrected click - corrected sync, with the last sync at or before the
    click ('previous') or the first at or after it ('next')."""
    d = lab.delays_ps
    chans = [x.channel for x in lab.bsm]
    syncs = sorted(int(t) - d.get(lab.sync_channel, 0) for t, c in zip(chunk.time, chunk.channel)
                   if c == lab.sync_channel)
    out = np.zeros((len(chans), len(edges) - 1), np.int64)
    for t, c in zip(chunk.time.tolist(), chunk.channel.tolist()):
        if c not in chans:
            continue
        tc = t - d.get(c, 0)
        if lab.herald.sync_reference == "previous":
            i = bisect.bisect_right(syncs, tc)
            if i == 0:
                continue
            dt = tc - syncs[i - 1]
        else:
            i = bisect.bisect_left(syncs, tc)
            if i == len(syncs):
                continue
            dt = tc - syncs[i]
        k = (dt - edges[0]) // (edges[1] - edges[0])
        if edges[0] <= dt < edges[-1]:
            out[chans.index(c), k] += 1
    return out


@pytest.mark.parametrize("mode", ["every", "conditional"])
def test_arrival_matches_reference(mode):
    p, a, _, setup = _SMALL[mode]
    lab = setup.lab("alice")
    # keep it short for the quadratic reference
    n = 6000
    chunk = TagChunk(a.time[:n], a.channel[:n])
    h = arrival_histogram([chunk], lab)
    ref = _ref_arrival(chunk, lab, h.edges)
    assert h.counts.sum() > 50
    np.testing.assert_array_equal(h.counts, ref)


@pytest.mark.parametrize("mode", ["every", "conditional"])
def test_arrival_range_cut_to_the_syncs_side_and_whole_bins(mode):
    p, a, _, setup = _SMALL[mode]
    lab = setup.lab("alice")
    m = measurement_lab(lab, arrival_range_ps=(-100_100, 100_100), arrival_bin_ps=1_000)
    lo, hi = m.histograms.arrival_range_ps
    assert (lo, hi) == ((0, 100_000) if lab.herald.sync_reference == "previous" else (-100_100, -100))
    assert m.histograms.arrival_bin_ps == 1_000 and m.delays_ps == lab.delays_ps and m.round == lab.round
    h = arrival_histogram([a], lab, range_ps=(-100_100, 100_100), bin_ps=1_000)
    np.testing.assert_array_equal(h.edges, np.arange(lo, hi + 1, 1_000))


@pytest.mark.parametrize("mode", ["every", "conditional"])
@given(cuts=st.lists(st.integers(0, 40_000), max_size=6))
def test_arrival_chunk_invariance(mode, cuts):
    p, a, _, setup = _SMALL[mode]
    lab = setup.lab("alice")
    whole = arrival_histogram([a], lab)
    parts = arrival_histogram(split(a, sorted(cuts)), lab)
    np.testing.assert_array_equal(whole.counts, parts.counts)
    assert whole.period_ps == parts.period_ps


def test_arrival_with_other_delays():
    """``delays``: the histogram is that of the stream with those delays, not the lab's."""
    p, a, _, setup = _SMALL["every"]
    lab = setup.lab("alice")
    shifted = dict(lab.delays_ps)
    shifted[3] += 7_000
    h = arrival_histogram([a], lab, delays=shifted)
    ref = arrival_histogram([a], measurement_lab(lab, delays=shifted))
    np.testing.assert_array_equal(h.counts, ref.counts)
    plain = arrival_histogram([a], lab)
    # a larger delay moves channel 3's clicks 7 ns earlier: 14 bins of 500 ps
    np.testing.assert_array_equal(h.counts[1, :-14], plain.counts[1, 14:])


@given(cuts=st.lists(st.integers(0, 40_000), max_size=6))
def test_arrival_guard_chunk_invariance_and_reference(cuts):
    """'next' with a guard: clicks less than guard_ps after a recorded (corrected) sync are left out."""
    p, a, _, setup = _SMALL["conditional"]
    lab = setup.lab("alice")
    guard = 10_000

    def guarded(chunks, g=guard):
        h = GuardedArrivalHistogram(lab, guard_ps=g)
        run_stream(chunks, h)
        return h

    whole = guarded([a])
    parts = guarded(split(a, sorted(cuts)))
    np.testing.assert_array_equal(whole.counts, parts.counts)
    plain = guarded([a], 0)
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
    h = guarded([chunk])
    np.testing.assert_array_equal(h.counts, _ref_arrival(TagChunk(chunk.time[keep], chunk.channel[keep]), lab,
                                                         h.edges))


def test_guarded_histogram_without_guard_is_the_engines():
    """The one histogram calibration still makes itself: without its guard, the engine's (same rule and bins)."""
    p, a, _, setup = _SMALL["conditional"]
    lab = setup.lab("alice")
    rng = arrival_range(lab)
    g = GuardedArrivalHistogram(lab, bin_ps=EDGE_BIN_PS, range_ps=rng, guard_ps=0)
    run_stream(split(a, [len(a) // 3]), g)
    e = arrival_histogram([a], lab, range_ps=rng, bin_ps=EDGE_BIN_PS)
    np.testing.assert_array_equal(g.edges, e.edges)
    np.testing.assert_array_equal(g.counts, e.counts)
    assert g.counts.sum() > 500


def test_arrival_empty_and_one_tag():
    p, a, _, setup = _SMALL["every"]
    lab = setup.lab("alice")
    h = arrival_histogram([TagChunk(np.zeros(0, np.int64), np.zeros(0, np.int32))], lab)
    assert h.counts.sum() == 0 and h.period_ps is None
    h = arrival_histogram([TagChunk(np.array([5]), np.array([2], np.int32))], lab)
    assert h.counts.sum() == 0
    h = arrival_histogram([], lab)
    assert h.counts.sum() == 0 and h.valid_bins() == slice(0, h.counts.shape[1])


@given(cuts=st.lists(st.integers(0, 40_000), max_size=6))
def test_sync_period_chunk_invariance(cuts):
    p, a, _, setup = _SMALL["conditional"]
    whole, parts = SyncPeriod(1), SyncPeriod(1)
    run_stream([a], whole)
    run_stream(split(a, sorted(cuts)), parts)
    assert whole.period_ps == parts.period_ps == p.period_ps
    assert whole.n_syncs == parts.n_syncs == int(np.count_nonzero(a.channel == 1))


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
    counts, hist = readout_counts([chunk], lab)
    ref = _ref_counts(chunk, lab)
    assert ref.size > 10 and ref.max() > 5
    np.testing.assert_array_equal(counts.counts, ref)
    ready = chunk.time[chunk.channel == lab.ready_channel] - lab.delay(lab.ready_channel)
    np.testing.assert_array_equal(counts.ready_times, ready)
    np.testing.assert_array_equal(counts.trigger_times, ready[: ref.size])
    np.testing.assert_array_equal(trimmed(hist.histogram), np.bincount(ref))


def test_counts_whatever_the_labs_trigger():
    """Every 'ready' tag is read out, also for a lab whose rounds are triggered by the software herald."""
    p, a, b, setup = _SMALL["every"]
    lab = setup.lab("alice")
    herald_lab = replace(lab, round=replace(lab.round, trigger="herald"))
    got, _ = readout_counts([a], herald_lab)
    ref, _ = readout_counts([a], lab)
    np.testing.assert_array_equal(got.counts, ref.counts)


@given(cuts=st.lists(st.integers(0, 40_000), max_size=6))
def test_counts_chunk_invariance(cuts):
    p, a, b, setup = _SMALL["every"]
    lab = setup.lab("alice")
    whole, _ = readout_counts([a], lab)
    parts, _ = readout_counts(split(a, sorted(cuts)), lab)
    np.testing.assert_array_equal(whole.counts, parts.counts)
    np.testing.assert_array_equal(whole.trigger_times, parts.trigger_times)


def test_readout_counts_keep_whole_windows_only():
    r = empty_rounds(4)
    r["trigger_time"] = [10, 20, 30, 40]
    r["count"] = [1, 2, 3, 4]
    r["flags"] = [0, FLAG_TRUNCATED, FLAG_LOST_DATA, FLAG_SETTING_MISSING]
    sink = Collect()
    rc = ReadoutCounts(sink)
    run_stream([RoundsEvent(r, empty_heralds()), RoundsEvent.empty()], rc)
    np.testing.assert_array_equal(rc.counts, [1, 4])
    np.testing.assert_array_equal(rc.trigger_times, [10, 40])
    np.testing.assert_array_equal(rc.ready_times, [10, 20, 30, 40])
    assert (rc.n_truncated, rc.n_lost) == (1, 1)
    forwarded = sink.of_type(RoundsEvent)
    assert [e.rounds["count"].tolist() for e in forwarded] == [[1, 4], []] and sink.flushed


def test_trimmed_count_histogram():
    np.testing.assert_array_equal(trimmed(np.array([1, 2, 0, 0, 1, 0, 0])), [1, 2, 0, 0, 1])
    np.testing.assert_array_equal(trimmed(np.zeros(5, np.int64)), [0])


def _ref_period(times, channels, sync_channel):
    """Plain: the smallest positive gap between consecutive sync tags (None: no such gap)."""
    t = [int(x) for x, c in zip(times.tolist(), channels.tolist()) if c == sync_channel]
    gaps = [b - a for a, b in zip(t, t[1:]) if b - a > 0]
    return min(gaps) if gaps else None


@given(cuts=st.lists(st.integers(0, 40_000), max_size=6))
def test_guarded_histogram_measures_the_sync_period(cuts):
    """The guarded histogram's pass measures the attempt period as SyncPeriod does (measure() then needs no
    SyncPeriod of its own): the plain smallest positive gap, whatever the chunking."""
    p, a, _, setup = _SMALL["conditional"]
    lab = setup.lab("alice")
    g = GuardedArrivalHistogram(lab, guard_ps=10_000)
    run_stream(split(a, sorted(cuts)), g)
    assert g.period_ps == _ref_period(a.time, a.channel, lab.sync_channel) == p.period_ps
    assert g.n_syncs == int(np.count_nonzero(a.channel == lab.sync_channel))


def test_guarded_histogram_period_off_grid_and_ties():
    """Syncs off any grid, with a repeated time (a zero gap is no period) and a single sync (no period)."""
    p, a, _, setup = _SMALL["conditional"]
    lab = setup.lab("alice")
    t = np.array([100, 5_000, 5_000, 5_300, 9_000, 9_250, 20_000], np.int64)
    ch = np.array([1, 1, 1, 1, 3, 1, 1], np.int32)
    for cuts in ([], [1], [2, 3], [5]):
        g = GuardedArrivalHistogram(lab, guard_ps=0)
        run_stream(split(TagChunk(t, ch), cuts), g)
        assert g.period_ps == _ref_period(t, ch, 1) == 300
        assert g.n_syncs == 6
    g = GuardedArrivalHistogram(lab, guard_ps=0)
    run_stream([TagChunk(t[:1], ch[:1])], g)
    assert g.period_ps is None and g.n_syncs == 1


def test_measure_is_one_pass_over_any_chunking():
    """The whole chain (engine, period, edge, dark counts) gives the same data for any split of the stream."""
    p, a, _, setup = _SMALL["conditional"]
    lab = setup.lab("alice")
    one = measure([a], lab)
    many = measure(split(a, list(range(5_000, len(a), 7_919))), lab)
    assert one.n_tags == many.n_tags == len(a)
    for d in (one, many):
        assert d.arrival is not None and d.edge is not None and d.counts is not None and d.dark is not None
    np.testing.assert_array_equal(one.arrival.counts, many.arrival.counts)
    np.testing.assert_array_equal(one.edge.counts, many.edge.counts)
    np.testing.assert_array_equal(one.count_hist, many.count_hist)
    np.testing.assert_array_equal(one.ready_times, many.ready_times)
    np.testing.assert_array_equal(one.dark.result().quiet_clicks, many.dark.result().quiet_clicks)
    assert one.edge.guard_ps == EDGE_GUARD_PS and one.edge.bin_ps == EDGE_BIN_PS
    # the attempt period that bounds the fitted bins: measured by the edge histogram's pass
    assert one.arrival.period_ps == many.arrival.period_ps == _ref_period(a.time, a.channel, lab.sync_channel)
    assert measure([a], lab, edge=False).arrival.period_ps == one.arrival.period_ps
    # the engine measured with the lab's rules: the arrival histogram is the plain one over the calibration range
    np.testing.assert_array_equal(one.arrival.counts, arrival_histogram([a], lab, range_ps=arrival_range(lab)).counts)
    # only what the steps need
    d = measure([a], lab, steps=("thresholds",))
    assert d.arrival is None and d.edge is None and d.dark is None and d.counts is not None


def _dark(chunks, lab):
    ex = {lab.sync_channel: [(0, 200_000)], lab.ready_channel: [(-1_000_000, 26_000_000)]}
    d = DarkCounter([2, 3, 4, 5], ex, afterpulse_ps=(50_000, 500_000))
    run_stream(chunks, d)
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


def test_darkcounts_as_processor_ignores_other_events():
    p, a, _, setup = _SMALL["every"]
    lab = setup.lab("alice")
    r1 = _dark([a], lab)
    r2 = _dark([RoundsEvent.empty(), a, RoundsEvent.empty()], lab)
    np.testing.assert_array_equal(r1.quiet_clicks, r2.quiet_clicks)


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


@settings(max_examples=10, deadline=None)
@given(cuts=st.lists(st.integers(0, 40_000), max_size=6), threaded=st.booleans())
def test_guarded_histogram_buffers_and_threads(cuts, threaded):
    """The streaming kernel with buffers that must grow (and clicks that wait long for their sync), in the
    caller's thread or in the background: the same histogram."""
    p, a, _, setup = _SMALL["conditional"]
    lab = setup.lab("alice")
    big = dict(lab.delays_ps)
    big[lab.bsm[0].channel] += 3 * int(p.period_ps)      # clicks that find their sync long before them
    ref = GuardedArrivalHistogram(lab, guard_ps=10_000, delays=big, threaded=False)
    run_stream([a], ref)

    class Tiny(GuardedArrivalHistogram):
        _CAP = 1

    h = Tiny(lab, guard_ps=10_000, delays=big, threaded=threaded)
    run_stream(split(a, sorted(cuts)), h)
    np.testing.assert_array_equal(h.counts, ref.counts)
    assert ref.counts.sum() > 0
    assert min(h._k.ring_sizes.values()) > 1      # both rings grew on the way


@pytest.mark.parametrize("bin_ps", [1, 3, 10, 500, 7_919, 10**6 + 3])
def test_bin_by_multiplication_is_floor_division(bin_ps):
    """The edge histogram's bin index (a multiplication by 1/bin instead of a division) against //, at and next
    to every kind of bin edge, up to offsets far beyond any histogram range."""
    from calibrate.histograms import _bin_of

    rng = np.random.default_rng(bin_ps)
    k = np.concatenate([np.arange(0, 50), rng.integers(0, 2**40 // bin_ps, 300)])
    xs = np.concatenate([k * bin_ps, k * bin_ps + 1, k * bin_ps - 1, k * bin_ps + bin_ps // 2,
                         rng.integers(0, 2**45, 300)])
    for x in xs[xs >= 0].tolist():
        assert _bin_of(x, bin_ps) == x // bin_ps, x


def test_guarded_histogram_empty_and_one_tag():
    """No tags, one click, one sync: nothing binned, the period unknown."""
    p, a, _, setup = _SMALL["conditional"]
    lab = setup.lab("alice")
    for t, ch in (([], []), ([5], [2]), ([5], [1])):
        h = GuardedArrivalHistogram(lab, guard_ps=10_000, threaded=False)
        run_stream([TagChunk(np.asarray(t, np.int64), np.asarray(ch, np.int32))], h)
        assert h.counts.sum() == 0 and h.period_ps is None
        assert h.n_syncs == ch.count(1)
