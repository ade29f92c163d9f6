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

GRID_LEARN_SYNCS = 400      # recorded syncs that fix the attempt period before anything is classified


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


@njit(cache=True, nogil=True)
def _pairs(time, det, ok, n_final, t0, t1, out_near, out_ctrl, out_min):
    """For the first n_final tags with ``ok``: same-detector later tags in [t0, t1) and the control
    [t1, 2 t1 - t0); ``out_min``: the shortest such gap per detector."""
    t2 = 2 * t1 - t0
    for i in range(n_final):
        d = det[i]
        if d < 0 or not ok[i]:
            continue
        ti = time[i]
        j = i + 1
        while j < time.size and time[j] - ti < t2:
            if det[j] == d:
                dt = time[j] - ti
                if dt < out_min[d]:
                    out_min[d] = dt
                if dt >= t1:
                    out_ctrl[d] += 1
                elif dt >= t0:
                    out_near[d] += 1
            j += 1


def _inside(tt, s, e):
    if s.size == 0:
        return np.zeros(tt.size, bool)
    k = np.searchsorted(s, tt, "right") - 1
    return (k >= 0) & (tt < e[np.clip(k, 0, e.size - 1)])


def _span_clear(tt, span, s, e):
    """No interval of the sorted disjoint (s, e) meets [tt, tt + span)."""
    if s.size == 0:
        return np.ones(tt.size, bool)
    k = np.searchsorted(e, tt, "right")          # first interval ending after tt
    return (k >= e.size) | (s[np.clip(k, 0, s.size - 1)] >= tt + span)


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
            for m in range(int(np.floor(a / T)) - 1, int(np.ceil(b / T)) + 2):
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


class DarkCounter:
    """Streaming dark-count and afterpulse counter.

    ``exclude`` maps an anchor channel to a list of ``(start_ps, stop_ps)`` offsets of excluded
    intervals around each of its tags (raw times; offsets may be negative).  ``grid_channel``: that
    anchor channel's tags are completed to the full attempt grid (see the module doc), with the attempt
    period ``period_ps`` or, if None, :func:`estimate_period` of its first ``GRID_LEARN_SYNCS`` tags.
    """

    def __init__(self, channels, exclude: dict[int, list[tuple[int, int]]], *,
                 afterpulse_ps: tuple[int, int] = (0, 2_000_000),
                 afterpulse_exclude: dict[int, list[tuple[int, int]]] | None = None,
                 grid_channel: int | None = None, period_ps: float | None = None):
        self.channels = tuple(int(c) for c in channels)
        self.exclude = {int(k): [(int(a), int(b)) for a, b in v] for k, v in exclude.items()}
        self.ap_exclude = {int(k): [(int(a), int(b)) for a, b in v] for k, v in (afterpulse_exclude or {}).items()}
        self.ap = (int(afterpulse_ps[0]), int(afterpulse_ps[1]))
        self.grid = None if grid_channel is None else int(grid_channel)
        self.period = None if period_ps is None else float(period_ps)
        lut_size = max(list(self.channels) + list(self.exclude) + [0]) + 1
        self.lut = np.full(lut_size, -1, dtype=np.int64)
        for k, c in enumerate(self.channels):
            self.lut[c] = k
        allx = list(self.exclude.values()) + list(self.ap_exclude.values())
        neg = [max(0, -a) for v in allx for a, _ in v]
        pos = [max(0, b) for v in allx for _, b in v]
        self.lookahead = max(neg + [0])          # a later anchor can exclude this far back
        self.lookback = max(pos + [0])           # an earlier anchor excludes this far forward
        self.ap_span = 2 * self.ap[1] - self.ap[0]
        nd = len(self.channels)
        self.quiet_clicks = np.zeros(nd, np.int64)
        self.clicks = np.zeros(nd, np.int64)
        self.near = np.zeros(nd, np.int64)
        self.ctrl = np.zeros(nd, np.int64)
        self.min_gap = np.full(nd, np.iinfo(np.int64).max, np.int64)
        self.ap_clicks = np.zeros(nd, np.int64)   # clicks that take part in the afterpulse count
        self.quiet_ps = 0
        self._t = np.zeros(0, np.int64)
        self._c = np.zeros(0, np.int32)
        self._done_until: int | None = None      # tags before this time are final
        self._first: int | None = None
        self._prev_anchor: int | None = None     # last grid anchor dropped from the buffer
        self._gx: _Grid | None = None            # dark-count / afterpulse exclusions on the grid
        self._gap: _Grid | None = None
        self._n_grid = 0

    def handle(self, event) -> None:
        if isinstance(event, TagChunk):
            self.process(event)

    def process(self, chunk: TagChunk, final: bool = False) -> None:
        if len(chunk):
            self._t = np.concatenate([self._t, chunk.time])
            self._c = np.concatenate([self._c, chunk.channel])
            if self._first is None:
                self._first = int(chunk.time[0])
                self._done_until = self._first
            if self.grid is not None:
                self._n_grid += int(np.count_nonzero(chunk.channel == self.grid))
        if self._t.size == 0:
            return
        t, c = self._t, self._c
        anchors = t[c == self.grid] if self.grid is not None else None
        if self.grid is not None and self.period is None:
            # the period is fixed from a fixed number of syncs (or all at the end): chunking cannot change it
            if self._n_grid < GRID_LEARN_SYNCS and not final:
                return
            if anchors.size >= 2:
                self.period = estimate_period(anchors[:GRID_LEARN_SYNCS])
        grid_on = self.grid is not None and self.period is not None
        if grid_on and anchors.size == 0 and self._prev_anchor is None and not final:
            return
        last = int(t[-1])
        horizon = last + 1 if final else last - self.lookahead - self.ap_span
        if horizon <= self._done_until:
            return
        lo, hi = self._done_until, horizon
        gx = gap = None
        if grid_on:
            if self._gx is None:
                self._gx = _Grid.from_offsets(self.exclude.get(self.grid, []), self.period)
                self._gap = _Grid.from_offsets(self.ap_exclude.get(self.grid, []), self.period)
            gx, gap = self._gx, self._gap
            gx.anchors_with(anchors, self._prev_anchor)
            gap.anchors_with(anchors, self._prev_anchor)
        # excluded intervals from every (non-grid) anchor we hold (earlier ones are kept in the buffer)
        s, e = self._intervals(t, c, self.exclude)
        # quiet time in [lo, hi): minus the anchored intervals, minus the grid's, plus their overlap
        cs, ce = np.clip(s, lo, hi), np.clip(e, lo, hi)
        excl = int(np.sum(ce - cs))
        if gx is not None:
            excl += int(gx.measure(np.array([lo]), np.array([hi]))[0])
            m = ce > cs
            excl -= int(np.sum(gx.measure(cs[m], ce[m])))
        self.quiet_ps += (hi - lo) - excl
        det = np.where((c >= 0) & (c < self.lut.size), self.lut[np.clip(c, 0, self.lut.size - 1)], -1)
        i0, i1 = np.searchsorted(t, lo, "left"), np.searchsorted(t, hi, "left")
        tt, dd = t[i0:i1], det[i0:i1]
        sel = dd >= 0
        self.clicks += np.bincount(dd[sel], minlength=len(self.channels))
        # the exclusions are looked up for the detectors' clicks only (the syncs are half the tags)
        ts, ds = tt[sel], dd[sel]
        out = _inside(ts, s, e)
        if gx is not None:
            out |= gx.inside(ts)
        self.quiet_clicks += np.bincount(ds[~out], minlength=len(self.channels))
        # afterpulse pairs for the final tags (their partners are all in the buffer: horizon leaves ap_span)
        ok = np.zeros(t.size - i0, bool)
        clear = _span_clear(ts, self.ap_span, *self._intervals(t, c, self.ap_exclude))
        if gap is not None:
            clear &= ~gap.inside(ts)
            clear[clear] = gap.measure(ts[clear], ts[clear] + self.ap_span) == 0
        ok[np.flatnonzero(sel)[clear]] = True
        self.ap_clicks += np.bincount(ds[clear], minlength=len(self.channels))
        _pairs(t[i0:], det[i0:], ok, i1 - i0, self.ap[0], self.ap[1], self.near, self.ctrl, self.min_gap)
        self._done_until = hi
        # keep what later anchors/pairs still need
        keep_from = hi - max(self.lookback, self.ap_span)
        j = np.searchsorted(t, keep_from, "left")
        if grid_on:
            dropped = np.flatnonzero(c[:j] == self.grid)
            if dropped.size:
                self._prev_anchor = int(t[dropped[-1]])
        self._t, self._c = t[j:], c[j:]

    def _intervals(self, t, c, table):
        st, sp = [], []
        for ch, offs in table.items():
            if ch == self.grid and self.period is not None:
                continue     # on the grid (_Grid)
            at = t[c == ch]
            for a, b in offs:
                st.append(at + a)
                sp.append(at + b)
        return _union(np.concatenate(st) if st else np.zeros(0, np.int64),
                      np.concatenate(sp) if sp else np.zeros(0, np.int64))

    def flush(self) -> None:
        # pairs of the last tags have no full control interval: counting both halves only where present
        self.process(TagChunk(np.zeros(0, np.int64), np.zeros(0, np.int32)), final=True)

    def result(self) -> DarkCountResult:
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
