"""Dark counts on the attempt grid (conditional sync recording) and the afterpulse estimate."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from calibrate.darkcounts import DarkCounter, _Grid, _grid_ticks, _union, estimate_period
from calibrate.synthetic import SynthParams, make_setup, make_streams
from timetag.chunk import TagChunk, split
from timetag.errors import CalibrationError

T_FRAC = 19_230_769.3   # a period that is no whole number of ps


def test_estimate_period_without_consecutive_ticks():
    rng = np.random.default_rng(1)
    # only gaps of 3, 5 and 7 periods: the smallest gap is 3 T, the grid is still T
    n = np.cumsum(rng.choice([3, 5, 7], 300))
    t = np.rint(1e9 + n * T_FRAC + rng.normal(0, 20, n.size)).astype(np.int64)
    assert estimate_period(t) == pytest.approx(T_FRAC, abs=0.05)
    with pytest.raises(CalibrationError, match="two recorded syncs"):
        estimate_period(t[:1])
    with pytest.raises(CalibrationError, match="no common grid"):
        estimate_period(np.cumsum(rng.uniform(1e6, 3e7, 200)).astype(np.int64))


def test_grid_ticks_complete_the_grid():
    rng = np.random.default_rng(2)
    T = 1_000_003
    grid = 5_000_000 + np.arange(2000, dtype=np.int64) * T
    rec = np.sort(rng.choice(grid[100:1900], 60, replace=False))   # recorded: a random subset
    lo, hi = grid[0], grid[-1] + 1
    got = _grid_ticks(rec, lo, hi, float(T), None)
    np.testing.assert_array_equal(got, grid)
    # with an earlier anchor dropped from the buffer, ticks from it onwards are placed
    got = _grid_ticks(rec[5:], rec[5] - 1, hi, float(T), int(rec[4]))
    np.testing.assert_array_equal(got, grid[grid >= rec[5] - 1])
    # a period that is no whole number of ps: each tick within 1 ps of the true one
    Tf = T_FRAC
    true = np.rint(7e8 + np.arange(3000) * Tf).astype(np.int64)
    rec = np.sort(rng.choice(true[10:2990], 80, replace=False))
    got = _grid_ticks(rec, true[0] - 10, true[-1] + 10, Tf, None)
    assert got.size == true.size and np.max(np.abs(got - true)) <= 1


def _conditional(seed=3, dark_hz=20_000, duration_ps=60_000_000_000, photon_prob=0.05):
    p = SynthParams(duration_ps=duration_ps, photon_prob=photon_prob, dark_hz=dark_hz, ready_rate_hz=200,
                    sync_mode="conditional", seed=seed)
    a, _, _ = make_streams(p)
    return p, a, make_setup(p).lab("alice")


def _counter(lab, grid=True, period=None):
    T = 19_230_769
    pulse = (-T - 150_000, -T + 300_000)
    ex = {lab.sync_channel: [(pulse[0], pulse[1] + 3_000_000), (-200_000, 3_200_000)],
          lab.ready_channel: [(-1_000_000, 26_000_000)]}
    ap_ex = {lab.sync_channel: [pulse, (-200_000, 200_000)]}
    return DarkCounter([2, 3, 4, 5], ex, afterpulse_ps=(0, 500_000), afterpulse_exclude=ap_ex,
                       grid_channel=lab.sync_channel if grid else None, period_ps=period)


def _run(d, chunks):
    for c in chunks:
        d.process(c)
    d.flush()
    return d.result()


_CASE = {}


def _case():
    if not _CASE:
        _CASE["v"] = _conditional()
    return _CASE["v"]


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(0, 8_000), max_size=6))
def test_grid_darkcounts_chunk_invariance(cuts):
    p, a, lab = _case()
    r1 = _run(_counter(lab), [a])
    r2 = _run(_counter(lab), split(a, sorted(cuts)))
    np.testing.assert_array_equal(r1.quiet_clicks, r2.quiet_clicks)
    np.testing.assert_array_equal(r1.clicks, r2.clicks)
    np.testing.assert_array_equal(r1.afterpulse_prob, r2.afterpulse_prob)
    np.testing.assert_array_equal(r1.afterpulse_clicks, r2.afterpulse_clicks)
    assert r1.quiet_s == r2.quiet_s and r1.period_ps == r2.period_ps


def test_grid_darkcounts_unbiased_with_conditional_syncs():
    """Dark clicks make the tagger keep the next sync: exclusions on the recorded syncs only sit where the
    dark clicks are (biased low); on the reconstructed grid the estimate is the true rate."""
    # sparse syncs (most recorded because of a dark click): where the old estimate was worst
    p, a, lab = _conditional(seed=11, dark_hz=2_000, duration_ps=20_000_000_000_000, photon_prob=0.002)
    chunks = list(split(a, [len(a) // 4, len(a) // 2]))
    r = _run(_counter(lab), chunks)
    assert r.period_ps == pytest.approx(p.period_ps, abs=1e-6)
    rate = r.quiet_clicks.sum() / r.quiet_s / 4
    err = np.sqrt(r.quiet_clicks.sum()) / r.quiet_s / 4
    assert abs(rate - p.dark_hz) < 3 * err, (rate, err)
    assert np.all(np.abs(r.rate_hz - p.dark_hz) < 4 * r.rate_err_hz)
    # the same period given explicitly: identical
    r_given = _run(_counter(lab, period=p.period_ps), chunks)
    np.testing.assert_array_equal(r_given.quiet_clicks, r.quiet_clicks)
    # recorded syncs only: visibly low (what the grid fixes)
    old = _run(_counter(lab, grid=False), chunks)
    old_rate = old.quiet_clicks.sum() / old.quiet_s / 4
    assert old_rate < p.dark_hz - 5 * err, (old_rate, err)


def test_afterpulses_right_after_the_dead_time():
    """Afterpulses from dead time + Exp(tau): a near interval from 0 catches them all; the control is
    scaled for the dead time in which no uncorrelated partner can click."""
    rng = np.random.default_rng(9)
    dur, rate, dead, tau, prob = 20e12, 20_000.0, 22_000, 80_000.0, 0.04
    t = np.sort(rng.uniform(0, dur, rng.poisson(rate * dur * 1e-12))).astype(np.int64)
    ap = rng.random(t.size) < prob
    times = np.sort(np.concatenate([t, t[ap] + dead + rng.exponential(tau, ap.sum()).astype(np.int64)]))
    # non-paralysable dead time on the merged stream
    keep = np.ones(times.size, bool)
    last = -10 ** 18
    for i, x in enumerate(times.tolist()):
        if x - last < dead:
            keep[i] = False
        else:
            last = x
    times = times[keep]
    chunk = TagChunk(times, np.full(times.size, 2, np.int32))
    d = _run(DarkCounter([2], {}, afterpulse_ps=(0, 1_000_000)), split(chunk, [times.size // 2]))
    assert d.dead_time_ps[0] >= dead and d.dead_time_ps[0] < dead + 2_000
    # per primary click (afterpulses here do not afterpulse again): the generated probability, less what
    # the dead time swallowed (afterpulses behind another click, ~ rate * (dead + tau) ~ 0.2 %)
    assert abs(d.afterpulse_primary[0] - prob) < 3 * d.afterpulse_primary_err[0] + 0.002 * prob
    assert d.clicks[0] == times.size
    # without the dead-time scaling of the control the estimate would be low by rate * dead per click
    assert d.afterpulse_primary[0] > 10 * d.afterpulse_primary_err[0]


@pytest.mark.parametrize("T", [19_230_769.0, T_FRAC])
def test_phase_grid_matches_listed_ticks(T):
    """The counter's phase representation against brute force: intervals around every listed tick."""
    rng = np.random.default_rng(4)
    offs = [(-int(T) - 150_000, -int(T) + 3_300_000), (-200_000, 3_200_000), (5_000_000, 5_000_100)]
    true = np.rint(3e9 + np.arange(4000) * T).astype(np.int64)
    rec = np.sort(rng.choice(true[200:3800], 150, replace=False))
    lo, hi = int(true[100]), int(true[3900])
    ticks = _grid_ticks(rec, lo - 2 * int(T), hi + 2 * int(T), T, None)
    s, e = _union(np.concatenate([ticks + a for a, _ in offs]), np.concatenate([ticks + b for _, b in offs]))
    g = _Grid.from_offsets(offs, T)
    g.anchors_with(rec, None)
    x = np.sort(rng.integers(lo, hi, 400))
    y = x + rng.integers(0, 300_000_000, x.size)
    y = np.minimum(y, hi)
    brute = np.array([np.sum(np.clip(e, a, b) - np.clip(s, a, b)) for a, b in zip(x, y)])
    tol = 0 if T == int(T) else 2 * (1 + (y - x) // int(T))    # ps rounding of a fractional period
    assert np.all(np.abs(g.measure(x, y) - brute) <= tol)
    k = np.searchsorted(s, x, "right") - 1
    inside = (k >= 0) & (x < e[np.clip(k, 0, e.size - 1)])
    # points within a few ps of an interval edge may differ by the rounding
    near_edge = np.min(np.abs(np.concatenate([s, e])[None, :] - x[:, None]), axis=1) <= 2
    np.testing.assert_array_equal(g.inside(x)[~near_edge], inside[~near_edge])
    assert inside.any() and (~inside).any()


@pytest.mark.parametrize("T", [1_000.0, 19_230_769.0, 7.0, T_FRAC])
def test_tick_of_a_time_is_the_plain_one(T):
    """The kernels' tick (index j and time of the latest tick at or before x, ticks at a + rint(j T)) against
    plain integer floor division for a whole period (the kernel takes a faster path there) and against the
    float rule for a fractional one: both signs of x - a, exact multiples, their neighbours, long gaps."""
    from calibrate.darkcounts import _tick1

    rng = np.random.default_rng(7)
    a = int(rng.integers(-10**12, 10**12))
    Ti = int(T)
    k = rng.integers(-10**6, 10**6, 300)
    xs = np.concatenate([a + k * Ti, a + k * Ti - 1, a + k * Ti + 1, a + rng.integers(-10**14, 10**14, 300),
                         [a, a - 1, a + Ti - 1, a + Ti]])
    for x in xs.tolist():
        j, tick = _tick1(x, a, T)
        if T == Ti:
            assert (j, tick) == ((x - a) // Ti, a + ((x - a) // Ti) * Ti), x
        else:
            jj = int(np.floor((x - a) / T))
            if a + int(np.rint(jj * T)) > x:
                jj -= 1
            assert (j, tick) == (jj, a + int(np.rint(jj * T))), x
        assert tick <= x


# --- the streaming counter against a plain reference (every interval listed, every pair tried) ----------------

def _reference(t, c, channels, exclude, ap_exclude, ap, grid, T):
    """Brute force: the excluded set as listed intervals (around every grid tick and every anchor)."""
    t0, t1 = ap
    span = 2 * t1 - t0
    first, last = int(t[0]), int(t[-1])

    def intervals(table):
        st, sp = [], []
        for ch, offs in table.items():
            if ch == grid:
                anchors = t[c == grid]
                pts = _grid_ticks(anchors, first - 10 * int(T) - 10 * span, last + 10 * int(T) + 10 * span, T, None)
            else:
                pts = t[c == ch]
            for a, b in offs:
                st.append(pts + a)
                sp.append(pts + b)
        if not st:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return _union(np.concatenate(st), np.concatenate(sp))

    xs, xe = intervals(exclude)
    ys, ye = intervals(ap_exclude)
    excl = int(np.sum(np.clip(xe, first, last + 1) - np.clip(xs, first, last + 1)))
    nd = len(channels)
    det = {ch: k for k, ch in enumerate(channels)}
    quiet = np.zeros(nd, np.int64)
    clicks = np.zeros(nd, np.int64)
    apcl = np.zeros(nd, np.int64)
    near = np.zeros(nd, np.int64)
    ctrl = np.zeros(nd, np.int64)
    mingap = np.full(nd, np.iinfo(np.int64).max, np.int64)
    for ch, d in det.items():   # the dead time: the shortest gap between two clicks of a detector, any clicks
        gaps = np.diff(t[c == ch])
        if gaps.size:
            mingap[d] = gaps.min()
    tl, cl = t.tolist(), c.tolist()
    for i, (x, ch) in enumerate(zip(tl, cl)):
        if ch not in det:
            continue
        d = det[ch]
        clicks[d] += 1
        if not np.any((xs <= x) & (x < xe)):
            quiet[d] += 1
        if np.any((ys < x + span) & (ye > x)):
            continue
        apcl[d] += 1
        for y, ch2 in zip(tl[i + 1:], cl[i + 1:]):
            dt = y - x
            if dt >= span:
                break
            if ch2 == ch:
                if dt >= t1:
                    ctrl[d] += 1
                elif dt >= t0:
                    near[d] += 1
    return dict(quiet_ps=(last + 1 - first) - excl, quiet_clicks=quiet, clicks=clicks, ap_clicks=apcl, near=near,
                ctrl=ctrl, min_gap=mingap)


def _random_stream(seed, n_ticks=3000, T=1_000):
    """Syncs on some ticks of an integer grid (channel 1), clicks (2, 3) near ticks, dark, and in pairs, a few
    'ready' tags (7)."""
    rng = np.random.default_rng(seed)
    ticks = 50_000 + np.arange(n_ticks, dtype=np.int64) * T
    syncs = ticks[rng.random(n_ticks) < rng.uniform(0.05, 0.6)]
    clicks = np.concatenate([ticks[rng.random(n_ticks) < 0.3] - rng.integers(0, 300, n_ticks)[:1],
                             rng.integers(ticks[0] - 3 * T, ticks[-1] + 3 * T, rng.integers(50, 400))])
    clicks = np.concatenate([clicks, clicks[rng.random(clicks.size) < 0.2] + rng.integers(0, 400, 1)])
    ready = rng.integers(ticks[0], ticks[-1], rng.integers(0, 6))
    t = np.concatenate([syncs, clicks, ready])
    ch = np.concatenate([np.ones(syncs.size, np.int32), rng.integers(2, 4, clicks.size).astype(np.int32),
                         np.full(ready.size, 7, np.int32)])
    o = np.argsort(t, kind="stable")
    return t[o].astype(np.int64), ch[o]


@pytest.mark.parametrize("grid", [True, False])
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("regions", ["around the tick", "between ticks"])
@pytest.mark.parametrize("ap", [(0, 150), (100, 700)])
def test_streaming_counter_matches_plain_reference(seed, grid, regions, ap):
    """'between ticks': no pulse region at the ticks themselves, so a click's afterpulse span that reaches past
    the next recorded sync is clear or not by the time counted across that sync's segment too.  The afterpulse
    span (2 t1 - t0) shorter and longer than the period: the kernel's phase classes (a click's span within one
    segment of the grid) fold the pulse regions of one and of several periods."""
    T = 1_000
    t, ch = _random_stream(seed, T=T)
    ex = {1: [(-1_250, -700), (-100, 350)], 7: [(-500, 20_000)]}
    ap_ex = {1: [(-1_200, -800), (-50, 60)]} if regions == "around the tick" else {1: [(-1_400, -1_100)]}
    ref = _reference(t, ch, (2, 3), ex, ap_ex, ap, 1 if grid else None, float(T))
    rng = np.random.default_rng(100 + seed)
    for threaded in (False, True):
        cuts = sorted(rng.integers(0, t.size, rng.integers(0, 8)).tolist())
        d = DarkCounter([2, 3], ex, afterpulse_ps=ap, afterpulse_exclude=ap_ex, grid_channel=1 if grid else None,
                        period_ps=float(T) if grid else None, threaded=threaded)
        d._CAP = 2          # the rings grow on the way
        for c in split(TagChunk(t, ch), cuts):
            d.process(c)
        d.flush()
        d.result()
        assert max(d._k.ring_sizes.values()) > 2      # a ring grew on the way
        assert d.quiet_ps == ref["quiet_ps"]
        for k in ("quiet_clicks", "clicks", "ap_clicks", "near", "ctrl", "min_gap"):
            np.testing.assert_array_equal(getattr(d, {"quiet_clicks": "quiet_clicks"}.get(k, k)), ref[k], err_msg=k)


@pytest.mark.parametrize("grid", [True, False])
def test_counter_empty_stream_and_one_tag(grid):
    """Nothing, one click, one sync: the kernel's empty chunks and single tags (the grid never started)."""
    ex = {1: [(-100, 350)]}

    def run(t, ch):
        d = DarkCounter([2, 3], ex, afterpulse_ps=(0, 150), afterpulse_exclude={1: [(-50, 60)]},
                        grid_channel=1 if grid else None, period_ps=1_000.0 if grid else None, threaded=False)
        d.process(TagChunk(np.asarray(t, np.int64), np.asarray(ch, np.int32)))
        d.flush()
        return d.result()

    r = run([], [])
    assert r.quiet_s == 0 and r.clicks.tolist() == [0, 0] and np.isnan(r.rate_hz).all()
    r = run([5_000], [3])
    assert r.clicks.tolist() == [0, 1] and r.quiet_clicks.tolist() == [0, 1] and r.quiet_s == 1e-12
    assert r.afterpulse_clicks.tolist() == [0, 1] and r.dead_time_ps.tolist() == [-1, -1]
    r = run([5_000], [1])   # the sync's own picosecond lies in its excluded interval (grid or not)
    assert r.clicks.tolist() == [0, 0] and r.quiet_s == 0
