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
the pulse photons' afterpulses count as dark; so should the afterpulse
exclusion, or those afterpulses (which do not afterpulse) count as eligible
clicks and dilute the rate.

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

from timetag._cext import calib_dark as _kernel
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
        x = np.asarray(x, np.int64)
        if self.a.size == 0 or self.ps.size == 0:
            return np.zeros(x.shape, bool)
        _, _, tick = self._tick(x)
        ph = x - tick
        k = np.searchsorted(self.ps, ph, "right") - 1
        return (k >= 0) & (ph < self.pe[np.maximum(k, 0)])

    def G(self, x):
        """Excluded time from an arbitrary origin to x (differences only)."""
        x = np.asarray(x, np.int64)
        if self.a.size == 0 or self.L == 0:
            return np.zeros(x.shape, np.int64)
        # each segment's own count from its anchor; chained at the anchors (with an exact grid the anchor
        # is a tick of the previous segment too, and the chaining is seamless)
        if self._base is None:
            m = np.arange(1, self.a.size)
            _, j, tick = self._tick(self.a[1:], m - 1)
            steps = j * self.L + self._part(self.a[1:] - tick)
            self._base = np.concatenate([[0], np.cumsum(steps)]).astype(np.int64)
        k, j, tick = self._tick(x)
        return self._base[k] + j * self.L + self._part(x - tick)

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
# The kernel (``cext/calib_dark.h``, ahead-of-time compiled: a calibration pass then starts without a JIT) keeps
# that state in :class:`timetag._cext.calib_dark.DarkKernel`.
_tick1 = _kernel.tick      # the latest attempt tick at or before a time, as the kernel places it



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
        config = dict(grid_channel=self.grid if grid_on else -1, ap_t0=self.ap[0], ap_t1=self.ap[1],
                      span=self.ap_span, lag=max(self.ap_span, 0) + lookahead, o0=o0, o1=o1, lx=gx.L, lp=gp.L)
        tables = dict(lut=self.lut, prow=prow, x0=x0, x1=x1, nx=nx, y0=y0, y1=y1, ny=ny,
                      xps=gx.ps, xpe=gx.pe, xcum=gx.cum, pps=gp.ps, ppe=gp.pe, pcum=gp.cum)
        counters = dict(clicks=self.clicks, quiet=self.quiet_clicks, near=self.near, ctrl=self.ctrl,
                        mingap=self.min_gap, apcl=self.ap_clicks)
        # ticks before the first recorded sync are placed backwards from it: it is in the grid ring before the
        # stream reaches it (and skipped there)
        self._k = _kernel.DarkKernel(config, tables, counters, T, self._CAP,
                                     first_anchor if grid_on else None)
        self._grid_on, self._first_anchor = grid_on, first_anchor

    def _feed(self, time, chan, final=False) -> None:
        self._k.feed(time, chan, final)

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
        if k.first is None:
            return
        first, last = int(k.first), int(k.last)
        excl = int(k.excluded)
        if self._grid_on and self._first_anchor is not None:
            # the grid's excluded time from the first tag (before the first anchor: backwards from it) to the end
            excl += int(k.grid_value(last + 1) - k.first_segment_value(first, self._first_anchor))
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
