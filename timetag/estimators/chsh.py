"""Correlators, CHSH value and quantum bit error rates from counts ``n[x, y, a, b]``."""
from __future__ import annotations

import numpy as np

from .counts import n_diff, n_pairs, n_same

# Test (CHSH) input pairs with their sign in S = E21 - E20 - E30 - E31.
CHSH_TERMS = {(2, 1): +1.0, (2, 0): -1.0, (3, 0): -1.0, (3, 1): -1.0}
KEY_PAIRS = ((0, 0), (1, 1))

# Measurement angles (degrees) of the paper: alpha for X = 0..3, beta for Y = 0..1.
ALPHA_DEG = np.array([-22.5, 22.5, -45.0, 0.0])
BETA_DEG = np.array([22.5, -22.5])


def correlators(n: np.ndarray) -> np.ndarray:
    """E[x, y] = (N_same - N_diff) / N_xy, NaN where an input pair has no rounds."""
    tot = n_pairs(n).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, (n_same(n) - n_diff(n)) / tot, np.nan)


def correlation_probabilities(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P(A = B | x, y), P(A != B | x, y)), each (4, 2): the quantities of the paper's Fig. 4."""
    tot = n_pairs(n).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        same = np.where(tot > 0, n_same(n) / tot, np.nan)
    return same, 1.0 - same


def chsh(E: np.ndarray) -> float:
    """S = E21 - E20 - E30 - E31 from a (4, 2) correlator array."""
    E = np.asarray(E, dtype=float)
    return float(sum(sign * E[xy] for xy, sign in CHSH_TERMS.items()))


def qber(n: np.ndarray) -> tuple[float, float, float]:
    """(Q0, Q1, Q): error rates of the key rounds X = Y = 0, X = Y = 1 and pooled.

    The heralded Psi+ state is anti-correlated in the key bases, so an error is A == B.
    NaN where there are no key rounds.
    """
    same = n_same(n)
    tot = n_pairs(n)
    out = []
    for xy in KEY_PAIRS:
        out.append(same[xy] / tot[xy] if tot[xy] > 0 else float("nan"))
    ntot = sum(tot[xy] for xy in KEY_PAIRS)
    out.append(sum(same[xy] for xy in KEY_PAIRS) / ntot if ntot > 0 else float("nan"))
    return float(out[0]), float(out[1]), float(out[2])


def key_counts(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(errors, totals) of the two key bases, each shape (2,)."""
    same = n_same(n)
    tot = n_pairs(n)
    return (np.array([same[xy] for xy in KEY_PAIRS]), np.array([tot[xy] for xy in KEY_PAIRS]))
