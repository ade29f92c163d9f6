import numpy as np
import pytest

from timetag.distill.amplify import toeplitz_hash, toeplitz_hash_direct


@pytest.mark.parametrize("n,l", [(1, 1), (17, 5), (300, 300), (1000, 123)])
def test_fft_equals_the_matrix(n, l):
    rng = np.random.default_rng(n)
    a = rng.integers(0, 2, n, dtype=np.uint8)
    t = rng.integers(0, 2, n + l - 1, dtype=np.uint8)
    assert np.array_equal(toeplitz_hash(a, t, l), toeplitz_hash_direct(a, t, l))


def test_long_block_is_exact_on_a_sample_of_rows():
    rng = np.random.default_rng(1)
    n, l = 2_000_000, 500_000
    a = rng.integers(0, 2, n, dtype=np.uint8)
    t = rng.integers(0, 2, n + l - 1, dtype=np.uint8)
    k = toeplitz_hash(a, t, l)
    for i in (0, 1, l // 2, l - 1):
        row = t[i + n - 1 - np.arange(n)]
        assert k[i] == int(row.astype(np.int64) @ a) & 1


def test_bad_seed_length():
    with pytest.raises(ValueError):
        toeplitz_hash(np.zeros(10, np.uint8), np.zeros(10, np.uint8), 3)
