"""Uncertainties that hold at every sample size (issue 21): no zero-width error bars, stated priors, intervals whose
coverage is measured against known truth, small samples flagged."""
import numpy as np
import pytest
from scipy.stats import beta as beta_dist

from timetag.estimators import estimate_from_counts, tally
from timetag.estimators.counts import counts_from_correlators
from timetag.estimators.keyrate import S_MAX, key_rate
from timetag.estimators.model import p_same, sample_counts, sample_pairs
from timetag.estimators.uncertainty import (
    binomial_errors, interval_table, pair_intervals, posterior_errors, posterior_summary, prior_table,
)

PAPER_E = {(2, 0): -0.599, (3, 0): -0.664, (2, 1): 0.618, (3, 1): -0.697, (0, 0): -0.844, (1, 1): -0.844,
           (0, 1): 0.0, (1, 0): 0.0}


def paper_truth():
    return (1 + np.array([[PAPER_E[(x, y)] for y in range(2)] for x in range(4)])) / 2


def counts(N_xy, same_xy):
    """n[x, y, a, b] with the given rounds and equal-output rounds per pair (dicts (x, y) -> int)."""
    n = np.zeros((4, 2, 2, 2), np.int64)
    for xy, N in N_xy.items():
        s = same_xy.get(xy, N // 2)
        n[xy + (1, 1)], n[xy + (0, 1)] = s, N - s
    return n


ALL = [(x, y) for x in range(4) for y in range(2)]


def test_all_equal_outputs_and_no_key_errors_never_give_zero_width():
    # the case: E = +-1 and Q = 0 used to be reported as '+- 0'
    N = {xy: 12 for xy in ALL}
    same = {(2, 1): 12, (2, 0): 0, (3, 0): 2, (3, 1): 2, (0, 0): 0, (1, 1): 0}
    n = counts(N, same)
    assert binomial_errors(n)["E_err"][2, 1] == 0.0 and binomial_errors(n)["Q0_err"] == 0.0  # the plug-in formula
    res = estimate_from_counts(n, samples=2000)
    assert res["E"]["2,1"] == 1.0 and res["E"]["2,0"] == -1.0 and res["Q0"] == 0.0
    assert res["S"] == pytest.approx(2 + 2 * 8 / 12)
    for k in ("2,1", "2,0", "3,0", "3,1"):
        assert res["E_err"][k] > 0.05
    assert res["Q0_err"] > 0.01 and res["Q1_err"] > 0.01 and res["Q_err"] > 0.01 and res["S_err"] > 0.1
    for lab in ("68.3%", "95%"):
        lo, hi = res["intervals"]["Q0"][lab]
        assert 0 <= lo < 0.01 and hi > 0.05  # [~0, q_hi]: the truth can be above 0
        lo, hi = res["intervals"]["E"]["2,1"][lab]
        assert lo < 0.95 and hi <= 1.0
    # the S interval reaches down to physical values, and S = 3.33 is explained as a fluctuation, not endorsed
    lo, hi = res["intervals"]["S"]["95%"]
    assert lo < S_MAX < hi
    assert "statistical fluctuation" in next(w["message"] for w in res["warnings"]
                                             if w["code"] == "S_above_quantum_bound")
    codes = [w["code"] for w in res["warnings"]]
    assert {"few_rounds", "extreme_correlator", "no_key_errors", "S_above_quantum_bound"} <= set(codes)


def test_posterior_errors_match_binomial_at_large_N_and_the_stated_prior():
    x, y, a, b = sample_pairs(40000, 0.9, 5)
    n = tally(x, y, a, b)
    pe, be = posterior_errors(n), binomial_errors(n)
    np.testing.assert_allclose(pe["E_err"], be["E_err"], rtol=0.01)
    for k in ("S_err", "Q0_err", "Q1_err", "Q_err"):
        assert pe[k] == pytest.approx(be[k], rel=0.01)
    # exact Beta quantiles of the stated prior: Kerman's 1/3 on CHSH pairs, Jeffreys' 1/2 on key pairs
    a = prior_table()
    assert a[2, 0] == a[3, 1] == pytest.approx(1 / 3) and a[0, 0] == a[1, 1] == 0.5
    n = counts({xy: 10 for xy in ALL}, {(0, 0): 0, (2, 0): 3})
    lo, hi = pair_intervals(n, 0.95)
    assert lo[0, 0] == pytest.approx(beta_dist.ppf(0.025, 0.5, 10.5))
    assert hi[2, 0] == pytest.approx(beta_dist.ppf(0.975, 3 + 1 / 3, 7 + 1 / 3))
    assert prior_table("uniform")[2, 0] == 1.0
    with pytest.raises(ValueError, match="unknown prior"):
        prior_table("flat")


def test_key_rate_interval_has_its_physical_floor():
    s = posterior_summary(np.linspace(-0.1, 0.2, 1001), 0.95, physical_range=(0.0, None))
    assert s["ci"][0] < 0 and s["ci_physical"] == [0.0, s["ci"][1]]
    n = sample_counts(150, p_same(0.85), rng=3)
    res = estimate_from_counts(n, samples=4000)
    b = res["bayes"]["key_rate_per_event"]["random_basis"]
    assert b["ci"][0] < 0 and b["ci_physical"][0] == 0.0 and b["physical_range"] == [0.0, None]
    raw = interval_table(n, 0.95)["key_rate_per_event"]["random_basis"]
    assert raw[0] < 0 < raw[1]
    assert res["intervals"]["key_rate_per_event"]["random_basis"]["95%"] == [0.0, pytest.approx(raw[1])]
    assert any(w["code"] == "key_rate_floor" for w in res["warnings"])
    # the credible interval of the posterior, on request, gets the same floor
    old = estimate_from_counts(n, samples=4000, intervals="posterior")
    assert old["intervals"]["key_rate_per_event"]["random_basis"]["95%"] == b["ci_physical"]


def test_S_above_tsirelson_is_a_fluctuation_or_not():
    # ~1100 rounds at V = 1: S scatters around 2 sqrt 2, half the runs above it (here |E| = 0.723 each)
    res = estimate_from_counts(counts({xy: 137 for xy in ALL}, {(2, 0): 19, (3, 0): 19, (2, 1): 118, (3, 1): 19}),
                               samples=2000)
    assert res["S"] > S_MAX
    w = [w for w in res["warnings"] if w["code"] == "S_above_quantum_bound"]
    assert len(w) == 1 and "statistical fluctuation" in w[0]["message"]
    # far above 2 sqrt 2 with small errors: not a fluctuation (mislabelled inputs, ...)
    res = estimate_from_counts(counts({xy: 2000 for xy in ALL}, {(2, 0): 0, (3, 0): 0, (2, 1): 2000, (3, 1): 20}),
                               samples=0)
    w = [w for w in res["warnings"] if w["code"] == "S_above_quantum_bound"]
    assert len(w) == 1 and "more than a fluctuation" in w[0]["message"]


def test_the_papers_counts_raise_no_small_sample_warning():
    N = {(2, 0): 381, (3, 0): 431, (2, 1): 406, (3, 1): 420, (0, 0): 446, (1, 1): 411, (0, 1): 424, (1, 0): 423}
    E = dict(PAPER_E)
    E[(0, 0)], E[(1, 1)] = -(1 - 2 * 0.0781), -(1 - 2 * 0.0777)
    res = estimate_from_counts(counts_from_correlators(E, N), samples=4000)
    # only what the paper says itself: the original protocol's rate is not established (its worst case is negative)
    assert [w["code"] for w in res["warnings"]] == ["key_rate_floor"]
    assert "original protocol" in res["warnings"][0]["message"] and "random key" not in res["warnings"][0]["message"]
    assert res["intervals"]["prior"] == "neutral-chsh" and res["bayes"]["prior"] == "neutral-chsh"


def test_sample_counts_is_the_distribution_of_tallied_pairs():
    ps = p_same(0.9)
    many = sample_counts(400, ps, rng=1, runs=400)
    assert many.shape == (400, 4, 2, 2, 2) and (many.sum(axis=(1, 2, 3, 4)) == 400).all()
    ref = np.array([tally(*sample_pairs(400, 0.9, s)) for s in range(400)])
    for arr in (many, ref):
        N = arr.sum(axis=(3, 4))
        same = arr[..., 0, 0] + arr[..., 1, 1]
        assert N.mean(axis=0) == pytest.approx(np.full((4, 2), 50), abs=2)
        np.testing.assert_allclose(same.sum(axis=0) / N.sum(axis=0), ps, atol=0.015)


def coverage(n_rounds, runs, prior, samples=1000, intervals="midp-mover"):
    """Fraction of runs whose 95 % intervals of S and of the key rate hold the truth (paper-like truth)."""
    ps = paper_truth()
    E = 2 * ps - 1
    S_true = E[2, 1] - E[2, 0] - E[3, 0] - E[3, 1]
    r_true = key_rate(S_true, ps[0, 0], ps[1, 1])
    hit = np.zeros(2)
    for i, n in enumerate(sample_counts(n_rounds, ps, rng=[21, n_rounds], runs=runs)):
        iv = estimate_from_counts(n, samples=samples, seed=i, prior=prior, intervals=intervals)["intervals"]
        lo, hi = iv["S"]["95%"]
        hit[0] += lo <= S_true <= hi
        lo, hi = iv["key_rate_per_event"]["random_basis"]["95%"]
        hit[1] += lo <= r_true <= hi
    return hit / runs


def test_coverage_of_S_and_key_rate_at_200_rounds():
    # 300 runs: binomial error of a 95 % coverage 1.3 %; full study: benchmarks/validate_estimators.py; the 100-round
    # case, where the credible intervals fall short, is tests/estimators/test_coverage.py
    cov = coverage(200, 300, "neutral-chsh")
    assert np.all(np.abs(cov - 0.95) < 0.03), cov


def test_coverage_check_fails_for_the_uniform_prior_of_before():
    # the uniform prior pulls every correlator toward 0 by N/(N + 2): its key-rate intervals sit below the truth
    # (the issue measured 91.5 % at 200 rounds); the same check must catch it
    old = coverage(200, 300, "uniform", intervals="posterior")
    assert old[1] < 0.93, old


def test_estimate_prints_intervals_and_warnings_for_a_small_run(tmp_path, capsys):
    from estimate_cases import labs, run, write_pair
    pair = write_pair(tmp_path, *labs(80, V=0.95, seed=4))
    code, out, err = run(["estimate", str(pair[0]), str(pair[1]), "--samples", "2000"], capsys)
    assert code == 0, err
    assert "95 % interval" in out and "warning: few rounds per input pair" in out
    assert "intervals: confidence intervals: mid-p per input pair" in out and "MOVER" in out
    code, out, err = run(["estimate", str(pair[0]), str(pair[1]), "--json", "--samples", "0"], capsys)
    import json
    obj = json.loads(out)
    # the confidence intervals need no posterior samples
    assert obj["warnings"][0]["code"] == "few_rounds" and obj["intervals"]["method"] == "midp-mover"
    lo, hi = obj["intervals"]["S"]["95%"]
    assert lo < obj["S"] < hi
    assert obj["intervals"]["Q0"]["95%"][1] > obj["Q0"]
