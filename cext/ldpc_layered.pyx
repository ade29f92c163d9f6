# cython: language_level=3
"""Layered sum-product syndrome decoding of one LDPC frame (float32 messages), for ``timetag.distill.decoder``
(which documents the algorithm and owns the table; ``tests/distill/test_decoder.py`` holds a plain-Python
reference that this kernel must match bit for bit).

C rather than numba: numba's loop re-checked every signed index for wrap-around and kept its pointers on the
stack (``inspect_asm``).  The check updates are in ``ldpc_layered_kernels.h``: most checks go in groups of 8 with
disjoint variables and one degree (``timetag.distill.decoder`` forms them), updated as the 8 lanes of AVX2 vectors
when the CPU has it, else one after the other with the same result; the rest one by one.

phi(x) = -log tanh(x / 2) is one gather from a table indexed by the bits of the float32 y = min(|x| + lo, hi):
exponent and top mantissa bits, so the table's resolution is constant *relative* to y -- fine near 0, where phi is
steep, coarse where it is flat -- with no branch and no interpolation.  Adding ``lo`` (the table's first cell,
2^-12) keeps every index >= 0 and caps phi near 0 smoothly (phi(lo) ~ 9, the largest check message).
"""
from libc.stdint cimport int32_t, uint8_t, uint32_t

cdef extern from "ldpc_layered_kernels.h":
    ctypedef struct ldpc_table:
        const float* value
        float lo
        float hi
        uint32_t shift
        uint32_t base
    uint32_t ldpc_bits(float x) nogil
    uint32_t ldpc_check(const int32_t* var, float* R, float* L, const ldpc_table* t, uint32_t syn, int e0, int deg,
                        int stride, float* qbuf, float* pbuf) nogil
    uint32_t ldpc_group8_scalar(const int32_t* var, float* R, float* L, const ldpc_table* t, const uint8_t* syn,
                                int e0, int deg, float* qbuf, float* pbuf) nogil
    uint32_t ldpc_group8_avx2(const int32_t* var, float* R, float* L, const ldpc_table* t, const uint8_t* syn,
                              int e0, int deg, float* qbuf, float* pbuf) nogil
    int ldpc_have_avx2() nogil

HAVE_AVX2 = bool(ldpc_have_avx2())


cdef int _decode(const int32_t* chk_ptr, const int32_t* chk_var, int m, int n, const int32_t* order, int groups,
                 const int32_t* group_e0, const int32_t* group_deg, int singles, const int32_t* single_ptr,
                 const int32_t* var, int nedges, const float* llr0, const uint8_t* syn, int max_iter, int patience,
                 const ldpc_table* t, bint simd, float* R, float* L, float* qbuf, float* pbuf, uint8_t* psyn,
                 uint8_t* out, int32_t* trace) noexcept nogil:
    cdef int c, e, g, k, it = 0, best = m + 1, since = 0, unsat = m, approx
    cdef uint32_t par
    for k in range(n):
        L[k] = llr0[k]
    for e in range(nedges):
        R[e] = 0.0
    for k in range(m):
        psyn[k] = syn[order[k]]
    while it < max_iter:
        it += 1
        # unsatisfied checks counted as each check is left (the signs of its variables just after its update):
        # no pass of its own; when every check was left satisfied, the pass below confirms it on the final signs
        approx = 0
        if simd:
            for g in range(groups):
                approx += ldpc_group8_avx2(var, R, L, t, psyn + 8 * g, group_e0[g], group_deg[g], qbuf, pbuf)
        else:
            for g in range(groups):
                approx += ldpc_group8_scalar(var, R, L, t, psyn + 8 * g, group_e0[g], group_deg[g], qbuf, pbuf)
        for k in range(singles):
            approx += ldpc_check(var, R, L, t, psyn[8 * groups + k], single_ptr[k], single_ptr[k + 1] - single_ptr[k],
                                 1, qbuf, pbuf)
        if approx == 0:
            unsat = 0
            for c in range(m):
                par = syn[c]
                for e in range(chk_ptr[c], chk_ptr[c + 1]):
                    par ^= ldpc_bits(L[chk_var[e]]) >> 31
                unsat += par
            if unsat == 0:
                break
            approx = unsat
        unsat = approx
        trace[it - 1] = unsat
        if approx < best:
            best = approx
            since = 0
        else:
            since += 1
            if since >= patience:
                break
    for k in range(n):
        out[k] = ldpc_bits(L[k]) >> 31
    return it if unsat == 0 else -it


def decode(const int32_t[::1] chk_ptr, const int32_t[::1] chk_var, const int32_t[::1] order,
           const int32_t[::1] group_e0, const int32_t[::1] group_deg, const int32_t[::1] single_ptr,
           const int32_t[::1] var, const float[::1] llr0, const uint8_t[::1] syn, int max_iter, int patience,
           const float[::1] table, float lo, float hi, int shift, bint simd, float[::1] R, float[::1] L,
           float[::1] qbuf, float[::1] pbuf, uint8_t[::1] psyn, uint8_t[::1] out, int32_t[::1] trace):
    """Decode one frame; the hard decision goes to ``out``, the unsatisfied checks after each iteration that did
    not converge to ``trace``; returns the iterations used, negative when the syndrome was not met.

    ``chk_ptr``, ``chk_var``: H in CSR (the final check); the schedule: ``order`` (check of each position: the
    groups' lanes, then the single checks), groups (first edge, degree; edges lane by lane), single checks
    (``single_ptr`` into the edges), ``var`` (the variable of each edge, in that layout; R follows it).  With
    ``simd`` (and ``HAVE_AVX2``) the groups run on AVX2.  Shapes, the layout and the table's range are the
    caller's contract (``LayeredDecoder`` builds and checks them)."""
    cdef ldpc_table t
    t.value = &table[0]
    t.lo = lo
    t.hi = hi
    t.shift = <uint32_t>shift
    t.base = ldpc_bits(lo) >> t.shift
    cdef int m = chk_ptr.shape[0] - 1, n = llr0.shape[0], res
    cdef int groups = group_deg.shape[0], singles = single_ptr.shape[0] - 1
    cdef bint use_simd = simd and HAVE_AVX2
    with nogil:
        res = _decode(&chk_ptr[0], &chk_var[0], m, n, &order[0], groups, &group_e0[0], &group_deg[0], singles,
                      &single_ptr[0], &var[0], var.shape[0], &llr0[0], &syn[0], max_iter, patience, &t, use_simd,
                      &R[0], &L[0], &qbuf[0], &pbuf[0], &psyn[0], &out[0], &trace[0])
    return res


def schedule(const int32_t[::1] chk_ptr, const int32_t[::1] chk_var, int n, int width):
    """The update order of the checks (``timetag.distill.decoder.schedule`` documents it): returns (order, groups),
    the first ``groups * width`` entries of ``order`` being the groups' checks, lane by lane."""
    import numpy as np
    cdef int m = chk_ptr.shape[0] - 1
    cdef int c, d, e, i, k, npend, nskip, ngroup, full, groups = 0, placed = 0, nsingle = 0
    cdef bint clash
    deg_np = np.diff(np.asarray(chk_ptr)).astype(np.int32)
    cdef int32_t[::1] deg = deg_np
    cdef uint8_t[::1] used = np.zeros(max(n, 1), np.uint8)
    order_np = np.empty(m, np.int32)
    cdef int32_t[::1] order = order_np
    cdef int32_t[::1] singles = np.empty(m, np.int32)
    cdef int32_t[::1] pend = np.empty(m, np.int32)
    cdef int32_t[::1] nxt = np.empty(m, np.int32)
    cdef int32_t[::1] group = np.empty(max(width, 1), np.int32)
    for d in np.unique(deg_np):
        npend = 0
        for c in range(m):
            if deg[c] == d:
                pend[npend] = c
                npend += 1
        while npend >= width:
            ngroup = 0
            nskip = 0
            i = 0
            while i < npend and ngroup < width:
                c = pend[i]
                clash = False
                for e in range(chk_ptr[c], chk_ptr[c + 1]):
                    if used[chk_var[e]]:
                        clash = True
                        break
                if clash:
                    nxt[nskip] = c
                    nskip += 1
                else:
                    for e in range(chk_ptr[c], chk_ptr[c + 1]):
                        used[chk_var[e]] = 1
                    group[ngroup] = c
                    ngroup += 1
                i += 1
            for k in range(ngroup):
                c = group[k]
                for e in range(chk_ptr[c], chk_ptr[c + 1]):
                    used[chk_var[e]] = 0
            if ngroup < width:
                break
            for k in range(width):
                order[placed] = group[k]
                placed += 1
            groups += 1
            for k in range(i, npend):  # pending = skipped, then the checks not looked at
                nxt[nskip] = pend[k]
                nskip += 1
            for k in range(nskip):
                pend[k] = nxt[k]
            npend = nskip
        for k in range(npend):
            singles[nsingle] = pend[k]
            nsingle += 1
    for k in range(nsingle):
        order[placed + k] = singles[k]
    return order_np, groups
