"""Psi- heralds: bring their rounds into the Psi+ frame the estimators are written for.

Derivation.  With the paper's angles, Alice alpha_x = (-22.5, 22.5, -45, 0) deg for X = 0..3 and Bob
beta_y = (22.5, -22.5) deg for Y = 0, 1, the heralded states give (timetag.simulator, and
:mod:`timetag.estimators.model`)

    Psi+:  E+(x, y) = -V cos 2(alpha_x + beta_y)
    Psi-:  E-(x, y) = -V cos 2(alpha_x - beta_y) = -V cos 2(alpha_x + (-beta_y)).

A Psi- round is thus a Psi+ round measured with Bob's angle sign-flipped, and -beta_y = beta_{1-y}:

    E-(x, y) = E+(x, 1 - y)      for every x in 0..3, y in 0..1.

So a Psi- round with Bob input y is counted as the input pair (x, 1 - y); outputs are untouched.  Key rounds
(X = Y in the Psi+ frame) of a Psi- herald are the physical pairs (0, 1) and (1, 0), and stay anti-correlated.
This is a local relabelling of Bob's input conditioned on the public herald pattern, so the estimators, the
CHSH bound and the key-rate formulas apply unchanged to the combined data.

Flipping an output instead does *not* work for every input pair: -E-(x, y) = E+(x, y) needs
cos 2 alpha_x cos 2 beta_y = 0, true only for X = 2 (alpha = -45 deg).  (Flipping Alice's angle instead maps
X 0 <-> 1, keeps X = 3 and needs an output flip for X = 2 -- equivalent, but less simple.)

Rounds with pattern NONE (a 'ready' trigger without a software herald) or OTHER are left as they are, i.e.
treated as Psi+, the pattern announced by default; :func:`pattern_counts` lets callers report them.
"""
from __future__ import annotations

import numpy as np

from ..records import PATTERN_NAMES, PATTERN_NONE, PATTERN_PSI_MINUS


def to_psi_plus_frame(y, pattern) -> np.ndarray:
    """Bob's inputs with ``y -> 1 - y`` where ``pattern == PATTERN_PSI_MINUS`` (valid inputs 0/1 only)."""
    y = np.asarray(y, dtype=np.int64)
    pattern = np.broadcast_to(np.asarray(pattern), y.shape)
    flip = (pattern == PATTERN_PSI_MINUS) & ((y == 0) | (y == 1))
    return np.where(flip, 1 - y, y)


def round_patterns(pattern_alice, pattern_bob=None) -> tuple[np.ndarray, int]:
    """Pattern per joined pair and the number of conflicts.

    The herald is Alice's (her BSM), so her pattern is used; Bob's rounds normally carry PATTERN_NONE and
    only fill in where Alice's is NONE.  Both set and different counts as a conflict (Alice's wins).
    """
    pa = np.asarray(pattern_alice, dtype=np.int64)
    if pattern_bob is None:
        return pa, 0
    pb = np.asarray(pattern_bob, dtype=np.int64)
    conflicts = int(np.count_nonzero((pa != PATTERN_NONE) & (pb != PATTERN_NONE) & (pa != pb)))
    return np.where(pa != PATTERN_NONE, pa, pb), conflicts


def pattern_counts(pattern) -> dict:
    """{'none': n, 'psi+': n, 'psi-': n, 'other': n} over the given rounds."""
    pattern = np.asarray(pattern, dtype=np.int64)
    return {name: int(np.count_nonzero(pattern == code)) for code, name in PATTERN_NAMES.items()}
