import threading

import numpy as np
import pytest

from timetag.distill.codes import load_family
from timetag.distill.decoder import PHI_HI, PHI_LO, LayeredDecoder, _TABLE, phi, phi_table


def reference_decode(H, llr0, syn, max_iter, patience, order):
    """Plain-Python layered sum-product with the kernel's float32 arithmetic, checks in ``order`` one at a time
    (within a check the edges' reads come before its writes, so a check's edges are taken as vectors; the float32
    sum runs over them in CSR order, as the kernel's does).
    Returns (hard decision, signed iterations, unsatisfied-check trace, final beliefs L)."""
    H = H.tocsr()
    H.sort_indices()
    ptr, var = H.indptr, H.indices
    m = H.shape[0]
    f32 = np.float32
    L = np.asarray(llr0, f32).copy()
    R = np.zeros(H.nnz, f32)
    trace = []
    best, since, it, unsat = m + 1, 0, 0, m
    while it < max_iter:
        it += 1
        approx = 0
        for c in order:
            lo, hi = ptr[c], ptr[c + 1]
            q = L[var[lo:hi]] - R[lo:hi]
            neg = (int(syn[c]) + int(np.signbit(q).sum())) & 1
            p = phi(q)
            total = np.cumsum(p, dtype=f32)[-1]  # sequential float32 sum, as the kernel adds
            mag = phi(total - p)
            r = np.where(np.signbit(q) ^ bool(neg), -mag, mag).astype(f32)
            lv = q + r
            approx += (int(syn[c]) + int(np.signbit(lv).sum())) & 1
            L[var[lo:hi]] = lv
            R[lo:hi] = r
        if approx == 0:
            approx = int(np.count_nonzero(((H @ np.signbit(L).astype(np.int64)) + syn) % 2))
            if approx == 0:
                unsat = 0
                break
        unsat = approx
        trace.append(unsat)
        if approx < best:
            best, since = approx, 0
        else:
            since += 1
            if since >= patience:
                break
    return np.signbit(L).astype(np.uint8), (it if unsat == 0 else -it), np.array(trace, np.int32), L


def _frame(code, q, seed, punctured=0.0):
    H = code.csr()
    rng = np.random.default_rng(seed)
    e = (rng.random(code.n) < q).astype(np.uint8)
    s = ((H @ e.astype(int)) % 2).astype(np.uint8)
    llr = np.full(code.n, np.log((1 - q) / q))
    llr[rng.random(code.n) < punctured] = 1e-9  # near-unknown positions, as punctured ones
    return H, e, s, llr


def test_phi_table_follows_the_function():
    x = np.concatenate([np.geomspace(2e-3, 0.06, 60), np.linspace(0.07, 12.0, 400)])
    exact = -np.log(np.tanh((x + PHI_LO) / 2))  # the table's phi is of |x| + 2^-12 (a smooth cap at 0)
    got = phi(x).astype(np.float64)
    # constant relative resolution 1/128 in the argument, values at cell midpoints: phi's relative error is at most
    # y |phi'(y)| / phi(y) / 256, below (1 + y) / 256 (-> 1 / log(2 / y) near 0, -> y far out where phi ~ 2 e^-y)
    assert np.all(np.abs(got - exact) / exact <= (1 + x) / 256)
    assert np.max(np.abs(got - -np.log(np.tanh(x / 2)))[x > 0.1]) < 5e-3  # absolute, where the shift is nothing
    assert np.all(np.diff(_TABLE) < 0)  # decreasing: a stronger message never reads as a weaker one
    assert len(_TABLE) == len(phi_table()) and phi(40.0) == phi(PHI_HI) < 1e-12


def test_phi_of_zero_and_minus_zero_is_the_cap():
    # regression guard: -0.0 has the sign bit set; read as a huge argument it would give phi = 0 (a certain check
    # message from no information)
    cap = -np.log(np.tanh(PHI_LO / 2))
    for x in (0.0, -0.0, 1e-30, -1e-30):
        assert abs(float(phi(np.float32(x))) - cap) < 0.01 * cap
    assert float(phi(np.float32(-3.0))) == float(phi(np.float32(3.0)))


@pytest.mark.parametrize("simd", [True, False])
@pytest.mark.parametrize("q, punctured, patience, converges", [(0.05, 0.0, 5, True), (0.05, 0.05, 1000, True),
                                                               (0.11, 0.0, 3, False)])
def test_kernel_matches_the_plain_reference_bit_for_bit(q, punctured, patience, converges, simd):
    # both paths of the kernel (groups of 8 checks as AVX2 lanes, or one after the other) against the reference
    code = load_family()["R60"]
    H, e, s, llr = _frame(code, q, seed=11, punctured=punctured)
    dec = LayeredDecoder(H, max_iter=25, patience=patience, simd=simd)
    R, L = dec.state()
    got, ok = dec.decode(s, llr, (R, L))
    want, it, trace, L_ref = reference_decode(H, llr, s, 25, patience, dec.order)
    assert ok == converges == (it > 0)
    assert dec.iterations == abs(it)
    assert np.array_equal(got, want)
    assert np.array_equal(L, L_ref)  # the beliefs themselves, to the bit
    assert np.array_equal(dec.trace[:len(trace)], trace)
    if converges:
        assert np.array_equal(got, e)


@pytest.mark.parametrize("q", [0.02, 0.05])
def test_decodes_the_error_pattern_of_a_syndrome(q):
    code = load_family()["R50"]
    rng = np.random.default_rng(7)
    dec = LayeredDecoder(code.csr(), max_iter=60)
    for seed in range(3):
        H, e, s, llr = _frame(code, q, seed=int(rng.integers(1 << 30)))
        got, ok = dec.decode(s, llr)
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
    # the unsatisfied checks are counted as each check is left (not on the final signs); convergence must still
    # mean the returned word meets the syndrome: recomputed here at each stopping point (the limit cuts the
    # decoding after 1, 2, ... iterations, converged or not)
    code = load_family()["R70"]
    H, e, s, llr = _frame(code, 0.03, seed=5, punctured=0.05)
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


def test_frames_decoded_on_two_threads_match_one_thread():
    # the kernel releases the GIL; each thread has its own work arrays: the same words and iterations as in turn
    code = load_family()["R60"]
    frames = [_frame(code, 0.05 + 0.01 * (s % 2), seed=s, punctured=0.05) for s in range(6)]
    serial = []
    dec = LayeredDecoder(code.csr(), max_iter=40)
    for H, e, s, llr in frames:
        got, ok = dec.decode(s, llr)
        serial.append((got, ok, dec.iterations))
    out = [None] * len(frames)

    def work(k):
        d = LayeredDecoder(code.csr(), max_iter=40)
        for i in range(k, len(frames), 2):
            got, ok = d.decode(frames[i][2], frames[i][3])
            out[i] = (got, ok, d.iterations)
    th = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    [t.start() for t in th]
    [t.join() for t in th]
    for a, b in zip(serial, out):
        assert np.array_equal(a[0], b[0]) and a[1:] == b[1:]
    assert {ok for _, ok, _ in serial} == {True, False}


def test_rejects_mismatched_shapes():
    code = load_family()["R60"]
    dec = LayeredDecoder(code.csr())
    with pytest.raises(ValueError):
        dec.decode(np.zeros(code.m - 1, np.uint8), np.zeros(code.n))


def test_schedule_groups_disjoint_checks_of_one_degree():
    from timetag.distill.decoder import schedule
    code = load_family()["R70"]
    H = code.csr()[:, np.random.default_rng(2).permutation(code.n)[:7000]].tocsr()  # shortened: mixed degrees
    H.sort_indices()
    ptr, var = H.indptr.astype(np.int32), H.indices.astype(np.int32)
    order, groups, singles = schedule(ptr, var)
    assert sorted(order.tolist()) == list(range(H.shape[0]))  # every check once
    assert len(groups) * 8 > 0.9 * H.shape[0]  # most checks go in groups
    for g in groups:
        assert len(g) == 8 and len({ptr[c + 1] - ptr[c] for c in g}) == 1
        vs = np.concatenate([var[ptr[c]:ptr[c + 1]] for c in g])
        assert len(np.unique(vs)) == len(vs)
    dec = LayeredDecoder(H)
    assert np.array_equal(np.sort(dec.var), np.sort(var))  # the grouped layout holds every edge once
