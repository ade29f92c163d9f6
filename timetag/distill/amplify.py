"""Privacy amplification by Toeplitz hashing.

A Toeplitz matrix T (l x n) is given by n + l - 1 seed bits t: T[i, j] = t[i - j + n - 1].  The final key is
k = T a mod 2, i.e. k_i = (t * a)[i + n - 1] mod 2 with * the full linear convolution, computed with a real FFT
(O((n + l) log(n + l))).  The convolution's values are integers <= n, far inside float64's exact range, and are
rounded before taking the parity; :func:`toeplitz_hash_direct` (O(n l)) checks it in the tests.

Random Toeplitz matrices form a two-universal family (Krawczyk 1994), so the leftover hash lemma applies.  The seed
must be uniform and chosen after error correction; it is public (Alice sends it; it is in the transcript).
"""
from __future__ import annotations

import numpy as np
from scipy import fft as sfft


def toeplitz_hash(bits: np.ndarray, seed_bits: np.ndarray, l: int) -> np.ndarray:
    """k = T(seed) bits mod 2, length ``l`` (uint8 0/1)."""
    a = np.asarray(bits, np.uint8)
    t = np.asarray(seed_bits, np.uint8)
    n = len(a)
    if l <= 0 or n == 0:
        return np.zeros(max(l, 0), np.uint8)
    if l > n:
        raise ValueError(f"output length {l} exceeds the input length {n}")
    if len(t) != n + l - 1:
        raise ValueError(f"Toeplitz seed must have n + l - 1 = {n + l - 1} bits, got {len(t)}")
    size = sfft.next_fast_len(n + len(t) - 1, real=True)
    fa = sfft.rfft(a.astype(np.float64), size)
    ft = sfft.rfft(t.astype(np.float64), size)
    conv = sfft.irfft(fa * ft, size)[n - 1:n - 1 + l]
    return (np.rint(conv).astype(np.int64) & 1).astype(np.uint8)


def toeplitz_hash_direct(bits: np.ndarray, seed_bits: np.ndarray, l: int) -> np.ndarray:
    """The same product with the matrix written out (small sizes: tests)."""
    a = np.asarray(bits, np.int64)
    t = np.asarray(seed_bits, np.int64)
    n = len(a)
    i = np.arange(l)[:, None]
    j = np.arange(n)[None, :]
    T = t[i - j + n - 1]
    return ((T @ a) & 1).astype(np.uint8)
