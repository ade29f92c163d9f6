"""The protocol driver: sift -> estimate -> disclose a sample -> reconcile -> verify -> amplify.

Both roles run in one process here, but each step uses only what its party holds plus the messages of the
transcript (Alice: her raw key and coins; Bob: his raw key), so the messages are exactly those a two-party run
exchanges.  Randomness: ``seed=None`` (the default, and the only secure choice) draws every random choice from
``os.urandom``; an integer seed makes a run reproducible (numpy PCG64 streams), for tests and benchmarks only --
the report says which (``seeds``).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np

from .amplify import toeplitz_hash
from .codes import FAMILY_VERSION
from .parameters import bound, expected_length, rounds_needed
from .reconcile import BobDecoder, alice_syndromes, default_f_design, h2, plan_frames, require_ldpc
from .report import DistillReport
from .sifting import sift_rounds
from .transcript import Transcript
from .verify import P61, TAG_BITS, collision_bound, n_points, tags


class Coins:
    """Random bits of one party: ``os.urandom`` (seed None) or a reproducible numpy stream (seed given)."""

    def __init__(self, seed, stream: int):
        self.secure = seed is None
        self.rng = None if seed is None else np.random.default_rng([int(seed), stream])

    def bits(self, n: int) -> np.ndarray:
        if self.rng is not None:
            return self.rng.integers(0, 2, n, dtype=np.uint8)
        return np.unpackbits(np.frombuffer(os.urandom((n + 7) // 8), np.uint8), count=n)

    def integers(self, n: int, shape) -> np.ndarray:
        """uniform in [0, 2) ... used by alice_syndromes as rng.integers(0, 2, shape)."""
        size = int(np.prod(shape))
        return self.bits(size).reshape(shape)

    def below(self, p: int) -> int:
        if self.rng is not None:
            return int(self.rng.integers(0, p))
        while True:  # rejection sampling from 64 random bits
            v = int.from_bytes(os.urandom(8), "little") >> 3
            if v < p:
                return v

    def sample(self, n: int, k: int) -> np.ndarray:
        if self.rng is not None:
            return np.sort(self.rng.choice(n, k, replace=False))
        keys = np.frombuffer(os.urandom(8 * n), np.uint64)
        return np.sort(np.argsort(keys, kind="stable")[:k])

    def describe(self, seed) -> str:
        return "os.urandom" if seed is None else f"numpy PCG64 from seed {seed} (reproducible: NOT secure)"


class _AliceCoins:
    """Adapter: ``rng.integers(0, 2, shape, dtype)`` for alice_syndromes."""

    def __init__(self, coins: Coins):
        self.coins = coins

    def integers(self, lo, hi, shape, dtype=np.uint8):
        return self.coins.integers(2, shape).astype(dtype)


@dataclass
class DistillResult:
    alice_key: np.ndarray
    bob_key: np.ndarray
    report: DistillReport
    transcript: Transcript


def default_sample_bits(n_key: int) -> int:
    return int(min(max(n_key // 50, 0), 10_000))


def distill(alice, bob, *, eps_sec: float = 1e-5, eps_cor: float = 1e-10, qber: float | None = None,
            sample_bits: int | None = None, f_design: float | None = None, seed: int | None = None,
            flagged: str = "keep", patterns=None, offset_ps=None, drift=None, setup=None,
            accept_incomplete: bool = False, family: str = FAMILY_VERSION, max_iter: int = 60,
            ds_method: str = "hoeffding", tamper=None) -> DistillResult:
    """Distil a shared secret key from Alice's and Bob's rounds (paths or RoundsData).

    ``qber``: design QBER of the codes (e.g. from calibration); without it a sample of ``sample_bits`` key bits
    (default n_k / 50, at most 10000) is disclosed by both and charged.  ``tamper(bob_bits)`` (tests) may change
    Bob's corrected bits before verification.  Returns the keys (0/1 uint8 arrays), the report and the transcript.
    """
    for name, e in (("eps_sec", eps_sec), ("eps_cor", eps_cor)):
        if not 0 < e < 1:
            from ..errors import TimetagError
            raise TimetagError(f"{name} must be in (0, 1), got {e}")
    require_ldpc()
    t = {}
    t0 = time.perf_counter()
    sf = sift_rounds(alice, bob, flagged=flagged, patterns=patterns, offset_ps=offset_ps, drift=drift, setup=setup,
                     accept_incomplete=accept_incomplete)
    t["sift"] = time.perf_counter() - t0
    tr = Transcript()
    pub = sf.public
    tr.send("alice", "inputs", {"round_index": pub["alice_index"], "x": pub["x"]})
    tr.send("bob", "inputs", {"round_index": pub["bob_index"], "y": pub["y"]})
    tr.send("alice", "test_outputs", {"a": pub["test_a"]}, packed=("a",))
    tr.send("bob", "test_outputs", {"b": pub["test_b"]}, packed=("b",))
    alice_c = Coins(seed, 1)  # Bob draws nothing: every random choice is Alice's, made public
    ka, kb = sf.alice_key, sf.bob_key
    n_key, n_test = sf.n_key, sf.n_test
    rep = DistillReport(rounds_alice=-1, rounds_bob=-1, pairs=sf.n_pairs, used=sf.n_used, key_rounds=n_key,
                        test_rounds=n_test, S=sf.S, qber_sample=None, qber_corrected=None,
                        Q0=_num(sf.qber_true[0]), Q1=_num(sf.qber_true[1]), eps_sec=eps_sec, eps_cor=eps_cor)
    rep.rounds_alice, rep.rounds_bob = sf.stats["rounds_alice"], sf.stats["rounds_bob"]
    rep.seeds = {"source": alice_c.describe(seed), "chosen_by": "alice"}
    p_key, p_test = n_key / sf.n_used, n_test / sf.n_used

    # -- QBER for the code choice: given, or a disclosed sample --------------------------------------------
    keep = np.ones(n_key, bool)
    if qber is None:
        s = default_sample_bits(n_key) if sample_bits is None else int(sample_bits)
        s = min(max(s, 1), n_key)
        pos = alice_c.sample(n_key, s)
        tr.send("alice", "sample_choice", {"positions": pos})
        tr.send("alice", "sample_bits", {"bits": ka[pos]}, leak_bits=s, packed=("bits",))
        tr.send("bob", "sample_bits", {"bits": kb[pos]}, leak_bits=s, packed=("bits",))
        q_hat = float(np.mean(ka[pos] != kb[pos]))
        rep.qber_sample = q_hat
        q_design = min(0.2, max(q_hat, 0.005) + math.sqrt(max(q_hat, 0.005) * (1 - q_hat) / s))
        keep[pos] = False
    else:
        if not 0 < qber < 0.5:
            from ..errors import TimetagError
            raise TimetagError(f"qber must be in (0, 0.5), got {qber}")
        q_design = float(qber)
    rest_a, rest_b = ka[keep], kb[keep]
    discarded = int(n_key - keep.sum())
    f_d = default_f_design(q_design) if f_design is None else float(f_design)

    def no_key(l_value, f_used, why):
        need = rounds_needed(sf.S, q_design, f_used, eps_sec, p_key, p_test, ds_method)
        rep.bound = float(l_value)
        rep.rounds_needed = None if not math.isfinite(need) else float(need)
        need_txt = ("no number of rounds gives a key at these S and QBER" if not math.isfinite(need)
                    else f"a positive key needs about {need:.3g} rounds ({need * p_key:.3g} key rounds) at S = "
                         f"{sf.S:.3f}, QBER {q_design:.3f}, f = {f_used:.3f}, eps_sec = {eps_sec:g}")
        rep.message = (f"no key: {why}; the finite-key length for these {sf.n_used} rounds ({n_key} key rounds) is "
                       f"l = {l_value:.0f} bits; {need_txt}")
        return _finish(rep, tr, np.zeros(0, np.uint8), np.zeros(0, np.uint8), discarded, t)

    l_pre = expected_length(n_key, n_test, sf.S, q_design, f_d, eps_sec, ds_method) - 2 * (n_key - keep.sum())
    if l_pre <= 0:
        return no_key(l_pre, f_d, "the run is too short (before error correction, with the design efficiency)")

    # -- error correction ---------------------------------------------------------------------------------
    t0 = time.perf_counter()
    plan = plan_frames(len(rest_a), q_design, f_d, family)
    if plan.frames == 0:
        return no_key(l_pre, f_d, f"{len(rest_a)} key bits fill no frame of {plan.key_bits} bits")
    tr.send("alice", "code_plan", {**{k: (v if isinstance(v, str) else np.asarray(v))
                                       for k, v in plan.public().items()},
                                    "shortened_positions": plan.shortened, "punctured_positions": plan.punctured})
    F, k = plan.frames, plan.key_bits
    syn = alice_syndromes(rest_a, plan, _AliceCoins(alice_c))
    tr.send("alice", "syndromes", {"syndromes": syn}, leak_bits=F * plan.leak_per_frame, packed=("syndromes",))
    corrected, ok, nerr = BobDecoder(plan, max_iter=max_iter).correct(rest_b, syn)
    tr.send("bob", "frame_status", {"ok": ok.astype(np.uint8)}, leak_bits=F, packed=("ok",))
    t["reconcile"] = time.perf_counter() - t0
    A = rest_a[:F * k].reshape(F, k)[ok].ravel()
    B = corrected[ok].ravel()
    if tamper is not None:
        B = tamper(B.copy())
    discarded += len(rest_a) - len(A)
    q_corr = float(nerr[ok].sum() / max(1, ok.sum() * k)) if ok.any() else None
    rep.code = {**plan.public(), "decoder": "ldpc.BpDecoder product_sum parallel", "max_iter": max_iter}
    rep.frames, rep.frames_failed = F, int((~ok).sum())
    rep.syndrome_bits = int(F * plan.m)
    rep.punctured_credit = int(F * len(plan.punctured))
    rep.leak_ec = rep.syndrome_bits - rep.punctured_credit + F
    rep.qber_corrected = q_corr
    if q_corr:
        rep.f_measured = (rep.syndrome_bits - rep.punctured_credit) / (F * k * h2(q_corr))

    # -- verification -------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    r = n_points(max(len(A), 1), eps_cor)
    points = [alice_c.below(P61) for _ in range(r)]
    tr.send("alice", "verify_points", {"points": np.array(points, np.uint64)})
    tag_a = tags(A, points)
    tr.send("alice", "verify_tags", {"tags": np.array(tag_a, np.uint64)}, leak_bits=TAG_BITS * r)
    equal = tag_a == tags(B, points)
    tr.send("bob", "verify_result", {"equal": np.uint8(equal)}, leak_bits=1)
    t["verify"] = time.perf_counter() - t0
    rep.verified = bool(equal)
    rep.code["verify"] = {"hash": "polynomial over GF(2^61-1)", "points": r,
                          "collision_bound": collision_bound(max(len(A), 1), r)}
    if not equal:
        rep.message = ("no key: verification failed (the corrected keys differ; collision bound "
                       f"{collision_bound(max(len(A), 1), r):.2g}); the run is aborted")
        rep.bound = None
        return _finish(rep, tr, np.zeros(0, np.uint8), np.zeros(0, np.uint8), discarded, t)

    # -- privacy amplification ----------------------------------------------------------------------------
    l_val = bound(n_key, n_test, sf.S, q_design, tr.leak_bits + discarded, eps_sec, ds_method)
    final = int(min(math.floor(l_val), len(A))) if l_val > 0 else 0
    if final <= 0:
        f_used = rep.f_measured or f_d
        return no_key(l_val, f_used, "the measured leak leaves no secret bits")
    t0 = time.perf_counter()
    seed_bits = alice_c.bits(len(A) + final - 1)
    tr.send("alice", "pa_seed", {"seed": seed_bits, "length": np.int64(final)}, packed=("seed",))
    key_a = toeplitz_hash(A, seed_bits, final)
    key_b = toeplitz_hash(B, seed_bits, final)
    t["amplify"] = time.perf_counter() - t0
    rep.bound = float(l_val)
    rep.final_length = final
    return _finish(rep, tr, key_a, key_b, discarded, t)


def _finish(rep, tr, key_a, key_b, discarded, t):
    by = tr.leak_by_kind()
    rep.sample_bits = by.get("sample_bits", 0)
    rep.hash_bits = by.get("verify_tags", 0) + by.get("verify_result", 0)
    rep.discarded_bits = int(discarded)
    rep.leak_total = tr.leak_bits
    rep.keys_equal = bool(len(key_a) == len(key_b) and np.array_equal(key_a, key_b))
    rep.timings_s = {k: round(v, 4) for k, v in t.items()}
    rep.final_length = int(len(key_a))
    return DistillResult(key_a, key_b, rep, tr)


def _num(v):
    return None if v is None or not math.isfinite(v) else float(v)
