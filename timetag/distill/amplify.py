"""Privacy amplification by Toeplitz hashing.

A Toeplitz matrix T (l x n) is given by n + l - 1 seed bits t: T[i, j] = t[i - j + n - 1].  The final key is
k = T a mod 2, i.e. k_i = (t * a)[i + n - 1] mod 2 with * the linear convolution, computed with real FFTs.

Size: only the outputs i + n - 1 (i < l) are needed, and for them every term t[i + n - 1 - j] (j < n) has an index
in [0, n + l - 1): a *circular* convolution of length L >= n + l - 1 gives them without wrap-around, so the FFTs
are of length next_fast_len(n + l - 1), not of the full linear length 2n + l - 2 (half the work for l << n).

Exactness: the convolution's values are integers in [0, n]; float64 FFT round-off is about
eps log2(L) ||a|| ||t|| <= 1e-16 * 23 * (n + l) ~ 1e-8 for n + l ~ 5e6, far below the 1/2 that rounding to the
nearest integer tolerates.  Each call checks the distance to the nearest integer (< 1/4, else it raises), and
:func:`toeplitz_hash_direct` (O(n l)) checks the results in the tests.

Random Toeplitz matrices form a two-universal family (Krawczyk 1994), so the leftover hash lemma applies.  The seed
must be uniform and chosen after error correction; it is public (Alice sends it; it is in the transcript).
"""
from __future__ import annotations

import numpy as np
from scipy import fft as sfft

__all__ = ["toeplitz_hash", "toeplitz_hash_direct"]


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
    size = sfft.next_fast_len(n + l - 1, real=True)
    fa = sfft.rfft(a.astype(np.float64), size, overwrite_x=True)
    fa *= sfft.rfft(t.astype(np.float64), size, overwrite_x=True)
    conv = sfft.irfft(fa, size, overwrite_x=True)[n - 1:n - 1 + l]
    near = np.rint(conv)
    worst = float(np.max(np.abs(conv - near)))
    if not worst < 0.25:  # cannot happen at these sizes (see above); never return a key that might be wrong
        raise ArithmeticError(f"Toeplitz FFT round-off {worst:.3g} too large for an exact product (n = {n})")
    return (near.astype(np.int64) & 1).astype(np.uint8)


def toeplitz_hash_direct(bits: np.ndarray, seed_bits: np.ndarray, l: int) -> np.ndarray:
    """The same product with the matrix written out (small sizes: tests)."""
    a = np.asarray(bits, np.int64)
    t = np.asarray(seed_bits, np.int64)
    n = len(a)
    i = np.arange(l)[:, None]
    j = np.arange(n)[None, :]
    T = t[i - j + n - 1]
    return ((T @ a) & 1).astype(np.uint8)
