"""A stand-in for the closed ``Swabian.TimeTagger`` package, for tests and demos without hardware.

:class:`FakeTimeTaggerModule` acts as the vendor module: pass it as ``module=`` to
:class:`~timetag.live.swabian.SwabianSource`.  Every vendor name it offers (:data:`VENDOR_API`) has the real
package's name, parameter names, defaults, property-or-method kind, enum values and return types (numpy dtypes of
the buffer arrays included); ``tests/live/test_swabian_conformance.py`` introspects the installed package and fails on
any difference.  Names that exist only here (clocks, the module's constructor and its inspection attributes) are
listed in :data:`FAKE_ONLY`.

What the fake device does, as the vendor documents it:

* ``TimeTagStream(tagger, n_max_events, channels)`` starts on creation; ``getData()`` returns the events since the
  previous call and starts an empty buffer.  The buffer holds at most ``n_max_events`` events: when more arrive
  before the next ``getData()``, the later ones are discarded and the only sign is ``size == n_max_events``
  (``hasOverflows`` says something else: that the *device* reported an overflow among the tags received).
  ``tStart`` is where the stream started acquiring, ``tGetData`` where the ``getData()`` call found the stream.
* Device overflows (injected intervals ``[begin, end)``): tags inside are dropped and replaced by an OverflowBegin
  event at ``begin``, an OverflowEnd at ``end`` and one MissedEvents event per streamed channel (its count of
  dropped tags) at ``end``; Error events at injected times.
* The conditional filter: each tag on a trigger channel lets the next tag of every filtered channel through, the
  filtered channels' other tags are dropped on the device (at equal times the trigger comes first); then the event
  divider passes every n-th tag of a channel (the n-th, 2n-th, ...).
* Trigger levels, dead times, hardware delays and test signals are stored and read back (``getConfiguration()``
  included) but do not change the tags: the fake's tags come from a file or the simulator as they are.
* ``FileWriter`` records what it was asked (path, channels, maximum file size, splits) and writes nothing: raw tags
  of a fake run are kept by timetag's own raw-tag writer (:mod:`timetag.live.rawtags`).
* Opening: ``scanTimeTagger()`` lists ``devices``; ``createTimeTagger`` fails with the vendor's own messages for no
  device, an unknown serial, a device in use (``busy``), a HighRes mode without its licence, or ``open_error``.

A finite feed (a file; ``end_time_ps`` reached and every tag handed out) ends the stream as a measurement started
with ``startFor`` ends: ``isRunning()`` turns False.  One ``TimeTagStream`` at a time reads the feed.  The device
clock is a callable: wall-clock paced (:class:`WallClock`) or advancing by a fixed step per call
(:class:`StepClock`, deterministic tests).
"""
from __future__ import annotations

import enum
import json
import time
from typing import Callable, Iterable, Iterator

import numpy as np

from ..chunk import TagChunk

# Names of the vendor package this fake provides (module level, then per class).  The conformance test compares
# each with the installed package.
VENDOR_API = {
    "module": ("createTimeTagger", "freeTimeTagger", "scanTimeTagger", "getVersion", "TagType", "ChannelEdge",
               "Resolution", "TimeTagger", "TimeTagStream", "TimeTagStreamBuffer", "FileWriter"),
    "TimeTagger": ("getSerial", "getModel", "getChannelList", "getConfiguration",
                   "setTriggerLevel", "getTriggerLevel", "getTriggerLevelRange",
                   "setDeadtime", "getDeadtime", "getDeadtimeRange",
                   "setDelayHardware", "getDelayHardware", "getDelayHardwareRange",
                   "setEventDivider", "getEventDivider",
                   "setConditionalFilter", "clearConditionalFilter", "getConditionalFilterTrigger",
                   "getConditionalFilterFiltered", "setTestSignal", "getTestSignal"),
    "TimeTagStream": ("__init__", "getData", "start", "stop", "clear", "isRunning"),
    "TimeTagStreamBuffer": ("getTimestamps", "getChannels", "getEventTypes", "getMissedEvents", "size",
                            "hasOverflows", "tStart", "tGetData"),
    "FileWriter": ("__init__", "setMaxFileSize", "getMaxFileSize", "split", "stop", "getTotalEvents"),
}
# Public names that exist only in the fake (the conformance test checks that nothing else is public).
FAKE_ONLY = {
    "module": ("finished", "taggers", "streams", "file_writers", "get_data_calls", "full_buffers",
               "discarded_tags", "end_time_ps", "devices", "busy", "open_error", "highres"),
}

VERSION = "2.22.6 (timetag fake)"
MODEL = "Time Tagger Fake"
_MIN_DEADTIME_PS = 2000          # the fake's clock period, as on a Time Tagger Ultra
_MAX_DEADTIME_PS = 2_147_483_647
_TRIGGER_RANGE_V = (-2.5, 2.5)
_DELAY_HARDWARE_RANGE_PS = (-2_000_000, 2_000_000)
_N_CHANNELS = 18


class TagType(enum.IntEnum):
    TimeTag = 0
    Error = 1
    OverflowBegin = 2
    OverflowEnd = 3
    MissedEvents = 4


_DEVICE_OVERFLOW_TYPES = (TagType.OverflowBegin, TagType.OverflowEnd, TagType.MissedEvents)


class ChannelEdge(enum.IntFlag):
    All = 0
    Rising = 1
    Falling = 2
    HighResAll = 4
    HighResRising = 5
    HighResFalling = 6
    StandardAll = 8
    StandardRising = 9
    StandardFalling = 10


class Resolution(enum.IntEnum):
    Standard = 0
    HighResA = 1
    HighResB = 2
    HighResC = 3


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


_E_T, _E_C = np.zeros(0, np.int64), np.zeros(0, np.int32)


class _DeviceFilters:
    """The device's conditional filter and event dividers, with their state carried from call to call."""

    def __init__(self):
        self.trigger: tuple[int, ...] = ()
        self.filtered: tuple[int, ...] = ()
        self.divider: dict[int, int] = {}
        self._gate_open: dict[int, bool] = {}  # filtered channel -> a trigger came since its last tag
        self._seen: dict[int, int] = {}        # channel -> tags that reached its divider

    def set_conditional(self, trigger, filtered) -> None:
        self.trigger, self.filtered = tuple(trigger), tuple(filtered)
        self._gate_open = {}

    def apply(self, t: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.filtered and t.size:
            t, c = self._conditional(t, c)
        for ch, n in self.divider.items():
            if n > 1:
                t, c = self._divide(t, c, ch, n)
        return t, c

    def _conditional(self, t, c):
        is_trig = np.isin(c, self.trigger)
        order = np.lexsort((~is_trig, t))  # at equal times the trigger opens the gate first
        t, c, is_trig = t[order], c[order], is_trig[order]
        keep = np.ones(t.size, bool)
        for f in self.filtered:
            rel = np.flatnonzero(is_trig | (c == f))
            if not rel.size:
                continue
            trig_rel = is_trig[rel]
            opened_before = np.concatenate([[self._gate_open.get(f, False)], trig_rel[:-1]])
            mine = ~trig_rel
            keep[rel[mine & ~opened_before]] = False
            self._gate_open[f] = bool(trig_rel[-1])
        return t[keep], c[keep]

    def _divide(self, t, c, ch, n):
        idx = np.flatnonzero(c == ch)
        if not idx.size:
            return t, c
        count = self._seen.get(ch, 0) + np.arange(1, idx.size + 1)
        self._seen[ch] = int(count[-1])
        keep = np.ones(t.size, bool)
        keep[idx[count % n != 0]] = False
        return t[keep], c[keep]


class _EventFeed:
    """The device's events (tags after its filters, plus injected overflow/error events) up to a device time."""

    def __init__(self, tags, overflows, errors, filters: _DeviceFilters):
        if isinstance(tags, TagChunk):
            tags = [tags]
        self._it: Iterator[TagChunk] = iter(tags)
        self._t, self._c = _E_T, _E_C
        self._exhausted = False
        self.filters = filters
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

    def take(self, upto: int, channels: set[int] | None):
        """Events with time in (previous upto, upto] for a stream of ``channels`` (None: nobody listens):
        (time int64, channel int32, type uint8, missed uint16) arrays in time order."""
        self._fill(upto)
        k = int(np.searchsorted(self._t, upto, side="right"))
        t, c = self.filters.apply(self._t[:k], self._c[:k])
        self._t, self._c = self._t[k:], self._c[k:]
        keep = np.isin(c, list(channels or ()))
        t, c = t[keep], c[keep]
        ev_t, ev_c, ev_y, ev_m = [t], [c], [np.zeros(t.size, np.uint8)], [np.zeros(t.size, np.uint16)]
        lo = self._pos
        drop = np.zeros(t.size, bool)

        def event(time_, channel, kind, missed=0):
            ev_t.append(np.array([time_], np.int64)); ev_c.append(np.array([channel], np.int32))
            ev_y.append(np.array([kind], np.uint8)); ev_m.append(np.array([missed], np.uint16))

        for a, b in self.overflows:
            in_ov = (t >= a) & (t < b)
            drop |= in_ov
            if lo < a <= upto:
                event(a, 0, TagType.OverflowBegin)
            for ch, n in zip(*np.unique(c[in_ov], return_counts=True)):
                self._missed[(a, b, int(ch))] = self._missed.get((a, b, int(ch)), 0) + int(n)
            if lo < b <= upto:
                event(b, 0, TagType.OverflowEnd)
                missed = {key[2]: n for key, n in self._missed.items() if key[:2] == (a, b)}
                for ch in sorted(missed):
                    event(b, ch, TagType.MissedEvents, min(missed[ch], 65535))
        for e in self.errors:
            if lo < e <= upto:
                event(e, 0, TagType.Error)
        ev_t[0], ev_c[0], ev_y[0], ev_m[0] = t[~drop], c[~drop], ev_y[0][~drop], ev_m[0][~drop]
        self._pos = upto
        tt, cc, yy, mm = (np.concatenate(x) for x in (ev_t, ev_c, ev_y, ev_m))
        order = np.argsort(tt, kind="stable")  # tags before the overflow/missed events of the same instant
        return tt[order], cc[order], yy[order], mm[order]


class TimeTagger:
    """One opened device (what ``createTimeTagger`` returns)."""

    def __init__(self, module: "FakeTimeTaggerModule", serial: str, resolution: int):
        self._module, self._serial, self._resolution = module, serial, Resolution(resolution)
        self._freed = False
        self._trigger_level: dict[int, float] = {}
        self._deadtime: dict[int, int] = {}
        self._delay_hw: dict[int, int] = {}
        self._test_signal: set[int] = set()

    # --- identity ---------------------------------------------------------------------------------------------
    def getSerial(self) -> str:
        return self._serial

    def getModel(self) -> str:
        return MODEL

    def getChannelList(self, type=ChannelEdge.All) -> tuple[int, ...]:
        rising = tuple(range(1, _N_CHANNELS + 1))
        if int(type) == ChannelEdge.Rising:
            return rising
        if int(type) == ChannelEdge.Falling:
            return tuple(-c for c in rising)
        return rising + tuple(-c for c in rising)

    def getConfiguration(self) -> str:
        used = sorted(set(self._trigger_level) | set(self._deadtime) | set(self._delay_hw) | self._test_signal
                      | set(self._module._filters.divider))
        return json.dumps({
            "serial": self._serial, "model": MODEL, "resolution": self._resolution.name,
            "conditional filter": {"trigger": list(self.getConditionalFilterTrigger()),
                                   "filtered": list(self.getConditionalFilterFiltered())},
            "channels": [{"number": c, "trigger level": self.getTriggerLevel(c), "deadtime": self.getDeadtime(c),
                          "delay hardware": self.getDelayHardware(c), "event divider": self.getEventDivider(c),
                          "test signal": self.getTestSignal(c)} for c in used],
            "measurements": [{"name": type(m).__name__} for m in (*self._module.streams, *self._module.file_writers)
                             if getattr(m, "_tagger", None) is self],
        })

    # --- inputs -------------------------------------------------------------------------------------------------
    def _input(self, channel) -> int:
        c = int(channel)
        if c == 0 or abs(c) > _N_CHANNELS:
            raise ValueError(f"Invalid channel number: {c}")  # what SWIG passes on from the library
        return abs(c)

    def setTriggerLevel(self, channel, voltage) -> None:
        lo, hi = _TRIGGER_RANGE_V
        self._trigger_level[self._input(channel)] = min(max(float(voltage), lo), hi)

    def getTriggerLevel(self, channel) -> float:
        return self._trigger_level.get(self._input(channel), 0.5)

    def getTriggerLevelRange(self, channel) -> tuple[float, ...]:
        self._input(channel)
        return _TRIGGER_RANGE_V

    def setDeadtime(self, channel, deadtime) -> int:
        self._input(channel)
        if int(deadtime) > _MAX_DEADTIME_PS:
            raise ValueError(f"The dead time {int(deadtime)} ps exceeds the maximum of {_MAX_DEADTIME_PS} ps.")
        value = max(int(deadtime), _MIN_DEADTIME_PS)
        self._deadtime[int(channel)] = value
        return value

    def getDeadtime(self, channel) -> int:
        self._input(channel)
        return self._deadtime.get(int(channel), _MIN_DEADTIME_PS)

    def getDeadtimeRange(self, channel) -> tuple[int, ...]:
        self._input(channel)
        return (_MIN_DEADTIME_PS, _MAX_DEADTIME_PS)

    def setDelayHardware(self, channel, delay) -> None:
        self._input(channel)
        lo, hi = _DELAY_HARDWARE_RANGE_PS
        if not lo <= int(delay) <= hi:
            raise ValueError(f"The hardware delay {int(delay)} ps is out of range [{lo}, {hi}].")
        self._delay_hw[int(channel)] = int(delay)

    def getDelayHardware(self, channel) -> int:
        self._input(channel)
        return self._delay_hw.get(int(channel), 0)

    def getDelayHardwareRange(self, channel) -> tuple[int, ...]:
        self._input(channel)
        return _DELAY_HARDWARE_RANGE_PS

    def setEventDivider(self, channel, divider) -> None:
        self._input(channel)
        if not 1 <= int(divider) <= 65535:
            raise ValueError(f"The event divider must be within 1 and 65535 (got {int(divider)}).")
        self._module._filters.divider[int(channel)] = int(divider)

    def getEventDivider(self, channel) -> int:
        self._input(channel)
        return self._module._filters.divider.get(int(channel), 1)

    def setConditionalFilter(self, trigger, filtered) -> None:
        for c in (*trigger, *filtered):
            self._input(c)
        self._module._filters.set_conditional([int(c) for c in trigger], [int(c) for c in filtered])

    def clearConditionalFilter(self) -> None:
        self._module._filters.set_conditional([], [])

    def getConditionalFilterTrigger(self) -> tuple[int, ...]:
        return tuple(self._module._filters.trigger)

    def getConditionalFilterFiltered(self) -> tuple[int, ...]:
        return tuple(self._module._filters.filtered)

    def setTestSignal(self, channel, enabled) -> None:
        # one channel or a list of them, as the vendor's two overloads
        chans = [channel] if np.ndim(channel) == 0 else list(channel)
        for c in chans:
            self._input(c)
            (self._test_signal.add if enabled else self._test_signal.discard)(int(c))

    def getTestSignal(self, channel) -> bool:
        self._input(channel)
        return int(channel) in self._test_signal


class TimeTagStreamBuffer:
    """What ``TimeTagStream.getData()`` returns; like the vendor's, it has no public constructor."""

    def __init__(self, *args, **kwargs):
        raise AttributeError("No constructor defined")

    @classmethod
    def _make(cls, t, c, y, m, has_overflows: bool, t_start: int, t_get: int) -> "TimeTagStreamBuffer":
        buf = object.__new__(cls)
        buf._t = np.ascontiguousarray(t, np.int64)
        buf._c = np.ascontiguousarray(c, np.int32)
        buf._y = np.ascontiguousarray(y, np.uint8)
        buf._m = np.ascontiguousarray(m, np.uint16)
        buf._has_overflows, buf._t_start, buf._t_get = bool(has_overflows), int(t_start), int(t_get)
        return buf

    def getTimestamps(self) -> np.ndarray:
        return self._t.copy()

    def getChannels(self) -> np.ndarray:
        return self._c.copy()

    def getEventTypes(self) -> np.ndarray:
        return self._y.copy()

    def getMissedEvents(self) -> np.ndarray:
        return self._m.copy()

    @property
    def size(self) -> int:
        return int(self._t.size)

    @property
    def hasOverflows(self) -> bool:
        return self._has_overflows

    @property
    def tStart(self) -> int:
        return self._t_start

    @property
    def tGetData(self) -> int:
        return self._t_get


def make_buffer(t, c, y, m, *, has_overflows=False, t_start=0, t_get=None) -> TimeTagStreamBuffer:
    """A buffer with the given events (tests); ``t_get`` defaults to the last event's time."""
    t = np.asarray(t, np.int64)
    return TimeTagStreamBuffer._make(t, c, y, m, has_overflows, t_start,
                                     t_get if t_get is not None else (int(t[-1]) if t.size else 0))


class TimeTagStream:
    def __init__(self, tagger: TimeTagger, n_max_events, channels):
        if tagger._freed:
            raise RuntimeError("The Time Tagger object has been freed.")
        self._tagger = tagger
        self._mod = tagger._module
        self._n_max = int(n_max_events)
        self._channels = {int(c) for c in channels}
        self._running = False
        self._t_start = self._t_stop = None
        self._mod.streams.append(self)
        self.start()

    def start(self) -> None:
        if self._running:
            return
        now = self._mod._now()
        self._mod._feed.take(now, None)  # events before the (re)start are not recorded
        if self._t_start is None:
            self._t_start = now
        self._running, self._t_stop = True, None

    def stop(self) -> None:
        if self._running:
            self._running, self._t_stop = False, self._mod._now()

    def isRunning(self) -> bool:
        return self._running and not self._mod.finished

    def clear(self) -> None:
        now = self._mod._now()
        self._mod._feed.take(now, None)
        self._t_start = now

    def getData(self) -> TimeTagStreamBuffer:
        mod = self._mod
        mod.get_data_calls += 1
        now = mod._now()
        upto = now if self._running else self._t_stop
        if upto is None:
            t, c, y, m = _E_T, _E_C, np.zeros(0, np.uint8), np.zeros(0, np.uint16)
        else:
            t, c, y, m = mod._feed.take(upto, self._channels)
            if not self._running:
                self._t_stop = None  # what came before stop() is handed out once
        has_ov = bool(np.isin(y, _DEVICE_OVERFLOW_TYPES).any())  # the device's overflows, not this buffer's
        if t.size > self._n_max:
            # the stream's own buffer is full: the later events are lost, and only size == n_max_events says so
            kept = self._n_max
            lost_tags = y[kept:] == TagType.TimeTag
            mod.discarded_tags.append(TagChunk(t[kept:][lost_tags], c[kept:][lost_tags]))
            mod.full_buffers += 1
            t, c, y, m = t[:kept], c[:kept], y[:kept], m[:kept]
        return TimeTagStreamBuffer._make(t, c, y, m, has_ov, self._t_start, now)


class FileWriter:
    """Records what it was asked and writes nothing (see the module's docstring)."""

    def __init__(self, tagger: TimeTagger, filename, channels):
        self._tagger = tagger
        self.filename = str(filename)
        self.channels = [int(c) for c in channels]
        self.max_file_size = 1 << 30
        self.splits: list[str] = []
        self.running = True
        tagger._module.file_writers.append(self)

    def setMaxFileSize(self, max_file_size) -> None:
        self.max_file_size = int(max_file_size)

    def getMaxFileSize(self) -> int:
        return self.max_file_size

    def split(self, new_filename="") -> None:
        self.splits.append(str(new_filename))

    def stop(self) -> None:
        self.running = False

    def getTotalEvents(self) -> int:
        return 0


_BUSY = "No Time Tagger attached or already in use."


class FakeTimeTaggerModule:
    """Acts as the ``Swabian.TimeTagger`` module.

    ``tags``: a TagChunk or iterable of TagChunk (time-ordered; pulled lazily); ``overflows``: device-time intervals
    ``[(begin_ps, end_ps), ...]`` in which the device drops tags; ``errors``: device times of Error events;
    ``clock``: callable -> device time in ps (default: wall clock at real pace); ``end_time_ps``: when a finite feed
    ends the stream (default: never).  Opening: ``devices`` (serials connected), ``busy`` (serials in use by
    another program), ``highres`` (the devices have the HighRes licence), ``open_error`` (a vendor message every
    ``createTimeTagger`` raises, e.g. a USB error).
    """

    TagType = TagType
    ChannelEdge = ChannelEdge
    Resolution = Resolution
    TimeTagger = TimeTagger
    TimeTagStream = TimeTagStream
    TimeTagStreamBuffer = TimeTagStreamBuffer
    FileWriter = FileWriter

    def __init__(self, tags: TagChunk | Iterable[TagChunk] = (), *, overflows=(), errors=(),
                 clock: Callable[[], int] | None = None, end_time_ps: int | None = None,
                 devices=("1740000FAK",), busy=(), highres: bool = True, open_error: str | None = None):
        self._filters = _DeviceFilters()
        self._feed = _EventFeed(tags, overflows, errors, self._filters)
        self._clock = clock or WallClock()
        self.end_time_ps = end_time_ps if end_time_ps is not None else np.iinfo(np.int64).max
        self._last_now = 0
        self.devices, self.busy = tuple(devices), set(busy)
        self.highres, self.open_error = highres, open_error
        self.taggers: list[TimeTagger] = []
        self.streams: list[TimeTagStream] = []
        self.file_writers: list[FileWriter] = []
        self.get_data_calls = 0
        self.full_buffers = 0
        self.discarded_tags: list[TagChunk] = []  # tags a full stream buffer discarded (for tests)

    def _now(self) -> int:
        self._last_now = int(self._clock())
        return self._last_now

    @property
    def finished(self) -> bool:
        """All tags handed out and the clock past ``end_time_ps`` (the fake's notion of 'run over')."""
        return self._feed.exhausted and self._last_now >= self.end_time_ps

    # --- the vendor's module-level functions ---------------------------------------------------------------------
    def getVersion(self) -> str:
        return VERSION

    def scanTimeTagger(self, include_model_name=False) -> tuple[str, ...]:
        opened = {t._serial for t in self.taggers if not t._freed}
        free = [s for s in self.devices if s not in opened]
        return tuple(f"{s},{MODEL}" if include_model_name else s for s in free)

    def createTimeTagger(self, serial="", resolution=Resolution.Standard) -> TimeTagger:
        if self.open_error:
            raise RuntimeError(self.open_error)
        opened = {t._serial for t in self.taggers if not t._freed}
        if serial and serial not in self.devices:
            raise RuntimeError(f"Time Tagger with serial '{serial}' not attached or already in use.")
        candidates = [s for s in ([serial] if serial else self.devices) if s not in opened and s not in self.busy]
        if not candidates:
            raise RuntimeError(f"Time Tagger with serial '{serial}' not attached or already in use." if serial
                               else _BUSY)
        if int(resolution) != Resolution.Standard and not self.highres:
            raise RuntimeError(f"The Time Tagger '{candidates[0]}' does not have an installed license for the "
                               "HighRes mode. Please contact sales@swabianinstruments.com for further information.")
        tagger = TimeTagger(self, candidates[0], resolution)
        self.taggers.append(tagger)
        return tagger

    def freeTimeTagger(self, tagger) -> None:
        tagger._freed = True
        return None
