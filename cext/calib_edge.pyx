# cython: language_level=3
"""The conditional-sync edge histogram and the sync-period kernels (``calib_edge.h``) for
:mod:`calibrate.histograms`.

:class:`EdgeKernel` holds the histogram's streaming state and rings (grown here when full); the histogram is the
caller's int64 [detector, bin] array, updated in place.  :class:`PeriodKernel`: the syncs' count and smallest gap.
"""
from libc.stdint cimport int64_t, int32_t

import numpy as np


cdef extern from "calib_edge.h":
    ctypedef struct tt_edge_state:
        int64_t sh, st, npend, nsync, last_raw, best
    ctypedef struct tt_edge_config:
        int64_t sync_channel, sync_delay, lo, hi, bin_ps, guard, dmax, hopeless
    ctypedef struct tt_edge_arrays:
        const int64_t *lut
        int64_t nlut
        const int64_t *delays
        int64_t *out
        int64_t nbins
        int64_t *sr
        int64_t nsr
        int64_t *pend_t
        int64_t *pend_d
        int64_t npend_cap
    int64_t tt_edge_run(const int64_t *t, const int32_t *ch, int64_t n, int64_t i, tt_edge_state *s,
                        const tt_edge_config *c, const tt_edge_arrays *A) noexcept nogil
    int64_t tt_edge_bin(int64_t x, int64_t bin_ps, double inv_bin) noexcept nogil
    ctypedef struct tt_period_state:
        int64_t nsync, last, best, have_last
    void tt_sync_gaps(const int64_t *t, const int32_t *ch, int64_t n, int64_t sync_channel,
                      tt_period_state *s) noexcept nogil


def bin_of(int64_t x, int64_t bin_ps):
    """``x // bin_ps`` as the histogram computes it (0 <= x < 2**52)."""
    return tt_edge_bin(x, bin_ps, 1.0 / <double>bin_ps)


cdef class EdgeKernel:
    """One stream's guarded 'next'-rule histogram: ``feed`` chunks in order, ``drop_pending`` at the end.

    ``config``: the named fields of ``tt_edge_config`` (a dict); ``lut``: channel -> detector (-1: none);
    ``delays``: per detector; ``out``: int64 [detector, bin], counted into; ``cap``: the rings' first size.
    """

    cdef tt_edge_state s
    cdef tt_edge_config c
    cdef tt_edge_arrays A
    cdef dict _keep

    def __init__(self, dict config, lut, delays, out, int64_t cap=64):
        self.c.sync_channel, self.c.sync_delay = config["sync_channel"], config["sync_delay"]
        self.c.lo, self.c.hi, self.c.bin_ps = config["lo"], config["hi"], config["bin_ps"]
        self.c.guard, self.c.dmax, self.c.hopeless = config["guard"], config["dmax"], config["hopeless"]
        if self.c.bin_ps <= 0:
            raise ValueError(f"edge histogram: bin width {self.c.bin_ps} ps must be positive")
        self.s.sh = self.s.st = self.s.npend = self.s.nsync = self.s.last_raw = 0
        self.s.best = -1
        keep = {"lut": np.ascontiguousarray(lut, dtype=np.int64),
                "delays": np.ascontiguousarray(delays, dtype=np.int64)}
        if out.dtype != np.int64 or out.ndim != 2 or not out.flags.c_contiguous:
            raise ValueError("edge histogram: the output must be a contiguous int64 [detector, bin] array")
        if keep["lut"].size and keep["lut"].max() >= out.shape[0] or keep["delays"].shape[0] < out.shape[0]:
            raise ValueError("edge histogram: a detector index beyond the output's rows or the delays")
        keep["out"] = out
        for name in ("sr", "pend_t", "pend_d"):
            keep[name] = np.zeros(max(cap, 1), np.int64)
        self._keep = keep
        self._point()

    cdef void _point(self):
        cdef int64_t[::1] v
        k = self._keep
        v = k["lut"]
        self.A.lut, self.A.nlut = &v[0] if v.shape[0] else NULL, v.shape[0]
        v = k["delays"]
        self.A.delays = &v[0] if v.shape[0] else NULL
        v = k["out"].reshape(-1)
        self.A.out, self.A.nbins = &v[0] if v.shape[0] else NULL, k["out"].shape[1]
        v = k["sr"]
        self.A.sr, self.A.nsr = &v[0], v.shape[0]
        v = k["pend_t"]
        self.A.pend_t, self.A.npend_cap = &v[0], v.shape[0]
        v = k["pend_d"]
        self.A.pend_d = &v[0]

    def feed(self, const int64_t[::1] time, const int32_t[::1] chan):
        cdef int64_t n = time.shape[0]
        cdef int64_t i = 0
        if chan.shape[0] != n:
            raise ValueError("edge histogram: time and channel arrays differ in length")
        cdef const int64_t *tp = &time[0] if n else NULL
        cdef const int32_t *cp = &chan[0] if n else NULL
        while True:
            with nogil:
                i = tt_edge_run(tp, cp, n, i, &self.s, &self.c, &self.A)
            if i >= n:
                return
            # full: grow what is full
            k = self._keep
            if self.s.st == self.A.nsr:
                k["sr"] = np.concatenate([k["sr"], np.zeros_like(k["sr"])])
            if self.s.npend == self.A.npend_cap:
                k["pend_t"] = np.concatenate([k["pend_t"], np.zeros_like(k["pend_t"])])
                k["pend_d"] = np.concatenate([k["pend_d"], np.zeros_like(k["pend_d"])])
            self._point()

    def drop_pending(self):
        """The clicks still waiting have no sync after them: like the engine's, they are in no histogram."""
        self.s.npend = 0

    @property
    def n_syncs(self):
        return self.s.nsync

    @property
    def period_ps(self):
        """The smallest positive gap between consecutive syncs (None: none yet)."""
        return None if self.s.best < 0 else self.s.best

    @property
    def ring_sizes(self):
        return {name: self._keep[name].shape[0] for name in ("sr", "pend_t")}


cdef class PeriodKernel:
    """The syncs of ``sync_channel``: their count and smallest positive gap between consecutive ones."""

    cdef tt_period_state s
    cdef int64_t sync_channel

    def __init__(self, int64_t sync_channel):
        self.sync_channel = sync_channel
        self.s.nsync = self.s.last = self.s.have_last = 0
        self.s.best = -1

    def feed(self, const int64_t[::1] time, const int32_t[::1] chan):
        cdef int64_t n = time.shape[0]
        if chan.shape[0] != n:
            raise ValueError("sync period: time and channel arrays differ in length")
        if n == 0:
            return
        with nogil:
            tt_sync_gaps(&time[0], &chan[0], n, self.sync_channel, &self.s)

    @property
    def n_syncs(self):
        return self.s.nsync

    @property
    def period_ps(self):
        return None if self.s.best < 0 else self.s.best
