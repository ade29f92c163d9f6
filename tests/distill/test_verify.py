import numpy as np
import pytest

from timetag.distill.verify import P61, collision_bound, n_points, poly_hash, tags


def test_flipped_bit_changes_the_tag():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, 10_000, dtype=np.uint8)
    b = a.copy()
    b[1234] ^= 1
    x = [int(rng.integers(0, P61)) for _ in range(2)]
    assert tags(a, x) == tags(a.copy(), x)
    assert tags(a, x) != tags(b, x)


def test_hash_is_the_polynomial():
    bits = np.zeros(64, np.uint8)
    bits[0] = 1       # word 0 = 1
    bits[32 + 1] = 1  # word 1 = 2
    x = 12345
    assert poly_hash(bits, x) == (1 * x * x + 2 * x) % P61


def test_points_meet_eps_cor():
    r = n_points(10**6, 1e-10)
    assert collision_bound(10**6, r) <= 1e-10
    assert collision_bound(10**6, r - 1) > 1e-10 or r == 1
    with pytest.raises(ValueError):
        n_points(100, 0)
