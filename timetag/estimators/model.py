"""The ideal model behind the estimators: a Psi+ state with visibility V measured at the paper's angles.

P(A = B | x, y) = (1 - V cos(2 (alpha_x + beta_y))) / 2, outputs unbiased.  Used to make hand-made
rounds for tests and demos, and as the depolarising reference (S = 2 sqrt2 V, Q = (1 - V)/2).
"""
from __future__ import annotations

import numpy as np

from .chsh import ALPHA_DEG, BETA_DEG


def p_same(V: float) -> np.ndarray:
    """(4, 2) array of P(A = B | x, y)."""
    th = np.deg2rad(ALPHA_DEG[:, None] + BETA_DEG[None, :])
    return (1.0 - V * np.cos(2.0 * th)) / 2.0


def sample_pairs(n: int, V: float, rng=None):
    """(x, y, a, b) arrays for n rounds with uniform inputs."""
    rng = np.random.default_rng(rng)
    x = rng.integers(0, 4, n)
    y = rng.integers(0, 2, n)
    a = rng.integers(0, 2, n)
    same = rng.random(n) < p_same(V)[x, y]
    b = np.where(same, a, 1 - a)
    return x, y, a, b
