"""A small inline random generator for the numba kernels (xorshift128+).

numba's ``np.random`` calls are not inlined (~15-60 ns each); the photon generator draws several numbers per
attempt, so an inline generator halves its cost.  The state (2 x uint64) is seeded from the simulator's numpy
``Generator`` before every kernel call, so a run stays a pure function of its seed.  Statistical quality is
ample for Monte Carlo of this kind (xorshift128+ passes BigCrush apart from the lowest bits' linearity; the
lowest bit is never used alone here: pol/arm use bits 1..4 of the output).
"""
from __future__ import annotations

import functools

import numba as nb
import numpy as np

from .arraycache import cached_array

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


# Exponential variates by table: -ln(1 - u) tabulated for u < 15/16 (linear interpolation: relative error
# < 1e-6); with probability 1/16 the variate exceeds ln 16, and by memorylessness it is then ln 16 plus a fresh
# exponential -- exact, with no logarithm on the common path (a libm log is the largest cost per draw).
_EXP_TAIL = 1.0 / 16.0
_EXP_N = 8192
_EXP_TAB = -np.log1p(-np.linspace(0.0, 1.0 - _EXP_TAIL, _EXP_N + 1))
_EXP_SCALE = _EXP_N / (1.0 - _EXP_TAIL)
_LN16 = float(np.log(16.0))


@nb.njit(cache=True, inline="always")
def std_exponential(s):
    """Exp(1)."""
    x = 0.0
    while True:
        u = uniform(s)
        if u < 1.0 - _EXP_TAIL:
            pos = u * _EXP_SCALE
            i = np.int64(pos)
            return x + _EXP_TAB[i] + (pos - i) * (_EXP_TAB[i + 1] - _EXP_TAB[i])
        x += _LN16


@nb.njit(cache=True, inline="always")
def exponential(s, scale):
    return scale * std_exponential(s)


@nb.njit(cache=True, inline="always")
def normal(s):
    u1 = 1.0 - uniform(s)
    u2 = uniform(s)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(_TWO_PI * u2)


# --- exponentially modified Gaussian (Gaussian + independent exponential) by table -------------------------
# A photon's click time is pulse (Gaussian) + jitter (Gaussian) + decay (exponential): drawing the sum from a
# quantile table costs one uniform instead of three logarithms, a square root and a cosine.  The table covers
# quantiles [EMG_U_LO, EMG_U_HI] (linear interpolation between 65537 nodes: error well below a picosecond);
# beyond EMG_U_HI the survival function is a pure exponential (the Gaussian part is > 10 sigma away), so that
# tail is inverted exactly; below EMG_U_LO an exact rejection sampler of the conditional left tail is used.
EMG_U_LO = 2.0**-10
EMG_U_HI = 1.0 - 2.0**-8
EMG_NODES = 65537


@functools.lru_cache(maxsize=8)
def emg_table(sigma: float, tau: float) -> np.ndarray:
    """Quantiles (ps, relative to the Gaussian's mean) of N(0, sigma^2) + Exp(tau) at EMG_NODES even steps
    of the probability from EMG_U_LO to EMG_U_HI (computed once per parameters and kept on disk)."""
    sigma, tau = float(sigma), float(tau)
    key = f"v1 {sigma.hex()} {tau.hex()} {EMG_U_LO!r} {EMG_U_HI!r} {EMG_NODES}"
    tab = cached_array("emg", key, EMG_NODES, lambda: _emg_quantiles(sigma, tau))
    tab.setflags(write=False)
    return tab


def _emg_quantiles(sigma: float, tau: float) -> np.ndarray:
    from scipy.stats import exponnorm

    dist = exponnorm(tau / sigma, scale=sigma)
    lo, hi = float(dist.ppf(EMG_U_LO)), float(dist.ppf(EMG_U_HI))
    pad = 0.05 * (hi - lo)
    x = np.linspace(lo - pad, hi + pad, 1 << 18)
    F = dist.cdf(x)
    keep = np.concatenate([[True], np.diff(F) > 0])
    u = np.linspace(EMG_U_LO, EMG_U_HI, EMG_NODES)
    tab = np.interp(u, F[keep], x[keep])
    tab[0], tab[-1] = lo, hi
    return tab


@nb.njit(cache=True, inline="always")
def emg(s, tab, sigma, tau):
    """One draw of N(0, sigma^2) + Exp(tau) (see :func:`emg_table`)."""
    u = uniform(s)
    if u >= EMG_U_HI:
        return tab[tab.size - 1] + tau * np.log((1.0 - EMG_U_HI) / (1.0 - u))
    if u >= EMG_U_LO:
        pos = (u - EMG_U_LO) * ((tab.size - 1) / (EMG_U_HI - EMG_U_LO))
        i = min(np.int64(pos), tab.size - 2)
        f = pos - i
        return tab[i] + f * (tab[i + 1] - tab[i])
    return _emg_left(s, tab[0], sigma, tau)


@nb.njit(cache=True, nogil=True)
def _emg_left(s, x_lo, sigma, tau):
    """N(0, sigma^2) + Exp(tau) conditioned on being < x_lo, exactly: the Gaussian part must be < x_lo, so draw
    it from the Gaussian truncated there, then accept when the exponential part keeps the sum below x_lo."""
    z_lo = x_lo / sigma
    while True:
        if z_lo < 0.0:
            a = -z_lo  # Marsaglia's exact sampler of the Gaussian tail beyond a
            while True:
                z = np.sqrt(a * a - 2.0 * np.log(1.0 - uniform(s)))
                if uniform(s) * z < a:
                    break
            z = -z
        else:
            z = normal(s)
            if z >= z_lo:
                continue
        x = sigma * z + exponential(s, tau)
        if x < x_lo:
            return x
