import numpy as np

from cases import rounds
from timetag.distill.sifting import sift_rounds
from timetag.estimators.pipeline import estimate


def test_sift_is_estimate_s_sift():
    A, B = rounds(20_000, V=0.9, seed=3)
    sf = sift_rounds(A, B)
    est = estimate(A, B, samples=0).to_json()
    assert sf.n_key == est["key_rounds"] and sf.n_test == est["test_rounds"]
    assert abs(sf.S - est["S"]) < 1e-12
    assert abs(np.mean(sf.alice_key != sf.bob_key) - est["Q"]) < 1e-12
    assert len(sf.public["x"]) == sf.n_used and len(sf.public["test_a"]) == sf.n_test


def test_sift_in_blocks_is_the_one_call_sift():
    import pytest
    from timetag.distill.party import sift_blocks
    from timetag.estimators.join import join_rounds, sift
    A, B = rounds(20_000, V=0.9, seed=4)
    a, b = A.rounds.copy(), B.rounds.copy()
    a["flags"][::97] = 1            # flagged pairs and psi- heralds exercise the policy and the relabelling
    a["pattern"][::5] = 2
    b["pattern"][1::7] = 1
    j = join_rounds(a, b)
    ia, ib = j.ia, j.ib
    pa = {"x": a["setting"][ia], "pattern": a["pattern"][ia], "flags": a["flags"][ia]}
    pb = {"y": b["setting"][ib], "pattern": b["pattern"][ib], "flags": b["flags"][ib]}
    for flagged in ("keep", "drop"):
        whole = sift(a, b, j, flagged)
        assert whole.stats["psi_minus_relabelled"] > 0 and whole.stats["flagged_pairs"] > 0
        for alice, out in ((True, a["output"][ia]), (False, b["output"][ib])):
            got = sift_blocks(pa, pb, out, alice, flagged, None, block=3001)
            assert {k: got.stats[k] for k in ("used", "key", "test")} == {k: whole.stats[k] for k in
                                                                          ("used", "key", "test")}
            for name in ("x", "y", "key", "test", "a" if alice else "b"):
                assert np.array_equal(getattr(got, name), getattr(whole, name)), name
            assert got.x.dtype == np.int8
    with pytest.raises(AssertionError):  # the comparison can fail: another party's outputs are not known
        assert np.array_equal(sift_blocks(pa, pb, a["output"][ia], True, "keep", None).b, whole.b)
