"""The ideal model behind the estimators: a Psi+ (or Psi-) state with visibility V measured at the paper's angles.

Psi+: P(A = B | x, y) = (1 - V cos(2 (alpha_x + beta_y))) / 2; Psi-: the same with alpha_x - beta_y (as the
simulator models it); outputs unbiased.  Used to make hand-made rounds for tests and demos, and as the
depolarising reference (S = 2 sqrt2 V, Q = (1 - V)/2).
"""
from __future__ import annotations

import numpy as np

from ..records import PATTERN_CODES, PATTERN_PSI_MINUS, PATTERN_PSI_PLUS
from .chsh import ALPHA_DEG, BETA_DEG


def p_same(V: float, pattern: str = "psi+") -> np.ndarray:
    """(4, 2) array of P(A = B | x, y) for the heralded state ``pattern`` ('psi+' or 'psi-')."""
    if pattern not in ("psi+", "psi-"):
        raise ValueError(f"p_same: pattern must be 'psi+' or 'psi-', got {pattern!r}")
    sign = 1.0 if pattern == "psi+" else -1.0
    th = np.deg2rad(ALPHA_DEG[:, None] + sign * BETA_DEG[None, :])
    return (1.0 - V * np.cos(2.0 * th)) / 2.0


def sample_pairs(n: int, V: float, rng=None, pattern="psi+"):
    """(x, y, a, b) arrays for n rounds with uniform inputs.

    ``pattern``: 'psi+', 'psi-', or an array of n pattern codes (PATTERN_PSI_PLUS / PATTERN_PSI_MINUS) for
    rounds of mixed heralds.  Inputs are the physical ones (no relabelling).
    """
    rng = np.random.default_rng(rng)
    x = rng.integers(0, 4, n)
    y = rng.integers(0, 2, n)
    a = rng.integers(0, 2, n)
    if isinstance(pattern, str):
        code = np.full(n, PATTERN_CODES.get(pattern, -1))
    else:
        code = np.asarray(pattern)
        if code.shape != (n,):
            raise ValueError(f"sample_pairs: pattern array has shape {code.shape}, expected ({n},)")
    if not np.isin(code, (PATTERN_PSI_PLUS, PATTERN_PSI_MINUS)).all():
        raise ValueError("sample_pairs: patterns must be psi+ or psi-")
    ps = np.where(code == PATTERN_PSI_MINUS, p_same(V, "psi-")[x, y], p_same(V, "psi+")[x, y])
    same = rng.random(n) < ps
    b = np.where(same, a, 1 - a)
    return x, y, a, b


def sample_counts(n: int, p_same_xy, rng=None, runs: int | None = None) -> np.ndarray:
    """Counts ``n[x, y, a, b]`` of n rounds with uniform inputs drawn directly (the same distribution as
    ``tally(*sample_pairs(...))``, without the per-round arrays): rounds per input pair multinomial, equal outputs
    binomial with ``p_same_xy`` (a (4, 2) array of P(A = B | x, y), e.g. :func:`p_same`), each outcome split
    evenly at random between a = 0 and a = 1.  ``runs``: that many independent runs, shape (runs, 4, 2, 2, 2).
    """
    rng = np.random.default_rng(rng)
    ps = np.asarray(p_same_xy, dtype=float)
    if ps.shape != (4, 2) or not np.all((ps >= 0) & (ps <= 1)):
        raise ValueError(f"sample_counts: p_same_xy must be a (4, 2) array of probabilities, got {ps!r}")
    shape = () if runs is None else (int(runs),)
    N = rng.multinomial(int(n), np.full(8, 1 / 8), size=shape).reshape(shape + (4, 2))
    same = rng.binomial(N, ps)
    diff = N - same
    s1 = rng.binomial(same, 0.5)
    d1 = rng.binomial(diff, 0.5)
    out = np.zeros(shape + (4, 2, 2, 2), dtype=np.int64)
    out[..., 1, 1], out[..., 0, 0] = s1, same - s1
    out[..., 1, 0], out[..., 0, 1] = d1, diff - d1
    return out
