"""Joining the two labs' rounds: clock estimate, dropped/extra rounds, sifting."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from timetag.errors import EstimationError
from timetag.estimators.join import estimate_clock, join_rounds, map_alice_to_bob, sift
from timetag.records import FLAG_LOST_DATA, ROUND_DTYPE, SETTING_NONE


def make_labs(n, mean_gap_ps, offset_ps, drift, drop_a=(), drop_b=(), extra_b=0, jitter_ps=1000, seed=0):
    """Two labs seeing the same n triggers; each record's 'count' carries the true trigger id (for checks)."""
    rng = np.random.default_rng(seed)
    t = 10**12 + np.cumsum(rng.exponential(mean_gap_ps, n)).astype(np.int64)
    A = np.zeros(n, ROUND_DTYPE)
    B = np.zeros(n, ROUND_DTYPE)
    A["trigger_time"] = t + rng.normal(0, jitter_ps, n).astype(np.int64)
    B["trigger_time"] = t + np.rint(offset_ps + drift * t + rng.normal(0, jitter_ps, n)).astype(np.int64)
    A["count"] = B["count"] = np.arange(n)
    A["setting"] = rng.integers(0, 4, n)
    B["setting"] = rng.integers(0, 2, n)
    A = np.delete(A, list(drop_a))
    B = np.delete(B, list(drop_b))
    if extra_b:
        X = np.zeros(extra_b, ROUND_DTYPE)
        X["trigger_time"] = rng.integers(t[0], t[-1], extra_b) + int(offset_ps)
        X["count"] = -1
        B = np.sort(np.concatenate([B, X]), order="trigger_time")
    A["index"] = np.arange(len(A))
    B["index"] = np.arange(len(B))
    return A, B


def check_truth(j, A, B):
    assert np.array_equal(A["count"][j.ia], B["count"][j.ib]), "a pair joins two different triggers"
    expected = np.intersect1d(A["count"], B["count"][B["count"] >= 0])
    assert j.n_pairs == len(expected)


def test_index_fast_path_with_offset_and_drift():
    A, B = make_labs(500, 1e9, 3.7e12, 9e-7)
    j = join_rounds(A, B)
    assert j.method == "index"
    check_truth(j, A, B)
    assert j.drift == pytest.approx(9e-7, abs=1e-9)
    assert len(j.unmatched_alice) == 0 and len(j.unmatched_bob) == 0
    assert np.max(np.abs(j.residuals)) < 10_000


def test_one_missing_round_does_not_shift_later_pairs():
    A, B = make_labs(400, 2e9, -1.5e12, -6e-7, drop_b=[37])
    j = join_rounds(A, B)
    check_truth(j, A, B)
    assert list(j.unmatched_alice) == [37] and len(j.unmatched_bob) == 0
    assert j.method == "intervals"  # index pairing is inconsistent after the drop
    assert j.index_slips == 1


@settings(max_examples=25, deadline=None)
@given(n=st.integers(60, 600), gap_exp=st.sampled_from([9, 10, 12]), offset_s=st.floats(-5, 5),
       drift_ppm=st.floats(-1.0, 1.0), frac_a=st.floats(0, 0.2), frac_b=st.floats(0, 0.2),
       extra=st.integers(0, 10), seed=st.integers(0, 2**31))
def test_join_property_drops_extras_drift(n, gap_exp, offset_s, drift_ppm, frac_a, frac_b, extra, seed):
    rng = np.random.default_rng(seed)
    da = np.nonzero(rng.random(n) < frac_a)[0]
    db = np.nonzero(rng.random(n) < frac_b)[0]
    A, B = make_labs(n, 10.0**gap_exp, offset_s * 1e12, drift_ppm * 1e-6, da, db, extra, seed=seed)
    j = join_rounds(A, B)
    ca, cb = A["count"][j.ia], B["count"][j.ib]
    wrong = ca != cb
    # Two different triggers can only be joined by chance, when both true partners are missing (dropped or
    # extra) and the two times fall within the tolerance: never at the expense of an available true partner,
    # and at most once in a run of this size.
    assert not np.isin(ca[wrong], B["count"]).any() and not np.isin(cb[wrong], A["count"]).any()
    assert wrong.sum() <= 1
    both = np.intersect1d(A["count"], B["count"])
    assert j.n_pairs - wrong.sum() >= len(both) - 1  # a chance coincidence may cost at most one true pair
    assert len(j.unmatched_alice) + j.n_pairs == len(A) and len(j.unmatched_bob) + j.n_pairs == len(B)


def test_given_clock_is_used_and_estimate_clock_agrees():
    A, B = make_labs(300, 1e10, 2.2e12, 4e-7, drop_a=[5, 6, 7])
    off, dr, method, _ = estimate_clock(A["trigger_time"], B["trigger_time"])
    assert method == "intervals"
    mapped = map_alice_to_bob(A["trigger_time"], off, dr)
    j = join_rounds(A, B, offset_ps=off, drift=dr)
    assert j.method == "given"
    check_truth(j, A, B)
    assert np.max(np.abs(mapped[j.ia] - B["trigger_time"][j.ib])) < 20_000


def test_empty_side_reports_everything_unmatched():
    A, B = make_labs(10, 1e9, 0, 0)
    j = join_rounds(A, B[:0])
    assert j.n_pairs == 0 and len(j.unmatched_alice) == 10


def test_no_fingerprints_raises_clear_error():
    A = np.zeros(20, ROUND_DTYPE)
    B = np.zeros(20, ROUND_DTYPE)
    A["trigger_time"] = np.arange(20) * 10**9
    B["trigger_time"] = np.arange(20) * 10**9 + 777 * 10**6 + (np.arange(20) * 3) ** 3 * 10**5
    B["index"] = np.arange(20) + 100  # no common indices
    A["index"] = np.arange(20)
    with pytest.raises(EstimationError, match="clock offset"):
        join_rounds(A, B)


def test_sift_key_test_missing_and_flag_policy():
    A, B = make_labs(8, 1e9, 0, 0)
    A["setting"] = [0, 1, 2, 3, 0, 1, SETTING_NONE, 2]
    B["setting"] = [0, 1, 0, 1, 1, 0, 0, SETTING_NONE]
    A["flags"][2] = FLAG_LOST_DATA
    j = join_rounds(A, B)
    s = sift(A, B, j)
    assert s.stats["unassignable"] == 2 and s.stats["missing_setting_alice"] == 1
    assert s.stats["key"] == 2 and s.stats["test"] == 2 and s.stats["other"] == 2
    assert s.stats["flagged_used"] == 1
    d = sift(A, B, j, "drop")
    assert d.stats["test"] == 1 and d.stats["used"] == 5
    with pytest.raises(EstimationError, match="flagged"):
        sift(A, B, j, "maybe")
