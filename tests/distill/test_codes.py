import numpy as np

from timetag.distill.codes import FAMILY_VERSION, Code, code_hash, load_family, peg


def test_family_loads_with_checked_hashes():
    fam = load_family(FAMILY_VERSION)
    assert [round(c.rate, 2) for c in fam.values()] == [0.5, 0.6, 0.7, 0.8]
    for c in fam.values():
        assert c.n == 8192 and code_hash(c.var_adj) == c.sha256


def test_peg_is_deterministic_and_has_no_4_cycles_among_low_degrees():
    fr = {2: 0.4, 3: 0.6}
    a1, a2 = peg(400, 200, fr, 3), peg(400, 200, fr, 3)
    assert np.array_equal(a1, a2)
    assert not np.array_equal(a1, peg(400, 200, fr, 4))
    H = Code("t", 400, 200, a1, code_hash(a1)).csr().toarray().astype(int)
    assert (H.sum(axis=0) == np.where(np.arange(400) < 160, 2, 3)).all()
    overlap = H.T @ H  # two columns sharing two checks = a 4-cycle
    np.fill_diagonal(overlap, 0)
    assert overlap.max() <= 1


def test_syndrome_matches_the_matrix():
    c = next(iter(load_family().values()))
    x = np.random.default_rng(0).integers(0, 2, c.n, dtype=np.uint8)
    assert np.array_equal(c.syndrome(x), (c.csr() @ x.astype(int)) % 2)


def test_long_family_loads_with_checked_hashes_and_the_short_family_s_degrees():
    from timetag.distill.codes import LONG_FAMILY_VERSION
    short, long_ = load_family(FAMILY_VERSION), load_family(LONG_FAMILY_VERSION)
    assert list(long_) == list(short)
    for name, c in long_.items():
        assert c.n == 16384 and abs(c.m - 2 * short[name].m) <= 1 and code_hash(c.var_adj) == c.sha256
        frac = [np.bincount((x.var_adj >= 0).sum(axis=1), minlength=32) / x.n for x in (c, short[name])]
        assert np.abs(frac[0] - frac[1]).max() < 1e-3
