"""Live source over a Swabian Instruments Time Tagger (``pip install Swabian-TimeTagger``; closed source).

The module is imported only when a :class:`SwabianSource` starts, so timetag works without it.  The adapter uses
``createTimeTagger`` / ``TimeTagStream(tagger, n_max_events, channels)`` and polls ``getData()``; each buffer's
``getTimestamps()``, ``getChannels()``, ``getEventTypes()``, ``getMissedEvents()`` become one
:class:`~timetag.chunk.TagChunk`, with the non-tag event types turned into lost-data events:

=====================  ==========================
TagType                lost-data event
=====================  ==========================
OverflowBegin (2)      ``OVERFLOW_BEGIN``
OverflowEnd (3)        ``OVERFLOW_END``
MissedEvents (4)       ``MISSED`` (count = missed events of that channel)
Error (1)              ``ERROR``
=====================  ==========================

A buffer flagged ``hasOverflows`` without any overflow event in it means the stream's own buffer filled up
(polled too slowly, ``n_max_events`` too small): the tags after the last one delivered are gone, so the interval
from there to the buffer's ``tGetData`` is marked lost (begin/end pair) — flagged rounds, never silence.
"""
from __future__ import annotations

import time
from typing import Iterator, Sequence

import numpy as np

from ..chunk import ERROR, LOST_DTYPE, MISSED, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk
from ..errors import FormatError, TimetagError
from .sources import Batch, Source

# Codes of the Time Tagger's TagType enum (identical to the Dump file's type byte).
TT_TIMETAG, TT_ERROR, TT_OVERFLOW_BEGIN, TT_OVERFLOW_END, TT_MISSED = 0, 1, 2, 3, 4


def import_timetagger():
    """The vendor module: ``Swabian.TimeTagger`` (current packages) or ``TimeTagger`` (older installers)."""
    try:
        from Swabian import TimeTagger  # type: ignore[import-not-found]

        return TimeTagger
    except ImportError:
        pass
    try:
        import TimeTagger  # type: ignore[import-not-found]

        return TimeTagger
    except ImportError:
        raise TimetagError("the Swabian Time Tagger software is not installed: `pip install Swabian-TimeTagger` "
                           "(or use --source swabian-fake for a demonstration without hardware)") from None


def _type_codes(module) -> dict[int, int]:
    """TagType code -> lost kind, read from the module's enum where it has one (so a renumbering is caught)."""
    tt = getattr(module, "TagType", None)

    def code(name, default):
        v = getattr(tt, name, default) if tt is not None else default
        return int(getattr(v, "value", v))

    return {code("Error", TT_ERROR): ERROR, code("OverflowBegin", TT_OVERFLOW_BEGIN): OVERFLOW_BEGIN,
            code("OverflowEnd", TT_OVERFLOW_END): OVERFLOW_END, code("MissedEvents", TT_MISSED): MISSED}


def buffer_to_chunk(buf, *, type_codes: dict[int, int] | None = None, tag_code: int = TT_TIMETAG,
                    offset: int = 0) -> TagChunk:
    """One ``TimeTagStreamBuffer`` as a TagChunk (tags + lost-data events in time order)."""
    type_codes = type_codes or {TT_ERROR: ERROR, TT_OVERFLOW_BEGIN: OVERFLOW_BEGIN, TT_OVERFLOW_END: OVERFLOW_END,
                                TT_MISSED: MISSED}
    t = np.asarray(buf.getTimestamps(), dtype=np.int64)
    c = np.asarray(buf.getChannels(), dtype=np.int32)
    y = np.asarray(buf.getEventTypes())
    if y.dtype == object:  # enum members rather than integers
        y = np.array([int(getattr(v, "value", v)) for v in y], dtype=np.int64)
    y = y.astype(np.int64, copy=False)
    m = np.asarray(buf.getMissedEvents(), dtype=np.int64)
    if not (t.size == c.size == y.size == m.size):
        raise FormatError(f"Time Tagger buffer arrays differ in length: timestamps {t.size}, channels {c.size}, "
                          f"event types {y.size}, missed events {m.size}")
    is_tag = y == tag_code
    lost_sel = ~is_tag
    kinds = np.zeros(y.size, np.uint8)
    for code, kind in type_codes.items():
        kinds[y == code] = kind
    unknown = lost_sel & (kinds == 0)
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise FormatError(f"unknown Time Tagger event type {int(y[i])} at event {offset + i} "
                          f"(known: {tag_code} TimeTag, {sorted(type_codes)})")
    lost = np.zeros(int(lost_sel.sum()), LOST_DTYPE)
    lost["time"], lost["kind"], lost["channel"], lost["count"] = t[lost_sel], kinds[lost_sel], c[lost_sel], m[lost_sel]
    if getattr(buf, "hasOverflows", False) and not np.any((lost["kind"] == OVERFLOW_BEGIN) | (lost["kind"] == OVERFLOW_END)):
        t_tags = t[is_tag]
        begin = int(t_tags[-1]) if t_tags.size else int(getattr(buf, "tStart", t[0] if t.size else 0))
        end = max(begin, int(getattr(buf, "tGetData", begin)))
        extra = np.zeros(2, LOST_DTYPE)
        extra["time"] = (begin, end)
        extra["kind"] = (OVERFLOW_BEGIN, OVERFLOW_END)
        lost = np.concatenate([lost, extra])
        lost = lost[np.argsort(lost["time"], kind="stable")]
    return TagChunk(t[is_tag], c[is_tag], lost, offset)


class SwabianSource(Source):
    """One Time Tagger = one lab.  ``module``: the vendor module or a stand-in (see :mod:`.fake_swabian`)."""

    def __init__(self, channels: Sequence[int], *, lab: str = "alice", serial: str = "",
                 n_max_events: int = 20_000_000, poll_interval: float = 0.05, module=None, tagger=None,
                 conditional_filter: tuple[Sequence[int], Sequence[int]] | None = None,
                 duration_device_s: float | None = None):
        super().__init__()
        if not channels:
            raise TimetagError("SwabianSource needs the channels to stream (from the setup's lab)")
        self.channels = [int(c) for c in channels]
        self.labs = (lab,)
        self.serial = serial
        self.n_max_events = int(n_max_events)
        self.poll_interval = float(poll_interval)
        self._module = module
        self._tagger = tagger
        self._own_tagger = tagger is None
        self.conditional_filter = conditional_filter
        self.duration_device_s = duration_device_s
        self._stream = None
        self.speed = 1.0
        self.description = f"Swabian Time Tagger{(' ' + serial) if serial else ''} channels {self.channels}"
        self._stats = {"buffers": 0, "events": 0, "overflow_buffers": 0, "stream_buffer_full": 0,
                       "missed_events": 0, "device_errors": 0}

    def start(self) -> None:
        if self._stream is not None:
            return
        super().start()
        self.connect()
        mod = self._module
        self._codes = _type_codes(mod)
        tt = getattr(mod, "TagType", None)
        self._tag_code = int(getattr(getattr(tt, "TimeTag", TT_TIMETAG), "value", getattr(tt, "TimeTag", TT_TIMETAG))) \
            if tt is not None else TT_TIMETAG
        if self.conditional_filter is not None:
            trig, filt = self.conditional_filter
            self._tagger.setConditionalFilter(trigger=list(trig), filtered=list(filt))
        self._stream = mod.TimeTagStream(self._tagger, self.n_max_events, self.channels)

    def _batches(self) -> Iterator[Batch]:
        offset = 0
        t_first = None
        next_poll = time.monotonic()
        while not self.stopped:
            next_poll += self.poll_interval
            if not self._sleep_until(next_poll):
                break
            buf = self._stream.getData()
            arrival = time.monotonic()
            chunk = buffer_to_chunk(buf, type_codes=self._codes, tag_code=self._tag_code, offset=offset)
            offset += len(chunk)
            s = self._stats
            s["buffers"] += 1
            s["events"] += int(getattr(buf, "size", len(chunk) + chunk.lost.size))
            if getattr(buf, "hasOverflows", False):
                s["overflow_buffers"] += 1
            if int(getattr(buf, "size", 0)) >= self.n_max_events:
                s["stream_buffer_full"] += 1
            s["missed_events"] += int(chunk.lost["count"][chunk.lost["kind"] == MISSED].sum())
            s["device_errors"] += int(np.count_nonzero(chunk.lost["kind"] == ERROR))
            t_dev = int(getattr(buf, "tGetData", chunk.last_time or 0))
            yield Batch({self.labs[0]: chunk}, arrival=arrival, device_time_ps=t_dev)
            if t_first is None:
                t_first = int(getattr(buf, "tStart", t_dev))
            if self.duration_device_s is not None and (t_dev - t_first) * 1e-12 >= self.duration_device_s:
                break
            if getattr(self._module, "finished", False):  # the fake device's end of data
                break

    def stats(self) -> dict:
        return dict(self._stats)

    def connect(self) -> None:
        """Load the vendor module and open the device (once; :meth:`start` does it too).  The CLI calls it before
        the run makes its files, so that a missing package or device is refused with nothing left behind."""
        if self._module is None:
            self._module = import_timetagger()
        if self._tagger is None:
            mod = self._module
            try:
                self._tagger = mod.createTimeTagger(self.serial) if self.serial else mod.createTimeTagger()
            except RuntimeError as exc:  # the vendor library's word for: no device attached, or it is in use
                raise TimetagError(f"cannot open the Swabian Time Tagger{(' ' + self.serial) if self.serial else ''}"
                                   f": {exc}") from None

    def close(self) -> None:
        try:
            if self._stream is not None:
                self._stream.stop()
        finally:
            self._stream = None
            if self._own_tagger and self._tagger is not None:  # also a device opened by connect() but not run
                self._module.freeTimeTagger(self._tagger)
                self._tagger = None
