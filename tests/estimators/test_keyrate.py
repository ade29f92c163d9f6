"""Key rates against the paper's numbers and independent evaluations of the bounds."""
import math

import numpy as np
import pytest

from timetag.estimators import binary_entropy, entropy_bound, key_rate, threshold_depolarising
from timetag.estimators.keyrate import S_MAX, depolarising_S, entropy_random_basis_raw, threshold_S

S_PAPER, Q_PAPER = 2.578, 0.078


def h(p):
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def test_binary_entropy_values():
    assert binary_entropy(0.5) == pytest.approx(1.0)
    assert binary_entropy(0.0) == 0.0 and binary_entropy(1.0) == 0.0
    assert binary_entropy(0.11) == pytest.approx(h(0.11))


def test_original_protocol_paper_rate():
    # Pironio 2009 bound written out independently
    H = 1 - h((1 + math.sqrt((S_PAPER / 2) ** 2 - 1)) / 2)
    assert entropy_bound(S_PAPER, "original") == pytest.approx(H)
    r_round = key_rate(S_PAPER, Q_PAPER, protocol="original", per="round")
    assert r_round == pytest.approx(H - h(Q_PAPER))
    assert r_round == pytest.approx(0.157, abs=0.002)
    assert key_rate(S_PAPER, Q_PAPER, protocol="original") == pytest.approx(0.039, abs=0.001)


def test_random_basis_paper_rate_about_0_07_per_event():
    assert entropy_bound(S_PAPER) == pytest.approx(0.676, abs=0.002)
    r = key_rate(S_PAPER, Q_PAPER)
    assert r == pytest.approx(0.07, abs=0.003)  # paper: 0.07 bits per event out of 0.25
    # the affine bound of Tan's thesis cross-checks the closed form to within 0.01 per key round
    assert abs(entropy_bound(S_PAPER, "tan_affine") - entropy_bound(S_PAPER)) < 0.01


def test_closed_form_is_convexified_and_near_affine():
    s = np.linspace(2.0, S_MAX, 801)
    H = entropy_bound(s)
    assert np.all(np.diff(H, 2) >= -1e-9)  # convex
    assert np.all(H <= entropy_random_basis_raw(s) + 1e-12)  # a hull lies below the curve
    assert H[0] == pytest.approx(0.0, abs=1e-9) and H[-1] == pytest.approx(1.0, abs=2e-3)
    m = (s > 2.1) & (s < 2.75)
    assert np.max(np.abs(H[m] - entropy_bound(s[m], "tan_affine"))) < 0.015
    # both protocols certify nothing at or below the classical bound
    assert entropy_bound(2.0, "original") == 0.0 and entropy_bound(1.5) == 0.0


def test_two_bases_beat_one_basis_everywhere_inside():
    s = np.linspace(2.05, 2.8, 50)
    assert np.all(entropy_bound(s) > entropy_bound(s, "original"))


def test_depolarising_thresholds():
    rb, orig, aff = (threshold_depolarising(p) for p in ("random_basis", "original", "tan_affine"))
    assert 0.082 <= rb["Q"] <= 0.085  # paper: 8.2 %; reference: 8.36 %
    assert aff["Q"] == pytest.approx(0.0840, abs=0.0005)
    assert orig["Q"] == pytest.approx(0.0715, abs=0.0005)  # paper: 7.1 %
    # the returned S is on the depolarising line and gives zero rate there
    assert rb["S"] == pytest.approx(2 * math.sqrt(2) * (1 - 2 * rb["Q"]))
    assert key_rate(rb["S"], rb["Q"], per="round") == pytest.approx(0.0, abs=1e-9)
    assert 2.35 < rb["S"] < 2.37  # paper: S > 2.362
    assert key_rate(depolarising_S(0.08), 0.08) > 0 > key_rate(depolarising_S(0.08), 0.08, protocol="original")


def test_worst_case_positive_only_for_random_basis():
    S_wc, Q_wc = 2.4256, 0.107
    assert key_rate(S_wc, Q_wc, per="round") > 0
    assert key_rate(S_wc, Q_wc, per="round") == pytest.approx(0.006, abs=0.002)
    assert key_rate(S_wc, Q_wc, per="round", protocol="tan_affine") == pytest.approx(0.011, abs=0.002)
    assert key_rate(S_wc, Q_wc, per="round", protocol="original") < 0


def test_key_rate_vectorises_and_per_event_factor():
    S = np.array([2.5, 2.6, 2.7])
    r = key_rate(S, 0.05, per="round")
    assert r.shape == (3,) and np.all(np.diff(r) > 0)
    assert key_rate(S, 0.05) == pytest.approx(r / 4)
    assert key_rate(2.6, 0.05, p_key=0.5) == pytest.approx(r[1] / 2)


def test_threshold_S_at_given_qber():
    s = threshold_S(Q_PAPER)
    assert key_rate(s, Q_PAPER, per="round") == pytest.approx(0.0, abs=1e-9)
    assert 2.3 < s < S_PAPER
    assert math.isnan(threshold_S(0.5))  # h(0.5) = 1: no S can pay for the error correction


def test_unknown_protocol_message():
    with pytest.raises(ValueError, match="unknown protocol"):
        entropy_bound(2.5, "bb84")
