"""The two role drivers of the protocol: each party holds only its own rounds and talks over a :class:`Channel`.

One driver, :func:`run_party`, runs either role; every step is written once, with the sender of each public
message named (``say``): the sender computes and sends the payload, the receiver receives it and checks what it
can (kind, order, sizes, the leak its rule gives).  ``timetag.distill.distill`` (the one-process form) runs Alice
and Bob in two threads over an in-memory channel; ``timetag distill --role alice|bob`` runs one of them over an
authenticated TCP connection (:mod:`.channel`).  Same messages, same order, same transcript.

Messages, in order (sender: kind -- content; "public" in the real protocol)::

    alice: hello         protocol parameters, run name, setup hash, lab, number of rounds, seed source
    bob:   hello         the same for Bob (both check the parameters agree and the files are one run)
    bob:   triggers      round index and trigger time of every Bob round (timing is announced)
    alice: inputs        the pairs of the join (Alice's and Bob's round positions), Alice's input x, herald
                         pattern and flags per pair, the clock the join used
    bob:   inputs        Bob's input y, pattern and flags per pair
    alice: test_outputs  a of the test rounds;  bob: test_outputs  b of the test rounds
    alice: sample_choice / sample_bits, bob: sample_bits       (unless a design QBER is given)
    alice: code_plan, syndromes, frame_tags;  bob: frame_status;  (alice: reveal;  bob: frame_status)...
                         one batch of frames; with 8 frames or more a first small batch, then
    bob:   error_count   the errors he corrected in its decoded frames, and a second batch designed for that QBER
    alice: verify_points, verify_tags;  bob: verify_result
    alice: pa_seed;  bob: confirm   (Bob's final length: Alice writes her key only after it)

Both parties compute the sift (``estimators.join.sift`` on the announced inputs, patterns and flags), S, the
design QBER, the frame plan and the final length from public data alone, so they reach the same decisions at the
same message without further exchange.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from types import SimpleNamespace

import numpy as np

from ..errors import EstimationError, TimetagError
from ..estimators.chsh import chsh, correlators
from ..estimators.counts import tally
from ..estimators.join import JoinResult, join_rounds, sift
from ..estimators.pipeline import _check_same_run, _load, clock_from_setup, resolve_clock
from ..records import ROUND_DTYPE
from .amplify import toeplitz_hash
from .channel import AUTH_BITS_PER_TAG, Channel, ChannelError
from .parameters import bound, expected_length, rounds_needed
from .reconcile import (DECODERS, DEFAULT_MAX_ITER, FRAME_TAG_BITS, BobDecoder, alice_frame_tags, alice_frames,
                        AUTO_FAMILY, alice_reveal, count_leak, default_f_design, expected_f, first_batch_frames, h2,
                        learned_qber, plan_frames, resolve_family, syndromes)
from .report import DistillReport
from .transcript import Transcript
from .verify import P61, TAG_BITS, collision_bound, n_points, tags

PROTOCOL_VERSION = 3  # 2: key permutation, blind rounds; 3: frames in batches, the QBER learned


@dataclass(frozen=True)
class Options:
    """The protocol parameters both parties must agree on (exchanged and compared in ``hello``)."""
    eps_sec: float = 1e-5
    eps_cor: float = 1e-10
    qber: float | None = None
    sample_bits: int | None = None
    f_design: float | None = None
    flagged: str = "keep"
    patterns: tuple | None = None
    family: str = AUTO_FAMILY      # "auto": by the key's length (reconcile.resolve_family), or a version
    max_iter: int = DEFAULT_MAX_ITER
    ds_method: str = "hoeffding"
    blind: bool = True              # blind rounds (revealed punctured bits) after undecoded frames
    decoder: str = "layered"
    learn: bool = True              # the frames after the first batch designed for the QBER Bob corrected there

    def __post_init__(self):
        for name in ("eps_sec", "eps_cor"):
            e = getattr(self, name)
            if not 0 < e < 1:
                raise TimetagError(f"{name} must be in (0, 1), got {e}")
        if self.qber is not None and not 0 < self.qber < 0.5:
            raise TimetagError(f"qber must be in (0, 0.5), got {self.qber}")
        if self.decoder not in DECODERS:
            raise TimetagError(f"decoder must be one of {', '.join(DECODERS)}, got {self.decoder!r}")
        if self.flagged not in ("keep", "drop"):
            raise EstimationError(f"flagged policy must be 'keep' or 'drop', got {self.flagged!r}")
        p = self.patterns
        if isinstance(p, str):
            p = [x.strip() for x in p.split(",") if x.strip()]
        object.__setattr__(self, "patterns", None if p is None else tuple(p))

    def public(self) -> str:
        d = asdict(self)
        d["patterns"] = None if self.patterns is None else list(self.patterns)
        d["protocol"] = PROTOCOL_VERSION
        return json.dumps(d, sort_keys=True)


@dataclass
class PartyResult:
    role: str
    key: np.ndarray              # the final key (0/1 uint8), empty without a key
    report: DistillReport        # what this party knows
    transcript: Transcript
    raw_key: np.ndarray          # this party's raw key bits (private; the one-process form compares them)
    key_basis: np.ndarray        # the key rounds' input (0 or 1), public


class Coins:
    """Random bits of one party: ``os.urandom`` (seed None) or a reproducible numpy stream (seed given)."""

    def __init__(self, seed, stream: int):
        self.secure = seed is None
        self.rng = None if seed is None else np.random.default_rng([int(seed), stream])

    def bits(self, n: int) -> np.ndarray:
        if self.rng is not None:
            return self.rng.integers(0, 2, n, dtype=np.uint8)
        import os
        return np.unpackbits(np.frombuffer(os.urandom((n + 7) // 8), np.uint8), count=n)

    def integers(self, lo, hi, shape, dtype=np.uint8) -> np.ndarray:
        """``rng.integers(0, 2, shape, dtype)`` for alice_syndromes (bits only)."""
        size = int(np.prod(shape))
        return self.bits(size).reshape(shape).astype(dtype)

    def word64(self) -> int:
        return int.from_bytes(np.packbits(self.bits(64)).tobytes(), "big")

    def below(self, p: int) -> int:
        if self.rng is not None:
            return int(self.rng.integers(0, p))
        import os
        while True:  # rejection sampling from 64 random bits
            v = int.from_bytes(os.urandom(8), "little") >> 3
            if v < p:
                return v

    def sample(self, n: int, k: int) -> np.ndarray:
        if self.rng is not None:
            return np.sort(self.rng.choice(n, k, replace=False))
        import os
        keys = np.frombuffer(os.urandom(8 * n), np.uint64)
        return np.sort(np.argsort(keys, kind="stable")[:k])

    @staticmethod
    def describe(seed) -> str:
        return "os.urandom" if seed is None else f"numpy PCG64 from seed {seed} (reproducible: NOT secure)"


def default_sample_bits(n_key: int, blind: bool = True) -> int:
    """Key bits disclosed for the design QBER.  Blind rounds only need a starting rate (a frame takes the bits it
    needs), so a small sample: n_k / 200 in [500, 2000]; at 1.5e6 lmu2022 rounds its 2 bits per position cost less
    than the ~0.01 in f a rougher estimate adds (docs/distill.md); with the QBER learned after the first batch the
    sample steers only that batch, and 1000 bits instead of 1879 gave the same keys within noise (4 seeds).
    One-shot frames: n_k / 50, at most 10000."""
    if blind:
        return int(min(max(n_key // 200, 500), 2000))
    return int(min(max(n_key // 50, 0), 10_000))


def _expect(ok, what: str) -> None:
    if not ok:
        raise ChannelError(f"protocol error: {what}")


def _distinct(a) -> bool:
    """No value twice (a sort: numpy 2.4's hash-based np.unique is several times slower on int64)."""
    return bool(np.all(np.diff(np.sort(a)) != 0))


def _num(v):
    return None if v is None or not math.isfinite(v) else float(v)


SIFT_BLOCK = 1 << 20  # pairs per call of the sift: its per-pair temporaries stay ~0.2 GB instead of ~1 KB per pair


def sift_blocks(pa: dict, pb: dict, own_output: np.ndarray, alice: bool, flagged: str, patterns,
                block: int = SIFT_BLOCK) -> SimpleNamespace:
    """``estimators.join.sift`` of the announced pairs (inputs, patterns, flags of both; outputs of this party
    only), called on consecutive blocks of pairs -- it is a function of each pair alone, so the blocks' results,
    concatenated, are the one call's -- and kept in int8: x, y, a, b, the key and test masks, and the counts of
    the stats the protocol uses (used, key, test)."""
    n = len(pa["x"])
    cols = {name: [] for name in ("x", "y", "a", "b", "key", "test")}
    stats = {"used": 0, "key": 0, "test": 0}
    pats = list(patterns) if patterns is not None else None
    for lo in range(0, max(n, 1), block):
        hi = min(n, lo + block)
        A = np.zeros(hi - lo, ROUND_DTYPE)
        B = np.zeros(hi - lo, ROUND_DTYPE)
        A["setting"], A["pattern"], A["flags"] = pa["x"][lo:hi], pa["pattern"][lo:hi], pa["flags"][lo:hi]
        B["setting"], B["pattern"], B["flags"] = pb["y"][lo:hi], pb["pattern"][lo:hi], pb["flags"][lo:hi]
        (A if alice else B)["output"] = own_output[lo:hi]
        ar = np.arange(hi - lo)
        pairs = JoinResult(ar, ar, np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0, 0.0, np.zeros(0, np.int64),
                           0.0, "announced")
        sf = sift(A, B, pairs, flagged, pats)
        for name in ("x", "y", "a", "b"):
            cols[name].append(getattr(sf, name).astype(np.int8))
        cols["key"].append(sf.key)
        cols["test"].append(sf.test)
        for k in stats:
            stats[k] += int(sf.stats[k])
    return SimpleNamespace(**{k: np.concatenate(v) for k, v in cols.items()}, stats=stats)


def run_party(role: str, rounds, ch: Channel, opts: Options, *, seed: int | None = None, offset_ps=None,
              drift=None, setup=None, accept_incomplete: bool = False, tamper=None) -> PartyResult:
    """Run ``role`` ('alice' or 'bob') of the protocol on this party's ``rounds`` (path or RoundsData) over ``ch``.

    Alice's options only: ``seed`` (her coins; Bob draws nothing), the clock (``offset_ps``, ``drift``, ``setup``:
    she runs the join).  Bob's only: ``tamper(bits)`` (tests) may change his corrected bits before verification.
    """
    if role not in ("alice", "bob"):
        raise ValueError(role)
    if ch.role != role:
        raise ValueError(f"channel of {ch.role} given to {role}")
    alice = role == "alice"
    t: dict = {}
    t0 = time.perf_counter()
    data = _load(rounds, role, accept_incomplete)
    if data.role and data.role.lower() != role:
        raise EstimationError(f"{role}: the rounds file is {data.role!r}'s, not {role}'s")
    if len(data.rounds) == 0:
        raise EstimationError(f"{role}: rounds file is empty (no rounds)")
    r = data.rounds
    coins = Coins(seed, 1) if alice else None

    def say(sender, kind, payload_fn, leak_bits=0, packed=()):
        if sender == role:
            return ch.send(kind, payload_fn(), leak_bits, packed)
        msg = ch.recv(kind)
        _expect(msg.leak_bits == int(leak_bits), f"{kind} claims {msg.leak_bits} leaked bits, the rule gives "
                                                  f"{int(leak_bits)}")
        return msg

    # -- hello: parameters and run identity --------------------------------------------------------------------
    def hello():
        d = {"role": role, "params": opts.public(), "run": data.run, "setup_hash": data.setup_hash,
             "lab": data.lab, "rounds": np.int64(len(r))}
        if alice:
            d["seed_source"] = Coins.describe(seed)
        return d
    ha = say("alice", "hello", hello).payload
    hb = say("bob", "hello", hello).payload
    peer = hb if alice else ha
    _expect(peer.get("role") == ch.peer, f"the peer says it is {peer.get('role')!r}, expected {ch.peer!r}")
    if peer["params"] != opts.public():
        mine, theirs = json.loads(opts.public()), json.loads(peer["params"])
        diff = [f"{k} {mine.get(k)!r} here, {theirs.get(k)!r} at {ch.peer}" for k in sorted(set(mine) | set(theirs))
                if mine.get(k) != theirs.get(k)]
        raise EstimationError(f"{role}: the protocol parameters differ from {ch.peer}'s: {'; '.join(diff)}")
    _check_same_run(*(SimpleNamespace(run=h["run"], setup_hash=h["setup_hash"], path=None, role=h["role"])
                      for h in (ha, hb)))
    n_a, n_b = int(ha["rounds"]), int(hb["rounds"])

    # -- the join: Bob announces his trigger times, Alice pairs and announces the pairs with her inputs -------------
    msg = say("bob", "triggers", lambda: {"round_index": r["index"].astype(np.int64),
                                          "trigger_time": r["trigger_time"].astype(np.int64)})
    if alice:
        _expect(len(msg.payload["trigger_time"]) == n_b == len(msg.payload["round_index"]),
                "bob's trigger times do not match his number of rounds")
        stub = np.zeros(n_b, ROUND_DTYPE)
        stub["index"], stub["trigger_time"] = msg.payload["round_index"], msg.payload["trigger_time"]
        clock, clock_name = None, ""
        if setup is not None:
            clock, clock_name, _ = clock_from_setup(setup)
        off, dr, _ = resolve_clock(offset_ps, drift, clock, clock_name)
        j = join_rounds(r, stub, offset_ps=off, drift=dr)
        del stub
        ia, ib = j.ia.astype(np.int64), j.ib.astype(np.int64)
        join_info = json.dumps(j.summary(), sort_keys=True)
    msg = say("alice", "inputs", lambda: {"alice_index": ia, "bob_index": ib, "x": r["setting"][ia].astype(np.int8),
                                          "pattern": r["pattern"][ia].astype(np.int8),
                                          "flags": r["flags"][ia].astype(np.uint32), "join": join_info})
    pa = msg.payload
    ia, ib = pa["alice_index"], pa["bob_index"]
    n_pairs = len(ia)
    _expect(len(ib) == n_pairs == len(pa["x"]) == len(pa["pattern"]) == len(pa["flags"]), "inputs of unequal length")
    _expect(n_pairs == 0 or (0 <= ia.min() and ia.max() < n_a and 0 <= ib.min() and ib.max() < n_b
                             and _distinct(ib) and _distinct(ia)),
            "the announced pairs are not a one-to-one pairing of the rounds")
    msg = say("bob", "inputs", lambda: {"y": r["setting"][ib].astype(np.int8), "pattern": r["pattern"][ib].astype(np.int8),
                                        "flags": r["flags"][ib].astype(np.uint32)})
    pb = msg.payload
    _expect(len(pb["y"]) == len(pb["pattern"]) == len(pb["flags"]) == n_pairs, "bob's inputs do not match the pairs")
    if n_pairs == 0:
        raise EstimationError("no rounds of Alice and Bob could be paired in time")

    # -- the sift of `estimate`, on the announced data (each party knows only its own outputs) ---------------------
    own = r["output"][ia if alice else ib]
    sf = sift_blocks(pa, pb, own, alice, opts.flagged, opts.patterns)
    del own
    n_key, n_test = int(sf.stats["key"]), int(sf.stats["test"])
    if n_test == 0 or n_key == 0:
        raise EstimationError(f"{n_key} key rounds and {n_test} test rounds among {n_pairs} joined rounds: both are "
                              "needed to distil a key")
    ta = say("alice", "test_outputs", lambda: {"a": sf.a[sf.test].astype(np.uint8)}, packed=("a",)).payload["a"]
    tb = say("bob", "test_outputs", lambda: {"b": sf.b[sf.test].astype(np.uint8)}, packed=("b",)).payload["b"]
    _expect(len(ta) == len(tb) == n_test, "test outputs of the wrong length")
    S = chsh(correlators(tally(sf.x[sf.test], sf.y[sf.test], ta, tb)))
    raw = (sf.a[sf.key] if alice else 1 - sf.b[sf.key]).astype(np.uint8)   # psi+: anti-correlated key bases
    key_basis = sf.x[sf.key].astype(np.int8)
    n_used = int(sf.stats["used"])
    t["sift"] = time.perf_counter() - t0

    rep = DistillReport(rounds_alice=n_a, rounds_bob=n_b, pairs=n_pairs, used=n_used, key_rounds=n_key,
                        test_rounds=n_test, S=float(S), qber_sample=None, qber_corrected=None, Q0=None, Q1=None,
                        eps_sec=opts.eps_sec, eps_cor=opts.eps_cor)
    rep.role = role
    rep.seeds = {"source": ha["seed_source"], "chosen_by": "alice"}
    p_key, p_test = n_key / n_used, n_test / n_used

    def finish(key, discarded):
        return _finish(rep, ch, key, raw, key_basis, discarded, t)

    # -- QBER for the code choice: given, or a disclosed sample ----------------------------------------------------
    keep = np.ones(n_key, bool)
    if opts.qber is None:
        s = default_sample_bits(n_key, opts.blind) if opts.sample_bits is None else int(opts.sample_bits)
        s = min(max(s, 1), n_key)
        pos = say("alice", "sample_choice", lambda: {"positions": coins.sample(n_key, s)}).payload["positions"]
        _expect(len(pos) == s and (s == 0 or (pos.min() >= 0 and pos.max() < n_key and _distinct(pos))),
                "sample positions out of range")
        sa = say("alice", "sample_bits", lambda: {"bits": raw[pos]}, leak_bits=s, packed=("bits",)).payload["bits"]
        sb = say("bob", "sample_bits", lambda: {"bits": raw[pos]}, leak_bits=s, packed=("bits",)).payload["bits"]
        _expect(len(sa) == len(sb) == s, "sample bits of the wrong length")
        q_hat = float(np.mean(sa != sb))
        rep.qber_sample = q_hat
        # both start one standard deviation above the estimate.  Blind rounds recover a design QBER up to ~0.008
        # below the truth (lmu2022, 1.5e6 rounds, truth 0.065: design 0.057 f = 1.175, 0.061 f = 1.13, 0.065 f = 1.135,
        # 0.069 f = 1.15, 0.073 f = 1.19, no frame lost) but not 0.010-0.014 below: then a third of the frames fail
        # and the run gives no key.  Half a sigma below the estimate (the first choice) did that in 4 of 8 seeds
        # (a 2000-bit sample has sigma 0.0055); one sigma above fails only when the sample is ~2.5 sigma low.
        sigma = math.sqrt(max(q_hat, 0.005) * (1 - q_hat) / s)
        q_design = min(0.2, max(q_hat + sigma, 0.005))
        keep[pos] = False
    else:
        q_design = float(opts.qber)
    rest = raw[keep]
    # the sample positions are not charged again as dropped: Alice's disclosed bits A_S and their removal cost s
    # together (H(K_rest | E A_S B_S) >= H(K_rest A_S | E B_S) - s >= H(K | E) - 2 s, chain rule), and the leak of
    # both sample_bits messages (2 s) already covers it
    n_sample = int(n_key - keep.sum())
    discarded = 0
    f_d = default_f_design(q_design, opts.blind) if opts.f_design is None else float(opts.f_design)

    def no_key(l_value, f_used, why):
        need = _rounds_needed(S, q_design, f_used, opts, p_key, p_test)
        rep.bound = float(l_value)
        rep.rounds_needed = None if not math.isfinite(need) else float(need)
        need_txt = ("no number of rounds gives a key at these S and QBER" if not math.isfinite(need)
                    else f"a positive key needs about {need:.3g} rounds ({need * p_key:.3g} key rounds) at S = "
                         f"{S:.3f}, QBER {q_design:.3f}, f = {f_used:.3f}, eps_sec = {opts.eps_sec:g}")
        rep.message = (f"no key: {why}; the finite-key length for these {n_used} rounds ({n_key} key rounds) is "
                       f"l = {l_value:.0f} bits; {need_txt}")
        return finish(np.zeros(0, np.uint8), discarded)

    # the sample: 2 bits disclosed per position (Alice's and Bob's)
    f_exp = expected_f(q_design, opts.blind) if opts.f_design is None else f_d  # blind: frames start below it
    l_pre = expected_length(n_key, n_test, S, q_design, f_exp, opts.eps_sec, opts.ds_method) - 2 * n_sample
    if l_pre <= 0:
        return no_key(l_pre, f_exp, "the run is too short (before error correction, with the expected efficiency)")

    # -- a public random permutation of the key, so that bursts of errors spread over the frames -------------------
    t0 = time.perf_counter()
    perm_seed = say("alice", "key_permutation", lambda: {"seed": np.uint64(coins.word64())}).payload["seed"]
    rest = rest[np.random.default_rng(int(perm_seed)).permutation(len(rest))]

    # -- error correction in batches: Alice -> Bob syndromes, Bob -> Alice a status bit per frame, blind rounds.
    #    After the first (small) batch Bob announces how many errors he corrected; the rest is designed for that
    #    QBER, so a sample that came out high or low steers only the first few frames ---------------------------
    family = resolve_family(opts.family, len(rest))
    whole = plan_frames(len(rest), q_design, f_d, family, blind=opts.blind)
    if whole.frames == 0:
        return no_key(l_pre, f_exp, f"{len(rest)} key bits fill no frame of {whole.key_bits} bits")
    f1 = first_batch_frames(whole.frames) if opts.learn else 0
    plan = plan_frames(f1 * whole.key_bits, q_design, f_d, family, blind=opts.blind) if f1 else whole
    start, parts, batches = 0, [], []
    tot = {"frames": 0, "failed": 0, "syndrome": 0, "credit": 0, "revealed": 0, "tags": 0, "rounds": 0,
           "count": 0, "bits": 0, "ok_bits": 0, "errors": 0}
    q_err = (int(np.sum(sa != sb)), len(sa)) if opts.qber is None else (0, 0)  # (errors, bits) public so far
    while True:
        n_b = plan.frames * plan.key_bits
        ok, kept, nerr, revealed, rounds_done = _reconcile_batch(say, role, plan, rest[start:start + n_b], coins,
                                                                 opts)
        start += n_b
        parts.append(kept)
        k_ok = int(ok.sum()) * plan.key_bits
        F = plan.frames
        tot["frames"] += F
        tot["failed"] += int((~ok).sum())
        tot["syndrome"] += F * plan.m
        tot["credit"] += F * len(plan.punctured)
        tot["revealed"] += revealed
        tot["tags"] += F * FRAME_TAG_BITS
        tot["rounds"] += rounds_done
        tot["bits"] += n_b
        tot["ok_bits"] += k_ok
        if not alice:
            tot["errors"] += nerr
        batch = {**plan.public(), "blind_rounds": rounds_done, "failed": int((~ok).sum())}
        batches.append(batch)
        if len(batches) == 2 or f1 == 0:
            break
        # Bob's count of corrected errors is a number in [0, k_ok]: at most log2(k_ok + 1) bits about the keys
        cnt = say("bob", "error_count", lambda: {"errors": np.int64(nerr), "bits": np.int64(k_ok)},
                  leak_bits=count_leak(k_ok)).payload
        _expect(int(cnt["bits"]) == k_ok and 0 <= int(cnt["errors"]) <= k_ok, "error count out of range")
        tot["count"] += count_leak(k_ok)
        batch["errors"] = int(cnt["errors"])
        q_err = (q_err[0] + int(cnt["errors"]), q_err[1] + k_ok)
        q_next = learned_qber(q_err[0], q_err[1], plan.design_qber)
        plan = plan_frames(len(rest) - start, q_next, f_d, family, blind=opts.blind)
        if plan.frames == 0:
            break
    t["reconcile"] = time.perf_counter() - t0
    mine = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
    if not alice and tamper is not None:
        mine = tamper(mine.copy())
    n_ok = tot["ok_bits"]
    discarded += len(rest) - n_ok
    rep.code = {"family": family, "design_qber": batches[0]["design_qber"],
                "decoder": ("timetag layered sum-product" if opts.decoder == "layered" else
                            "ldpc.BpDecoder product_sum parallel"), "max_iter": opts.max_iter,
                "permutation_seed": int(perm_seed), "blind_rounds": tot["rounds"], "batches": batches}
    rep.frames, rep.frames_failed = tot["frames"], tot["failed"]
    rep.syndrome_bits = int(tot["syndrome"])
    rep.punctured_credit = int(tot["credit"])
    rep.revealed_bits = int(tot["revealed"])
    rep.frame_tag_bits = int(tot["tags"])
    rep.error_count_bits = int(tot["count"])
    by = ch.transcript.leak_by_kind()
    ec_bits = (rep.syndrome_bits - rep.punctured_credit + rep.revealed_bits + rep.frame_tag_bits
               + rep.error_count_bits)
    rep.leak_ec = ec_bits + by.get("frame_status", 0)
    if not alice and n_ok:  # only Bob knows how many errors he corrected
        rep.qber_corrected = float(tot["errors"] / n_ok)
        if rep.qber_corrected:
            rep.f_measured = ec_bits / (tot["bits"] * h2(rep.qber_corrected))

    # -- verification: Alice's polynomial-hash tags, Bob's 1-bit answer ---------------------------------------------
    t0 = time.perf_counter()
    r_pts = n_points(max(n_ok, 1), opts.eps_cor)
    points = say("alice", "verify_points", lambda: {"points": np.array([coins.below(P61) for _ in range(r_pts)],
                                                                       np.uint64)}).payload["points"]
    _expect(len(points) == r_pts and all(int(p) < P61 for p in points), "verification points out of range")
    tag_a = say("alice", "verify_tags", lambda: {"tags": np.array(tags(mine, points), np.uint64)},
                leak_bits=TAG_BITS * r_pts).payload["tags"]
    _expect(len(tag_a) == r_pts, "verification tags of the wrong number")
    equal = bool(say("bob", "verify_result", lambda: {"equal": np.uint8(tags(mine, points) == [int(x) for x in tag_a])},
                     leak_bits=1).payload["equal"])
    t["verify"] = time.perf_counter() - t0
    rep.verified = equal
    rep.code["verify"] = {"hash": "polynomial over GF(2^61-1)", "points": r_pts,
                          "collision_bound": collision_bound(max(n_ok, 1), r_pts)}
    if not equal:
        rep.message = ("no key: verification failed (the corrected keys differ; collision bound "
                       f"{collision_bound(max(n_ok, 1), r_pts):.2g}); the run is aborted")
        rep.bound = None
        return finish(np.zeros(0, np.uint8), discarded)

    # -- privacy amplification: Alice's Toeplitz seed; Bob confirms the length ----------------------------------------
    l_val = bound(n_key, n_test, S, q_design, ch.transcript.leak_bits + discarded, opts.eps_sec, opts.ds_method)
    final = int(min(math.floor(l_val), n_ok)) if l_val > 0 else 0
    if final <= 0:
        return no_key(l_val, rep.f_measured or f_exp, "the measured leak leaves no secret bits")
    t0 = time.perf_counter()
    pa_msg = say("alice", "pa_seed", lambda: {"seed": coins.bits(n_ok + final - 1), "length": np.int64(final)},
                 packed=("seed",)).payload
    _expect(int(pa_msg["length"]) == final and len(pa_msg["seed"]) == n_ok + final - 1,
            f"the announced final length {int(pa_msg['length'])} differs from bob's {final}")
    key = toeplitz_hash(mine, pa_msg["seed"], final)
    t["amplify"] = time.perf_counter() - t0
    conf = say("bob", "confirm", lambda: {"final_length": np.int64(final)}).payload
    _expect(int(conf["final_length"]) == final, "bob confirms another final length")
    rep.bound = float(l_val)
    return finish(key, discarded)


def _reconcile_batch(say, role: str, plan, bits: np.ndarray, coins, opts: Options):
    """One batch of frames under ``plan``: syndromes, frame tags, Bob's status, blind rounds.  Returns (ok mask,
    this party's key bits of the decoded frames -- Bob's corrected --, errors Bob corrected in them (0 for Alice),
    revealed bits, blind rounds)."""
    alice = role == "alice"
    F, k = plan.frames, plan.key_bits
    cp = say("alice", "code_plan", lambda: {**{key: (v if isinstance(v, str) else np.asarray(v))
                                               for key, v in plan.public().items()},
                                            "shortened_positions": plan.shortened,
                                            "punctured_positions": plan.punctured}).payload
    _expect(str(cp["code"]) == plan.code and int(cp["frames"]) == plan.frames
            and int(cp["reveal_bits"]) == plan.reveal_bits and int(cp["reveal_steps"]) == plan.reveal_steps
            and np.array_equal(cp["shortened_positions"], plan.shortened)
            and np.array_equal(cp["punctured_positions"], plan.punctured), "the code plan differs from bob's")
    X = alice_frames(bits, plan, coins) if alice else None
    syn = say("alice", "syndromes", lambda: {"syndromes": syndromes(X, plan)},
              leak_bits=F * plan.leak_per_frame, packed=("syndromes",)).payload["syndromes"]
    _expect(syn.shape == (F, plan.m), "syndromes of the wrong shape")
    ft = say("alice", "frame_tags", lambda: (lambda x: {"point": np.uint64(x), "tags": alice_frame_tags(X, plan, x)})(
        coins.below(P61)), leak_bits=F * FRAME_TAG_BITS).payload
    _expect(len(ft["tags"]) == F and int(ft["point"]) < P61, "frame tags of the wrong number")
    ok_b = None
    if not alice:
        bob_dec = BobDecoder(plan, max_iter=opts.max_iter, decoder=opts.decoder)
        ok_b = bob_dec.start(bits, syn, ft["tags"], int(ft["point"]))
    ok = say("bob", "frame_status", lambda: {"ok": ok_b.astype(np.uint8)}, leak_bits=F,
             packed=("ok",)).payload["ok"].astype(bool)
    _expect(len(ok) == F, "frame status of the wrong length")
    revealed = rounds_done = 0
    for step in range(plan.reveal_steps):
        pending = np.flatnonzero(~ok)
        if len(pending) == 0:
            break
        rv = say("alice", "reveal", lambda: {"frames": pending.astype(np.int64),
                                             "bits": alice_reveal(X, plan, pending, step)},
                 leak_bits=len(pending) * len(plan.reveal_positions(step)), packed=("bits",)).payload
        _expect(np.array_equal(rv["frames"], pending) and rv["bits"].shape == (len(pending),
                                                                              len(plan.reveal_positions(step))),
                "revealed bits for other frames than bob's undecoded ones")
        if not alice:
            ok_b = bob_dec.reveal(pending, rv["bits"])[pending]
        st = say("bob", "frame_status", lambda: {"ok": ok_b.astype(np.uint8)}, leak_bits=len(pending),
                 packed=("ok",)).payload["ok"].astype(bool)
        _expect(len(st) == len(pending), "frame status of the wrong length")
        ok[pending] = st
        revealed += rv["bits"].size
        rounds_done += 1
    if alice:
        return ok, bits[:F * k].reshape(F, k)[ok].ravel(), 0, revealed, rounds_done
    corrected, ok_dec, nerr = bob_dec.result()
    _expect(np.array_equal(ok_dec, ok), "bob's frames differ from his status messages")
    return ok, corrected[ok].ravel(), int(nerr[ok].sum()), revealed, rounds_done


def _rounds_needed(S, q, f, opts: Options, p_key, p_test) -> float:
    """Rounds for a positive key at efficiency f, the QBER sample included (2 bits per disclosed position, as an
    extra efficiency 3 s / (n_k h(q)) solved for the fixed point; the sample's size depends on n_k)."""
    need = rounds_needed(S, q, f, opts.eps_sec, p_key, p_test, opts.ds_method)
    if opts.qber is not None or h2(q) <= 0:
        return need
    for _ in range(30):
        if not math.isfinite(need):
            return need
        nk = max(need * p_key, 1.0)
        s = default_sample_bits(int(nk), opts.blind) if opts.sample_bits is None else int(opts.sample_bits)
        nxt = rounds_needed(S, q, f + 2 * max(s, 1) / (nk * h2(q)), opts.eps_sec, p_key, p_test, opts.ds_method)
        if math.isfinite(nxt) and abs(nxt - need) <= 1e-3 * need:
            return nxt
        need = nxt
    return need


def _finish(rep: DistillReport, ch: Channel, key, raw, key_basis, discarded, t) -> PartyResult:
    tr = ch.transcript
    by = tr.leak_by_kind()
    rep.sample_bits = by.get("sample_bits", 0)
    rep.hash_bits = by.get("verify_tags", 0) + by.get("verify_result", 0)
    rep.discarded_bits = int(discarded)
    rep.leak_total = tr.leak_bits
    rep.final_length = int(len(key))
    rep.auth = {"mac": "HMAC-SHA256, pre-shared key" if ch.authenticated else "none (one process)",
                "messages": len(tr.messages), "bits_per_tag": AUTH_BITS_PER_TAG,
                "note": "auth_bits: the key that information-theoretic (Wegman-Carter) tags of this length on "
                        "these messages would consume, to be paid from the key produced (net_length)"}
    rep.auth_bits = AUTH_BITS_PER_TAG * len(tr.messages)
    rep.net_length = rep.final_length - rep.auth_bits
    rep.timings_s = {k: round(v, 4) for k, v in t.items()}
    return PartyResult(ch.role, key, rep, tr, raw, key_basis)


def run_over_socket(role: str, rounds, address: str, psk: bytes, opts: Options, *, on_listening=None,
                    timeout: float | None = None, **kw) -> PartyResult:
    """One party over TCP: Alice listens on ``address`` (``on_listening(host, port)`` once bound), Bob connects."""
    from . import channel as chmod
    tkw = {} if timeout is None else {"timeout": timeout}
    if role == "alice":
        ch = chmod.listen(address, psk, on_listening=on_listening, **tkw)
    elif role == "bob":
        ch = chmod.connect(address, psk, **tkw)
    else:
        raise TimetagError(f"--role must be 'alice' or 'bob', got {role!r}")
    try:
        return run_party(role, rounds, ch, opts, **kw)
    finally:
        ch.close()
