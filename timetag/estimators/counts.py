"""Tally rounds into counts per input pair and outcome: n[x, y, a, b].

Everything downstream works on this (4, 2, 2, 2) integer array, so the estimators can be fed by
rounds files, live streams, or numbers copied out of a paper.
"""
from __future__ import annotations

import numpy as np

N_X = 4  # Alice's inputs 0..3
N_Y = 2  # Bob's inputs 0..1


def tally(x, y, a, b) -> np.ndarray:
    """Counts ``n[x, y, a, b]`` from per-round arrays (inputs and 0/1 outputs).

    Rounds whose inputs are outside the valid ranges (e.g. SETTING_NONE = -1) are not counted: they
    cannot be assigned to an input pair.  Callers that need to report them count them themselves.
    """
    x = np.asarray(x, dtype=np.int64).ravel()
    y = np.asarray(y, dtype=np.int64).ravel()
    a = np.asarray(a, dtype=np.int64).ravel()
    b = np.asarray(b, dtype=np.int64).ravel()
    if not (len(x) == len(y) == len(a) == len(b)):
        raise ValueError(f"tally: arrays differ in length: x {len(x)}, y {len(y)}, a {len(a)}, b {len(b)}")
    ok = (x >= 0) & (x < N_X) & (y >= 0) & (y < N_Y) & ((a == 0) | (a == 1)) & ((b == 0) | (b == 1))
    flat = ((x[ok] * N_Y + y[ok]) * 2 + a[ok]) * 2 + b[ok]
    return np.bincount(flat, minlength=N_X * N_Y * 4).reshape(N_X, N_Y, 2, 2)


def n_pairs(n: np.ndarray) -> np.ndarray:
    """Rounds per input pair, shape (4, 2)."""
    return np.asarray(n).sum(axis=(2, 3))


def n_same(n: np.ndarray) -> np.ndarray:
    n = np.asarray(n)
    return n[..., 0, 0] + n[..., 1, 1]


def n_diff(n: np.ndarray) -> np.ndarray:
    n = np.asarray(n)
    return n[..., 0, 1] + n[..., 1, 0]


def counts_from_correlators(E: dict, N: dict) -> np.ndarray:
    """Counts reproducing given correlators: n_same = round(N (1 + E) / 2), split evenly over the outcomes.

    ``E`` and ``N`` map (x, y) -> value.  Used to rebuild a data set from published correlators and the
    round numbers their error bars imply (the paper gives no raw counts).
    """
    n = np.zeros((N_X, N_Y, 2, 2), dtype=np.int64)
    for (x, y), e in E.items():
        tot = int(N[(x, y)])
        same = int(round(tot * (1 + e) / 2))
        diff = tot - same
        n[x, y, 1, 1] = same // 2
        n[x, y, 0, 0] = same - same // 2
        n[x, y, 1, 0] = diff // 2
        n[x, y, 0, 1] = diff - diff // 2
    return n
