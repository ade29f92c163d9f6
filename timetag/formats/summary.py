"""What a time-tag file holds, in one streaming pass (what ``timetag info`` shows).

:func:`summarize` reads with the order check off, so that it can describe a file ``timetag process`` refuses:
backward time steps and negative times are counted (:class:`OrderWatch`) instead of stopping the read.
"""
from __future__ import annotations

import inspect
import json

import numpy as np

from ..channels import ChannelTally
from ..chunk import DEFAULT_CHUNK_SIZE
from ..lost import LostLog, LostSpan
from . import open_tags


def summarize(path, chunk_size: int = DEFAULT_CHUNK_SIZE, format: str | None = None) -> dict:
    """One streaming pass: counts per channel, first/last time, lost-data intervals, order problems."""
    # order check off: info describes a broken file instead of stopping at its first backward step
    reader = open_tags(path, chunk_size=chunk_size, format=format, check_order=False)
    tally = ChannelTally()
    order = OrderWatch()
    first = last = None
    lost: list[dict] = []
    lost_log = LostLog()
    for chunk in reader:
        tally.process(chunk)
        order.process(chunk)
        if len(chunk):
            lo, hi = int(chunk.time.min()), int(chunk.time.max())
            first = lo if first is None else min(first, lo)
            last = hi if last is None else max(last, hi)
        lost.extend(_span_json(span) for span in lost_log.add(chunk.lost))
    if lost_log.open_span is not None:
        lost.append({**_span_json(lost_log.open_span), "note": "no overflow end"})
    n_tags = tally.tags
    counts = tally.counts
    duration = (last - first) if n_tags else 0
    meta = {k: v for k, v in reader.meta.items() if _jsonable(v)}
    return {
        "path": str(path),
        "format": reader.format,
        "records": reader.records,
        "tags": n_tags,
        "first_ps": first,
        "last_ps": last,
        "duration_ps": duration,
        "resolution_ps": reader.resolution_ps,
        "channels": {str(c): n for c, n in counts.items()},
        "rates_hz": {str(c): (n / (duration * 1e-12) if duration else None) for c, n in counts.items()},
        "lost": lost,
        "order": {**order.summary(), "process_checks_order": _process_checks_order(reader)},
        "meta": meta,
    }


def _span_json(span: LostSpan) -> dict:
    out = {"kind": span.kind, "start_ps": span.start_ps, "end_ps": span.end_ps}
    if span.kind != "overflow":
        out.update(channel=span.channel, count=span.count)
    return out


class OrderWatch:
    """Time-order problems of a stream as read: steps back between consecutive tags (the first one and the
    largest), and negative times.  Indices count tags from 0 across chunks, lost-data records not included."""

    def __init__(self):
        self.tags = 0
        self.backward_steps = 0
        self.max_backward_ps = 0
        self.first_backward: dict | None = None
        self.negative_times = 0
        self.first_negative: dict | None = None
        self._prev: int | None = None

    def process(self, chunk) -> None:
        t = chunk.time
        if t.size:
            self._steps(t)
            self._negatives(t)
            self._prev = int(t[-1])
        self.tags += t.size

    def _steps(self, t: np.ndarray) -> None:
        back = np.flatnonzero(t[1:] < t[:-1])  # tag back + 1 is earlier than tag back
        before, after = t[back], t[back + 1]
        if self._prev is not None and t[0] < self._prev:  # the step across the chunk boundary
            back = np.concatenate(([-1], back))
            before = np.concatenate(([self._prev], before))
            after = np.concatenate((t[:1], after))
        if not back.size:
            return
        self.backward_steps += int(back.size)
        self.max_backward_ps = max(self.max_backward_ps, int((before - after).max()))
        if self.first_backward is None:
            self.first_backward = {"tag_index": self.tags + int(back[0]) + 1, "before_ps": int(before[0]),
                                   "after_ps": int(after[0])}

    def _negatives(self, t: np.ndarray) -> None:
        if t.min() >= 0:  # the usual case costs one min pass
            return
        neg = t < 0
        self.negative_times += int(np.count_nonzero(neg))
        if self.first_negative is None:
            i = int(np.argmax(neg))
            self.first_negative = {"tag_index": self.tags + i, "time_ps": int(t[i])}

    def summary(self) -> dict:
        return {"backward_steps": self.backward_steps, "max_backward_ps": self.max_backward_ps,
                "first_backward": self.first_backward, "negative_times": self.negative_times,
                "first_negative": self.first_negative}


def _process_checks_order(reader) -> bool:
    """Does ``timetag process`` (which opens files with the format's default) refuse a backward step?"""
    # the reader class's own default, so that this follows the formats rather than a copy of their list
    param = inspect.signature(type(reader)).parameters.get("check_order")
    return bool(param is not None and param.default is True)


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


__all__ = ["summarize", "OrderWatch"]
