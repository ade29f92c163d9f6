"""Dark-count and afterpulsing rates per detector.

Dark counts: clicks in the *quiet stretches* — everything outside the excluded
intervals around each sync (where heralding photons arrive) and each 'ready'
trigger (the read-out fluorescence) — divided by the quiet time.

Afterpulsing: for each click, the number of later clicks on the same detector
within ``[near_ps[0], near_ps[1])`` minus those in an equally long control
interval right after it; divided by the number of clicks.  The control
subtracts bunching that is flat on the microsecond scale (read-out windows of
milliseconds), so what remains is the detector's own excess after a click.
Clicks in the pulse regions (``afterpulse_exclude``: two photons of one attempt
would look like an afterpulse) take no part.  Bursts of light that change on
the microsecond scale would bias it; the read-out bursts of the experiment do
not.  The dark-count exclusion around each sync should extend a few afterpulse
times beyond the pulse, or the pulse photons' afterpulses count as dark.

Both are streaming (``process``/``flush``) and independent of chunk boundaries:
tags are finalised only once no later tag can change their classification.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from timetag.chunk import TagChunk


@dataclass(frozen=True)
class DarkCountResult:
    channels: tuple[int, ...]
    rate_hz: np.ndarray           # dark-count rate per channel
    rate_err_hz: np.ndarray       # Poisson 1-sigma
    quiet_s: float                # quiet time used
    quiet_clicks: np.ndarray
    afterpulse_prob: np.ndarray   # afterpulses per click in the near interval (clicks outside pulse regions)
    afterpulse_err: np.ndarray
    clicks: np.ndarray            # all clicks per channel


@njit(cache=True, nogil=True)
def _pairs(time, det, ok, n_final, t0, t1, out_near, out_ctrl):
    """For the first n_final tags: same-detector later tags in [t0, t1) and the control [t1, 2 t1 - t0).

    Only tags with ``ok`` set take part (outside the pulse regions, where two photons of one
    attempt would look like an afterpulse).
    """
    t2 = 2 * t1 - t0
    for i in range(n_final):
        d = det[i]
        if d < 0 or not ok[i]:
            continue
        ti = time[i]
        j = i + 1
        while j < time.size and time[j] - ti < t2:
            if det[j] == d and ok[j]:
                dt = time[j] - ti
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


class DarkCounter:
    """Streaming dark-count and afterpulse counter.

    ``exclude`` maps an anchor channel to a list of ``(start_ps, stop_ps)`` offsets of excluded
    intervals around each of its tags (raw times; offsets may be negative).
    """

    def __init__(self, channels, exclude: dict[int, list[tuple[int, int]]], *,
                 afterpulse_ps: tuple[int, int] = (50_000, 2_000_000),
                 afterpulse_exclude: dict[int, list[tuple[int, int]]] | None = None):
        self.channels = tuple(int(c) for c in channels)
        self.exclude = {int(k): [(int(a), int(b)) for a, b in v] for k, v in exclude.items()}
        self.ap_exclude = {int(k): [(int(a), int(b)) for a, b in v] for k, v in (afterpulse_exclude or {}).items()}
        self.ap = (int(afterpulse_ps[0]), int(afterpulse_ps[1]))
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
        self.ap_clicks = np.zeros(nd, np.int64)   # clicks that take part in the afterpulse count
        self.quiet_ps = 0
        self._t = np.zeros(0, np.int64)
        self._c = np.zeros(0, np.int32)
        self._done_until: int | None = None      # tags before this time are final
        self._first: int | None = None

    def process(self, chunk: TagChunk, final: bool = False) -> None:
        if len(chunk):
            self._t = np.concatenate([self._t, chunk.time])
            self._c = np.concatenate([self._c, chunk.channel])
            if self._first is None:
                self._first = int(chunk.time[0])
                self._done_until = self._first
        if self._t.size == 0:
            return
        last = int(self._t[-1])
        horizon = last + 1 if final else last - max(self.lookahead, self.ap_span)
        if horizon <= self._done_until:
            return
        t, c = self._t, self._c
        # excluded intervals from every anchor we hold (earlier ones are kept in the buffer)
        s, e = self._intervals(t, c, self.exclude)
        lo, hi = self._done_until, horizon
        # quiet time in [lo, hi)
        cs, ce = np.clip(s, lo, hi), np.clip(e, lo, hi)
        self.quiet_ps += (hi - lo) - int(np.sum(ce - cs))
        det = np.where((c >= 0) & (c < self.lut.size), self.lut[np.clip(c, 0, self.lut.size - 1)], -1)
        i0, i1 = np.searchsorted(t, lo, "left"), np.searchsorted(t, hi, "left")
        tt, dd = t[i0:i1], det[i0:i1]
        sel = dd >= 0
        self.clicks += np.bincount(dd[sel], minlength=len(self.channels))
        k = np.searchsorted(s, tt, "right") - 1
        inside = (k >= 0) & (tt < e[np.clip(k, 0, max(e.size - 1, 0))]) if s.size else np.zeros(tt.size, bool)
        q = sel & ~inside
        self.quiet_clicks += np.bincount(dd[q], minlength=len(self.channels))
        # afterpulse pairs for the final tags (their partners are all in the buffer: horizon leaves ap_span)
        ok = ~_inside(t[i0:], *self._intervals(t, c, self.ap_exclude))
        okf = ok[: i1 - i0] & sel
        self.ap_clicks += np.bincount(dd[okf], minlength=len(self.channels))
        _pairs(t[i0:], det[i0:], ok, i1 - i0, self.ap[0], self.ap[1], self.near, self.ctrl)
        self._done_until = hi
        # keep what later anchors/pairs still need
        keep_from = hi - max(self.lookback, self.ap_span)
        j = np.searchsorted(t, keep_from, "left")
        self._t, self._c = t[j:], c[j:]

    @staticmethod
    def _intervals(t, c, table):
        st, sp = [], []
        for ch, offs in table.items():
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
        ap = (self.near - self.ctrl) / n
        ap_err = np.sqrt(self.near + self.ctrl) / n
        return DarkCountResult(self.channels, rate, err, q_s, self.quiet_clicks.copy(), ap, ap_err,
                               self.clicks.copy())
