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
