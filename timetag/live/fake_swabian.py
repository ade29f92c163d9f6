"""A stand-in for the closed ``Swabian.TimeTagger`` module, for tests and demos without hardware.

:class:`FakeTimeTaggerModule` offers the subset of the real API that :mod:`timetag.live.swabian` uses, with the
same names and behaviours:

* ``createTimeTagger(serial='')`` / ``freeTimeTagger(tagger)``; ``TagType`` codes (TimeTag 0, Error 1,
  OverflowBegin 2, OverflowEnd 3, MissedEvents 4);
* ``TimeTagStream(tagger, n_max_events, channels)`` starts on creation; ``getData()`` returns the events since the
  previous call and clears the buffer; ``start()``, ``stop()``, ``isRunning()``, ``clear()``;
* the buffer: ``getTimestamps()``, ``getChannels()``, ``getEventTypes()``, ``getMissedEvents()``, fields ``size``,
  ``hasOverflows``, ``tStart``, ``tGetData``.

Device behaviours reproduced: tags inside an injected overflow interval ``[begin, end)`` are dropped and replaced
by an OverflowBegin event at ``begin``, an OverflowEnd at ``end`` and one MissedEvents event per channel (with the
number of dropped tags) right after; a stream polled too slowly keeps only ``n_max_events`` events and reports
``hasOverflows`` without further events (the rest are gone).  The device clock is a callable: wall-clock paced
(:class:`WallClock`) or advancing by a fixed step per ``getData()`` call (:class:`StepClock`, deterministic tests).
"""
from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator

import numpy as np

from ..chunk import TagChunk


class TagType:
    TimeTag = 0
    Error = 1
    OverflowBegin = 2
    OverflowEnd = 3
    MissedEvents = 4


class WallClock:
    """Device time (ps) = wall time since the first call x ``speed`` (+ ``t0_ps``)."""

    def __init__(self, speed: float = 1.0, t0_ps: int = 0):
        self.speed, self.t0_ps, self._w0 = float(speed), int(t0_ps), None

    def __call__(self) -> int:
        now = time.monotonic()
        if self._w0 is None:
            self._w0 = now
        return self.t0_ps + int((now - self._w0) * self.speed * 1e12)


class StepClock:
    """Device time advances by ``step_ps`` on every call (first call returns ``t0_ps + step_ps``)."""

    def __init__(self, step_ps: int, t0_ps: int = 0):
        self.step_ps, self.now = int(step_ps), int(t0_ps)

    def __call__(self) -> int:
        self.now += self.step_ps
        return self.now


class _EventFeed:
    """Pulls the device's events (tags plus injected overflow/error events) up to a device time, lazily."""

    def __init__(self, tags, overflows, errors):
        if isinstance(tags, TagChunk):
            tags = [tags]
        self._it: Iterator[TagChunk] = iter(tags)
        self._t = np.zeros(0, np.int64)
        self._c = np.zeros(0, np.int32)
        self._exhausted = False
        self.overflows = sorted((int(a), int(b)) for a, b in overflows)
        for a, b in self.overflows:
            if b <= a:
                raise ValueError(f"overflow interval must end after it begins (got [{a}, {b}))")
        self.errors = sorted(int(t) for t in errors)
        self._pos = np.iinfo(np.int64).min  # device time up to which events were handed out (inclusive)
        self._missed: dict[tuple[int, int, int], int] = {}  # (begin, end, channel) -> tags dropped so far

    @property
    def exhausted(self) -> bool:
        return self._exhausted and self._t.size == 0

    def _fill(self, upto: int) -> None:
        while not self._exhausted and (self._t.size == 0 or self._t[-1] <= upto):
            try:
                ch = next(self._it)
            except StopIteration:
                self._exhausted = True
                break
            self._t = np.concatenate([self._t, ch.time])
            self._c = np.concatenate([self._c, ch.channel])

    def take(self, upto: int, channels: set[int]):
        """Events with time in (previous upto, upto]: (time, channel, type, missed) arrays in time order."""
        self._fill(upto)
        k = int(np.searchsorted(self._t, upto, side="right"))
        t, c = self._t[:k], self._c[:k]
        self._t, self._c = self._t[k:], self._c[k:]
        keep = np.isin(c, list(channels)) if channels else np.ones(t.size, bool)
        t, c = t[keep], c[keep]
        ev_t, ev_c, ev_y, ev_m = [t], [c], [np.zeros(t.size, np.uint8)], [np.zeros(t.size, np.uint16)]
        lo = self._pos
        drop = np.zeros(t.size, bool)
        for a, b in self.overflows:
            in_ov = (t >= a) & (t < b)
            drop |= in_ov
            if lo < a <= upto:
                ev_t.append(np.array([a])); ev_c.append(np.array([0], np.int32))
                ev_y.append(np.array([TagType.OverflowBegin], np.uint8)); ev_m.append(np.array([0], np.uint16))
            if in_ov.any():
                for ch, n in zip(*np.unique(c[in_ov], return_counts=True)):
                    self._missed[(a, b, int(ch))] = self._missed.get((a, b, int(ch)), 0) + int(n)
            if lo < b <= upto:
                ev_t.append(np.array([b])); ev_c.append(np.array([0], np.int32))
                ev_y.append(np.array([TagType.OverflowEnd], np.uint8)); ev_m.append(np.array([0], np.uint16))
                missed = {k[2]: v for k, v in self._missed.items() if k[:2] == (a, b)}
                for ch in sorted(missed):
                    ev_t.append(np.array([b])); ev_c.append(np.array([ch], np.int32))
                    ev_y.append(np.array([TagType.MissedEvents], np.uint8))
                    ev_m.append(np.array([min(missed[ch], 65535)], np.uint16))
        for e in self.errors:
            if lo < e <= upto:
                ev_t.append(np.array([e])); ev_c.append(np.array([0], np.int32))
                ev_y.append(np.array([TagType.Error], np.uint8)); ev_m.append(np.array([0], np.uint16))
        ev_t[0], ev_c[0], ev_y[0], ev_m[0] = t[~drop], c[~drop], ev_y[0][~drop], ev_m[0][~drop]
        self._pos = upto
        tt, cc, yy, mm = (np.concatenate(x) for x in (ev_t, ev_c, ev_y, ev_m))
        # Stable sort keeps tags before the overflow/missed records of the same instant.
        order = np.argsort(tt, kind="stable")
        return tt[order].astype(np.int64), cc[order].astype(np.int32), yy[order], mm[order]


class FakeTimeTagger:
    def __init__(self, module: "FakeTimeTaggerModule", serial: str):
        self.module, self.serial = module, serial
        self.freed = False

    def getSerial(self) -> str:
        return self.serial


class TimeTagStreamBuffer:
    def __init__(self, t, c, y, m, has_overflows: bool, t_start: int, t_get: int):
        self._t, self._c, self._y, self._m = t, c, y, m
        self.size = int(t.size)
        self.hasOverflows = bool(has_overflows)
        self.tStart = int(t_start)
        self.tGetData = int(t_get)

    def getTimestamps(self):
        return self._t.copy()

    def getChannels(self):
        return self._c.copy()

    def getEventTypes(self):
        return self._y.copy()

    def getMissedEvents(self):
        return self._m.copy()


class TimeTagStream:
    def __init__(self, tagger: FakeTimeTagger, n_max_events: int, channels):
        if tagger.freed:
            raise RuntimeError("the tagger has been freed")
        self._mod = tagger.module
        self.n_max_events = int(n_max_events)
        self.channels = {int(c) for c in channels}
        self._running = False
        self._t_start = 0
        self.start()

    def start(self) -> None:
        self._running = True
        self._t_start = self._mod._now()
        self._mod._feed.take(self._t_start, set())  # events before the start are not recorded

    def stop(self) -> None:
        self._running = False

    def isRunning(self) -> bool:
        return self._running

    def clear(self) -> None:
        self._t_start = self._mod._now()
        self._mod._feed.take(self._t_start, set())

    def getData(self) -> TimeTagStreamBuffer:
        self._mod.get_data_calls += 1
        now = self._mod._now()
        t0 = self._t_start
        if not self._running:
            e = np.zeros(0)
            return TimeTagStreamBuffer(e.astype(np.int64), e.astype(np.int32), e.astype(np.uint8), e.astype(np.uint16),
                                       False, t0, now)
        t, c, y, m = self._mod._feed.take(now, self.channels)
        has_ov = bool(np.any((y == TagType.OverflowBegin) | (y == TagType.OverflowEnd)))
        if t.size > self.n_max_events:
            # The stream's buffer filled up: later events are lost, only the flag tells.
            t, c, y, m = t[: self.n_max_events], c[: self.n_max_events], y[: self.n_max_events], m[: self.n_max_events]
            has_ov = True
            self._mod.buffer_overflows += 1
        self._t_start = now
        return TimeTagStreamBuffer(t, c, y, m, has_ov, t0, now)


class FakeTimeTaggerModule:
    """Acts as the ``Swabian.TimeTagger`` module; pass it to :class:`timetag.live.swabian.SwabianSource`.

    ``tags``: a TagChunk or iterable of TagChunk (time-ordered; pulled lazily); ``overflows``: device-time intervals
    ``[(begin_ps, end_ps), ...]`` in which the device drops tags; ``errors``: device times of Error events;
    ``clock``: callable -> device time in ps (default: wall clock at real pace); ``end_time_ps``: when the fake
    source reports itself finished (default: never).
    """

    TagType = TagType
    TimeTagStreamBuffer = TimeTagStreamBuffer

    def __init__(self, tags: TagChunk | Iterable[TagChunk] = (), *, overflows=(), errors=(),
                 clock: Callable[[], int] | None = None, end_time_ps: int | None = None):
        self._feed = _EventFeed(tags, overflows, errors)
        self._clock = clock or WallClock()
        self.end_time_ps = end_time_ps if end_time_ps is not None else np.iinfo(np.int64).max
        self._last_now = 0
        self.taggers: list[FakeTimeTagger] = []
        self.get_data_calls = 0
        self.buffer_overflows = 0
        self.TimeTagStream = TimeTagStream

    def _now(self) -> int:
        self._last_now = int(self._clock())
        return self._last_now

    def createTimeTagger(self, serial: str = "") -> FakeTimeTagger:
        t = FakeTimeTagger(self, serial or "FAKE-0001")
        self.taggers.append(t)
        return t

    def freeTimeTagger(self, tagger: FakeTimeTagger) -> bool:
        tagger.freed = True
        return True

    @property
    def finished(self) -> bool:
        """All tags handed out and the clock past ``end_time_ps`` (the fake's notion of 'run over')."""
        return self._feed.exhausted and self._last_now >= self.end_time_ps
