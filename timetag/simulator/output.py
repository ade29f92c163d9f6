"""From generated events (true time, Alice's clock) to one lab's recorded tag stream.

Per lab: the lab's own clock (Bob: offset + drift), per-channel cable delays
(raw = local + delay), time ordering of the raw stream across generation blocks
(a carry buffer holds tags that a later block may still precede), lost-data
intervals (tags dropped, OVERFLOW_BEGIN/END events inserted) and the
ground-truth fluorescence counts of the rounds, counted on the tags actually
recorded.  The raw files are written by the formats' writers and record encoders
(dump: :func:`timetag.formats.dump.encode_records`).
"""
from __future__ import annotations

import numba as nb
import numpy as np

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
        # generated tags not yet emitted (a later block may still precede them) live in _raw/_ch/_src[c0:c1]
        self._raw = np.zeros(0, np.int64)
        self._ch = np.zeros(0, np.int32)
        self._src = np.zeros(0, np.int8)
        self._carry = (0, 0)
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

    def push(self, t_true, ch, src, bound_true: int | None, reuse: bool = False) -> tuple[TagChunk, list[tuple[int, int]]]:
        """Add generated events; emit the recorded stream up to ``bound_true`` (None = everything).

        Returns the chunk and the (round id, count) pairs whose count window is complete.  With ``reuse``
        the chunk's arrays are views of a buffer that the next ``push`` overwrites (for a caller that
        writes them out at once: no fresh memory per block).
        """
        c0, c1 = self._carry
        tot = c1 - c0 + len(t_true)
        if self._raw.size < tot:
            size = int(tot * 1.25) + 1024
            raw_b, ch_b, src_b = np.empty(size, np.int64), np.empty(size, np.int32), np.empty(size, np.int8)
            raw_b[:c1 - c0], ch_b[:c1 - c0], src_b[:c1 - c0] = self._raw[c0:c1], self._ch[c0:c1], self._src[c0:c1]
            self._raw, self._ch, self._src = raw_b, ch_b, src_b
            c0, c1 = 0, c1 - c0
        _stage(np.asarray(t_true, np.int64), np.asarray(ch, np.int32), np.asarray(src, np.int8), self.offset,
               self.drift, self.delay, self._raw, self._ch, self._src, c0, c1)
        if bound_true is None:
            bound = np.iinfo(np.int64).max
            n = tot
        else:
            bound = self.local_scalar(bound_true) + self.min_delay
            n = int(np.searchsorted(self._raw[:tot], bound, side="left"))
        self._carry = (n, tot)
        raw, chs, srcs = self._raw[:n], self._ch[:n], self._src[:n]
        if not reuse:
            raw, chs, srcs = raw.copy(), chs.copy(), srcs.copy()
        lo = self.emitted_raw if self.emitted_raw is not None else (int(raw[0]) if n else bound)
        if bound_true is None and n:
            bound = int(raw[-1]) + 1
        lost = empty_lost()
        if self.ov_rate > 0:
            raw, chs, srcs, lost = self._overflow(raw, chs, srcs, lo, bound)
        self.emitted_raw = bound
        _bincount_into(srcs, self.sources)
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
        done_upto = bound - self.max_delay  # every tag with local time < this has been emitted
        done = []
        for rid, w in list(self.windows.items()):
            w[2] += _count_window(raw, chs, self.fluo, self.delay, w[0], w[1], self.min_delay, self.max_delay)
            if final or w[1] <= done_upto:
                done.append((rid, w[2]))
                del self.windows[rid]
        return done


@nb.njit(cache=True, nogil=True)
def _stage(t, ch, src, offset, drift, delay, raw_b, ch_b, src_b, c0, c1):
    """Move the carry [c0, c1) to the front, append the new tags in raw time, restore time order.

    The disorder is bounded by the spread of cable delays, so an insertion pass is linear in practice.
    """
    m = c1 - c0
    for i in range(m):
        raw_b[i] = raw_b[c0 + i]
        ch_b[i] = ch_b[c0 + i]
        src_b[i] = src_b[c0 + i]
    for i in range(t.size):
        c = ch[i]
        r = t[i] + offset + delay[c]
        if drift != 0.0:
            r += np.int64(np.rint(np.float64(t[i]) * drift))
        j = m + i
        if j > 0 and raw_b[j - 1] > r:
            while j > 0 and raw_b[j - 1] > r:
                raw_b[j] = raw_b[j - 1]
                ch_b[j] = ch_b[j - 1]
                src_b[j] = src_b[j - 1]
                j -= 1
        raw_b[j] = r
        ch_b[j] = c
        src_b[j] = src[i]


@nb.njit(cache=True, nogil=True)
def _bincount_into(src, counts):
    for i in range(src.size):
        counts[src[i]] += 1


@nb.njit(cache=True, nogil=True)
def _count_window(raw, chs, fluo, delay, lo, hi, min_delay, max_delay):
    """Recorded fluorescence tags whose local time (raw - cable delay) lies in [lo, hi)."""
    i = np.searchsorted(raw, lo + min_delay, side="left")
    i1 = np.searchsorted(raw, hi + max_delay, side="left")
    n = 0
    while i < i1:
        c = chs[i]
        if fluo[c]:
            loc = raw[i] - delay[c]
            if lo <= loc < hi:
                n += 1
        i += 1
    return n
