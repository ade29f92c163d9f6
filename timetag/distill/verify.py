"""Verification of the corrected key: polynomial hashing over GF(p), p = 2^61 - 1 (a Mersenne prime).

The key is packed into L 32-bit words m_1..m_L (little-endian bit order within a word, zero padding at the end;
the bit length is public and the same on both sides).  For an evaluation point x drawn uniformly from GF(p), the
tag is h_x(m) = sum_i m_i x^(L - i + 1) mod p.  Two different messages give the same tag for at most L of the p
points (a non-zero polynomial of degree <= L has at most L roots), so the collision probability is <= L / p.
With r independent points it is <= (L / p)^r: r is the smallest number with (L / p)^r <= eps_cor.  Each tag is
61 bits; the r tags (61 r bits) are public and counted as leaked; the points are public too (chosen after error
correction, by Alice).
"""
from __future__ import annotations

import math

import numpy as np

P61 = (1 << 61) - 1
TAG_BITS = 61


def words(bits: np.ndarray) -> list[int]:
    """0/1 bits -> 32-bit words (Python ints)."""
    packed = np.packbits(np.asarray(bits, np.uint8), bitorder="little")
    pad = (-len(packed)) % 4
    if pad:
        packed = np.concatenate([packed, np.zeros(pad, np.uint8)])
    return packed.view("<u4").tolist()


def n_points(n_bits: int, eps_cor: float) -> int:
    """How many evaluation points make the collision probability <= eps_cor for keys of n_bits."""
    if not 0 < eps_cor < 1:
        raise ValueError(f"eps_cor must be in (0, 1), got {eps_cor}")
    L = max(1, math.ceil(n_bits / 32))
    per = L / P61
    return max(1, math.ceil(math.log(eps_cor) / math.log(per)))


def collision_bound(n_bits: int, r: int) -> float:
    return (max(1, math.ceil(n_bits / 32)) / P61) ** r


def poly_hash(bits: np.ndarray, x: int) -> int:
    """h_x(bits) (Horner's rule over GF(2^61 - 1))."""
    if not 0 <= x < P61:
        raise ValueError("evaluation point outside GF(2^61 - 1)")
    h = 0
    for w in words(bits):
        h = ((h + w) * x) % P61
    return h


def tags(bits: np.ndarray, points) -> list[int]:
    return [poly_hash(bits, int(x)) for x in points]
