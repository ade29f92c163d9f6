"""A small inline random generator for the numba kernels (xorshift128+), with exact ziggurat samplers.

numba's ``np.random`` calls are not inlined (~15-60 ns each); the photon generator draws several numbers per
attempt, so an inline generator halves its cost.  The state (2 x uint64) is seeded from the simulator's numpy
``Generator`` before every kernel call, so a run stays a pure function of its seed.  Statistical quality is
ample for Monte Carlo of this kind (xorshift128+ passes BigCrush apart from the lowest bits' linearity; the
lowest bits are never used: pol/arm use bits 1..4 of an output, a ziggurat's layer bits 3..10).

The ``draw_*`` functions take the state as two integers and return it with the variate, so that a kernel keeps
the state in registers for its whole loop (through the state array every draw would wait for the previous
draw's store: numba cannot prove that the array does not alias the kernel's outputs).
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

_S3 = np.uint64(3)
_S23 = np.uint64(23)
_S17 = np.uint64(17)
_S26 = np.uint64(26)
_S11 = np.uint64(11)
_M8 = np.uint64(255)
_INV53 = 1.0 / 9007199254740992.0


def new_state(rng: np.random.Generator) -> np.ndarray:
    s = rng.integers(1, 2**63 - 1, size=2, dtype=np.int64).astype(np.uint64)
    return s


@nb.njit(cache=True, inline="always")
def draw_u64(s0, s1):
    """xorshift128+: ``(s0, s1, 64 random bits)``."""
    a = s0 ^ (s0 << _S23)
    b = a ^ s1 ^ (a >> _S17) ^ (s1 >> _S26)
    return s1, b, b + s1


@nb.njit(cache=True, inline="always")
def unit(r):
    """U[0, 1) from the top 53 bits of an output (its low bits stay free for other uses)."""
    return np.float64(r >> _S11) * _INV53


@nb.njit(cache=True, inline="always")
def draw_uniform(s0, s1):
    """``(s0, s1, U[0, 1))``, 53 bits."""
    s0, s1, r = draw_u64(s0, s1)
    return s0, s1, unit(r)


# --- ziggurat samplers (Marsaglia & Tsang 2000) -----------------------------------------------------------
# ZIG_LAYERS layers of equal area V under a decreasing density f on [0, inf): layer i >= 1 is the rectangle
# [0, X[i]) x [f(X[i]), f(X[i+1])); layer 0 is [0, R) x [0, f(R)) plus the tail beyond R, drawn as one
# rectangle of the same area and width X[0] = V / f(R).  A point uniform in a layer whose abscissa lies inside
# the next layer's width is under f at once (~99 % of draws: one 64-bit output, two table reads, a
# multiplication and a comparison); otherwise the wedge between the rectangle and f is tested exactly, or the
# tail is drawn by its own exact method.  Exact apart from floating-point rounding; the tables (~6 KB per
# density) stay in the first-level cache, where a quantile table of the same accuracy would not.
ZIG_LAYERS = 256
# R for 256 layers (the N-th layer then ends at x = 0 to ~1e-14: tests/simulator/test_fastrng.py derives it)
NORMAL_R = 3.6541528853610092
EXP_R = 7.69711747013105


def _normal_f(x: float) -> float:
    return math.exp(-0.5 * x * x)


def _normal_tail_area(r: float) -> float:
    return math.sqrt(math.pi / 2) * math.erfc(r / math.sqrt(2))


def _normal_f_inv(y: float) -> float:
    return math.sqrt(-2.0 * math.log(y))


def _exp_f(x: float) -> float:
    return math.exp(-x)


def _exp_f_inv(y: float) -> float:
    return -math.log(y)


def zig_edges(f, f_inv, tail_area, r: float) -> tuple[list, float]:
    """Layer edges ``[X[0], R, X[2], ...]`` for base edge ``r``, and how far the last layer's top misses f(0)
    (> 0, or fewer than ZIG_LAYERS edges: the layers are too large, so r is too small)."""
    v = r * f(r) + tail_area(r)
    x = [v / f(r), r]
    for _ in range(ZIG_LAYERS - 2):
        y = f(x[-1]) + v / x[-1]
        if y >= f(0.0):
            return x, y - f(0.0)
        x.append(f_inv(y))
    return x, f(x[-1]) + v / x[-1] - f(0.0)


def _zig_tables(f, f_inv, tail_area, r):
    """X (ZIG_LAYERS + 1 edges, X[ZIG_LAYERS] = 0), f at them, and X[i+1] / X[i] (the fast-accept bound)."""
    x, _ = zig_edges(f, f_inv, tail_area, r)
    x = np.array(x + [0.0])
    fx = np.array([f(v) for v in x])
    return x, fx, np.append(x[1:] / x[:-1], 0.0)


_NX, _NF, _NK = _zig_tables(_normal_f, _normal_f_inv, _normal_tail_area, NORMAL_R)
_EX, _EF, _EK = _zig_tables(_exp_f, _exp_f_inv, _exp_f, EXP_R)


@nb.njit(cache=True, inline="always")
def draw_std_normal(s0, s1):
    """``(s0, s1, N(0, 1))`` (ziggurat)."""
    while True:
        s0, s1, r = draw_u64(s0, s1)
        i = np.int64((r >> _S3) & _M8)
        u = 2.0 * unit(r) - 1.0
        x = u * _NX[i]
        if abs(u) < _NK[i]:
            return s0, s1, x
        if i == 0:
            s0, s1, z = _normal_tail(s0, s1)
            return s0, s1, z if u > 0 else -z
        s0, s1, v = draw_uniform(s0, s1)
        if _NF[i] + v * (_NF[i + 1] - _NF[i]) < np.exp(-0.5 * x * x):
            return s0, s1, x


@nb.njit(cache=True, nogil=True)
def _normal_tail(s0, s1):
    """|N(0, 1)| conditioned on > NORMAL_R (Marsaglia's exact method)."""
    while True:
        s0, s1, a = draw_uniform(s0, s1)
        s0, s1, b = draw_uniform(s0, s1)
        x = -np.log(1.0 - a) / NORMAL_R
        if -2.0 * np.log(1.0 - b) > x * x:
            return s0, s1, NORMAL_R + x


@nb.njit(cache=True, inline="always")
def draw_std_exponential(s0, s1):
    """``(s0, s1, Exp(1))`` (ziggurat; beyond EXP_R the variate is EXP_R plus a fresh one: memorylessness)."""
    t = 0.0
    while True:
        s0, s1, r = draw_u64(s0, s1)
        i = np.int64((r >> _S3) & _M8)
        u = unit(r)
        x = u * _EX[i]
        if u < _EK[i]:
            return s0, s1, t + x
        if i == 0:
            t += EXP_R
            continue
        s0, s1, v = draw_uniform(s0, s1)
        if _EF[i] + v * (_EF[i + 1] - _EF[i]) < np.exp(-x):
            return s0, s1, t + x
