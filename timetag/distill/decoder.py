"""The project's syndrome decoder: layered (serial-check) sum-product belief propagation, compiled with numba.

Why our own: ``ldpc.BpDecoder`` (sum-product, 60 iterations) took 20-160 ms per 8192-bit frame here (0.04-0.4
Mbit/s), and its faster min-sum lost most frames near the rates we need (docs/distill.md, *Decoder*).  This one
does the same exact-in-principle sum-product update, in the layered schedule (checks one by one, each using the
freshest variable beliefs: about half the iterations of the parallel schedule for the same frame error rate), with
phi(x) = -log tanh(x / 2) read from a table with linear interpolation (a finer one near 0, where it is steep;
messages are capped at |LLR| ~ 9 there, as fixed-point decoders saturate).  phi is its own inverse, so the check
update is two table reads per edge instead of a tanh and an atanh.

Decoding problem: find e with H e = s (mod 2), prior LLR log P(e_j = 0) / P(e_j = 1) per column.  Check update for
check c with syndrome bit s_c (messages Q_e = L_v - R_e from its variables v)::

    R_e = (-1)^{s_c} prod_{e' != e} sign(Q_e') * phi( sum_{e' != e} phi(|Q_e'|) )

The sum over e' != e is formed as the total minus the edge's own term; the table's cap (PHI_CAP, phi of a message
of about 1e-13) bounds the cancellation error.  After every iteration the hard decision is checked against the
syndrome; the decoder stops at the first iteration that satisfies it.  A frame it cannot satisfy within
``max_iter`` is reported failed (Bob's status bit), never returned as a wrong word that passes the check.
"""
from __future__ import annotations

import numpy as np

from .. import _numba_cache

_numba_cache.use_user_cache_dir()

import numba  # noqa: E402

__all__ = ["LayeredDecoder", "phi_table", "PHI_STEP", "PHI_CAP", "LLR_CLIP"]

PHI_STEP = 1.0 / 128          # table resolution in |LLR|: interpolation error of phi < 2e-3 above x = 1/16
PHI_MAX = 20.0                # phi(20) ~ 4e-9: nothing next to the other terms; small tables stay in L1
PHI_FINE_BELOW = 8           # below x = 8 PHI_STEP = 1/16 a 16x finer table (step 1/2048) ...
PHI_FINE = 16
PHI_FINE_CAP = 9.0           # ... whose first cell caps messages at |LLR| ~ 9 (error rate 1e-4): certain enough
PHI_CAP = 30.0                # phi(0) is infinite; the cap stands for "no information" (phi(30) ~ 2e-13)
PATIENCE = 5                  # iterations without fewer unsatisfied checks before a try is given up (measured)
LLR_CLIP = 60.0               # known bits (revealed, or |LLR| grown by agreement) saturate here


def phi_table(step: float = PHI_STEP, xmax: float = PHI_MAX, cap: float = PHI_CAP) -> np.ndarray:
    """phi on a grid of ``step`` from 0 to past ``xmax``; phi(0) (infinite) stands as ``cap``."""
    x = np.arange(0.0, xmax + 2 * step, step)
    with np.errstate(divide="ignore"):
        t = -np.log(np.tanh(x / 2))
    t[0] = cap
    return np.minimum(t, PHI_CAP)


@numba.njit(cache=True, inline="always")
def _phi(x, table, fine, inv_step):
    u = x * inv_step
    if u >= table.shape[0] - 1:
        return 0.0
    if u < PHI_FINE_BELOW:  # phi is steep near 0: a finer table (a coarse one would make weak messages look strong)
        u = x * (inv_step * PHI_FINE)
        i = int(u)
        return fine[i] + (u - i) * (fine[i + 1] - fine[i])
    i = int(u)
    fr = u - i
    return table[i] + fr * (table[i + 1] - table[i])


@numba.njit(cache=True, nogil=True)
def _decode(chk_ptr, chk_var, llr0, syn, max_iter, patience, table, fine, inv_step, R, L, qbuf, pbuf, out):
    """Layered sum-product; writes the hard decision to ``out``; returns iterations used (negative: failed).

    ``patience``: stop when the number of unsatisfied checks has not improved for that many iterations (a frame
    that stalls rarely converges later: spend no more on it, a blind round will give it more bits).
    """
    m = chk_ptr.shape[0] - 1
    n = llr0.shape[0]
    for v in range(n):
        L[v] = llr0[v]
    for e in range(R.shape[0]):
        R[e] = 0.0
    best = m + 1
    since = 0
    it = 0
    while it < max_iter:
        it += 1
        for c in range(m):
            lo = chk_ptr[c]
            hi = chk_ptr[c + 1]
            sgn = 1.0 - 2.0 * syn[c]
            total = 0.0
            for e in range(lo, hi):
                q = L[chk_var[e]] - R[e]
                qbuf[e - lo] = q
                if q < 0.0:
                    sgn = -sgn
                    q = -q
                p = _phi(q, table, fine, inv_step)
                pbuf[e - lo] = p
                total += p
            for e in range(lo, hi):
                q = qbuf[e - lo]
                mag = _phi(max(total - pbuf[e - lo], 0.0), table, fine, inv_step)
                r = sgn * mag if q >= 0.0 else -sgn * mag
                lv = q + r
                if lv > LLR_CLIP:
                    lv = LLR_CLIP
                elif lv < -LLR_CLIP:
                    lv = -LLR_CLIP
                L[chk_var[e]] = lv
                R[e] = r
        unsat = 0
        for c in range(m):
            par = syn[c]
            for e in range(chk_ptr[c], chk_ptr[c + 1]):
                if L[chk_var[e]] < 0.0:
                    par ^= 1
            unsat += par
        if unsat == 0:
            break
        if unsat < best:
            best = unsat
            since = 0
        else:
            since += 1
            if since >= patience:
                break
    for v in range(n):
        out[v] = 1 if L[v] < 0.0 else 0
    return it if unsat == 0 else -it


class LayeredDecoder:
    """Syndrome decoder for one parity-check matrix (scipy sparse, m x n); per-frame state in :meth:`state`."""

    def __init__(self, H, max_iter: int = 100, patience: int = PATIENCE):
        Hc = H.tocsr()
        Hc.sort_indices()
        self.m, self.n = Hc.shape
        self.chk_ptr = Hc.indptr.astype(np.int64)
        self.chk_var = Hc.indices.astype(np.int64)
        self.max_iter = int(max_iter)
        self.patience = int(patience)
        self.table = phi_table()
        self.fine = phi_table(PHI_STEP / PHI_FINE, PHI_FINE_BELOW * PHI_STEP, cap=PHI_FINE_CAP)
        dmax = int(np.diff(self.chk_ptr).max()) if self.m else 1
        self._q = np.zeros(dmax, np.float64)
        self._p = np.zeros(dmax, np.float64)
        self.iterations = 0

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """Work arrays (R, L): check-to-variable messages per edge and variable beliefs (reusable)."""
        return np.zeros(len(self.chk_var), np.float64), np.zeros(self.n, np.float64)

    def decode(self, syndrome: np.ndarray, llr: np.ndarray, state=None) -> tuple[np.ndarray, bool]:
        """(e, converged): e (uint8, length n) with H e = syndrome when converged.  ``llr``: prior
        log P(e_j = 0) / P(e_j = 1) per column; ``state``: work arrays from :meth:`state` (allocated if None)."""
        s = np.ascontiguousarray(syndrome, np.uint8)
        llr = np.ascontiguousarray(llr, np.float64)
        if llr.shape != (self.n,):
            raise ValueError(f"llr must have {self.n} entries, got {llr.shape}")
        R, L = self.state() if state is None else state
        out = np.zeros(self.n, np.uint8)
        it = _decode(self.chk_ptr, self.chk_var, llr, s, self.max_iter, self.patience, self.table, self.fine,
                     1.0 / PHI_STEP, R, L, self._q, self._p, out)
        self.iterations = abs(it)
        return out, it > 0
