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

Decoder: ``ldpc.BpDecoder`` (the ``ldpc`` package, Roffe et al.), sum-product ("product_sum"), parallel
schedule, at most ``max_iter`` iterations; a frame whose decoded error does not reproduce the syndrome is failed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import TimetagError
from .codes import FAMILY_VERSION, Code, load_family

SHORTEN_SEED = 0x5107
PUNCTURE_SEED = 0x9C7
DEFAULT_MAX_ITER = 60


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


def default_f_design(q: float) -> float:
    """Design efficiency (leak / n h(q)) of the frames: measured FER <= ~1e-2 at n0 = 8192 (docs/distill.md)."""
    if q < 0.04:
        return 1.32
    return 1.25 if q < 0.07 else 1.18


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

    @property
    def leak_per_frame(self) -> int:
        return self.m - len(self.punctured)

    def public(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if not isinstance(v, np.ndarray)}
        d.update(shortened=len(self.shortened), punctured=len(self.punctured))
        return d


def puncture_candidates(code: Code) -> np.ndarray:
    """Columns that may be punctured together: greedily, in a fixed order, a column whose checks touch no
    punctured column yet (every punctured column then owns its checks: full column rank)."""
    order = np.random.default_rng(PUNCTURE_SEED).permutation(code.n)
    used = np.zeros(code.m, bool)
    out = []
    for j in order:
        c = code.var_adj[j]
        c = c[c >= 0]
        if not used[c].any():
            used[c] = True
            out.append(j)
    return np.array(out, np.int64)


def plan_frames(n_bits: int, q: float, f_design: float | None = None, family: str = FAMILY_VERSION) -> FramePlan:
    """The frame plan for ``n_bits`` key bits at design QBER ``q`` (public: both sides compute the same)."""
    codes = load_family(family)
    f = default_f_design(q) if f_design is None else float(f_design)
    R = 1.0 - f * h2(max(q, 1e-4))
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
    sh = np.zeros(0, np.int64)
    pu = np.sort(puncture_candidates(code)[:p]) if p else np.zeros(0, np.int64)
    k_full = code.n - s - p
    frames = n_bits // k_full if k_full > 0 else 0
    rest = n_bits - frames * k_full
    if rest > code.m - p:  # a last frame pays for itself: spread the bits over one more frame (more shortening)
        frames += 1
        k = n_bits // frames
        s = code.n - p - k
    else:
        k = k_full
    if s:
        order = np.random.default_rng(SHORTEN_SEED).permutation(code.n)
        free = order[~np.isin(order, pu)]
        sh = np.sort(free[:s])
    keypos = np.setdiff1d(np.arange(code.n), np.concatenate([sh, pu]))
    return FramePlan(family, code.name, code.n, code.m, int(len(keypos)), sh.astype(np.int64), pu,
                     keypos.astype(np.int64), int(frames), float(q), f)


def _frames(bits: np.ndarray, plan: FramePlan, fill: np.ndarray | None = None) -> np.ndarray:
    F, n0 = plan.frames, plan.n0
    X = np.zeros((F, n0), np.uint8)
    X[:, plan.key_positions] = bits[:F * plan.key_bits].reshape(F, plan.key_bits)
    if fill is not None and len(plan.punctured):
        X[:, plan.punctured] = fill
    return X


def alice_syndromes(bits: np.ndarray, plan: FramePlan, rng) -> np.ndarray:
    """(frames, m) syndromes of Alice's frames; punctured positions filled from ``rng`` (her secret coins)."""
    code = load_family(plan.family)[plan.code]
    fill = rng.integers(0, 2, (plan.frames, len(plan.punctured)), dtype=np.uint8) if len(plan.punctured) else None
    X = _frames(bits, plan, fill)
    H = code.csr()
    return (np.asarray((H @ X.T.astype(np.int32))) & 1).T.astype(np.uint8).copy()


class BobDecoder:
    """Bob's side: one decoder for the plan, frames decoded one by one."""

    def __init__(self, plan: FramePlan, max_iter: int = DEFAULT_MAX_ITER):
        BpDecoder = require_ldpc()
        self.plan = plan
        code = load_family(plan.family)[plan.code]
        self.H = code.csr()
        keep = np.setdiff1d(np.arange(plan.n0), plan.shortened)
        self.keep = keep
        self.Hk = code.csr(keep)
        probs = np.full(plan.n0, min(max(plan.design_qber, 1e-4), 0.49))
        probs[plan.punctured] = 0.5 - 1e-9
        self.decoder = BpDecoder(self.Hk, error_channel=probs[keep], max_iter=max_iter, bp_method="product_sum",
                                 schedule="parallel", random_schedule_seed=1, input_vector_type="syndrome")
        # positions of the key bits inside the kept columns
        self.key_in_keep = np.searchsorted(keep, plan.key_positions)

    def correct(self, bits: np.ndarray, syndromes: np.ndarray):
        """(corrected key bits of the frames, ok mask per frame, errors corrected per frame)."""
        plan = self.plan
        Y = _frames(bits, plan)
        SB = (np.asarray((self.H @ Y.T.astype(np.int32))) & 1).T.astype(np.uint8)
        target = syndromes ^ SB
        out = Y[:, plan.key_positions].copy()
        ok = np.zeros(plan.frames, bool)
        nerr = np.zeros(plan.frames, np.int64)
        for i in range(plan.frames):
            e = self.decoder.decode(np.ascontiguousarray(target[i]))
            if not np.array_equal((self.Hk @ e.astype(np.int32)) & 1, target[i]):
                continue
            ek = e[self.key_in_keep].astype(np.uint8)
            out[i] ^= ek
            ok[i] = True
            nerr[i] = int(ek.sum())
        return out, ok, nerr
