"""The pulse fit's afterpulse term (issue 21: afterpulses of the pulse's own clicks lengthened the decay)."""
from __future__ import annotations

import numpy as np

from calibrate.delays import calibrate_delays
from calibrate.pulse import afterpulse_counts

SIGMA = 21_000 / 2.3548
TAU = 26_200.0
DEAD = 22_000.0
AP_TAU = 300_000.0


def _clicks(rng, n):
    return 12_000 + rng.normal(0, SIGMA, n) + rng.exponential(TAU, n)


def test_afterpulse_counts_match_sampled_afterpulses():
    # plain reference: every click (before the cut too) gets one afterpulse DEAD + Exp(AP_TAU) later
    rng = np.random.default_rng(1)
    n = 2_000_000
    t = _clicks(rng, n)
    ap = t + DEAD + rng.exponential(AP_TAU, n)
    edges = np.arange(0, 222_001, 500.0)
    got = afterpulse_counts(edges, 12_000.0, SIGMA, TAU, float(n), DEAD, AP_TAU, cut=0.0)
    want = np.histogram(ap, edges)[0]
    # per 10 ns: the binned convolution agrees with the samples within their Poisson scatter
    k = got.size // 20 * 20
    g, w = got[:k].reshape(-1, 20).sum(1), want[:k].reshape(-1, 20).sum(1)
    pull = (g - w) / np.sqrt(np.maximum(g, 1.0))
    assert np.all(np.abs(pull) < 4.5), pull
    assert abs(got.sum() - want.sum()) < 4 * np.sqrt(want.sum())
    # next to nothing at the sync tick (the clicks DEAD earlier are 3.8 sigma before the pulse), nothing before
    # the cut
    assert got[0] < 1e-4 * got.max()
    cut = afterpulse_counts(edges, 12_000.0, SIGMA, TAU, float(n), DEAD, AP_TAU, cut=100_250.0)
    assert np.all(cut[edges[1:] <= 100_000] == 0) and cut[-1] == got[-1]


def _histograms(rng, n, p_ap):
    edges = np.arange(0, 222_001, 500.0)
    fine = np.arange(-5_000, 20_001, 10.0)
    coarse, fh = [], []
    for _ in range(4):
        t = _clicks(rng, n)
        ap = (t + DEAD + rng.exponential(AP_TAU, n))[rng.random(n) < p_ap]
        t = np.concatenate([t, ap])
        t = t[t >= 0]                       # the hardware refers clicks before the sync tick elsewhere
        coarse.append(np.histogram(t, edges)[0] + rng.poisson(0.005 * np.diff(edges)))
        fh.append(np.histogram(t, fine)[0])
    return np.array(coarse), edges, (np.array(fh), fine)


def test_fit_recovers_decay_and_afterpulsing():
    # 4 % afterpulses per click (eight times the simulator's): without the term the decay comes out long
    rng = np.random.default_rng(7)
    counts, edges, eh = _histograms(rng, 150_000, 0.04)
    old = {c: 0 for c in (2, 3, 4, 5)}
    kw = dict(edge_hist=eh, fix_sigma=SIGMA, dead_time_ps=DEAD)
    with_term = calibrate_delays(counts, edges, [2, 3, 4, 5], old, **kw).fits[0]
    assert abs(with_term.tau - TAU) < 3 * with_term.err["tau"], (with_term.tau, with_term.err["tau"])
    assert abs(with_term.afterpulse - 0.04) < 3 * with_term.err["afterpulse"] + 0.004
    # (no dead-time term either: its free factor would take up part of the afterpulses' ramp)
    without = calibrate_delays(counts, edges, [2, 3, 4, 5], old, edge_hist=eh, fix_sigma=SIGMA,
                               afterpulse_tau_ps=None).fits[0]
    assert without.tau - TAU > 3 * without.err["tau"], (without.tau, without.err["tau"])
    # the fitted model (what the plots draw) includes the afterpulses: they are most of the late clicks
    late = edges[1:] > 150_000
    m, n = with_term.model(edges)[late].sum(), counts[0][late].sum()
    assert abs(m - n) < 4 * np.sqrt(n), (m, n)
    assert m > 1.5 * with_term.background * float(np.diff(edges)[late].sum())

