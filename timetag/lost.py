"""The one rule that turns a stream's lost-data events into what was lost, and when.

* ``OVERFLOW_BEGIN`` opens an overflow interval (a second BEGIN while one is open changes nothing); the next
  ``OVERFLOW_END`` closes it: tags in ``[begin, end)`` may be missing.  An END with no open BEGIN is known to be
  bad only at its own instant: a point.
* ``MISSED`` (``count`` tags of ``channel`` lost around ``time``) and ``ERROR`` (the device says the data near
  ``time`` are untrustworthy) are points.

:class:`LostLog` applies the rule to a stream, chunk by chunk; the round stage asks it which intervals and points
a window may touch (:meth:`LostLog.arrays`), ``timetag info`` lists the spans it made (:meth:`LostLog.add`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chunk import ERROR, LOST_KIND_NAMES, MISSED, OVERFLOW_BEGIN, OVERFLOW_END
from .constants import INF as _INF

__all__ = ["LostLog", "LostSpan"]

_E64 = np.zeros(0, np.int64)


@dataclass(frozen=True)
class LostSpan:
    """One thing lost: an overflow ``[start_ps, end_ps)`` (``end_ps`` None while open), or a point event
    (``start_ps == end_ps``: a missed-events record, a device error, an overflow end with no begin)."""

    kind: str          # "overflow", "missed" or "error"
    start_ps: int
    end_ps: int | None
    channel: int = 0
    count: int = 0


class LostLog:
    def __init__(self):
        self.intervals: list[tuple[int, int]] = []   # closed overflow intervals [begin, end)
        self.open_begin: int | None = None
        self.points: list[int] = []
        self.counts = {"overflow_begin": 0, "overflow_end": 0, "missed": 0, "error": 0, "missed_tags": 0}

    def add(self, lost: np.ndarray) -> list[LostSpan]:
        """Apply the rule to a chunk's lost events (in time order); returns the spans they completed."""
        spans: list[LostSpan] = []
        if not lost.size:
            return spans
        # lost events are rare (a handful per overflow): a Python loop over them is fine
        for t, kind, channel, count in zip(lost["time"].tolist(), lost["kind"].tolist(), lost["channel"].tolist(),
                                           lost["count"].tolist()):
            if kind == OVERFLOW_BEGIN:
                self.counts["overflow_begin"] += 1
                if self.open_begin is None:
                    self.open_begin = t
            elif kind == OVERFLOW_END:
                self.counts["overflow_end"] += 1
                if self.open_begin is not None:
                    self.intervals.append((self.open_begin, t))
                    spans.append(LostSpan("overflow", self.open_begin, t))
                    self.open_begin = None
                else:
                    self.points.append(t)
                    spans.append(LostSpan("overflow", t, t))
            elif kind in (MISSED, ERROR):
                self.counts[LOST_KIND_NAMES[kind]] += 1
                if kind == MISSED:
                    self.counts["missed_tags"] += int(count)
                self.points.append(t)
                spans.append(LostSpan(LOST_KIND_NAMES[kind], t, t, int(channel), int(count)))
        return spans

    @property
    def open_span(self) -> LostSpan | None:
        """The overflow still open (no END yet), if any."""
        return None if self.open_begin is None else LostSpan("overflow", self.open_begin, None)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(begins, ends, points) as int64 arrays for the round kernel; an open overflow reaches ``INF``."""
        if not self.intervals and self.open_begin is None and not self.points:
            return _E64, _E64, _E64  # the usual case: nothing lost
        iv = list(self.intervals)
        if self.open_begin is not None:
            iv.append((self.open_begin, _INF))
        return (np.array([a for a, _ in iv], np.int64), np.array([b for _, b in iv], np.int64),
                np.array(self.points, np.int64))

    def forget_before(self, t: int) -> None:
        """Drop intervals that end at or before ``t`` and points before it (no window can reach them now)."""
        if self.intervals:
            self.intervals = [(a, b) for a, b in self.intervals if b > t]
        if self.points:
            self.points = [p for p in self.points if p >= t]
