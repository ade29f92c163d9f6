"""A small inline random generator for the numba kernels (xorshift128+).

numba's ``np.random`` calls are not inlined (~15-60 ns each); the photon generator draws several numbers per
attempt, so an inline generator halves its cost.  The state (2 x uint64) is seeded from the simulator's numpy
``Generator`` before every kernel call, so a run stays a pure function of its seed.  Statistical quality is
ample for Monte Carlo of this kind (xorshift128+ passes BigCrush apart from the lowest bits' linearity; the
lowest bit is never used alone here: pol/arm use bits 1..4 of the output).
"""
from __future__ import annotations

import numba as nb
import numpy as np

_S23 = np.uint64(23)
_S17 = np.uint64(17)
_S26 = np.uint64(26)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0
_TWO_PI = 2.0 * np.pi


def new_state(rng: np.random.Generator) -> np.ndarray:
    s = rng.integers(1, 2**63 - 1, size=2, dtype=np.int64).astype(np.uint64)
    return s


@nb.njit(cache=True, inline="always")
def next_u64(s):
    s1 = s[0]
    s0 = s[1]
    s[0] = s0
    s1 ^= s1 << _S23
    s1 = s1 ^ s0 ^ (s1 >> _S17) ^ (s0 >> _S26)
    s[1] = s1
    return s1 + s0


@nb.njit(cache=True, inline="always")
def uniform(s):
    return np.float64(next_u64(s) >> _S11) * _INV53


@nb.njit(cache=True, inline="always")
def exponential(s, scale):
    return -scale * np.log(1.0 - uniform(s))


@nb.njit(cache=True, inline="always")
def normal(s):
    u1 = 1.0 - uniform(s)
    u2 = uniform(s)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(_TWO_PI * u2)
