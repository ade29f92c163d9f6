"""The simulator's inline generator: xorshift128+ as published, the two interfaces on one sequence, and the exact
ziggurat samplers against scipy's distributions (fixed seeds, enough draws that a sampler wrong in its body, its
wedges or its tail fails)."""
from __future__ import annotations

import math

import numba as nb
import numpy as np
from scipy import stats

from timetag.simulator import fastrng as F

N = 2_000_000


def _sampler(draw, dtype=np.float64):
    """``sample(n, s0, s1)``: n draws of ``draw`` (a ``fastrng.draw_*`` function) from the state (s0, s1)."""
    @nb.njit
    def sample(n, s0, s1):
        out = np.empty(n, dtype)
        for i in range(n):
            s0, s1, out[i] = draw(s0, s1)
        return out
    return sample


_normals = _sampler(F.draw_std_normal)
_exponentials = _sampler(F.draw_std_exponential)
_normal_tails = _sampler(F._normal_tail)
_outputs = _sampler(F.draw_u64, np.uint64)


def _xorshift128p(s0: int, s1: int, n: int) -> list[int]:
    """Plain xorshift128+ (Vigna 2014: shifts 23, 17, 26)."""
    m = (1 << 64) - 1
    out = []
    for _ in range(n):
        x, y = s0, s1
        s0 = y
        x ^= (x << 23) & m
        s1 = x ^ y ^ (x >> 17) ^ (y >> 26)
        out.append((s1 + y) & m)
    return out


def _s(a, b):
    return np.uint64(a), np.uint64(b)


def test_generator_is_xorshift128plus():
    s0, s1 = 0x123456789ABCDEF0, 0x0FEDCBA987654321
    got = _outputs(1000, np.uint64(s0), np.uint64(s1))
    assert got.tolist() == _xorshift128p(s0, s1, 1000)


def test_ziggurat_base_edges_close_the_layers():
    """R is where the ZIG_LAYERS-th layer ends at x = 0: found again by bisection from the density alone."""
    for f, f_inv, tail, r in ((F._normal_f, F._normal_f_inv, F._normal_tail_area, F.NORMAL_R),
                              (F._exp_f, F._exp_f_inv, F._exp_f, F.EXP_R)):
        lo, hi = 0.5 * r, 2.0 * r
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            x, excess = F.zig_edges(f, f_inv, tail, mid)
            if len(x) < F.ZIG_LAYERS or excess > 0:
                lo = mid
            else:
                hi = mid
        assert abs(hi - r) < 1e-12 * r
        x, excess = F.zig_edges(f, f_inv, tail, r)
        assert len(x) == F.ZIG_LAYERS and abs(excess) < 1e-12


def test_std_normal_matches_scipy():
    x = _normals(N, *_s(2024, 77))
    assert stats.kstest(x, "norm").pvalue > 1e-3
    assert abs(x.mean()) < 5 / math.sqrt(N)
    assert abs(x.var() - 1) < 5 * math.sqrt(2 / N)
    assert abs(stats.kurtosis(x)) < 5 * math.sqrt(24 / N)
    # every layer's share (its abscissa band) and the tail's mass beyond R
    edges = np.unique(np.concatenate([-F._NX[1:], F._NX[1:]]))
    counts = np.histogram(x, np.concatenate([[-np.inf], edges, [np.inf]]))[0]
    p = np.diff(stats.norm.cdf(np.concatenate([[-np.inf], edges, [np.inf]])))
    assert stats.chisquare(counts, p * N).pvalue > 1e-3
    beyond = np.mean(np.abs(x) > F.NORMAL_R)
    p_tail = 2 * stats.norm.sf(F.NORMAL_R)
    assert abs(beyond - p_tail) < 5 * math.sqrt(p_tail / N)


def test_normal_tail_is_the_truncated_gaussian():
    z = _normal_tails(200_000, *_s(5, 6))
    assert z.min() > F.NORMAL_R
    assert stats.kstest(z, stats.truncnorm(F.NORMAL_R, np.inf).cdf).pvalue > 1e-3


def test_std_exponential_matches_scipy():
    x = _exponentials(N, *_s(99, 123456789))
    assert stats.kstest(x, "expon").pvalue > 1e-3
    assert abs(x.mean() - 1) < 5 / math.sqrt(N)
    assert abs(x.var() - 1) < 5 * math.sqrt(8 / N)
    edges = F._EX[1:-1][::-1]
    counts = np.histogram(x, np.concatenate([[0.0], edges, [np.inf]]))[0]
    p = np.diff(stats.expon.cdf(np.concatenate([[0.0], edges, [np.inf]])))
    assert stats.chisquare(counts, p * N).pvalue > 1e-3
    # beyond R: R plus a fresh exponential
    tail = x[x > F.EXP_R] - F.EXP_R
    assert abs(tail.size - N * math.exp(-F.EXP_R)) < 5 * math.sqrt(N * math.exp(-F.EXP_R))
    assert stats.kstest(tail, "expon").pvalue > 1e-3
