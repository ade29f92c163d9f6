"""The project's syndrome decoder: layered (serial-check) sum-product belief propagation, in C.

Why our own: ``ldpc.BpDecoder`` (sum-product, 60 iterations) took 20-160 ms per 8192-bit frame here (0.04-0.4
Mbit/s), and its faster min-sum lost most frames near the rates we need (docs/distill.md, *Decoder*).  This one
does the same exact-in-principle sum-product update, in the layered schedule (checks one by one, each using the
freshest variable beliefs: about half the iterations of the parallel schedule for the same frame error rate), in
float32, with phi(x) = -log tanh(x / 2) read from a table indexed by the bits of the float (below).  phi is its
own inverse, so the check update is two table reads per edge instead of a tanh and an atanh.  The loop is C
(``cext/ldpc_layered.pyx``, GIL released); a plain-Python reference of the same arithmetic is in
``tests/distill/test_decoder.py``.

Schedule (:func:`schedule`): the checks are updated in groups of 8 with one degree and no variable in common (in
the layered schedule such checks commute: updating them at once is updating them one after the other), then the
few checks left over one by one.  With AVX2 a group is the 8 lanes of one vector (gathers for the beliefs and the
table); without, the same checks in turn -- the same bits either way, so keys and transcripts do not depend on
the CPU.

The table: y = min(|x| + 2^-12, 31) as a float32; its exponent and top PHI_MANTISSA_BITS mantissa bits are the
index (2176 cells, 8.5 kB), each cell holding phi at its midpoint.  Resolution is constant *relative* to y (1/128):
fine near 0, where phi is steep, coarse where phi is flat and small; no branch, no interpolation.  The 2^-12
caps check messages smoothly at phi(2^-12) ~ 9 (as fixed-point decoders saturate), and phi(31) ~ 1e-13 stands
for 0.  Beliefs need no clip: L = prior + the sum of its check messages, each below 9.01 in magnitude.

Decoding problem: find e with H e = s (mod 2), prior LLR log P(e_j = 0) / P(e_j = 1) per column.  Check update for
check c with syndrome bit s_c (messages Q_e = L_v - R_e from its variables v)::

    R_e = (-1)^{s_c} prod_{e' != e} sign(Q_e') * phi( sum_{e' != e} phi(|Q_e'|) )

The sum over e' != e is formed as the total minus the edge's own term (float32 round-off ~1e-6 of the largest
term, far below the 2^-12 added: a cancellation residue reads as the cap).  Unsatisfied checks are counted as
each check is left (the signs of its variables just after its update), which costs no pass of its own; only when
every check was left satisfied is the hard decision checked against the syndrome on the final signs, and the
decoder stops at the first iteration that satisfies it.  A frame it cannot satisfy within
``max_iter`` is reported failed (Bob's status bit), never returned as a wrong word that passes the check.
"""
from __future__ import annotations

import numpy as np

from .._cext import ldpc_layered

__all__ = ["LayeredDecoder", "schedule", "phi_table", "phi", "PHI_LO", "PHI_HI", "PHI_MANTISSA_BITS", "PATIENCE"]

PHI_MANTISSA_BITS = 7         # table resolution: 1/128 relative to the argument (6 measured the same f: margin)
PHI_LO = 2.0 ** -12           # added to every |x|: the table's first cell, phi(PHI_LO) ~ 9 caps check messages
PHI_HI = 31.0                 # arguments are clipped here: phi(31) ~ 7e-14, nothing next to the other terms
PATIENCE = 5                  # iterations without fewer unsatisfied checks before a try is given up (measured)
_SHIFT = 23 - PHI_MANTISSA_BITS


def _index(y: np.ndarray) -> np.ndarray:
    """Table cell of float32 arguments already in [PHI_LO, PHI_HI] (the kernel's index, in numpy)."""
    bits = np.asarray(y, np.float32).view(np.uint32)
    return (bits >> _SHIFT).astype(np.int64) - int(np.float32(PHI_LO).view(np.uint32) >> _SHIFT)


def phi_table() -> np.ndarray:
    """float32 phi at the midpoint of every cell from PHI_LO up to the octave holding PHI_HI."""
    octaves = int(np.ceil(np.log2(PHI_HI / PHI_LO)))
    j = np.arange(octaves << PHI_MANTISSA_BITS)
    mid = np.ldexp(1.0 + ((j & ((1 << PHI_MANTISSA_BITS) - 1)) + 0.5) / (1 << PHI_MANTISSA_BITS),
                   (j >> PHI_MANTISSA_BITS) + int(np.log2(PHI_LO)))
    return (-np.log(np.tanh(mid / 2))).astype(np.float32)


_TABLE = phi_table()


def phi(x) -> np.ndarray:
    """The decoder's phi of float32 ``x`` (elementwise): the table read the kernel does."""
    y = np.minimum(np.abs(np.asarray(x, np.float32)) + np.float32(PHI_LO), np.float32(PHI_HI))
    return _TABLE[_index(y)]


def schedule(chk_ptr: np.ndarray, chk_var: np.ndarray, width: int = 8):
    """The order the checks are updated in: groups of ``width`` checks of one degree with no variable in common
    (greedy, degree by degree, in index order: a check joins the group being formed unless it shares a variable
    with it), then the checks left over.  Disjoint checks commute in the layered schedule, so a group's checks can
    be updated at once (one SIMD lane each) with the result of one after the other.  Returns (order, groups: list
    of check lists, singles).  The greedy loop is C (``ldpc_layered.schedule``)."""
    ptr = np.ascontiguousarray(chk_ptr, np.int32)
    var = np.ascontiguousarray(chk_var, np.int32)
    order, ngroups = ldpc_layered.schedule(ptr, var, int(var.max()) + 1 if len(var) else 1, int(width))
    groups = [order[k * width:(k + 1) * width].tolist() for k in range(ngroups)]
    return order, groups, order[ngroups * width:].tolist()


class LayeredDecoder:
    """Syndrome decoder for one parity-check matrix (scipy sparse, m x n); per-frame state in :meth:`state`.
    ``simd``: update the groups of 8 checks with AVX2 when the CPU has it (default); False: one check after the
    other (same result, for the tests)."""

    def __init__(self, H, max_iter: int = 100, patience: int = PATIENCE, simd: bool = True):
        Hc = H.tocsr()
        Hc.sort_indices()
        self.m, self.n = Hc.shape
        self.chk_ptr = Hc.indptr.astype(np.int32)
        self.chk_var = Hc.indices.astype(np.int32)
        self.max_iter = int(max_iter)
        self.patience = int(patience)
        self.simd = bool(simd)
        if self.max_iter < 1 or self.m < 1:
            raise ValueError(f"LayeredDecoder needs max_iter >= 1 and at least one check, got {max_iter}, {self.m}")
        ptr, var = self.chk_ptr, self.chk_var
        self.order, groups, singles = schedule(ptr, var)
        # edges in the order they are updated: a group's lane by lane (edge k of lane j at 8 k + j), then the
        # single checks' in CSR order; R follows this layout
        deg = np.diff(ptr)
        blocks = [np.stack([var[ptr[c]:ptr[c + 1]] for c in g]).T.ravel() for g in groups]
        blocks += [var[ptr[c]:ptr[c + 1]] for c in singles]
        self.group_deg = np.array([deg[g[0]] for g in groups], np.int32)
        self.group_e0 = (np.cumsum(8 * self.group_deg) - 8 * self.group_deg).astype(np.int32)
        grouped = int(8 * self.group_deg.sum())
        self.single_ptr = (np.concatenate([[0], np.cumsum(deg[singles])]) + grouped).astype(np.int32)
        self.var = np.ascontiguousarray(np.concatenate(blocks), np.int32)
        dmax = int(np.diff(ptr).max())
        self._q = np.zeros(8 * dmax, np.float32)
        self._p = np.zeros(8 * dmax, np.float32)
        self._psyn = np.zeros(self.m, np.uint8)
        self.trace = np.zeros(self.max_iter, np.int32)
        self.iterations = 0

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """Work arrays (R, L): check-to-variable messages per edge and variable beliefs (float32, reusable; one
        pair per thread)."""
        return np.zeros(len(self.chk_var), np.float32), np.zeros(self.n, np.float32)

    def decode(self, syndrome: np.ndarray, llr: np.ndarray, state=None) -> tuple[np.ndarray, bool]:
        """(e, converged): e (uint8, length n) with H e = syndrome when converged.  ``llr``: prior
        log P(e_j = 0) / P(e_j = 1) per column; ``state``: work arrays from :meth:`state` (allocated if None)."""
        s = np.ascontiguousarray(syndrome, np.uint8)
        llr = np.ascontiguousarray(llr, np.float32)
        if llr.shape != (self.n,) or s.shape != (self.m,):
            raise ValueError(f"llr must have {self.n} entries and the syndrome {self.m}, got {llr.shape}, {s.shape}")
        R, L = self.state() if state is None else state
        out = np.zeros(self.n, np.uint8)
        it = ldpc_layered.decode(self.chk_ptr, self.chk_var, self.order, self.group_e0, self.group_deg,
                                 self.single_ptr, self.var, llr, s, self.max_iter, self.patience, _TABLE, PHI_LO,
                                 PHI_HI, _SHIFT, self.simd, R, L, self._q, self._p, self._psyn, out, self.trace)
        self.iterations = abs(it)
        return out, it > 0
