"""Simulated rounds of both labs (ROUND_DTYPE records from the ideal model) for the distillation tests."""
from __future__ import annotations

import numpy as np

from timetag.estimators.model import sample_pairs
from timetag.records import ROUND_DTYPE
from timetag.roundsfile import RoundsData


def rounds(n=200_000, V=0.9, seed=0):
    """(alice, bob) RoundsData of n rounds with visibility V (S = 2 sqrt2 V, Q = (1 - V) / 2)."""
    rng = np.random.default_rng(seed)
    x, y, a, b = sample_pairs(n, V, rng)
    t = 10**12 + np.cumsum(rng.exponential(1e9, n)).astype(np.int64)
    A = np.zeros(n, ROUND_DTYPE)
    B = np.zeros(n, ROUND_DTYPE)
    A["trigger_time"], A["setting"], A["output"] = t, x, a
    B["trigger_time"], B["setting"], B["output"] = t + 1_000_000, y, b
    A["index"], B["index"] = np.arange(n), np.arange(n)
    return (RoundsData(A, lab="lab1", role="alice", setup_hash="h"),
            RoundsData(B, lab="lab2", role="bob", setup_hash="h"))
