"""Dark-count and afterpulsing rates per detector.

Dark counts: clicks in the *quiet stretches* — everything outside the excluded
intervals around each sync (where heralding photons arrive) and each 'ready'
trigger (the read-out fluorescence) — divided by the quiet time.

With conditional sync recording (``sync_reference = 'next'``) a sync is
recorded only because of a click, so intervals anchored on the recorded syncs
alone would sit preferentially where dark clicks are (a dark click makes the
tagger keep the next sync tick) and the estimate would come out low.  With
``grid_channel`` the anchors of that channel are completed to the full attempt
grid: the recorded syncs lie on a grid of the attempt period, and every tick
(placed every period after the last recorded sync, and before the first) gets
the same excluded intervals, recorded or not.  The excluded time then no longer
depends on the clicks.  (Stretches without attempts — burst gaps, read-out
pauses — are excluded on the grid too: that costs quiet time, not accuracy;
telling them apart from attempts without clicks would again depend on the
clicks.)  The ticks are never listed (at 52 kHz they would outnumber the
tags): the grid's intervals fold into a set of phases within one period
(:class:`_Grid`).

Afterpulsing: for each eligible click, the number of later clicks on the same
detector within ``[near_ps[0], near_ps[1])`` minus those in an equally long
control interval right after it; divided by the number of eligible clicks.  A
click is eligible when neither it nor its near + control span touches a pulse
region (``afterpulse_exclude``): two photons of one attempt would look like an
afterpulse, and an afterpulse hidden in a pulse region would be lost (pulse
regions near a click are not symmetric between the near and control
intervals).  The control subtracts bunching that is flat on the microsecond
scale (read-out windows of milliseconds).  Uncorrelated partners cannot fall
within the dead time after a click: the control is scaled down by the part of
the near interval that lies inside the dead time (taken as the shortest
same-detector gap seen), so a near interval starting at 0 catches the
afterpulses right after the dead time without bias.  The dark-count exclusion
around each sync should extend a few afterpulse times beyond the pulse, or
the pulse photons' afterpulses count as dark.

``afterpulse_prob`` is the excess per click; a fraction of those clicks are
afterpulses themselves, so per *primary* click (``afterpulse_primary``, what
the simulator's ``afterpulse_prob`` means: its afterpulses do not afterpulse)
it is ``p / (1 - p)``.  ``dark_rate_hz`` removes the dark clicks' own
afterpulses from the quiet-click rate: ``rate * (1 - p)``, exact whether or not
afterpulses afterpulse again.

Both are streaming and independent of chunk boundaries: tags are finalised only once
no later tag can change their classification.  :class:`DarkCounter` is a stream
processor (``handle``/``flush``, see :mod:`timetag.stream`) that forwards nothing: it
is an end of a calibration chain.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from timetag.chunk import TagChunk
from timetag.errors import CalibrationError

from .histograms import Background

GRID_LEARN_SYNCS = 400      # recorded syncs that fix the attempt period before anything is classified
_E = np.zeros(0, np.int64)


@dataclass(frozen=True)
class DarkCountResult:
    channels: tuple[int, ...]
    rate_hz: np.ndarray           # quiet-click rate per channel (dark counts and their afterpulses)
    rate_err_hz: np.ndarray       # Poisson 1-sigma
    quiet_s: float                # quiet time used
    quiet_clicks: np.ndarray
    afterpulse_prob: np.ndarray   # afterpulses per click in the near interval (eligible clicks)
    afterpulse_err: np.ndarray
    clicks: np.ndarray            # all clicks per channel
    dark_rate_hz: np.ndarray | None = None      # rate_hz without the dark clicks' afterpulses
    dark_rate_err_hz: np.ndarray | None = None
    afterpulse_primary: np.ndarray | None = None  # afterpulses per click that is no afterpulse itself
    afterpulse_primary_err: np.ndarray | None = None
    period_ps: float | None = None              # attempt period of the grid (grid mode)
    dead_time_ps: np.ndarray | None = None      # shortest same-detector gap seen (-1: none)
    afterpulse_clicks: np.ndarray | None = None # clicks eligible for the afterpulse count


def _union(starts, stops):
    """Merge intervals (any order) into sorted disjoint ones."""
    if starts.size == 0:
        return starts, stops
    o = np.argsort(starts, kind="stable")
    s, e = starts[o], stops[o]
    run_end = np.maximum.accumulate(e)
    new = np.ones(s.size, dtype=bool)
    new[1:] = s[1:] > run_end[:-1]
    idx = np.flatnonzero(new)
    ends = np.maximum.reduceat(e, idx)
    return s[idx], ends


def estimate_period(sync_times) -> float:
    """Attempt period from recorded sync times that lie on a grid (gaps are whole multiples of it).

    The largest ``min_gap / k`` of which (nearly) every gap is a multiple, refined over all gaps; robust
    to never seeing two consecutive ticks recorded (gaps 3T and 5T give T).
    """
    t = np.unique(np.asarray(sync_times, np.int64))
    d = np.diff(t).astype(np.float64)
    if d.size == 0:
        raise CalibrationError("attempt grid: need at least two recorded syncs to find the attempt period")
    dmin = d.min()
    for k in range(1, 65):
        T = dmin / k
        n = np.rint(d / T)
        tol = max(2_000.0, 1e-3 * T)
        if np.mean(np.abs(d - n * T) <= tol + 1e-6 * d) >= 0.99:
            return float(d.sum() / n.sum())
    raise CalibrationError(f"attempt grid: the {t.size} recorded syncs lie on no common grid (smallest gap "
                           f"{dmin:.0f} ps)")


def _grid_ticks(anchors, lo, hi, T, before):
    """Every attempt tick in [lo, hi) as :class:`_Grid` places them (for tests and plots; the counter
    itself never lists the ticks: at 52 kHz they outnumber the tags by far)."""
    g = _Grid(np.zeros(0), np.zeros(0), T)
    a = g.anchors_with(anchors, before)
    if a.size == 0:
        return a
    k = g.seg(np.array([lo, hi - 1], np.int64))
    out = []
    for m in range(int(k[0]), int(k[1]) + 1):
        a0 = int(a[m])
        x0 = lo if m == k[0] else a0
        x1 = hi if m == k[1] else min(hi, int(a[m + 1] - T / 2))   # the next anchor is the tick there
        j0 = int(np.floor((x0 - a0) / T)) - 1
        j1 = int(np.floor((x1 - a0) / T)) + 1
        tk = a0 + np.rint(np.arange(j0, j1 + 1) * T).astype(np.int64)
        out.append(tk[(tk >= x0) & (tk < x1)])
    return np.concatenate(out)


# --- the grid's arithmetic, compiled (one call per chunk over all its tags: at 52 kHz, numpy temporaries per
# operation cost more than the rest of calibration together) -------------------------------------------------

@njit(cache=True, nogil=True, inline="always")
def _nb_tick(xv, a, k, T):
    """Index j and time of the latest tick at or before xv in segment k (anchor a[k])."""
    j = np.int64(np.floor((xv - a[k]) / T))
    tick = a[k] + np.int64(np.rint(j * T))
    if tick > xv:
        j -= 1
        tick = a[k] + np.int64(np.rint(j * T))
    return j, tick


@njit(cache=True, nogil=True, inline="always")
def _nb_seg(a, xv, k):
    """Segment of xv (latest anchor at or before it, >= 0); ``k``: the previous answer (sorted x walk on)."""
    if k >= 0 and a[k] <= xv:
        while k + 1 < a.size and a[k + 1] <= xv:
            k += 1
        return k
    lo, hi = 0, a.size
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] <= xv:
            lo = mid + 1
        else:
            hi = mid
    return max(lo - 1, 0)


@njit(cache=True, nogil=True, inline="always")
def _nb_part(ph, ps, pe, cum):
    k = -1
    for i in range(ps.size):
        if ps[i] <= ph:
            k = i
        else:
            break
    if k < 0:
        return np.int64(0)
    return cum[k] + min(ph - ps[k], pe[k] - ps[k])


@njit(cache=True, nogil=True)
def _nb_base(a, T, ps, pe, cum, L):
    base = np.zeros(a.size, np.int64)
    for m in range(1, a.size):
        j, tick = _nb_tick(a[m], a, m - 1, T)
        base[m] = base[m - 1] + j * L + _nb_part(a[m] - tick, ps, pe, cum)
    return base


@njit(cache=True, nogil=True)
def _nb_G(x, a, T, ps, pe, cum, L, base):
    out = np.empty(x.size, np.int64)
    k = -1
    for i in range(x.size):
        k = _nb_seg(a, x[i], k)
        j, tick = _nb_tick(x[i], a, k, T)
        out[i] = base[k] + j * L + _nb_part(x[i] - tick, ps, pe, cum)
    return out


@njit(cache=True, nogil=True)
def _nb_inside(x, a, T, ps, pe):
    out = np.zeros(x.size, np.bool_)
    k = -1
    for i in range(x.size):
        k = _nb_seg(a, x[i], k)
        _, tick = _nb_tick(x[i], a, k, T)
        ph = x[i] - tick
        for m in range(ps.size):
            if ps[m] > ph:
                break
            if ph < pe[m]:
                out[i] = True
                break
    return out


class _Grid:
    """Excluded intervals around every attempt tick, as a set of phases within the period.

    Ticks lie at ``a + rint(j T)`` after the latest recorded sync ``a`` (before the first one: backwards
    from it); a time's phase is its distance from the latest tick at or before it.  ``offsets`` (relative
    to a tick, any sign, any length) fold into the sorted disjoint phase intervals ``ps, pe`` of
    [0, floor(T)); the excluded time in [x, y) is ``G(y) - G(x)`` with the cumulative ``G``.
    """

    def __init__(self, ps, pe, T):
        self.T = float(T)
        self.ps, self.pe = np.asarray(ps, np.int64), np.asarray(pe, np.int64)
        self.cum = np.concatenate([[0], np.cumsum(self.pe - self.ps)]).astype(np.int64)
        self.L = int(self.cum[-1])
        self.a = np.zeros(0, np.int64)
        self._base = None

    @classmethod
    def from_offsets(cls, offsets, T):
        Ti = int(np.floor(T))
        st, sp = [], []
        for a, b in offsets:
            # every period m whose shifted copy [a + m T, b + m T) meets [0, T): -b/T < m < 1 - a/T
            for m in range(int(np.floor(-b / T)) - 1, int(np.ceil(-a / T)) + 2):
                s, e = max(a + m * T, 0.0), min(b + m * T, Ti)
                if e > s:
                    st.append(int(np.floor(s)))
                    sp.append(int(np.ceil(e)))
        s, e = _union(np.array(st, np.int64), np.array(sp, np.int64))
        return cls(s, np.minimum(e, Ti), T)

    def anchors_with(self, anchors, before):
        a = np.asarray(anchors, np.int64)
        self.a = np.ascontiguousarray(a if before is None else np.concatenate([[before], a]).astype(np.int64))
        self._base = None
        return self.a

    def seg(self, x):
        return np.maximum(np.searchsorted(self.a, x, "right") - 1, 0)

    def _tick(self, x, k=None):
        """(segment, index j of the latest tick at or before x in it, that tick); segment k if given."""
        k = self.seg(x) if k is None else k
        a = self.a[k]
        j = np.floor((x - a) / self.T).astype(np.int64)
        tick = a + np.rint(j * self.T).astype(np.int64)
        over = tick > x
        j = j - over
        tick = np.where(over, a + np.rint(j * self.T).astype(np.int64), tick)
        return k, j, tick

    def _part(self, phase):
        if self.ps.size == 0:
            return np.zeros(phase.shape, np.int64)
        k = np.searchsorted(self.ps, phase, "right") - 1
        kk = np.clip(k, 0, self.ps.size - 1)
        inside = np.minimum(phase - self.ps[kk], self.pe[kk] - self.ps[kk])
        return np.where(k >= 0, self.cum[kk] + inside, 0)

    def inside(self, x):
        x = np.ascontiguousarray(x, np.int64)
        if self.a.size == 0 or self.ps.size == 0:
            return np.zeros(x.shape, bool)
        return _nb_inside(x, self.a, self.T, self.ps, self.pe)

    def G(self, x):
        """Excluded time from an arbitrary origin to x (differences only)."""
        x = np.ascontiguousarray(x, np.int64)
        if self.a.size == 0 or self.L == 0:
            return np.zeros(x.shape, np.int64)
        # each segment's own count from its anchor; chained at the anchors (with an exact grid the anchor
        # is a tick of the previous segment too, and the chaining is seamless)
        if self._base is None:
            self._base = _nb_base(self.a, self.T, self.ps, self.pe, self.cum, self.L)
        return _nb_G(x, self.a, self.T, self.ps, self.pe, self.cum, self.L, self._base)

    def measure(self, s, e):
        """Excluded time within each [s, e)."""
        return np.maximum(self.G(e) - self.G(s), 0) if np.size(s) else np.zeros(0, np.int64)


# --- the streaming counter: one compiled pass per chunk, state of a few microseconds of tags ------------------
#
# Every quantity is a function of the whole stream, computed as the tags go by:
#
# * a click is *final* once a tag more than ``R = span + lookahead`` later has arrived: every anchor whose
#   interval can reach [t, t + span), every grid anchor up to t + span and every afterpulse partner is known
#   then.  Until then it waits in the pending queue (the partners of a final click are the pending ones).
# * the quiet time is the whole span minus the excluded set's measure: the grid's part is G(end) - G(first);
#   the anchored intervals are swept up to ``tau + min(o0, 0)`` as each anchor arrives (no later anchor can
#   start an interval before that), each merged piece counting less its overlap with the grid.
# * rings keep only what pending clicks and the sweep can still ask for: anchored tags whose intervals can
#   reach them and grid anchors from the latest one at or before them.
#
# Indices into the int64 state array ``st``:
_PH, _PT, _GH, _GT, _AH, _AT, _S, _FIRST, _LAST, _EXCL, _SEEDED, _NST = range(12)
# ... and into the int64 configuration ``cfg``:
_C_GCH, _C_T0, _C_T1, _C_SPAN, _C_R, _C_O0, _C_O1, _C_LX, _C_LP, _NCFG = range(10)
_UNSET = np.iinfo(np.int64).min   # st[_FIRST] before the first tag
_TMAX = np.iinfo(np.int64).max    # 'time' of the end of the stream


@njit(cache=True, nogil=True, inline="always")
def _tick1(x, a, T):
    """Index and time of the latest tick at or before x of the segment anchored at a (as :func:`_nb_tick`)."""
    Ti = np.int64(T)
    if Ti == T:
        # a whole period (the usual case): the same tick in integers, by a multiplication instead of a division
        j = np.int64(np.floor((x - a) * (1.0 / T)))
        tick = a + j * Ti
        if tick > x:
            j -= 1
            tick -= Ti
        elif tick + Ti <= x:
            j += 1
            tick += Ti
        return j, tick
    j = np.int64(np.floor((x - a) / T))
    tick = a + np.int64(np.rint(j * T))
    if tick > x:
        j -= 1
        tick = a + np.int64(np.rint(j * T))
    return j, tick


@njit(cache=True, nogil=True, inline="always")
def _in_phase(ph, ps, pe):
    for m in range(ps.size):
        if ps[m] > ph:
            return False
        if ph < pe[m]:
            return True
    return False


@njit(cache=True, nogil=True, inline="always")
def _gseg(ga, h, tl, x):
    """Latest ring slot in [h, tl) whose anchor is at or before x (else h: ticks backwards from it)."""
    q = tl - 1
    while q > h and ga[q] > x:
        q -= 1
    return q


@njit(cache=True, nogil=True, inline="always")
def _gval(x, q, ga, gb, T, ps, pe, cum, L):
    j, tick = _tick1(x, ga[q], T)
    return gb[q] + j * L + _nb_part(x - tick, ps, pe, cum)


@njit(cache=True, nogil=True)
def _dc_sweep(P, S, ah, atl, gh, gt, cfg, at, ac, x0, x1, nx, ga, gbx, T, xps, xpe, xcum, us, vs):
    """Measure of the anchored exclusions in [S, P) (all known) less their overlap with the grid."""
    n = 0
    for q in range(ah, atl):
        a = at[q]
        r = ac[q]
        for m in range(nx[r]):
            s = max(a + x0[r, m], S)
            e = min(a + x1[r, m], P)
            if e > s:
                # insertion sort by start (nearly sorted already: the anchors come in time order)
                k = n
                while k > 0 and us[k - 1] > s:
                    us[k] = us[k - 1]
                    vs[k] = vs[k - 1]
                    k -= 1
                us[k] = s
                vs[k] = e
                n += 1
    excl = np.int64(0)
    if n:
        grid = cfg[_C_GCH] >= 0 and gt > gh
        L = cfg[_C_LX]
        u, v = us[0], vs[0]
        for k in range(1, n + 1):
            if k < n and us[k] <= v:
                if vs[k] > v:
                    v = vs[k]
                continue
            excl += v - u
            if grid:
                qv = _gseg(ga, gh, gt, v)
                qu = _gseg(ga, gh, qv + 1, u)
                excl -= _gval(v, qv, ga, gbx, T, xps, xpe, xcum, L) - _gval(u, qu, ga, gbx, T, xps, xpe, xcum, L)
            if k < n:
                u, v = us[k], vs[k]
    return excl


_SWEEP_RING = 32    # anchored + grid anchors held before the sweep catches up (and lets them go)


@njit(cache=True, nogil=True)
def _dc_run(time, chan, i, final, lut, prow, cfg, st, pt, pd, at, ac, x0, x1, nx, y0, y1, ny, ga, gbx, T,
            xps, xpe, xcum, pps, ppe, pcum, us, vs, clicks, quiet, near, ctrl, mingap, apcl, prev):
    """Feed tags i.. of a chunk; returns the index reached (``time.size``: all) -- less when a ring is full
    (the caller grows it and calls again from there).  ``final``: then finalise everything pending.

    One function body on purpose: numba's inlining of helpers that take many arrays costs reference
    counting per call, more than the work itself; the state lives in locals while the loop runs."""
    gch = cfg[_C_GCH]
    R = cfg[_C_R]
    o0 = cfg[_C_O0]
    o1 = cfg[_C_O1]
    span = cfg[_C_SPAN]
    t0, t1 = cfg[_C_T0], cfg[_C_T1]
    LX, LP = cfg[_C_LX], cfg[_C_LP]
    np_, ng, na = pt.size, ga.size, at.size
    nlut, nrow = lut.size, prow.size
    ph, ptl, gh, gt, ah, atl = st[_PH], st[_PT], st[_GH], st[_GT], st[_AH], st[_AT]
    S, first, last, excl, seeded = st[_S], st[_FIRST], st[_LAST], st[_EXCL], st[_SEEDED]
    grid_on = gch >= 0
    n = time.size
    while True:
        if i < n:
            tau = time[i]
        elif final:
            tau = _TMAX
        else:
            break
        # --- clicks whose futures are complete (all of them at the end) -------------------------------------
        while ph < ptl and (tau == _TMAX or pt[ph] + R < tau):
            t = pt[ph]
            d = pd[ph]
            te = t + span
            inx = False
            clear = True
            for q in range(ah, atl):
                a = at[q]
                r = ac[q]
                for m in range(nx[r]):
                    if a + x0[r, m] <= t < a + x1[r, m]:
                        inx = True
                for m in range(ny[r]):
                    if a + y0[r, m] < te and a + y1[r, m] > t:
                        clear = False
            if grid_on and gt > gh:
                q = _gseg(ga, gh, gt, t)
                j, tick = _tick1(t, ga[q], T)
                phs = t - tick
                if _in_phase(phs, xps, xpe):
                    inx = True
                if clear:
                    if _in_phase(phs, pps, ppe):
                        clear = False
                    else:
                        # pulse-region time in [t, te), counted from anchor q: its segment, then (rarely)
                        # the segments of the anchors up to te
                        g0 = j * LP + _nb_part(phs, pps, ppe, pcum)
                        q2 = q
                        gq = np.int64(0)
                        while q2 + 1 < gt and ga[q2 + 1] <= te:
                            q2 += 1
                            jm, tm = _tick1(ga[q2], ga[q2 - 1], T)
                            gq += jm * LP + _nb_part(ga[q2] - tm, pps, ppe, pcum)
                        j2, tick2 = _tick1(te, ga[q2], T)
                        if gq + j2 * LP + _nb_part(te - tick2, pps, ppe, pcum) - g0 > 0:
                            clear = False
            if not inx:
                quiet[d] += 1
            if clear:
                apcl[d] += 1
                for k in range(ph + 1, ptl):
                    dt = pt[k] - t
                    if dt >= span:
                        break
                    if pd[k] == d:
                        if dt >= t1:
                            ctrl[d] += 1
                        elif dt >= t0:
                            near[d] += 1
            ph += 1
        if i >= n:
            if first != _UNSET and last + 1 > S:
                excl += _dc_sweep(last + 1, S, ah, atl, gh, gt, cfg, at, ac, x0, x1, nx, ga, gbx, T, xps, xpe,
                                  xcum, us, vs)
                S = last + 1
            break
        # --- the tag itself -----------------------------------------------------------------------------------
        c = chan[i]
        d = lut[c] if 0 <= c < nlut else -1
        r = prow[c] if 0 <= c < nrow else -1
        is_g = c == gch
        if d >= 0 or is_g or r >= 0:
            # room (compacting the rings first; when one is full of what is still needed the caller grows them)
            if d >= 0 and ptl == np_:
                if ph == 0:
                    break
                for k in range(ptl - ph):
                    pt[k] = pt[ph + k]
                    pd[k] = pd[ph + k]
                ptl -= ph
                ph = 0
            if is_g and gt == ng:
                if gh == 0:
                    break
                for k in range(gt - gh):
                    ga[k] = ga[gh + k]
                    gbx[k] = gbx[gh + k]
                gt -= gh
                gh = 0
            if r >= 0 and atl == na:
                if ah == 0:
                    break
                for k in range(atl - ah):
                    at[k] = at[ah + k]
                    ac[k] = ac[ah + k]
                atl -= ah
                ah = 0
        if first == _UNSET:
            first = tau
            S = tau
        last = tau
        if is_g or r >= 0:
            # anchored intervals before tau + min(o0, 0) are all known: sweep them (when the rings fill up; at
            # once when there are none), then drop what no pending click nor the sweep can ask for any more
            P = tau + o0
            if P > S:
                if atl == ah:
                    S = P
                elif atl - ah + gt - gh >= _SWEEP_RING:
                    excl += _dc_sweep(P, S, ah, atl, gh, gt, cfg, at, ac, x0, x1, nx, ga, gbx, T, xps, xpe, xcum,
                                      us, vs)
                    S = P
            low = S
            if ph < ptl and pt[ph] < low:
                low = pt[ph]
            while ah < atl and at[ah] + o1 <= low:
                ah += 1
            while gh + 1 < gt and ga[gh + 1] <= low:
                gh += 1
            if is_g:
                if seeded:
                    seeded = 0          # the first grid anchor, placed before the stream reached it
                else:
                    if gt > gh:
                        j, tick = _tick1(tau, ga[gt - 1], T)
                        gbx[gt] = gbx[gt - 1] + j * LX + _nb_part(tau - tick, xps, xpe, xcum)
                    else:
                        gbx[gt] = 0
                    ga[gt] = tau
                    gt += 1
            if r >= 0:
                at[atl] = tau
                ac[atl] = r
                atl += 1
        if d >= 0:
            clicks[d] += 1
            if prev[d] != _UNSET and tau - prev[d] < mingap[d]:
                mingap[d] = tau - prev[d]
            prev[d] = tau
            pt[ptl] = tau
            pd[ptl] = d
            ptl += 1
        i += 1
    st[_PH], st[_PT], st[_GH], st[_GT], st[_AH], st[_AT] = ph, ptl, gh, gt, ah, atl
    st[_S], st[_FIRST], st[_LAST], st[_EXCL], st[_SEEDED] = S, first, last, excl, seeded
    return i


@njit(cache=True, nogil=True)
def _dc_gval(x, st, ga, gb, T, ps, pe, cum, L):
    """G(x) of the grid in the ring (0 without anchors)."""
    h, tl = st[_GH], st[_GT]
    if tl <= h:
        return np.int64(0)
    return _gval(x, _gseg(ga, h, tl, x), ga, gb, T, ps, pe, cum, L)


@njit(cache=True, nogil=True)
def _gval_first(x, a0, T, ps, pe, cum, L):
    """G(x) in the first anchor's segment (its base is 0)."""
    j, tick = _tick1(x, a0, T)
    return j * L + _nb_part(x - tick, ps, pe, cum)


def _table(table, rows):
    """Offsets of the anchored channels as [row, k] arrays (rows: channel -> row)."""
    k = max([len(table.get(c, ())) for c in rows] + [1])
    lo = np.zeros((max(len(rows), 1), k), np.int64)
    hi = np.zeros_like(lo)
    n = np.zeros(max(len(rows), 1), np.int64)
    for c, r in rows.items():
        offs = [(a, b) for a, b in table.get(c, ()) if b > a]      # an empty interval excludes nothing
        n[r] = len(offs)
        for m, (a, b) in enumerate(offs):
            lo[r, m], hi[r, m] = a, b
    return lo, hi, n


class DarkCounter:
    """Streaming dark-count and afterpulse counter.

    ``exclude`` maps an anchor channel to a list of ``(start_ps, stop_ps)`` offsets of excluded
    intervals around each of its tags (raw times; offsets may be negative).  ``grid_channel``: that
    anchor channel's tags are completed to the full attempt grid (see the module doc), with the attempt
    period ``period_ps`` or, if None, :func:`estimate_period` of its first ``GRID_LEARN_SYNCS`` tags.

    One compiled pass per chunk; what it keeps between chunks is a few microseconds of tags (the clicks
    still waiting for their afterpulse partners, the anchors whose intervals can reach them), except while
    the grid is learnt: the tags up to the ``GRID_LEARN_SYNCS``-th sync (or the first, with ``period_ps``)
    are held and then replayed.
    """

    _CAP = 256

    def __init__(self, channels, exclude: dict[int, list[tuple[int, int]]], *,
                 afterpulse_ps: tuple[int, int] = (0, 2_000_000),
                 afterpulse_exclude: dict[int, list[tuple[int, int]]] | None = None,
                 grid_channel: int | None = None, period_ps: float | None = None, threaded: bool | None = None):
        self.channels = tuple(int(c) for c in channels)
        self.exclude = {int(k): [(int(a), int(b)) for a, b in v] for k, v in exclude.items()}
        self.ap_exclude = {int(k): [(int(a), int(b)) for a, b in v] for k, v in (afterpulse_exclude or {}).items()}
        self.ap = (int(afterpulse_ps[0]), int(afterpulse_ps[1]))
        self.grid = None if grid_channel is None else int(grid_channel)
        self.period = None if period_ps is None else float(period_ps)
        self.lut = np.full(max(self.channels + (0,)) + 1, -1, dtype=np.int64)
        for k, c in enumerate(self.channels):
            self.lut[c] = k
        self.ap_span = 2 * self.ap[1] - self.ap[0]
        nd = len(self.channels)
        self.quiet_clicks = np.zeros(nd, np.int64)
        self.clicks = np.zeros(nd, np.int64)
        self.near = np.zeros(nd, np.int64)
        self.ctrl = np.zeros(nd, np.int64)
        self.min_gap = np.full(nd, np.iinfo(np.int64).max, np.int64)
        self.ap_clicks = np.zeros(nd, np.int64)   # clicks that take part in the afterpulse count
        self.quiet_ps = 0
        self._held: list[TagChunk] = []           # tags held while the grid is learnt
        self._n_grid = 0
        self._k = None                            # the kernel's arrays, once it runs
        self._done = False
        self._bg = Background(self._process, threaded)

    # --- set-up -------------------------------------------------------------------------------------------
    def _start(self, first_anchor: int | None) -> None:
        grid_on = self.grid is not None and self.period is not None
        # anchored (non-grid) channels: the grid channel too when no period could be found
        chans = sorted(c for c in set(self.exclude) | set(self.ap_exclude) if not (grid_on and c == self.grid))
        rows = {c: r for r, c in enumerate(chans)}
        prow = np.full(max(chans + [0]) + 1, -1, np.int64)
        for c, r in rows.items():
            prow[c] = r
        x0, x1, nx = _table(self.exclude, rows)
        y0, y1, ny = _table(self.ap_exclude, rows)
        used = [(x0[r, m], x1[r, m]) for r in range(len(chans)) for m in range(nx[r])]
        used_ap = [(y0[r, m], y1[r, m]) for r in range(len(chans)) for m in range(ny[r])]
        o0 = min([0] + [int(a) for a, _ in used])                          # sweep lag behind the stream
        lookahead = max([0] + [-int(a) for a, _ in used + used_ap])
        o1 = max([0] + [int(b) for _, b in used + used_ap])
        T = float(self.period) if grid_on else 1.0
        gx = _Grid.from_offsets(self.exclude.get(self.grid, []), T) if grid_on else _Grid(_E, _E, 1.0)
        gp = _Grid.from_offsets(self.ap_exclude.get(self.grid, []), T) if grid_on else _Grid(_E, _E, 1.0)
        cfg = np.zeros(_NCFG, np.int64)
        cfg[_C_GCH] = self.grid if grid_on else -1
        cfg[_C_T0], cfg[_C_T1], cfg[_C_SPAN] = self.ap[0], self.ap[1], self.ap_span
        cfg[_C_R] = max(self.ap_span, 0) + lookahead
        cfg[_C_O0], cfg[_C_O1], cfg[_C_LX], cfg[_C_LP] = o0, o1, gx.L, gp.L
        st = np.zeros(_NST, np.int64)
        st[_FIRST] = _UNSET
        cap = self._CAP
        k = dict(lut=self.lut, prow=prow, cfg=cfg, st=st,
                 pt=np.zeros(cap, np.int64), pd=np.zeros(cap, np.int64),
                 at=np.zeros(cap, np.int64), ac=np.zeros(cap, np.int64), x0=x0, x1=x1, nx=nx, y0=y0, y1=y1, ny=ny,
                 ga=np.zeros(cap, np.int64), gbx=np.zeros(cap, np.int64), T=T,
                 xps=gx.ps, xpe=gx.pe, xcum=gx.cum, pps=gp.ps, ppe=gp.pe, pcum=gp.cum,
                 us=np.zeros(cap * x0.shape[1], np.int64), vs=np.zeros(cap * x0.shape[1], np.int64),
                 clicks=self.clicks, quiet=self.quiet_clicks, near=self.near, ctrl=self.ctrl, mingap=self.min_gap,
                 apcl=self.ap_clicks, prev=np.full(len(self.channels), _UNSET, np.int64))
        if grid_on and first_anchor is not None:
            # ticks before the first recorded sync are placed backwards from it: it is in the ring before the
            # stream reaches it (and skipped there)
            k["ga"][0] = first_anchor
            st[_GT] = 1
            st[_SEEDED] = 1
        self._k = k
        self._gx, self._first_anchor = gx, first_anchor

    def _feed(self, time, chan, final=False) -> None:
        k = self._k
        i = 0
        while True:
            i = _dc_run(time, chan, i, final, k["lut"], k["prow"], k["cfg"], k["st"], k["pt"], k["pd"], k["at"],
                        k["ac"], k["x0"], k["x1"], k["nx"], k["y0"], k["y1"], k["ny"], k["ga"], k["gbx"],
                        k["T"], k["xps"], k["xpe"], k["xcum"], k["pps"], k["ppe"], k["pcum"], k["us"], k["vs"],
                        k["clicks"], k["quiet"], k["near"], k["ctrl"], k["mingap"], k["apcl"], k["prev"])
            if i >= time.size:
                return
            # a ring is full of what is still needed: double them all
            for name in ("pt", "pd", "at", "ac", "ga", "gbx", "us", "vs"):
                k[name] = np.concatenate([k[name], np.zeros_like(k[name])])

    # --- the stream ---------------------------------------------------------------------------------------
    def handle(self, event) -> None:
        if isinstance(event, TagChunk):
            self.process(event)

    def process(self, chunk: TagChunk, final: bool = False) -> None:
        """Count ``chunk`` (in the background: see :class:`~calibrate.histograms.Background`)."""
        self._bg.submit(chunk, final)
        if final:
            self._bg.close()

    def _process(self, chunk: TagChunk, final: bool) -> None:
        if self._done:
            if len(chunk):
                raise RuntimeError("dark counter: tags after the end of the stream")
            return
        if self._k is not None:
            self._feed(chunk.time, chunk.channel, final)
        else:
            if len(chunk):
                self._held.append(chunk)
                if self.grid is not None:
                    self._n_grid += int(np.count_nonzero(chunk.channel == self.grid))
            ready = self.grid is None or (self._n_grid >= (1 if self.period is not None else GRID_LEARN_SYNCS))
            if not (ready or final):
                return
            held, self._held = self._held, []
            t = np.concatenate([c.time for c in held]) if held else _E
            ch = np.concatenate([c.channel for c in held]) if held else np.zeros(0, np.int32)
            first_anchor = None
            if self.grid is not None:
                anchors = t[ch == self.grid]
                if self.period is None and anchors.size >= 2:
                    # fixed from a fixed number of syncs (or all at the end): chunking cannot change it
                    self.period = estimate_period(anchors[:GRID_LEARN_SYNCS])
                first_anchor = int(anchors[0]) if anchors.size else None
            self._start(first_anchor)
            self._feed(t, ch, final)
        if final:
            self._done = True
            self._finish()

    def _finish(self) -> None:
        k = self._k
        st = k["st"]
        if st[_FIRST] == _UNSET:
            return
        first, last = int(st[_FIRST]), int(st[_LAST])
        excl = int(st[_EXCL])
        if k["cfg"][_C_GCH] >= 0 and self._first_anchor is not None:
            # the grid's excluded time from the first tag (before the first anchor: backwards from it) to the end
            g0 = _gval_first(first, self._first_anchor, k["T"], k["xps"], k["xpe"], k["xcum"], int(self._gx.L))
            g1 = _dc_gval(last + 1, st, k["ga"], k["gbx"], k["T"], k["xps"], k["xpe"], k["xcum"], int(self._gx.L))
            excl += int(g1 - g0)
        self.quiet_ps = (last + 1 - first) - excl

    def flush(self) -> None:
        # pairs of the last tags have no full control interval: counting both halves only where present
        self.process(TagChunk(np.zeros(0, np.int64), np.zeros(0, np.int32)), final=True)

    def result(self) -> DarkCountResult:
        self._bg.wait()
        q_s = self.quiet_ps * 1e-12
        rate = self.quiet_clicks / q_s if q_s > 0 else np.full(len(self.channels), np.nan)
        err = np.sqrt(self.quiet_clicks) / q_s if q_s > 0 else np.full(len(self.channels), np.nan)
        n = np.maximum(self.ap_clicks, 1)
        # uncorrelated partners are missing from the part of the near interval inside the dead time
        seen = self.min_gap < np.iinfo(np.int64).max
        dead = np.where(seen, self.min_gap, 0)
        width = self.ap[1] - self.ap[0]
        scale = 1.0 - np.clip(dead - self.ap[0], 0, width) / width
        ap = (self.near - scale * self.ctrl) / n
        ap_err = np.sqrt(self.near + scale ** 2 * self.ctrl) / n
        # a fraction ap of the quiet clicks are afterpulses (whether or not afterpulses afterpulse again)
        dark = rate * (1.0 - ap)
        dark_err = np.sqrt((err * (1.0 - ap)) ** 2 + (rate * ap_err) ** 2)
        prim = ap / (1.0 - ap)
        prim_err = ap_err / (1.0 - ap) ** 2
        return DarkCountResult(self.channels, rate, err, q_s, self.quiet_clicks.copy(), ap, ap_err,
                               self.clicks.copy(), dark, dark_err, prim, prim_err, self.period,
                               np.where(seen, self.min_gap, -1), self.ap_clicks.copy())
