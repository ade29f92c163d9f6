"""From generated events (true time, Alice's clock) to one lab's recorded tag stream.

Per lab: the lab's own clock (Bob: offset + drift), per-channel cable delays
(raw = local + delay), time ordering of the raw stream across generation blocks
(a carry buffer holds tags that a later block may still precede), lost-data
intervals (tags dropped, OVERFLOW_BEGIN/END events inserted) and the
ground-truth fluorescence counts of the rounds, counted on the tags actually
recorded.
"""
from __future__ import annotations

import numpy as np

from .kernel import sort_nearly
from ..chunk import LOST_DTYPE, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk, empty_lost


class LabOutput:
    def __init__(self, delays: dict[int, int], fluo_channels, offset_ps: int = 0, drift_ppm: float = 0.0,
                 overflow_rate_hz: float = 0.0, overflow_duration_ps: int = 1, rng=None):
        nch = max(delays) + 1
        self.delay = np.zeros(nch, np.int64)
        for c, d in delays.items():
            self.delay[c] = d
        self.min_delay = int(min(delays.values()))
        self.max_delay = int(max(delays.values()))
        self.fluo = np.zeros(nch, bool)
        self.fluo[list(fluo_channels)] = True
        self.offset = int(offset_ps)
        self.drift = float(drift_ppm) * 1e-6
        self.ov_rate = float(overflow_rate_hz)
        self.ov_dur = int(overflow_duration_ps)
        self.rng = rng
        self.intervals: list[tuple[int, int]] = []  # raw-time lost-data intervals [begin, end)
        self._next_ov = None
        self.carry_raw = np.zeros(0, np.int64)
        self.carry_ch = np.zeros(0, np.int32)
        self.carry_src = np.zeros(0, np.int8)
        self.emitted_raw = None  # everything with raw < this has been emitted
        self.windows: dict[int, list] = {}  # round id -> [lo, hi, count] in local corrected time
        self.tags_written = 0
        self.sources = np.zeros(16, np.int64)  # tags emitted per source code

    def local(self, t_true):
        """Alice's true time -> this lab's clock (ps)."""
        t = np.asarray(t_true, dtype=np.int64)
        if self.drift == 0.0:
            return t + self.offset
        return t + self.offset + np.rint(t.astype(np.float64) * self.drift).astype(np.int64)

    def local_scalar(self, t_true: int) -> int:
        return int(self.local(np.array([t_true]))[0])

    def add_window(self, rid: int, lo: int, hi: int) -> None:
        self.windows[rid] = [int(lo), int(hi), 0]

    def push(self, t_true, ch, src, bound_true: int | None) -> tuple[TagChunk, list[tuple[int, int]]]:
        """Add generated events; emit the recorded stream up to ``bound_true`` (None = everything).

        Returns the chunk and the (round id, count) pairs whose count window is complete.
        """
        raw = self.local(t_true) + self.delay[ch]
        raw = np.concatenate([self.carry_raw, raw])
        chs = np.concatenate([self.carry_ch, np.asarray(ch, np.int32)])
        srcs = np.concatenate([self.carry_src, np.asarray(src, np.int8)])
        sort_nearly(raw, chs, srcs)  # disorder is bounded by the spread of cable delays
        if bound_true is None:
            bound = np.iinfo(np.int64).max
            n = raw.size
        else:
            bound = self.local_scalar(bound_true) + self.min_delay
            n = int(np.searchsorted(raw, bound, side="left"))
        self.carry_raw, self.carry_ch, self.carry_src = raw[n:], chs[n:], srcs[n:]
        raw, chs, srcs = raw[:n], chs[:n], srcs[:n]
        lo = self.emitted_raw if self.emitted_raw is not None else (int(raw[0]) if n else bound)
        if bound_true is None and n:
            bound = int(raw[-1]) + 1
        lost = empty_lost()
        if self.ov_rate > 0:
            raw, chs, srcs, lost = self._overflow(raw, chs, srcs, lo, bound)
        self.emitted_raw = bound
        self.sources += np.bincount(srcs, minlength=16)[:16]
        self.tags_written += raw.size
        done = self._count(raw, chs, bound, final=bound_true is None)
        return TagChunk(raw, chs, lost), done

    def _overflow(self, raw, chs, srcs, lo, hi):
        if self._next_ov is None:
            self._next_ov = lo + int(self.rng.exponential(1e12 / self.ov_rate))
        while self._next_ov < hi:
            b = self._next_ov
            self.intervals.append((b, b + self.ov_dur))
            self._next_ov = b + self.ov_dur + 1 + int(self.rng.exponential(1e12 / self.ov_rate))
        keep = np.ones(raw.size, bool)
        ev = []
        for b, e in self.intervals:
            if e <= lo or b >= hi:
                continue
            i0, i1 = np.searchsorted(raw, [b, e], side="left")
            keep[i0:i1] = False
            if lo <= b < hi:
                ev.append((b, OVERFLOW_BEGIN))
            if lo <= e < hi:
                ev.append((e, OVERFLOW_END))
        lost = np.zeros(len(ev), LOST_DTYPE)
        for i, (t, k) in enumerate(sorted(ev)):
            lost[i]["time"] = t
            lost[i]["kind"] = k
            lost[i]["channel"] = -1
        return raw[keep], chs[keep], srcs[keep], lost

    def lost_overlaps(self, lo_raw: int, hi_raw: int) -> bool:
        return any(b < hi_raw and e > lo_raw for b, e in self.intervals)

    def _count(self, raw, chs, bound, final):
        if not self.windows:
            return []
        lo = min(w[0] for w in self.windows.values()) + self.min_delay
        hi = max(w[1] for w in self.windows.values()) + self.max_delay
        i0, i1 = np.searchsorted(raw, [lo, hi], side="left")
        raw, chs = raw[i0:i1], chs[i0:i1]
        sel = self.fluo[chs]
        loc = np.sort(raw[sel] - self.delay[chs[sel]])
        done_upto = bound - self.max_delay  # every tag with local time < this has been emitted
        done = []
        for rid, w in list(self.windows.items()):
            a, b = np.searchsorted(loc, [w[0], w[1]], side="left")
            w[2] += int(b - a)
            if final or w[1] <= done_upto:
                done.append((rid, w[2]))
                del self.windows[rid]
        return done
