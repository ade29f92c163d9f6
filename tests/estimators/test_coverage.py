"""Coverage of the reported 95 % intervals at ~12 rounds per input pair (issue 21, item 3).

Two checks: an exact one (every outcome of fixed rounds per pair enumerated with its binomial probability, no
sampling) of the mid-p / MOVER interval of S, and a Monte Carlo one at 100 rounds with random rounds per pair whose
threshold lies 2.9 binomial errors below the nominal 95 % and 2.7 above the ~90.5 % of the credible intervals used
before.
"""
import numpy as np
import pytest
from scipy.stats import binom

from timetag.estimators import estimate_from_counts
from timetag.estimators.chsh import CHSH_TERMS
from timetag.estimators.keyrate import key_rate
from timetag.estimators.model import p_same, sample_counts
from timetag.estimators.uncertainty import interval_table, midp_interval, mover

PAPER_E = {(2, 0): -0.599, (3, 0): -0.664, (2, 1): 0.618, (3, 1): -0.697, (0, 0): -0.844, (1, 1): -0.844}


def paper_truth():
    E = np.zeros((4, 2))
    for xy, e in PAPER_E.items():
        E[xy] = e
    return (1 + E) / 2


def test_midp_limits_solve_the_mid_p_equations():
    for k, N in [(0, 10), (3, 10), (7, 12), (12, 12), (1, 1), (40, 400)]:
        lo, hi = midp_interval(k, N, 0.95)
        mid_p = lambda p: binom.sf(k, N, p) + 0.5 * binom.pmf(k, N, p)  # noqa: E731  P(X > k) + P(X = k)/2
        assert lo <= k / N <= hi
        if k > 0:
            assert mid_p(lo) == pytest.approx(0.025, abs=1e-9)
        else:
            assert lo == 0.0
        if k < N:
            assert mid_p(hi) == pytest.approx(0.975, abs=1e-9)
        else:
            assert hi == 1.0
    lo, hi = midp_interval(np.array([0, 3]), np.array([0, 10]))
    assert np.isnan(lo[0]) and np.isnan(hi[0]) and 0 < lo[1] < 0.3 < hi[1]


def test_mover_combines_distances_in_quadrature():
    assert mover([0.3], [0.1], [0.4]) == pytest.approx((0.3, 0.1, 0.4))  # one term: its own interval
    tot, lo, hi = mover([1.0, 2.0], [0.7, 1.6], [1.3, 2.1])
    assert tot == 3.0 and lo == pytest.approx(3.0 - 0.5) and hi == pytest.approx(3.0 + np.hypot(0.3, 0.1))


def exact_coverage_S(ps, N, level=0.95, cut=1e-6):
    """P(S_true in the mid-p/MOVER interval) with N rounds in every CHSH pair, summed over all outcomes
    (k per pair with probability below ``cut`` are left out; their total is returned as ``lost``)."""
    k = np.arange(N + 1)
    w, est, d_lo, d_hi = np.ones(1), np.zeros(1), np.zeros(1), np.zeros(1)
    for xy, sign in CHSH_TERMS.items():
        pmf = binom.pmf(k, N, ps[xy])
        kk, pm = k[pmf > cut], pmf[pmf > cut]
        lo, hi = midp_interval(kk, np.full(len(kk), N), level)
        e, a, b = sign * (2 * kk / N - 1), sign * (2 * lo - 1), sign * (2 * hi - 1)
        lo_t, hi_t = np.minimum(a, b), np.maximum(a, b)
        w = np.outer(w, pm).ravel()
        est = np.add.outer(est, e).ravel()
        d_lo = np.add.outer(d_lo, (e - lo_t) ** 2).ravel()
        d_hi = np.add.outer(d_hi, (hi_t - e) ** 2).ravel()
    S_true = sum(sign * (2 * ps[xy] - 1) for xy, sign in CHSH_TERMS.items())
    inside = (est - np.sqrt(d_lo) <= S_true) & (S_true <= est + np.sqrt(d_hi))
    return float(w[inside].sum()), float(1 - w.sum())


@pytest.mark.parametrize("N", [12, 25])
@pytest.mark.parametrize("truth", ["paper", "V0.95"])
def test_exact_coverage_of_S_at_fixed_rounds_per_pair(truth, N):
    ps = paper_truth() if truth == "paper" else p_same(0.95)
    cov, lost = exact_coverage_S(ps, N)
    assert lost < 1e-3
    # discrete outcomes make the exact coverage oscillate with N and p (94.6-95.8 % here); the credible
    # intervals of the Beta posteriors fall short mostly through the random rounds per pair (next test)
    assert 0.94 <= cov <= cov + lost <= 0.96, (cov, lost)
    # the enumeration and the code that reports intervals agree
    n = np.zeros((4, 2, 2, 2), np.int64)
    for xy in list(CHSH_TERMS) + [(0, 0), (1, 1)]:
        same = int(round(N * ps[xy]))
        n[xy + (1, 1)], n[xy + (0, 1)] = same, N - same
    lo, hi = interval_table(n, 0.95)["S"]
    tot, lo_ref, hi_ref = mover(*zip(*[
        (s * (2 * n[xy + (1, 1)] / N - 1), *sorted(s * (2 * v - 1) for v in midp_interval(n[xy + (1, 1)], N)))
        for xy, s in CHSH_TERMS.items()]))
    assert (lo, hi) == pytest.approx((lo_ref, hi_ref))


def test_key_rate_coverage_at_100_rounds_with_random_rounds_per_pair():
    # V = 0.95, 100 rounds (~12 per input pair): the credible intervals of the Beta posteriors held the true key rate
    # in ~90.5 % of runs, the mid-p/MOVER intervals in 95 %.  1000 runs: binomial error 0.7 % at 95 %, 0.9 % at
    # 90.5 %; the threshold 93 % is 2.9 / 2.7 of them from each, so this fails for the old intervals and passes for
    # nominal ones except in ~0.2-0.4 % of seeds.
    ps = p_same(0.95)
    S_true = sum(sign * (2 * ps[xy] - 1) for xy, sign in CHSH_TERMS.items())
    r_true = key_rate(S_true, ps[0, 0], ps[1, 1])
    truth = {"S": S_true, "Q": ps[0, 0]}
    runs = sample_counts(100, ps, rng=2021, runs=1000)
    hit = {"S": 0, "Q": 0, "rate": 0, "rate_before": 0}
    used = 0
    for i, n in enumerate(runs):
        tab = interval_table(n, 0.95)
        if tab["key_rate_per_event"]["random_basis"] is None:
            continue
        used += 1
        for q in ("S", "Q"):
            hit[q] += tab[q][0] <= truth[q] <= tab[q][1]
        lo, hi = tab["key_rate_per_event"]["random_basis"]
        hit["rate"] += max(lo, 0.0) <= r_true <= max(hi, 0.0)
        old = estimate_from_counts(n, samples=1000, seed=i, intervals="posterior")["intervals"]
        lo, hi = old["key_rate_per_event"]["random_basis"]["95%"]
        hit["rate_before"] += lo <= r_true <= hi
    cov = {q: h / used for q, h in hit.items()}
    assert used > 990
    assert cov["rate"] >= 0.93 and cov["rate_before"] < 0.93, cov
    assert 0.93 <= cov["S"] <= 0.97 and 0.93 <= cov["Q"] <= 0.97, cov
