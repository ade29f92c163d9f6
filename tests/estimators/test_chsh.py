"""Counts, correlators, CHSH and QBER against hand counts and the Psi+ model."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from timetag.estimators import chsh, correlators, counts_from_correlators, qber, tally
from timetag.estimators.chsh import correlation_probabilities
from timetag.estimators.model import p_same, sample_pairs


def test_tally_counts_by_hand_and_skips_missing_settings():
    x = [0, 0, 2, -1, 3, 1]
    y = [0, 0, 1, 0, 1, 1]
    a = [1, 0, 1, 1, 0, 1]
    b = [1, 1, 1, 0, 0, 0]
    n = tally(x, y, a, b)
    assert n.shape == (4, 2, 2, 2)
    assert n.sum() == 5  # the X = -1 round cannot be assigned
    assert n[0, 0, 1, 1] == 1 and n[0, 0, 0, 1] == 1 and n[2, 1, 1, 1] == 1 and n[3, 1, 0, 0] == 1
    assert n[1, 1, 1, 0] == 1


def test_correlator_definition_and_nan_for_empty_pair():
    n = np.zeros((4, 2, 2, 2), int)
    n[2, 0, 1, 1], n[2, 0, 0, 1] = 30, 10  # 30 same, 10 different
    E = correlators(n)
    assert E[2, 0] == pytest.approx((30 - 10) / 40)
    assert np.isnan(E[3, 1])
    ps, pd = correlation_probabilities(n)
    assert ps[2, 0] == pytest.approx(0.75) and pd[2, 0] == pytest.approx(0.25)


def test_chsh_sign_convention_paper_values():
    E = np.zeros((4, 2))
    E[2, 0], E[3, 0], E[2, 1], E[3, 1] = -0.599, -0.664, 0.618, -0.697
    assert chsh(E) == pytest.approx(0.618 + 0.599 + 0.664 + 0.697)  # = 2.578, the paper's S
    assert chsh(E) == pytest.approx(2.578)


def test_model_reaches_tsirelson_and_key_anticorrelation():
    ps = p_same(1.0)
    E = 2 * ps - 1
    assert chsh(E) == pytest.approx(2 * np.sqrt(2))
    assert ps[0, 0] == pytest.approx(0) and ps[1, 1] == pytest.approx(0)  # key pairs perfectly anti-correlated


def test_qber_counts_equal_outputs_as_errors():
    n = np.zeros((4, 2, 2, 2), int)
    n[0, 0, 1, 0], n[0, 0, 1, 1] = 90, 10
    n[1, 1, 0, 1], n[1, 1, 0, 0] = 45, 5
    Q0, Q1, Q = qber(n)
    assert (Q0, Q1, Q) == pytest.approx((0.1, 0.1, 15 / 150))


def test_counts_from_correlators_roundtrip():
    E = {(2, 0): -0.599, (3, 0): -0.664, (2, 1): 0.618, (3, 1): -0.697}
    N = {(2, 0): 381, (3, 0): 431, (2, 1): 406, (3, 1): 420}
    Ec = correlators(counts_from_correlators(E, N))
    for xy, e in E.items():
        assert abs(Ec[xy] - e) <= 1.0 / N[xy] + 1e-12  # rounding to whole rounds


@given(st.floats(0.5, 1.0), st.integers(0, 2**32 - 1))
def test_depolarising_relation_S_and_Q(V, seed):
    # S = 2 sqrt2 V and Q = (1 - V)/2 for the Psi+ model, within sampling error
    x, y, a, b = sample_pairs(40000, V, seed)
    n = tally(x, y, a, b)
    S = chsh(correlators(n))
    Q = qber(n)[2]
    assert abs(S - 2 * np.sqrt(2) * V) < 5 * 2 * np.sqrt(1 / 5000)
    assert abs(Q - (1 - V) / 2) < 5 * np.sqrt(0.25 / 10000)
    # and the two are tied by S = 2 sqrt2 (1 - 2Q) up to the same errors
    assert abs(S - 2 * np.sqrt(2) * (1 - 2 * Q)) < 0.2
