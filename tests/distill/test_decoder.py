import numpy as np
import pytest

from timetag.distill.codes import load_family
from timetag.distill.decoder import PHI_STEP, LayeredDecoder, _phi, phi_table


def test_phi_table_follows_the_function():
    t, fine = phi_table(), phi_table(PHI_STEP / 16, 8 * PHI_STEP, cap=9.0)
    x = np.concatenate([np.geomspace(1e-3, 0.06, 50), np.linspace(0.07, 19.0, 400)])
    got = np.array([_phi(v, t, fine, 1 / PHI_STEP) for v in x])
    exact = -np.log(np.tanh(x / 2))
    assert np.max(np.abs(got - exact) / np.maximum(exact, 1e-3)) < 0.02
    assert _phi(25.0, t, fine, 1 / PHI_STEP) == 0.0


@pytest.mark.parametrize("q", [0.02, 0.05])
def test_decodes_the_error_pattern_of_a_syndrome(q):
    code = load_family()["R50"]
    H = code.csr()
    rng = np.random.default_rng(7)
    dec = LayeredDecoder(H, max_iter=60)
    for _ in range(3):
        e = (rng.random(code.n) < q).astype(np.uint8)
        s = ((H @ e.astype(int)) % 2).astype(np.uint8)
        got, ok = dec.decode(s, np.full(code.n, np.log((1 - q) / q)))
        assert ok and np.array_equal(got, e) and 0 < dec.iterations < 60


def test_too_many_errors_is_reported_not_converged():
    code = load_family()["R80"]
    H = code.csr()
    e = (np.random.default_rng(1).random(code.n) < 0.2).astype(np.uint8)
    s = ((H @ e.astype(int)) % 2).astype(np.uint8)
    got, ok = LayeredDecoder(H, max_iter=30).decode(s, np.full(code.n, np.log(0.97 / 0.03)))
    assert not ok
    assert not np.array_equal((H @ got.astype(int)) % 2, s)


def test_agrees_with_ldpc_sum_product():
    ldpc = pytest.importorskip("ldpc")
    code = load_family()["R60"]
    H = code.csr()
    q = 0.06
    rng = np.random.default_rng(3)
    bp = ldpc.BpDecoder(H, error_channel=np.full(code.n, q), max_iter=60, bp_method="product_sum",
                        input_vector_type="syndrome")
    mine = LayeredDecoder(H, max_iter=60)
    for _ in range(3):
        e = (rng.random(code.n) < q).astype(np.uint8)
        s = ((H @ e.astype(int)) % 2).astype(np.uint8)
        got, ok = mine.decode(s, np.full(code.n, np.log((1 - q) / q)))
        assert ok and np.array_equal(got, np.asarray(bp.decode(s), np.uint8))


def test_converged_exactly_when_the_syndrome_is_met_at_every_iteration_limit():
    # the unsatisfied-check count is kept incrementally; recomputed here from the returned word at each stopping
    # point (the limit cuts the decoding after 1, 2, ... iterations, converged or not)
    code = load_family()["R70"]
    H = code.csr()
    rng = np.random.default_rng(5)
    q = 0.03
    e = (rng.random(code.n) < q).astype(np.uint8)
    s = ((H @ e.astype(int)) % 2).astype(np.uint8)
    llr = np.full(code.n, np.log((1 - q) / q))
    llr[rng.random(code.n) < 0.05] = 1e-9  # near-unknown positions, as punctured ones
    seen = set()
    for limit in range(1, 40):
        dec = LayeredDecoder(H, max_iter=limit, patience=1000)
        got, ok = dec.decode(s, llr)
        met = np.array_equal((H @ got.astype(int)) % 2, s)
        assert ok == met
        seen.add(ok)
        if ok:
            assert dec.iterations <= limit
            break
    assert seen == {False, True}
