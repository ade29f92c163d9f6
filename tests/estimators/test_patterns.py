"""Psi- heralds: relabelling into the Psi+ frame (y -> 1 - y), on the model, hand-made rounds and the simulator."""
from dataclasses import replace

import numpy as np
import pytest

from timetag.estimators import chsh, correlators, estimate, estimate_from_pairs, qber, tally, to_psi_plus_frame
from timetag.estimators.model import p_same, sample_pairs
from timetag.estimators.join import join_rounds, sift
from timetag.records import PATTERN_NONE, PATTERN_OTHER, PATTERN_PSI_MINUS, PATTERN_PSI_PLUS, ROUND_DTYPE

# the paper's angles, written out here so the checks do not lean on the package's own tables
ALPHA = np.radians([-22.5, 22.5, -45.0, 0.0])
BETA = np.radians([22.5, -22.5])


def E_sim(V, state):
    """Correlators as timetag.simulator.generate draws them: -V cos 2(alpha +- beta)."""
    s = 1.0 if state == "psi+" else -1.0
    return -V * np.cos(2 * (ALPHA[:, None] + s * BETA[None, :]))


def test_model_matches_simulator_formula_for_both_states():
    for state in ("psi+", "psi-"):
        assert np.allclose(2 * p_same(0.83, state) - 1, E_sim(0.83, state))


def test_psi_minus_is_psi_plus_with_bob_input_swapped():
    Em, Ep = E_sim(0.9, "psi-"), E_sim(0.9, "psi+")
    assert np.allclose(Em, Ep[:, ::-1])
    # an output flip would only fix X = 2: the documented reason for relabelling the input instead
    flip_ok = np.isclose(-Em, Ep).all(axis=1)
    assert flip_ok.tolist() == [False, False, True, False]


def test_to_psi_plus_frame_only_touches_valid_psi_minus_inputs():
    y = np.array([0, 1, 0, 1, -1, 0, 1])
    pat = np.array([PATTERN_PSI_PLUS, PATTERN_PSI_PLUS, PATTERN_PSI_MINUS, PATTERN_PSI_MINUS, PATTERN_PSI_MINUS,
                    PATTERN_NONE, PATTERN_OTHER])
    assert to_psi_plus_frame(y, pat).tolist() == [0, 1, 1, 0, -1, 0, 1]


def test_sampled_psi_minus_rounds_give_psi_plus_statistics_after_relabelling():
    V, n = 0.9, 60_000
    x, y, a, b = sample_pairs(n, V, 3, pattern="psi-")
    raw = tally(x, y, a, b)
    fixed = tally(x, to_psi_plus_frame(y, np.full(n, PATTERN_PSI_MINUS)), a, b)
    S_raw, S = chsh(correlators(raw)), chsh(correlators(fixed))
    err = 4 * np.sqrt(8 / (n / 8))  # 4 sigma, each of the 4 terms has variance <= 1/N_xy
    assert abs(S_raw) < err  # unrelabelled, the CHSH combination of Psi- vanishes at these angles
    assert abs(S - 2 * np.sqrt(2) * V) < err
    assert abs(qber(fixed)[2] - (1 - V) / 2) < 4 * np.sqrt(0.05 * 0.95 / (n / 4))
    # estimate_from_pairs takes the pattern directly (live mode)
    est = estimate_from_pairs(x, y, a, b, pattern=np.full(n, PATTERN_PSI_MINUS), samples=0)
    assert est["S"] == pytest.approx(S)


def _labs(n, V, pattern, seed=0):
    rng = np.random.default_rng(seed)
    x, y, a, b = sample_pairs(n, V, rng, pattern=pattern)
    t = 10**12 + np.cumsum(rng.exponential(1e9, n)).astype(np.int64)
    A, B = np.zeros(n, ROUND_DTYPE), np.zeros(n, ROUND_DTYPE)
    A["index"], B["index"] = np.arange(n), np.arange(n)
    A["trigger_time"], A["setting"], A["output"], A["pattern"] = t, x, a, pattern
    B["trigger_time"], B["setting"], B["output"] = t + 777_000_000, y, b  # Bob's rounds: PATTERN_NONE
    return A, B


def test_mixed_patterns_combine_through_join_and_sift():
    n, V = 20_000, 0.86
    pat = np.where(np.random.default_rng(1).random(n) < 0.5, PATTERN_PSI_PLUS, PATTERN_PSI_MINUS)
    A, B = _labs(n, V, pat)
    j = join_rounds(A, B)
    s = sift(A, B, j)
    assert s.stats["patterns"]["psi-"] == int((pat == PATTERN_PSI_MINUS).sum())
    assert s.stats["psi_minus_relabelled"] == s.stats["patterns"]["psi-"] and s.stats["pattern_conflicts"] == 0
    n_all = tally(s.x, s.y, s.a, s.b)
    S, Q = chsh(correlators(n_all)), qber(n_all)[2]
    assert abs(S - 2 * np.sqrt(2) * V) < 4 * np.sqrt(8 / (n / 8))
    assert abs(Q - (1 - V) / 2) < 4 * np.sqrt(0.07 * 0.93 / (n / 4))
    # selections: subsets partition the combined counts
    sp, sm = sift(A, B, j, patterns="psi+"), sift(A, B, j, patterns=["psi-"])
    n_p, n_m = tally(sp.x, sp.y, sp.a, sp.b), tally(sm.x, sm.y, sm.a, sm.b)
    assert np.array_equal(n_p + n_m, n_all)
    assert sp.stats["psi_minus_relabelled"] == 0 and sm.stats["patterns_used"]["psi+"] == 0


def test_bob_pattern_fills_in_and_conflicts_are_counted():
    A, B = _labs(400, 0.9, np.full(400, PATTERN_PSI_PLUS))
    A["pattern"][:10] = PATTERN_NONE
    B["pattern"][:10] = PATTERN_PSI_MINUS   # Alice has none: Bob's is used
    B["pattern"][10:13] = PATTERN_PSI_MINUS  # conflicts: Alice's wins
    s = sift(A, B, join_rounds(A, B))
    assert s.stats["patterns"]["psi-"] == 10 and s.stats["pattern_conflicts"] == 3


def test_unknown_pattern_selection_is_a_clear_error():
    from timetag.errors import EstimationError

    A, B = _labs(50, 0.9, np.full(50, PATTERN_PSI_PLUS))
    with pytest.raises(EstimationError, match="psi0"):
        sift(A, B, join_rounds(A, B), patterns="psi0")


@pytest.fixture(scope="module")
def sim_both(tmp_path_factory):
    from timetag.process import process_files
    from timetag.simulator import build_setup, load_preset, read_truth, simulate

    out = tmp_path_factory.mktemp("psi_pm")
    p = load_preset("lmu2022").with_overrides(herald_patterns=("psi+", "psi-"))
    r = simulate(p, 3000, 17, out, speedup=3000.0)
    _, _, attrs = read_truth(r.truth)
    thr = tuple(int(t) for t in attrs["thresholds"])
    base = build_setup(load_preset("lmu2022"), thr)  # the psi+ setup, widened to both heralds
    h = base.lab("alice").herald
    setup = base.with_lab("alice", herald=replace(h, patterns=("psi+", "psi-")))
    process_files([r.alice], setup, "alice", out / "a.h5", progress=False, checksum=False)
    process_files([r.bob], setup, "bob", out / "b.h5", progress=False, checksum=False)
    return out / "a.h5", out / "b.h5", r


def test_simulated_psi_minus_rounds_agree_with_psi_plus(sim_both):
    pa, pb, r = sim_both
    both = estimate(pa, pb, samples=0)
    plus = estimate(pa, pb, samples=0, patterns="psi+")
    minus = estimate(pa, pb, samples=0, patterns="psi-")
    used = both["sift"]["patterns_used"]
    assert used["psi+"] > 1000 and used["psi-"] > 1000 and used["none"] + used["other"] < 0.01 * both["rounds"]
    assert plus["rounds"] + minus["rounds"] == both["rounds"]
    for k in ("S", "Q"):
        dm = abs(minus[k] - plus[k])
        assert dm < 4 * np.hypot(minus[f"{k}_err"], plus[f"{k}_err"]), (k, plus[k], minus[k])
        assert abs(both[k] - plus[k]) < 4 * plus[f"{k}_err"]
    assert both["S_err"] < plus["S_err"]  # psi- doubles the data
    exp_S = r.stats["expected"]["expected_S"]
    assert abs(both["S"] - exp_S) < 4 * both["S_err"] and both["S"] > 2.2


def test_simulated_psi_minus_without_relabelling_breaks_chsh(sim_both):
    """The relabelling is what makes psi- rounds count: raw inputs give S ~ 0 for them."""
    from timetag.roundsfile import read_rounds

    pa, pb, _ = sim_both
    A, B = read_rounds(pa).rounds, read_rounds(pb).rounds
    j = join_rounds(A, B)
    m = A["pattern"][j.ia] == PATTERN_PSI_MINUS
    ra, rb = A[j.ia][m], B[j.ib][m]
    raw = tally(ra["setting"], rb["setting"], ra["output"], rb["output"])
    assert abs(chsh(correlators(raw))) < 0.5
