"""The paper's numbers from its own correlators and the round numbers its error bars imply.

The paper gives no raw counts: sigma_E = sqrt((1 - E^2)/N_xy) and sigma_Q = sqrt(Q(1-Q)/N) imply N_xy;
the two key pairs follow from Q0, Q1 and their sigmas; the two unreported pairs (X in {0,1}, X != Y, at a
node of the correlation) are set to E = 0 with the remaining rounds, so the total is the paper's 3342.
"""
import math

import numpy as np
import pytest

from timetag.estimators import (
    beta_samples, binomial_errors, counts_from_correlators, estimate_from_counts, fidelity_bound,
    fit_visibilities, min_block_length,
)
from timetag.estimators.finitekey import finite_key_length
from timetag.estimators.report import worst_case

E_PAPER = {(2, 0): (-0.599, 0.041), (3, 0): (-0.664, 0.036), (2, 1): (0.618, 0.039), (3, 1): (-0.697, 0.035)}
Q_PAPER = {(0, 0): (0.0781, 0.0127), (1, 1): (0.0777, 0.0132)}


def implied_n():
    N = {xy: round((1 - e * e) / s**2) for xy, (e, s) in E_PAPER.items()}
    N.update({xy: round(q * (1 - q) / s**2) for xy, (q, s) in Q_PAPER.items()})
    rest = 3342 - sum(N.values())
    N[(1, 0)], N[(0, 1)] = rest // 2, rest - rest // 2
    E = {xy: e for xy, (e, _) in E_PAPER.items()}
    E.update({xy: -(1 - 2 * q) for xy, (q, _) in Q_PAPER.items()})
    E[(1, 0)] = E[(0, 1)] = 0.0
    return counts_from_correlators(E, N), N


@pytest.fixture(scope="module")
def paper():
    n, N = implied_n()
    return n, N, estimate_from_counts(n, samples=40000, seed=1)


def test_implied_round_numbers(paper):
    _, N, res = paper
    assert [N[xy] for xy in [(2, 0), (3, 0), (2, 1), (3, 1)]] == pytest.approx([381, 431, 406, 420], abs=12)
    assert N[(0, 0)] == pytest.approx(446, abs=10) and N[(1, 1)] == pytest.approx(411, abs=10)
    assert res["rounds"] == 3342


def test_S_Q_and_binomial_sigmas(paper):
    _, _, res = paper
    assert res["S"] == pytest.approx(2.578, abs=0.003)
    assert res["S_err"] == pytest.approx(0.075, abs=0.003)
    assert res["Q"] == pytest.approx(0.078, abs=0.001) and res["Q_err"] == pytest.approx(0.009, abs=0.0005)
    assert res["Q0"] == pytest.approx(0.0781, abs=0.001) and res["Q1"] == pytest.approx(0.0777, abs=0.001)
    for xy, (e, s) in E_PAPER.items():
        assert res["E"][f"{xy[0]},{xy[1]}"] == pytest.approx(e, abs=0.003)
        assert res["E_err"][f"{xy[0]},{xy[1]}"] == pytest.approx(s, rel=0.05)


def test_beta_posterior_sigmas_match_paper(paper):
    n, _, res = paper
    for xy, (_, s) in E_PAPER.items():
        assert res["bayes"]["E"][f"{xy[0]},{xy[1]}"] == pytest.approx(s, rel=0.06)
    assert res["bayes"]["S"]["std"] == pytest.approx(0.075, rel=0.05)
    assert res["bayes"]["Q0"]["std"] == pytest.approx(0.0127, rel=0.06)
    assert res["bayes"]["Q1"]["std"] == pytest.approx(0.0132, rel=0.06)
    assert res["bayes"]["Q"]["std"] == pytest.approx(0.009, rel=0.08)
    lo, hi = res["bayes"]["S"]["ci"]
    assert lo < res["S"] < hi and 2.35 < lo and hi < 2.8


def test_key_rates_per_event(paper):
    _, _, res = paper
    assert res["key_rate_per_event"]["random_basis"] == pytest.approx(0.07, abs=0.003)
    assert res["key_rate_per_event"]["original"] == pytest.approx(0.039, abs=0.002)
    kr = res["bayes"]["key_rate_per_event"]["random_basis"]
    assert kr["ci"][0] < 0.07 < kr["ci"][1]


def test_worst_case_three_percent(paper):
    n, _, _ = paper
    wc = worst_case(n, 0.03, samples=100000, seed=2)
    assert wc["S"] == pytest.approx(2.4256, abs=0.012)  # paper: 2.4256
    assert wc["Q0"] == pytest.approx(0.107, abs=0.003) and wc["Q1"] == pytest.approx(0.107, abs=0.003)
    assert wc["positive"]["random_basis"] and not wc["positive"]["original"]


def test_binomial_errors_formula():
    n, _ = implied_n()
    errs = binomial_errors(n)
    E = (n[2, 0, 0, 0] + n[2, 0, 1, 1] - n[2, 0, 0, 1] - n[2, 0, 1, 0]) / n[2, 0].sum()
    assert errs["E_err"][2, 0] == pytest.approx(math.sqrt((1 - E * E) / n[2, 0].sum()))


def test_beta_samples_reproducible_and_shaped():
    n, _ = implied_n()
    a, b = beta_samples(n, 500, seed=3), beta_samples(n, 500, seed=3)
    assert a["E"].shape == (500, 4, 2) and np.array_equal(a["S"], b["S"])
    assert np.all((a["Q"] >= np.minimum(a["Q0"], a["Q1"])) & (a["Q"] <= np.maximum(a["Q0"], a["Q1"])))


def test_min_block_length_near_paper(paper):
    _, _, res = paper
    nmin = res["min_block_length"]
    assert 1.2e5 <= nmin <= 4e5  # paper Fig. 5: 1.75e5; documented spread of choices
    assert finite_key_length(nmin, res["S"], res["Q0"], res["Q1"]) > 0
    assert finite_key_length(nmin - 1, res["S"], res["Q0"], res["Q1"]) <= 0
    cp = min_block_length(res["S"], res["Q0"], res["Q1"], ds_method="clopper_pearson")
    assert 1.0e5 < cp < nmin  # the exact binomial bound is tighter than Hoeffding


def test_finite_key_edges():
    assert min_block_length(2.2, 0.1) == float("inf")  # no asymptotic key at all
    N = np.logspace(5, 9, 20)
    r = finite_key_length(N, 2.578, 0.078) / N
    assert np.all(np.diff(r) > 0)  # the rate only improves with the block length
    from timetag.estimators import key_rate
    assert 0 < r[-1] < key_rate(2.578, 0.078)  # finite-size penalties and f_EC > 1 cost rate
    # with f_EC = 1 and N -> large the rate approaches the asymptotic per-event rate
    big = finite_key_length(1e14, 2.578, 0.078, f_ec=1.0) / 1e14
    assert big == pytest.approx(key_rate(2.578, 0.078), abs=2e-4)


def test_fidelity_bound_from_paper_correlators(paper):
    _, _, res = paper
    V = res["fidelity"]["V"]
    assert V[0] == pytest.approx(0.869, abs=0.004) and V[1] == pytest.approx(0.888, abs=0.004)
    assert res["fidelity"]["F"] == pytest.approx(0.892, abs=0.003)
    assert 0.01 < res["fidelity"]["F_err"] < 0.03  # paper: 0.023


def test_fidelity_model_visibility_and_d2():
    from timetag.estimators.model import p_same
    E = 2 * p_same(0.8) - 1
    for free in (False, True):
        vis = fit_visibilities(E, free_phase=free)
        assert vis["V"] == pytest.approx([0.8, 0.8], abs=1e-9)
    assert fidelity_bound([0.8, 0.8], d=2)["F"] == pytest.approx((1 + 3 * 0.8) / 4)
    assert fidelity_bound([1.0, 1.0])["F"] == pytest.approx(1.0)
