"""The live view's running estimate: the same join and sift as `timetag estimate`, on the rounds seen so far.

(Moved here from test_live_runner.py with running_estimate / compact_estimate themselves.)
"""
import numpy as np
import pytest

from timetag.estimators import estimate
from timetag.estimators.model import sample_pairs
from timetag.estimators.running import compact_estimate, running_estimate
from timetag.records import FLAG_LOST_DATA, PATTERN_PSI_MINUS, PATTERN_PSI_PLUS, ROUND_DTYPE, SETTING_NONE
from timetag.roundsfile import write_rounds

# the fields live mode keeps of each round for its running estimate (timetag.live.runner)
LIVE_DTYPE = np.dtype([("index", "<i8"), ("setting", "i1"), ("output", "i1"), ("pattern", "i1"), ("flags", "<u4"),
                       ("trigger_time", "<i8")])


def labs(n=2000, V=0.9, seed=0, drop_b=(), psi_minus=0.0):
    rng = np.random.default_rng(seed)
    x, y, a, b = sample_pairs(n, V, rng)
    pattern = np.where(rng.random(n) < psi_minus, PATTERN_PSI_MINUS, PATTERN_PSI_PLUS)
    # a psi- herald measured with Bob's input y behaves as psi+ with 1 - y: undo that for the physical input
    y = np.where(pattern == PATTERN_PSI_MINUS, 1 - y, y)
    t = 10**12 + np.cumsum(rng.exponential(1e9, n)).astype(np.int64)
    A = np.zeros(n, ROUND_DTYPE)
    B = np.zeros(n, ROUND_DTYPE)
    A["trigger_time"], A["setting"], A["output"], A["pattern"] = t, x, a, pattern
    B["trigger_time"], B["setting"], B["output"] = t + 987_654_321 + np.rint(3e-7 * t).astype(np.int64), y, b
    B = np.delete(B, list(drop_b))
    A["index"], B["index"] = np.arange(len(A)), np.arange(len(B))
    return A, B


def test_waits_for_both_labs():
    A, _ = labs(50)
    empty = np.zeros(0, LIVE_DTYPE)
    for a, b in ((empty, empty), (A, np.zeros(0, ROUND_DTYPE))):
        res = running_estimate(a, b)
        assert res["pairs"] == 0 and "waiting" in res["note"]


def test_agrees_with_timetag_estimate_on_the_same_rounds(tmp_path):
    A, B = labs(drop_b=[5, 700], psi_minus=0.4)
    A["flags"][::97] = FLAG_LOST_DATA           # flagged rounds count, as in `timetag estimate` (DI: keep)
    A["setting"][3] = B["setting"][40] = SETTING_NONE
    pa = write_rounds(tmp_path / "a.h5", A, lab="a", role="alice", setup_hash="h")
    pb = write_rounds(tmp_path / "b.h5", B, lab="b", role="bob", setup_hash="h")
    ref = estimate(pa, pb, samples=5000, seed=0)
    got = running_estimate(A, B)
    assert got["pairs"] == ref["sift"]["used"] == ref["rounds"]
    assert got == compact_estimate(ref) | {"pairs": got["pairs"]}
    for k in ("S", "S_err", "Q0", "Q1", "key_rate", "key_rate_err"):
        assert got[k] is not None, k


def test_live_record_layout_gives_the_same_numbers():
    A, B = labs(800, seed=3, drop_b=[17])
    live = [np.asarray(r[list(LIVE_DTYPE.names)]).astype(LIVE_DTYPE) for r in (A, B)]
    assert running_estimate(*live) == running_estimate(A, B)


def test_psi_minus_rounds_are_relabelled_like_the_file_estimate():
    A, B = labs(3000, psi_minus=0.5, seed=5)
    got = running_estimate(A, B, samples=0)
    assert 2.2 < got["S"] < 2.9  # without the relabelling half the rounds would pull S towards 0


def test_too_few_rounds_never_raise():
    A, B = labs(3)
    for n in (1, 2, 3):
        res = running_estimate(A[:n], B[:n])
        assert res["pairs"] <= n
        assert res.get("note") or res["S"] is None  # no numbers yet, and the live loop goes on


def test_join_failure_is_a_note():
    A, B = labs(100)
    B["trigger_time"] = 5 * 10**15 + np.arange(len(B)) * 10**9  # periodic and far away: no interval fingerprints
    res = running_estimate(A, B)
    assert res["pairs"] == 0 and res["note"]


def test_compact_estimate_picks_the_live_numbers():
    est = {"S": 2.5, "S_err": 0.1, "Q0": 0.05, "Q0_err": 0.01, "Q1": 0.04, "Q1_err": 0.01, "test_rounds": 10,
           "key_rounds": 8, "key_rate_per_event": {"random_basis": 0.1, "original": 0.05},
           "bayes": {"key_rate_per_event": {"random_basis": {"std": 0.02, "ci": [0.06, 0.14]}}}}
    c = compact_estimate(est)
    assert c["key_rate"] == 0.1 and c["key_rate_err"] == 0.02 and c["key_rate_ci"] == [0.06, 0.14]
    assert c["key_rate_protocol"] == "random_basis" and c["S"] == 2.5
    assert compact_estimate(est, "original")["key_rate"] == 0.05
    assert compact_estimate({})["S"] is None


@pytest.mark.slow
def test_simulated_device_running_estimate_matches_the_files(tmp_path):
    """The live runner's final status shows running_estimate of exactly the rounds it wrote."""
    pytest.importorskip("timetag.simulator")
    from timetag.live.runner import LiveRunner
    from timetag.live.simdevice import SimDevice
    from timetag.roundsfile import read_rounds

    dev = SimDevice(speed=None, slice_ps=10**12, sim_params={"speedup": 1000}, seed=3, duration_device_s=40)
    res = LiveRunner(dev, dev.matching_setup(), tmp_path).run()
    assert res.rounds["alice"] > 100 and res.rounds["bob"] > 100
    ra, rb = read_rounds(res.paths["alice"]).rounds, read_rounds(res.paths["bob"]).rounds
    ref = running_estimate(ra, rb)
    est = res.final_status["estimate"]
    assert est["pairs"] == ref["pairs"]
    for k in ("S", "S_err", "Q0", "Q1", "key_rate"):
        assert est[k] == pytest.approx(ref[k]), k
    assert 1.5 < est["S"] < 2.9  # the preset's link violates CHSH clearly
