import numpy as np
import pytest

from timetag.distill.codes import load_family
from timetag.distill.reconcile import (BobDecoder, alice_frames, alice_reveal, alice_syndromes, h2, plan_frames,
                                       puncture_candidates, reconcile_local)


def _pair(n, q, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n, dtype=np.uint8)
    return a, a ^ (rng.random(n) < q).astype(np.uint8)


def test_shortened_frames_correct_every_error():
    a, b = _pair(30_000, 0.04)
    plan = plan_frames(len(a), 0.05, blind=False)  # designed with a margin above the true error rate
    assert plan.frames >= 3 and len(plan.shortened) > 0 and len(plan.punctured) == 0
    syn = alice_syndromes(a, plan, np.random.default_rng(1))
    corr, ok, nerr = BobDecoder(plan).correct(b, syn)
    assert ok.all()
    assert np.array_equal(corr.ravel(), a[:plan.frames * plan.key_bits])
    n = plan.frames * plan.key_bits
    assert nerr.sum() == np.count_nonzero(a[:n] != b[:n])


def test_punctured_frames_at_low_qber():
    a, b = _pair(20_000, 0.008, seed=2)
    plan = plan_frames(len(a), 0.012)  # too low a QBER for blind rounds: one-shot punctured frames
    assert len(plan.punctured) > 0
    syn = alice_syndromes(a, plan, np.random.default_rng(1))
    corr, ok, _ = BobDecoder(plan).correct(b, syn)
    assert ok.all() and np.array_equal(corr.ravel(), a[:plan.frames * plan.key_bits])


def test_puncturing_rule_gives_full_column_rank():
    code = load_family()["R80"]
    cand = puncture_candidates(code)
    adj = code.var_adj[cand]
    checks = adj[adj >= 0]
    assert len(np.unique(checks)) == len(checks)  # no check shared by two punctured columns


def test_plan_rate_follows_the_design_efficiency():
    for q in (0.03, 0.06, 0.08):
        plan = plan_frames(100_000, q, f_design=1.2, blind=False)
        leak = plan.leak_per_frame / plan.key_bits
        # exact up to the tail spread over the frames (one more frame when the tail would cost more than m)
        assert 1.2 - 0.01 < leak / h2(q) < 1.2 * (1 + 1.0 / plan.frames) + 0.01


def test_undecodable_frame_is_failed_not_wrong():
    a, b = _pair(9000, 0.15, seed=3)
    plan = plan_frames(len(a), 0.03, f_design=1.2, blind=False)
    syn = alice_syndromes(a, plan, np.random.default_rng(1))
    corr, ok, _ = BobDecoder(plan, max_iter=20).correct(b, syn)
    assert not ok.any()
    r = reconcile_local(a, b, plan_frames(len(a), 0.03), np.random.default_rng(1))  # blind rounds: still failed
    assert r["rounds"] > 0 and not r["ok"].any()


@pytest.mark.parametrize("q", [0.04, 0.08])
def test_blind_rounds_reach_every_frame_at_a_low_mean_efficiency(q):
    a, b = _pair(60_000, q, seed=4)
    plan = plan_frames(len(a), q)
    assert plan.reveal_steps > 1 and len(plan.punctured) > 0
    shown = np.concatenate([plan.reveal_positions(s) for s in range(plan.reveal_steps)])
    assert np.array_equal(np.sort(shown), plan.punctured)  # the rounds reveal every punctured bit, once
    r = reconcile_local(a, b, plan, np.random.default_rng(2))
    n = plan.frames * plan.key_bits
    assert r["ok"].all() and np.array_equal(r["corrected"].ravel(), a[:n])
    assert r["rounds"] >= 1 and r["revealed_bits"] > 0  # some frames needed more than the starting rate
    f = (r["leak_syndromes"] + r["revealed_bits"] + r["tag_bits"]) / (n * h2(q))
    assert plan.f_design - 0.01 < f < 1.25  # one-shot frames at FER ~1e-2 need 1.18-1.32


def test_revealed_bits_are_alices_punctured_bits_in_rule_order():
    a, b = _pair(20_000, 0.06)
    plan = plan_frames(len(a), 0.06)
    X = alice_frames(a, plan, np.random.default_rng(3))
    vals = alice_reveal(X, plan, np.array([1, 0]), 0)
    pos = puncture_candidates(load_family()[plan.code])[:plan.reveal_bits]
    assert set(pos) <= set(plan.punctured)
    assert np.array_equal(vals, X[[1, 0]][:, pos])


def test_auto_family_takes_long_frames_for_long_keys():
    from timetag.distill.codes import FAMILY_VERSION, LONG_FAMILY_VERSION
    from timetag.distill.reconcile import LONG_FAMILY_MIN_BITS, resolve_family
    assert resolve_family("auto", LONG_FAMILY_MIN_BITS) == LONG_FAMILY_VERSION
    assert resolve_family("auto", LONG_FAMILY_MIN_BITS - 1) == FAMILY_VERSION
    assert resolve_family(FAMILY_VERSION, 10**7) == FAMILY_VERSION


def test_long_frames_correct_every_error_in_blind_rounds():
    from timetag.distill.codes import LONG_FAMILY_VERSION
    q = 0.065
    a, b = _pair(40_000, q, seed=6)
    plan = plan_frames(len(a), q, family=LONG_FAMILY_VERSION)
    assert plan.n0 == 16384 and plan.frames >= 2
    r = reconcile_local(a, b, plan, np.random.default_rng(1))
    n = plan.frames * plan.key_bits
    assert r["ok"].all() and np.array_equal(r["corrected"].ravel(), a[:n])
    f = (r["leak_syndromes"] + r["revealed_bits"] + r["tag_bits"]) / (n * h2(q))
    assert plan.f_design - 0.01 < f < 1.25


def test_two_threads_give_the_one_thread_outcome():
    # frames of a round decoded on two threads: same frames decoded, same words, same leak and iterations
    q = 0.07
    a, b = _pair(60_000, q, seed=8)
    plan = plan_frames(len(a), q)
    one = reconcile_local(a, b, plan, np.random.default_rng(5), threads=1)
    two = reconcile_local(a, b, plan, np.random.default_rng(5), threads=2)
    assert one["rounds"] >= 1 and plan.frames >= 4  # blind rounds were exercised, several frames per round
    for k in one:
        assert np.array_equal(one[k], two[k]), k
