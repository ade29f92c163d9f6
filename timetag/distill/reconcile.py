"""One-way syndrome reconciliation, Alice -> Bob, with rate adaptation from the stored code family.

Frame layout (Elkouss, Martinez-Mateo, Martin, "Information reconciliation for QKD", QIC 11, 226 (2011)): a frame
is one codeword of a mother code (n0 columns, m checks) holding k key bits, s shortened positions (value 0, known to
both) and p punctured positions (random bits known only to Alice), k = n0 - s - p.  Alice sends the syndrome
H x (m bits).  Bob forms his frame y (his key bits, 0 elsewhere), computes H y and decodes the error pattern
e = x xor y from the syndrome H x xor H y by belief propagation: shortened columns are removed (e = 0 there),
punctured positions get error probability 1/2, key positions the design QBER.  Bob's corrected bits are y xor e.

Leak per frame: m - p.  Puncturing is credited only because the punctured columns have full column rank: the
rule below gives every punctured column a check of its own (no check touches two punctured columns -- the core of
untainted puncturing), so the p syndrome components they enter are one-time padded by Alice's random bits.

Rate choice for a design QBER q and efficiency f: target rate R = 1 - f h(q) per frame.  The mother code of
lowest rate >= R is shortened down to R; if R is above every mother rate, the highest-rate code is punctured up to
R (bounded by the positions the puncturing rule allows).  Positions: shortened positions are taken in a fixed
pseudo-random order (``default_rng(SHORTEN_SEED)``), punctured ones greedily in the order of another.

Blind rounds (rate adaptation by revealed bits, after Martinez-Mateo, Elkouss, Martin, "Blind reconciliation",
QIC 12, 791 (2012)): a frame starts at a high rate -- p punctured positions, leak m - p = ``f_design`` k h(q), with
f_design (default 1.08) below what most frames need -- and, when Bob cannot decode it, Alice reveals the values of
``reveal_bits`` more of its punctured bits (in the order the puncturing rule drew them), each counted as one leaked
bit (the credit of that punctured bit is taken back).  Bob decodes again with those bits known.  Once every
punctured bit is revealed the frame is a shortened code at ``f_max`` (1.4); a frame still undecoded is failed and
dropped.  At most ``MAX_BLIND_ROUNDS`` rounds: the last one reveals every punctured bit left (each round is two
messages, and each message costs authentication key: 256 bits in the report's accounting).  The leak of a frame
is what it needed, so the average efficiency follows the frames' own noise instead of a worst-case margin.
Revealing a *key* bit instead would buy much less: it removes h(q) of uncertainty for one leaked bit, a punctured
bit a whole bit (measured: f 1.25-1.28 revealing key bits, 1.12-1.14 revealing punctured bits).

Frame tags: belief propagation sometimes converges to a *different* word with the same syndrome (measured: about
one frame in 400 at QBER 0.04 with many punctured bits), which the final verification would catch only by aborting
the whole run.  Alice therefore sends a 16-bit tag per frame (the low bits of the polynomial hash of
:mod:`.verify` of the frame's key bits at a public point), counted as 16 leaked bits per frame; Bob accepts a frame
only when syndrome and tag agree, else it goes on to the next blind round or fails.  The final verification still
carries eps_cor.

Decoder: :class:`timetag.distill.decoder.LayeredDecoder` (the project's layered sum-product, float32, C), chosen over
``ldpc.BpDecoder`` after measuring (docs/distill.md, *Decoder*); ``decoder="ldpc"`` keeps the latter (sum-product,
parallel schedule, cold restart at each round) for comparison.  A frame whose decoded error does not reproduce the
syndrome (and the revealed bits) is not decoded.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import TimetagError
from .codes import FAMILY_VERSION, LONG_FAMILY_VERSION, Code, load_family

LLR_KNOWN = 50.0  # prior LLR of a revealed bit: certain (the decoder reads every |LLR| above 31 alike)

__all__ = ["FramePlan", "BobDecoder", "MissingDecoder", "plan_frames", "alice_frames", "syndromes",
           "alice_syndromes", "alice_reveal", "alice_frame_tags", "frame_tag", "reconcile_local",
           "FRAME_TAG_BITS", "puncture_candidates", "default_f_design", "expected_f", "h2", "require_ldpc", "DECODERS",
           "first_batch_frames", "count_leak", "learned_qber", "resolve_family", "AUTO_FAMILY"]

SHORTEN_SEED = 0x5107
PUNCTURE_SEED = 0x9C7
DEFAULT_MAX_ITER = 40
DEFAULT_F_STEP = 0.03       # efficiency added by one blind round (revealed bits = f_step * k * h(q))
DEFAULT_F_MAX = 1.4         # efficiency of a frame once every punctured bit is revealed: then it is given up
FRAME_TAG_BITS = 16         # per-frame hash tag: a decoder that lands on another codeword is caught per frame
MAX_BLIND_ROUNDS = 6        # the last reveals all punctured bits left: every round costs two authenticated messages
BLIND_F_EXPECTED = 1.13    # mean f of blind rounds, measured (docs/distill.md): the pre-check and rounds-needed use it
DECODERS = ("layered", "ldpc")


class MissingDecoder(TimetagError):
    """The ldpc package (the 'distill' extra) is not installed."""


def require_ldpc():
    try:
        from ldpc import BpDecoder
    except ImportError:
        raise MissingDecoder("timetag distill needs the ldpc package: pip install 'timetag[distill]' "
                             "(or pip install 'ldpc>=2.4')") from None
    return BpDecoder


def h2(q: float) -> float:
    if q <= 0 or q >= 1:
        return 0.0
    return -q * math.log2(q) - (1 - q) * math.log2(1 - q)


def expected_f(q: float, blind: bool = True) -> float:
    """The efficiency a run can expect (before it measures its own): blind rounds' mean f measured at QBER
    0.04-0.08 (benchmarks/bench_distill.py), or the one-shot design efficiency."""
    return BLIND_F_EXPECTED if blind else default_f_design(q, False)


def default_f_design(q: float, blind: bool = True) -> float:
    """Starting efficiency (leak / n h(q)) of the frames.  With blind rounds: 1.08 -- some frames decode there, the
    rest take revealed bits as they need them (starting at 1.04 in steps of 0.02 gave f lower by ~0.005 for twice
    the decoding; docs/distill.md).
    Without: FER <= ~1e-2 at n0 = 8192."""
    if blind:
        return 1.08
    if q < 0.04:
        return 1.32
    return 1.25 if q < 0.07 else 1.18


AUTO_FAMILY = "auto"
LONG_FAMILY_MIN_BITS = 200_000  # ~15 frames of the long family: the first batch (2 frames) stays a small share


def resolve_family(family: str, n_bits: int) -> str:
    """The code family for ``n_bits`` key bits: ``family`` itself, or for ``"auto"`` the 16384-bit family when
    there are at least LONG_FAMILY_MIN_BITS bits (measured f ~0.015 lower at QBER 0.065, docs/distill.md), else
    the 8192-bit one (short runs keep enough frames for the two batches).  Public: both sides resolve alike."""
    if family != AUTO_FAMILY:
        return family
    return LONG_FAMILY_VERSION if n_bits >= LONG_FAMILY_MIN_BITS else FAMILY_VERSION


def first_batch_frames(frames: int) -> int:
    """Frames of the first batch (designed from the sample or the given QBER) when the QBER is learned from it;
    0: one batch.  A sixteenth of the frames, at least 2: at lmu2022's 1.5e6 rounds 4 frames (27 kbit, sigma of
    the learned QBER 0.0015, against 0.0055 of the 2000-bit sample), so a badly designed first batch costs little."""
    return max(2, int(math.ceil(frames / 16))) if frames >= 8 else 0


def count_leak(n_bits: int) -> int:
    """Leak charged for announcing the number of errors among ``n_bits`` corrected bits: ceil(log2(n_bits + 1)),
    the bits of a number in [0, n_bits] (chain rule: a message of v values lowers the min-entropy by <= log2 v)."""
    return int(n_bits).bit_length()


def learned_qber(errors: int, bits: int, previous: float) -> float:
    """Design QBER of the next batch: the error rate of everything public so far (sample and corrected frames).
    No bits (every frame of the batch failed: the design was far too low): 1.25 x the previous design + 0.01."""
    if bits <= 0:
        return min(0.2, 1.25 * previous + 0.01)
    return min(0.2, max(errors / bits, 0.005))


@dataclass
class FramePlan:
    family: str
    code: str
    n0: int
    m: int
    key_bits: int            # k per frame
    shortened: np.ndarray    # positions in the frame
    punctured: np.ndarray
    key_positions: np.ndarray
    frames: int
    design_qber: float
    f_design: float
    reveal_order: np.ndarray  # punctured positions (in the frame) in the order blind rounds reveal them
    reveal_bits: int = 0      # revealed per frame per blind round
    reveal_steps: int = 0     # blind rounds at most

    @property
    def leak_per_frame(self) -> int:
        """Syndrome bits a frame leaks before any blind round."""
        return self.m - len(self.punctured)

    def reveal_positions(self, step: int) -> np.ndarray:
        """Frame positions revealed in blind round ``step`` (0-based); the last round reveals all that are left."""
        end = len(self.reveal_order) if step == self.reveal_steps - 1 else (step + 1) * self.reveal_bits
        return self.reveal_order[step * self.reveal_bits:end]

    def public(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if not isinstance(v, np.ndarray)}
        d["reveal_order"] = "punctured positions, in the order the puncturing rule drew them"
        d.update(shortened=len(self.shortened), punctured=len(self.punctured))
        return d


def puncture_candidates(code: Code) -> np.ndarray:
    """Columns that may be punctured together: greedily, in a fixed order, a column whose checks touch no
    punctured column yet (every punctured column then owns its checks: full column rank).  Read-only array,
    computed once per matrix (a Python loop over the columns: 0.07 s at n0 = 16384, and every plan asks for
    every code of the family).  Keyed by the matrix's SHA-256, which the family's manifest checks on loading."""
    cand = _CANDIDATES.get(code.sha256)
    if cand is not None:
        return cand
    order = np.random.default_rng(PUNCTURE_SEED).permutation(code.n)
    used = np.zeros(code.m, bool)
    out = []
    for j in order:
        c = code.var_adj[j]
        c = c[c >= 0]
        if not used[c].any():
            used[c] = True
            out.append(j)
    cand = np.array(out, np.int64)
    cand.flags.writeable = False
    _CANDIDATES[code.sha256] = cand
    return cand


_CANDIDATES: dict[str, np.ndarray] = {}


def plan_frames(n_bits: int, q: float, f_design: float | None = None, family: str = FAMILY_VERSION,
                blind: bool = True, f_max: float = DEFAULT_F_MAX, f_step: float = DEFAULT_F_STEP) -> FramePlan:
    """The frame plan for ``n_bits`` key bits at design QBER ``q`` (public: both sides compute the same).

    Blind (default): frames start at efficiency ``f_design`` with p punctured positions and reach ``f_max`` when
    blind rounds have revealed all p (``f_step`` per round); a QBER too low for that (no code of the family has
    room) falls back to one-shot frames.  ``blind=False``: one-shot frames at ``f_design``."""
    codes = load_family(family)
    hq = h2(max(q, 1e-4))
    f = default_f_design(q, blind) if f_design is None else float(f_design)
    if blind:
        best = None
        for code in codes.values():
            k = int(math.floor(code.m / (max(f_max, f) * hq)))
            p = code.m - int(math.floor(f * k * hq))
            if k <= 0 or p < 0 or code.n - k - p < 0 or p > len(puncture_candidates(code)):
                continue
            if best is None or k > best[1]:
                best = (code, k, p)
        if best is not None:
            code, k, p = best
            return _layout(n_bits, code, code.n - k - p, p, family, q, f, f_step, blind=True)
        f = default_f_design(q, False) if f_design is None else f
    R = 1.0 - f * hq
    above = [c for c in codes.values() if c.rate >= R]
    if above:
        code = min(above, key=lambda c: c.rate)
        s = max(0, int(math.floor(code.n - code.m / (1.0 - R))))
        p = 0
    else:
        code = max(codes.values(), key=lambda c: c.rate)
        cand = puncture_candidates(code)
        p = min(len(cand), max(0, int(math.ceil(code.n - (code.n - code.m) / R))))
        s = 0
    return _layout(n_bits, code, s, p, family, q, f, f_step, blind=False)


def _layout(n_bits, code: Code, s: int, p: int, family, q, f, f_step, blind, max_rounds=MAX_BLIND_ROUNDS
            ) -> FramePlan:
    """Positions of a frame (s shortened, p punctured, the rest key bits) and the number of frames."""
    pu_order = puncture_candidates(code)[:p] if p else np.zeros(0, np.int64)
    pu = np.sort(pu_order)
    sh = np.zeros(0, np.int64)
    k_full = code.n - s - p
    frames = n_bits // k_full if k_full > 0 else 0
    rest = n_bits - frames * k_full
    if rest > code.m - p:  # a last frame pays for itself: spread the bits over one more frame (more shortening)
        frames += 1
        k = n_bits // frames
        s = code.n - p - k
    if s:
        order = np.random.default_rng(SHORTEN_SEED).permutation(code.n)
        free = order[~np.isin(order, pu)]
        sh = np.sort(free[:s])
    keypos = np.setdiff1d(np.arange(code.n), np.concatenate([sh, pu]))
    step_bits = steps = 0
    if blind and p:  # punctured bits are revealed in the order the puncturing rule drew them
        step_bits = min(p, max(1, int(math.ceil(f_step * len(keypos) * h2(max(q, 1e-4))))))
        steps = min(int(math.ceil(p / step_bits)), max_rounds)
    return FramePlan(family, code.name, code.n, code.m, int(len(keypos)), sh.astype(np.int64), pu,
                     keypos.astype(np.int64), int(frames), float(q), float(f), pu_order.astype(np.int64),
                     step_bits, steps)


def _frames(bits: np.ndarray, plan: FramePlan, fill: np.ndarray | None = None) -> np.ndarray:
    F, n0 = plan.frames, plan.n0
    X = np.zeros((F, n0), np.uint8)
    X[:, plan.key_positions] = bits[:F * plan.key_bits].reshape(F, plan.key_bits)
    if fill is not None and len(plan.punctured):
        X[:, plan.punctured] = fill
    return X


def alice_frames(bits: np.ndarray, plan: FramePlan, rng) -> np.ndarray:
    """(frames, n0) Alice's frames: her key bits, punctured positions filled from ``rng`` (her secret coins)."""
    fill = rng.integers(0, 2, (plan.frames, len(plan.punctured)), dtype=np.uint8) if len(plan.punctured) else None
    return _frames(bits, plan, fill)


def syndromes(X: np.ndarray, plan: FramePlan) -> np.ndarray:
    """(frames, m) syndromes H x of the frames ``X``."""
    H = load_family(plan.family)[plan.code].csr()
    return (np.asarray((H @ X.T.astype(np.int32))) & 1).T.astype(np.uint8).copy()


def alice_syndromes(bits: np.ndarray, plan: FramePlan, rng) -> np.ndarray:
    """(frames, m) syndromes of Alice's frames (:func:`alice_frames`)."""
    return syndromes(alice_frames(bits, plan, rng), plan)


def frame_tag(key_bits: np.ndarray, point: int) -> int:
    """The 16-bit tag of one frame's key bits (low bits of the polynomial hash at ``point``)."""
    from .verify import poly_hash
    return poly_hash(key_bits, int(point)) & ((1 << FRAME_TAG_BITS) - 1)


def alice_frame_tags(X: np.ndarray, plan: FramePlan, point: int) -> np.ndarray:
    """(frames,) uint16 tags of Alice's frames ``X``."""
    return np.array([frame_tag(x[plan.key_positions], point) for x in X], np.uint16)


def alice_reveal(X: np.ndarray, plan: FramePlan, frames: np.ndarray, step: int) -> np.ndarray:
    """(len(frames), reveal_bits): Alice's punctured bits of blind round ``step`` in ``frames`` (rows of her
    frames ``X``, :func:`alice_frames`)."""
    pos = plan.reveal_positions(step)
    return X[np.asarray(frames, np.int64)][:, pos].astype(np.uint8)


class BobDecoder:
    """Bob's side: :meth:`start` decodes every frame once; :meth:`reveal` takes Alice's bits of one blind round
    for the frames not yet decoded and decodes those again; :meth:`result` gives the corrected key bits.
    ``threads`` > 1 decodes the frames of a round on that many threads (layered decoder only; same outcome, less
    wall time, the same CPU time)."""

    def __init__(self, plan: FramePlan, max_iter: int = DEFAULT_MAX_ITER, decoder: str = "layered", threads: int = 1):
        if decoder not in DECODERS:
            raise TimetagError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
        self.plan = plan
        code = load_family(plan.family)[plan.code]
        self.H = code.csr()
        keep = np.setdiff1d(np.arange(plan.n0), plan.shortened)
        self.keep = keep
        self.Hk = code.csr(keep)
        q = min(max(plan.design_qber, 1e-4), 0.49)
        self.probs0 = np.full(len(keep), q)
        self.probs0[np.searchsorted(keep, plan.punctured)] = 0.5 - 1e-9
        self.key_in_keep = np.searchsorted(keep, plan.key_positions)
        self.kind = decoder
        if decoder == "ldpc":
            BpDecoder = require_ldpc()
            self._bp = BpDecoder(self.Hk, error_channel=self.probs0, max_iter=max_iter, bp_method="product_sum",
                                 schedule="parallel", random_schedule_seed=1, input_vector_type="syndrome")
        else:
            from .decoder import LayeredDecoder
            # one decoder (with its work arrays) per thread: the layered kernel releases the GIL
            self._ld = [LayeredDecoder(self.Hk, max_iter=max_iter) for _ in range(max(1, int(threads)))]
            self._states = [d.state() for d in self._ld]
        self.threads = len(self._ld) if decoder == "layered" else 1
        self.iterations = 0

    def start(self, bits: np.ndarray, syndromes: np.ndarray, tags: np.ndarray | None = None, point: int = 0
              ) -> np.ndarray:
        """Decode every frame of Bob's ``bits`` against Alice's ``syndromes`` (and her frame ``tags`` at ``point``,
        when given); the ok mask per frame."""
        plan = self.plan
        self.tags, self.point, self.tag_rejects = tags, int(point), 0
        self.Y = _frames(bits, plan)
        SB = (np.asarray((self.H @ self.Y.T.astype(np.int32))) & 1).T.astype(np.uint8)
        self.target = syndromes ^ SB
        F, nk = plan.frames, len(self.keep)
        self.llr = np.tile(np.log((1 - self.probs0) / self.probs0), (F, 1))
        self.known = np.zeros((F, nk), bool)
        self.known_e = np.zeros((F, nk), np.uint8)
        self.E = np.zeros((F, nk), np.uint8)
        self.ok = np.zeros(F, bool)
        self.step = 0
        self._decode_frames(range(F))
        return self.ok.copy()

    def reveal(self, frames: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Blind round: Alice's ``values`` (len(frames), reveal_bits) at this round's positions; decodes those
        frames again and returns the ok mask of all frames."""
        plan = self.plan
        cols = np.searchsorted(self.keep, plan.reveal_positions(self.step))
        pos = plan.reveal_positions(self.step)
        frames = np.asarray(frames, np.int64)
        for idx, i in enumerate(frames):
            e = (np.asarray(values[idx], np.uint8) ^ self.Y[i, pos]).astype(np.uint8)
            self.llr[i, cols] = np.where(e == 1, -LLR_KNOWN, LLR_KNOWN)
            self.known[i, cols] = True
            self.known_e[i, cols] = e
        self._decode_frames(frames)
        self.step += 1
        return self.ok.copy()

    def _decode_frames(self, frames) -> None:
        """Decode ``frames`` (on ``threads`` threads: frames are independent, so the outcome is the one-thread
        outcome), then accept or reject each in frame order."""
        frames = [int(i) for i in frames]
        if self.threads == 1 or len(frames) < 2:
            found = [self._decode(i, 0) for i in frames]
        else:
            from concurrent.futures import ThreadPoolExecutor
            parts = [frames[k::self.threads] for k in range(self.threads)]
            with ThreadPoolExecutor(self.threads) as pool:
                done = list(pool.map(lambda k: [self._decode(i, k) for i in parts[k]], range(self.threads)))
            by_frame = {i: r for k in range(self.threads) for i, r in zip(parts[k], done[k])}
            found = [by_frame[i] for i in frames]
        for i, (e, iterations) in zip(frames, found):
            self.iterations += iterations
            self._accept(i, e)

    def _decode(self, i: int, worker: int) -> tuple[np.ndarray, int]:
        # every try starts afresh: continuing from the stalled messages of the last try (a warm start) was
        # measured to fail 5-13 % of frames that a fresh start decodes (docs/distill.md)
        if self.kind == "ldpc":
            p = 1.0 / (1.0 + np.exp(self.llr[i]))
            self._bp.update_channel_probs(np.clip(p, 1e-12, 1 - 1e-12))
            e = np.asarray(self._bp.decode(np.ascontiguousarray(self.target[i])), np.uint8)
            return e, int(self._bp.iter)
        dec = self._ld[worker]
        e, _ = dec.decode(self.target[i], self.llr[i], self._states[worker])
        return e, dec.iterations

    def _accept(self, i: int, e: np.ndarray) -> None:
        e = np.where(self.known[i], self.known_e[i], e).astype(np.uint8)
        if not np.array_equal((self.Hk @ e.astype(np.int32)) & 1, self.target[i]):
            return
        if self.tags is not None:
            mine = self.Y[i, self.plan.key_positions] ^ e[self.key_in_keep]
            if frame_tag(mine, self.point) != int(self.tags[i]):
                self.tag_rejects += 1  # the syndrome of another word: not this frame's
                return
        self.E[i] = e
        self.ok[i] = True

    def result(self):
        """(corrected key bits of the frames, ok mask per frame, errors corrected per frame)."""
        ek = self.E[:, self.key_in_keep]
        out = self.Y[:, self.plan.key_positions] ^ ek
        nerr = np.where(self.ok, ek.sum(axis=1), 0).astype(np.int64)
        return out, self.ok.copy(), nerr

    def correct(self, bits: np.ndarray, syndromes: np.ndarray):
        """One-shot (no blind rounds): :meth:`start`, then :meth:`result`."""
        self.start(bits, syndromes)
        return self.result()


def reconcile_local(a: np.ndarray, b: np.ndarray, plan: FramePlan, rng, max_iter: int = DEFAULT_MAX_ITER,
                    decoder: str = "layered", threads: int = 1) -> dict:
    """Both sides in one process (benchmarks, tests): syndromes, blind rounds, Bob's result and the leak."""
    X = alice_frames(a, plan, rng)
    syn = syndromes(X, plan)
    point = int(rng.integers(0, (1 << 61) - 1))
    tags = alice_frame_tags(X, plan, point)
    bob = BobDecoder(plan, max_iter, decoder, threads)
    ok = bob.start(b, syn, tags, point)
    status_bits, revealed, rounds = plan.frames, 0, 0
    for step in range(plan.reveal_steps):
        pending = np.flatnonzero(~ok)
        if len(pending) == 0:
            break
        vals = alice_reveal(X, plan, pending, step)
        revealed += vals.size
        ok = bob.reveal(pending, vals)
        status_bits += len(pending)
        rounds += 1
    corrected, ok, nerr = bob.result()
    return {"corrected": corrected, "ok": ok, "nerr": nerr, "leak_syndromes": plan.frames * plan.leak_per_frame,
            "tag_bits": plan.frames * FRAME_TAG_BITS, "tag_rejects": bob.tag_rejects,
            "revealed_bits": revealed, "status_bits": status_bits, "rounds": rounds, "iterations": bob.iterations}
