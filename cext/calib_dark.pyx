# cython: language_level=3
"""The dark-count and afterpulse counter's streaming kernel (``calib_dark.h``) for :mod:`calibrate.darkcounts`.

:class:`DarkKernel` holds the counter's state between chunks and its rings (grown here when full of what is still
needed); the per-detector counters are the caller's arrays, updated in place.
"""
from libc.stdint cimport int64_t, int32_t, uint8_t

import numpy as np


cdef extern from "calib_dark.h":
    ctypedef struct tt_dc_state:
        int64_t ph, pt, gh, gt, ah, at, sweep, first, last, excl, seeded
    ctypedef struct tt_dc_config:
        int64_t grid_channel, ap_t0, ap_t1, span, lag, o0, o1, lx, lp
    ctypedef struct tt_dc_arrays:
        const int64_t *lut
        int64_t nlut
        const int64_t *prow
        int64_t nrow
        const uint8_t *kind
        int64_t nkind
        const int64_t *cls_start
        const uint8_t *cls_flags
        int64_t ncls
        const int64_t *x0
        const int64_t *x1
        const int64_t *nx
        int64_t kx
        const int64_t *y0
        const int64_t *y1
        const int64_t *ny
        int64_t ky
        double period
        const int64_t *xps
        const int64_t *xpe
        const int64_t *xcum
        int64_t nxp
        const int64_t *pps
        const int64_t *ppe
        const int64_t *pcum
        int64_t npp
        int64_t *pend_t
        int64_t *pend_d
        int64_t npend
        int64_t *anc_t
        int64_t *anc_r
        int64_t nanc
        int64_t *grid_a
        int64_t *grid_b
        int64_t ngrid
        int64_t *us
        int64_t *vs
        int64_t *clicks
        int64_t *quiet
        int64_t *near
        int64_t *ctrl
        int64_t *mingap
        int64_t *apcl
        int64_t *prev
    int64_t TT_DC_UNSET
    enum:
        TT_DC_KIND_OTHER, TT_DC_KIND_CLICK, TT_DC_KIND_GRID, TT_DC_KIND_MIXED
    enum:
        TT_DC_PH_EXCLUDED, TT_DC_PH_CLEAR
    int64_t tt_dc_run(const int64_t *time, const int32_t *chan, int64_t n, int64_t i, int final,
                      tt_dc_state *s, const tt_dc_config *c, const tt_dc_arrays *A) noexcept nogil
    void tt_dc_tick(int64_t x, int64_t a, double T, int64_t *j, int64_t *tick) noexcept nogil
    int64_t tt_dc_part(int64_t ph, const int64_t *ps, const int64_t *pe, const int64_t *cum, int64_t n) noexcept nogil
    int64_t tt_dc_grid_value(int64_t x, const tt_dc_state *s, const tt_dc_arrays *A, int64_t L) noexcept nogil


UNSET = TT_DC_UNSET


def tick(int64_t x, int64_t a, double period):
    """(index j, time) of the latest attempt tick at or before ``x`` of the grid anchored at ``a``."""
    cdef int64_t j, t
    tt_dc_tick(x, a, period, &j, &t)
    return j, t


def phase_classes(double period, int64_t span, xps, xpe, pps, ppe):
    """The phase classes of a whole ``period`` (``tt_dc_arrays.cls_start`` / ``cls_flags``): breakpoints from 0
    and per class whether the phase lies in the excluded intervals ``[xps, xpe)`` and whether ``[phase, phase +
    span)`` meets none of the periodic pulse intervals ``[pps + m period, ppe + m period)``.  Empty (no classes)
    for a fractional period or ``span <= 0``: the kernel then does the arithmetic click by click."""
    cdef int64_t Ti = <int64_t>period
    if <double>Ti != period or span <= 0 or Ti <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint8)
    # phase p is blocked by the copy m of pulse interval [s, e) when s + m Ti < p + span and e + m Ti > p
    bs, be = [], []
    for s, e in zip(np.asarray(pps).tolist(), np.asarray(ppe).tolist()):
        if e <= s:
            continue
        m0 = (-(e - 1)) // Ti - 1
        m1 = (Ti - 1 - (s - span + 1)) // Ti + 1
        for m in range(m0, m1 + 1):
            lo, hi = max(s + m * Ti - span + 1, 0), min(e + m * Ti, Ti)
            if hi > lo:
                bs.append(lo)
                be.append(hi)
    xs, xe = np.asarray(xps, np.int64), np.asarray(xpe, np.int64)
    cuts = np.unique(np.concatenate([[0], xs, xe, bs, be]).astype(np.int64))
    cuts = cuts[(cuts >= 0) & (cuts < Ti)]
    flags = np.zeros(cuts.size, np.uint8)
    for k, p in enumerate(cuts.tolist()):
        excluded = any(a <= p < b for a, b in zip(xs.tolist(), xe.tolist()))
        blocked = any(a <= p < b for a, b in zip(bs, be))
        flags[k] = (TT_DC_PH_EXCLUDED if excluded else 0) | (0 if blocked else TT_DC_PH_CLEAR)
    return np.ascontiguousarray(cuts), flags


cdef const int64_t *_ptr(const int64_t[::1] a):
    return &a[0] if a.shape[0] else NULL


cdef int64_t *_wptr(int64_t[::1] a):
    return &a[0] if a.shape[0] else NULL


cdef class DarkKernel:
    """One stream's counter: ``feed`` chunks in order, the last one with ``final``.

    ``config``: the named fields of ``tt_dc_config`` (a dict); ``tables``: the exclusion tables (``lut``,
    ``prow``, ``x0``, ``x1``, ``nx``, ``y0``, ``y1``, ``ny`` (rows x offsets), the grid's phases ``xps``,
    ``xpe``, ``xcum``, ``pps``, ``ppe``, ``pcum``); ``counters``: int64 arrays per detector updated in place
    (``clicks``, ``quiet``, ``near``, ``ctrl``, ``mingap``, ``apcl``); ``cap``: the rings' first size.
    ``first_anchor``: the first recorded grid sync, placed in the grid ring before the stream reaches it.
    """

    cdef tt_dc_state s
    cdef tt_dc_config c
    cdef tt_dc_arrays A
    cdef dict _keep          # the arrays the pointers in A point into
    cdef readonly object prev

    def __init__(self, dict config, dict tables, dict counters, double period, int64_t cap=256,
                 first_anchor=None):
        self.c.grid_channel = config["grid_channel"]
        self.c.ap_t0, self.c.ap_t1, self.c.span = config["ap_t0"], config["ap_t1"], config["span"]
        self.c.lag, self.c.o0, self.c.o1 = config["lag"], config["o0"], config["o1"]
        self.c.lx, self.c.lp = config["lx"], config["lp"]
        self.s.ph = self.s.pt = self.s.gh = self.s.gt = self.s.ah = self.s.at = 0
        self.s.sweep = self.s.excl = self.s.seeded = 0
        self.s.first = TT_DC_UNSET
        self.s.last = 0
        keep = {}
        for name in ("lut", "prow", "nx", "ny", "xps", "xpe", "xcum", "pps", "ppe", "pcum"):
            keep[name] = np.ascontiguousarray(tables[name], dtype=np.int64)
        for name in ("x0", "x1", "y0", "y1"):
            keep[name] = np.ascontiguousarray(tables[name], dtype=np.int64)
        if keep["x0"].ndim != 2 or keep["y0"].ndim != 2 or keep["x1"].shape != keep["x0"].shape \
                or keep["y1"].shape != keep["y0"].shape:
            raise ValueError("dark counter: x0/x1 and y0/y1 must be 2-D tables of equal shape")
        nd = counters["clicks"].shape[0]
        for name in ("clicks", "quiet", "near", "ctrl", "mingap", "apcl"):
            a = counters[name]
            if a.dtype != np.int64 or a.shape != (nd,) or not a.flags.c_contiguous:
                raise ValueError(f"dark counter: counter {name!r} must be contiguous int64[{nd}]")
            keep[name] = a
        lut, prow, g = keep["lut"], keep["prow"], self.c.grid_channel
        kind = np.zeros(max(lut.shape[0], prow.shape[0], g + 1, 0), np.uint8)
        for ch in range(kind.shape[0]):
            det = ch < lut.shape[0] and lut[ch] >= 0
            row = ch < prow.shape[0] and prow[ch] >= 0
            grid = ch == g
            roles = int(det) + int(row) + int(grid)
            kind[ch] = (TT_DC_KIND_OTHER if roles == 0 else TT_DC_KIND_MIXED if roles > 1 or row
                        else TT_DC_KIND_CLICK if det else TT_DC_KIND_GRID)
        keep["kind"] = kind
        keep["cls_start"], keep["cls_flags"] = phase_classes(period, self.c.span, keep["xps"], keep["xpe"],
                                                             keep["pps"], keep["ppe"])
        self.prev = np.full(nd, TT_DC_UNSET, np.int64)
        keep["prev"] = self.prev
        kx = keep["x0"].shape[1]
        for name in ("pend_t", "pend_d", "anc_t", "anc_r", "grid_a", "grid_b"):
            keep[name] = np.zeros(max(cap, 1), np.int64)
        keep["us"] = np.zeros(max(cap, 1) * kx, np.int64)
        keep["vs"] = np.zeros(max(cap, 1) * kx, np.int64)
        self._keep = keep
        self.A.period = period
        self._point()
        if first_anchor is not None and self.c.grid_channel >= 0:
            # ticks before the first recorded sync are placed backwards from it
            keep["grid_a"][0] = int(first_anchor)
            self.s.gt = 1
            self.s.seeded = 1

    cdef void _point(self):
        k = self._keep
        self.A.lut, self.A.nlut = _ptr(k["lut"]), k["lut"].shape[0]
        self.A.prow, self.A.nrow = _ptr(k["prow"]), k["prow"].shape[0]
        cdef const uint8_t[::1] kind = k["kind"]
        self.A.kind, self.A.nkind = &kind[0] if kind.shape[0] else NULL, kind.shape[0]
        cdef const uint8_t[::1] flags = k["cls_flags"]
        self.A.cls_start, self.A.cls_flags, self.A.ncls = _ptr(k["cls_start"]), \
            &flags[0] if flags.shape[0] else NULL, flags.shape[0]
        self.A.x0, self.A.x1, self.A.nx = _ptr(k["x0"].ravel()), _ptr(k["x1"].ravel()), _ptr(k["nx"])
        self.A.kx = k["x0"].shape[1]
        self.A.y0, self.A.y1, self.A.ny = _ptr(k["y0"].ravel()), _ptr(k["y1"].ravel()), _ptr(k["ny"])
        self.A.ky = k["y0"].shape[1]
        self.A.xps, self.A.xpe, self.A.xcum, self.A.nxp = _ptr(k["xps"]), _ptr(k["xpe"]), _ptr(k["xcum"]), \
            k["xps"].shape[0]
        self.A.pps, self.A.ppe, self.A.pcum, self.A.npp = _ptr(k["pps"]), _ptr(k["ppe"]), _ptr(k["pcum"]), \
            k["pps"].shape[0]
        self.A.pend_t, self.A.pend_d, self.A.npend = _wptr(k["pend_t"]), _wptr(k["pend_d"]), k["pend_t"].shape[0]
        self.A.anc_t, self.A.anc_r, self.A.nanc = _wptr(k["anc_t"]), _wptr(k["anc_r"]), k["anc_t"].shape[0]
        self.A.grid_a, self.A.grid_b, self.A.ngrid = _wptr(k["grid_a"]), _wptr(k["grid_b"]), k["grid_a"].shape[0]
        self.A.us, self.A.vs = _wptr(k["us"]), _wptr(k["vs"])
        self.A.clicks, self.A.quiet, self.A.near = _wptr(k["clicks"]), _wptr(k["quiet"]), _wptr(k["near"])
        self.A.ctrl, self.A.mingap, self.A.apcl = _wptr(k["ctrl"]), _wptr(k["mingap"]), _wptr(k["apcl"])
        self.A.prev = _wptr(k["prev"])

    def feed(self, const int64_t[::1] time, const int32_t[::1] chan, bint final=False):
        """Count the tags of one chunk (in stream order after the previous ones); ``final``: the stream ends
        here (everything pending is counted)."""
        cdef int64_t n = time.shape[0]
        cdef int64_t i = 0
        if chan.shape[0] != n:
            raise ValueError("dark counter: time and channel arrays differ in length")
        cdef const int64_t *tp = &time[0] if n else NULL
        cdef const int32_t *cp = &chan[0] if n else NULL
        while True:
            with nogil:
                i = tt_dc_run(tp, cp, n, i, final, &self.s, &self.c, &self.A)
            if i >= n:
                return
            # a ring is full of what is still needed: double them all
            k = self._keep
            for name in ("pend_t", "pend_d", "anc_t", "anc_r", "grid_a", "grid_b", "us", "vs"):
                k[name] = np.concatenate([k[name], np.zeros_like(k[name])])
            self._point()

    def grid_value(self, int64_t x):
        """The grid's cumulative excluded time at ``x`` (differences only; 0 without anchors)."""
        return tt_dc_grid_value(x, &self.s, &self.A, self.c.lx)

    def first_segment_value(self, int64_t x, int64_t anchor):
        """The grid's cumulative excluded time at ``x`` in the segment of the first anchor (its base is 0)."""
        cdef int64_t j, t
        tt_dc_tick(x, anchor, self.A.period, &j, &t)
        return j * self.c.lx + tt_dc_part(x - t, self.A.xps, self.A.xpe, self.A.xcum, self.A.nxp)

    @property
    def first(self):
        return None if self.s.first == TT_DC_UNSET else self.s.first

    @property
    def last(self):
        return self.s.last

    @property
    def excluded(self):
        """Anchored excluded time measured so far (less its overlap with the grid)."""
        return self.s.excl

    @property
    def ring_sizes(self):
        return {name: self._keep[name].shape[0] for name in ("pend_t", "anc_t", "grid_a")}
