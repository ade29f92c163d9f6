"""Swabian Instruments Time Tagger ``FileWriter`` recordings (``.ttbin``), read through the vendor's ``FileReader``.

The format is compressed and undocumented; only Swabian's closed library reads it, so this module is a thin,
checked adapter over ``Swabian.TimeTagger.FileReader`` (``pip install "timetag[swabian]"``; without the package,
opening a ``.ttbin`` raises one-line :class:`~timetag.errors.FormatError` saying so).  No device and no licence are
needed to read files.

The path through the vendor API::

    fr = FileReader("name.ttbin")        # the first file of a split series reads the whole series
    fr.getConfiguration()                # JSON: the tagger's configuration when recording  -> meta['configuration']
    fr.getChannelList()                  #                                                   -> meta['channels']
    while fr.hasData():
        buf = fr.getData(chunk_size)     # TimeTagStreamBuffer: getTimestamps() int64 ps, getChannels() int32,
                                         # getEventTypes() uint8, getMissedEvents() uint16, tStart, hasOverflows
        -> one TagChunk per buffer: type 0 TimeTag -> a tag; 1 Error -> ERROR, 2 OverflowBegin -> OVERFLOW_BEGIN,
           3 OverflowEnd -> OVERFLOW_END, 4 MissedEvents -> MISSED (count = missed events, channel) lost-data
           events, exactly as the dump reader maps the same codes (:mod:`timetag.formats.dump`)

* **Split series.**  ``FileWriter`` splits a long recording into ``name.ttbin`` (the sequence head),
  ``name.1.ttbin``, ``name.2.ttbin``, ...; ``FileReader`` given ``name.ttbin`` reads them all as one stream, so
  give timetag the first file only (``meta['files']`` lists the files found).  Given ``name.3.ttbin`` it reads
  that one file (the vendor's rule).
* **Records.**  The API does not tell the number of events before reading them: ``records`` is None until one
  complete pass has been made, then the number of events (tags and lost-data events) read.
* **Checks.**  Tags go through :class:`~timetag.formats._common.OrderGuard` like a dump file's
  (``check_order`` default True: negative times, time going backwards and, with ``max_jump_ps``, far jumps are
  bad records under ``on_bad_record``; messages name the event index, a compressed file has no record offsets).
  An event type code outside 0..4 means a vendor API timetag does not know: FormatError, whatever the policy.
* **The vendor's own errors.**  ``FileReader`` does not raise on a file it cannot read: it logs ("Incorrect
  Header", "File access failed") to the console and keeps ``hasData()`` True.  The reader captures the vendor's
  log (``setLogger``, restoring whatever logger was installed before) around every call: an error-level message
  while opening or reading is a FormatError quoting it, other messages become warnings.  A file whose header the
  vendor accepts but that holds no tagger configuration (``FileWriter`` writes it into every file) is refused too.
* **Sniffing.**  Magic bytes ``SITT`` at offset 0, else the ``.ttbin`` extension.  The magic was learnt by probing
  the vendor's ``FileReader`` (a file starting otherwise is refused with "Incorrect Header"; one starting with
  ``SITT`` and a sane block header is accepted), not from a real recording: none could be made here (``FileWriter``
  needs a tagger; the virtual tagger needs a licence).
* **Following.**  ``FileReader`` documents reading files to their end, not following a file still being written:
  ``live --source follow:`` refuses ``.ttbin`` (use ``--source swabian`` for live data, ``replay:`` afterwards).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from ..chunk import DEFAULT_CHUNK_SIZE, TagChunk
from .swabian_vendor import events_to_chunk, vendor_module
from ..errors import FormatError, TimetagWarning
from ._common import GuardedReader, OrderGuard, check_bad_record_options, check_readable
from .dump import TYPE_ERROR, TYPE_MISSED, TYPE_OVERFLOW_BEGIN, TYPE_OVERFLOW_END, TYPE_TAG

NAME = "ttbin"
EXTENSIONS = (".ttbin",)
MAGIC = b"SITT"
EXTRA = 'pip install "timetag[swabian]"'
# the vendor's Tag.Type_* names and the dump codes they must have (checked against the installed module)
TYPE_NAMES = {"Type_TimeTag": TYPE_TAG, "Type_Error": TYPE_ERROR, "Type_OverflowBegin": TYPE_OVERFLOW_BEGIN,
              "Type_OverflowEnd": TYPE_OVERFLOW_END, "Type_MissedEvents": TYPE_MISSED}
LOGGER_ERROR = 40            # the vendor's LOGGER_ERROR where the module does not say
EMPTY_READS_ALLOWED = 3      # getData() returning nothing while hasData() says more: give up after this many

_LOG_STAMP = re.compile(r"^\d{1,2}-[A-Za-z]{3}-\d{4} \d{2}:\d{2}:\d{2}: ")
_NUMBERED = re.compile(r".*\.[1-9][0-9]*")


def sniff(path, head: bytes) -> bool:
    return head[:4] == MAGIC


def import_vendor(path=None):
    """The vendor module; FormatError naming the extra to install when it is not there."""
    module = vendor_module()
    if module is None:
        raise FormatError(f"reading Swabian .ttbin files needs the vendor's Time Tagger software, which is not "
                          f"installed: {EXTRA}", path=path)
    return module


def series_files(path: Path) -> list[Path]:
    """The files ``FileReader`` reads for ``path``: ``name.ttbin`` and the ``name.N.ttbin`` that exist after it, or
    ``path`` alone when it is itself a numbered part."""
    stem, ext = os.path.splitext(path.name)
    if _NUMBERED.fullmatch(stem):
        return [path]
    out, n = [path], 1
    while (path.parent / f"{stem}.{n}{ext}").exists():
        out.append(path.parent / f"{stem}.{n}{ext}")
        n += 1
    return out


class _VendorLog:
    """The vendor's log messages while it is installed as the vendor's logger: (level, text) pairs."""

    def __init__(self, module):
        self.module = module
        self.messages: list[tuple[int, str]] = []
        self.error_level = int(getattr(module, "LOGGER_ERROR", LOGGER_ERROR))

    def __call__(self, level, message) -> None:
        self.messages.append((int(level), _LOG_STAMP.sub("", str(message)).strip()))

    @property
    def errors(self) -> list[str]:
        return [m for lvl, m in self.messages if lvl >= self.error_level]

    def warn_others(self, path) -> None:
        for lvl, m in self.messages:
            if lvl < self.error_level:
                warnings.warn(f"{path}: Swabian FileReader: {m}", TimetagWarning, stacklevel=3)


@contextlib.contextmanager
def _vendor_log(module) -> Iterator[_VendorLog]:
    """Capture the vendor's log around a call (``setLogger``), then put back the logger installed before (or
    none, which sends the vendor's messages to the console again)."""
    log = _VendorLog(module)
    set_logger = getattr(module, "setLogger", None)
    if set_logger is None:
        yield log
        return
    before = getattr(set_logger, "logger", None)     # kept alive here: dropping it would unset the vendor's logger
    set_logger(log)
    try:
        yield log
    finally:
        set_logger(None)
        if before is not None and callable(getattr(before, "enable", None)):
            before.enable()                              # the same logger object again (the vendor's own call)
            set_logger.logger = before
        elif before is not None:
            set_logger(getattr(before, "callback", None))


def _release(reader) -> None:
    """Free a vendor object now (SWIG objects are context managers whose exit destroys them)."""
    exit_ = getattr(reader, "__exit__", None)
    if exit_ is not None:
        exit_(None, None, None)


def check_type_codes(module, path=None) -> None:
    """FormatError when the installed vendor module numbers its event types otherwise than the dump format."""
    tag = getattr(module, "Tag", None)
    if tag is None:
        return
    for name, code in TYPE_NAMES.items():
        value = getattr(tag, name, code)
        if int(getattr(value, "value", value)) != code:
            raise FormatError(f"the installed Time Tagger software numbers event type {name[5:]} as "
                              f"{int(getattr(value, 'value', value))}, timetag expects {code}: timetag needs an "
                              "update for this version", path=path)


class TtbinReader(GuardedReader):
    """Chunked reader of a ``.ttbin`` recording (and the split files that continue it) through ``FileReader``.

    ``module``: the vendor module or a stand-in offering ``FileReader`` (and optionally ``setLogger``, ``Tag``,
    ``getVersion``), for tests.  See the module docstring for the checks.
    """

    format = NAME
    resolution_ps = 1

    def __init__(self, path, chunk_size: int = DEFAULT_CHUNK_SIZE, check_order: bool = True,
                 on_bad_record: str = "fail", max_jump_ps: int | None = None, module=None, **_ignored):
        self.path = check_readable(path)
        self.chunk_size = max(int(chunk_size), 1)
        self.check_order = check_order
        self.on_bad_record, self.max_jump_ps = check_bad_record_options(on_bad_record, max_jump_ps)
        self._tt = module if module is not None else import_vendor(self.path)
        check_type_codes(self._tt, self.path)
        self.files = series_files(self.path)
        self.records: int | None = None
        fr = self._open()
        try:
            self.configuration = self._configuration(fr)
            self.channels = [int(c) for c in self._call(fr, "getChannelList")]
        finally:
            _release(fr)
        self._guard: OrderGuard | None = None
        self._counts = {"events": 0, "tags": 0, "lost_events": 0, "buffers_with_overflows": 0}
        self._t_start = None
        self._last_marker = None
        self._map = (0, 0, np.zeros(0, bool))     # (tags before the buffer, its first event index, its tag mask)

    # ------------------------------------------------------------------------------------------- vendor calls
    def _open(self):
        """A fresh FileReader over the file (and its series); FormatError when the vendor cannot read it."""
        with _vendor_log(self._tt) as log:
            try:
                fr = self._tt.FileReader(str(self.path))
            except (RuntimeError, ValueError, OSError) as exc:
                raise FormatError(f"Swabian's FileReader cannot open it: {exc}", path=self.path) from None
        if log.errors:
            _release(fr)
            raise FormatError("not a readable Time Tagger FileWriter (.ttbin) file: Swabian's FileReader says: "
                              + "; ".join(dict.fromkeys(log.errors)), path=self.path)
        log.warn_others(self.path)
        return fr

    def _call(self, fr, name: str, *args, after: int | None = None):
        """``fr.name(*args)`` with the vendor's log captured: its errors become a FormatError."""
        with _vendor_log(self._tt) as log:
            out = getattr(fr, name)(*args)
        if log.errors:
            where = f" after event {after}" if after is not None else ""
            raise FormatError(f"Swabian's FileReader failed{where}: " + "; ".join(dict.fromkeys(log.errors)),
                              path=self.path)
        log.warn_others(self.path)
        return out

    def _configuration(self, fr) -> dict:
        try:
            conf = self._call(fr, "getConfiguration")
        except ValueError:          # the vendor's wrapper parses the JSON: an empty or broken one fails there
            conf = None
        if isinstance(conf, (str, bytes)):
            try:
                conf = json.loads(conf)
            except ValueError:
                conf = None
        if not isinstance(conf, dict) or not conf:
            raise FormatError("Swabian's FileReader finds no Time Tagger configuration in it (FileWriter writes one "
                              "into every file): not a FileWriter recording, or its start is damaged",
                              path=self.path)
        return conf

    # ---------------------------------------------------------------------------------------------- reading
    @property
    def meta(self) -> dict:
        version = getattr(self._tt, "getVersion", None)
        m = {"files": [p.name for p in self.files], "configuration": self.configuration, "channels": self.channels,
             "reader": "Swabian FileReader" + (f" {version()}" if callable(version) else ""),
             "t_start_ps": self._t_start, "last_marker": self._last_marker, **self._counts}
        m.update(self.guard_meta())
        return m

    def _event_index(self, i: int) -> int:
        """Event index in the recording of the ``i``-th tag given to the order guard."""
        tags_before, first_event, is_tag = self._map
        return first_event + int(np.flatnonzero(is_tag)[i - tags_before])

    def __iter__(self) -> Iterator[TagChunk]:
        return self.iter_chunks()

    def iter_chunks(self, start: int = 0, stop: int | None = None) -> Iterator[TagChunk]:
        """Chunks of events [start, stop) (event indices: tags and lost-data events; the events before ``start``
        are read and dropped, the API cannot seek)."""
        start = max(0, int(start))
        stop = None if stop is None else max(int(stop), start)
        guard = self._guard = OrderGuard(self.path, check=self.check_order, index_of=self._event_index,
                                         on_bad_record=self.on_bad_record, max_jump_ps=self.max_jump_ps)
        self._counts = dict.fromkeys(self._counts, 0)
        fr = self._open()
        events, tags_in, empty, complete = 0, 0, 0, False
        try:
            while stop is None or events < stop:
                want = self.chunk_size if stop is None else min(self.chunk_size, stop - events)
                buf = self._call(fr, "getData", want, after=events)
                t, c, y, m = self._arrays(buf, events)
                if self._t_start is None and t.size:
                    self._t_start = int(buf.tStart)
                self._counts["buffers_with_overflows"] += bool(buf.hasOverflows)
                if t.size == 0:
                    empty += 1
                    if not fr.hasData():
                        complete = True
                        break
                    if empty >= EMPTY_READS_ALLOWED:
                        warnings.warn(f"{self.path}: Swabian's FileReader says it has more data but returned none "
                                      f"{empty} times: reading stops after event {events}", TimetagWarning,
                                      stacklevel=2)
                        break
                    continue
                empty = 0
                lo = min(max(start - events, 0), t.size)
                first = events + lo
                events += t.size
                if lo < t.size:
                    t, c, y, m = t[lo:], c[lo:], y[lo:], m[lo:]
                    bad = np.flatnonzero(y > TYPE_MISSED)
                    cut = int(bad[0]) if bad.size else t.size
                    # the codes before ``cut`` are known: the vendor's TagType values, the dump type byte's too
                    chunk = events_to_chunk(t[:cut], c[:cut], y[:cut], m[:cut], offset=tags_in)
                    is_tag = y[:cut] == TYPE_TAG
                    self._map = (tags_in, first, is_tag)
                    tags_in += len(chunk)
                    self._count(chunk, cut)
                    yield from guard.checked(chunk)
                    if bad.size:
                        raise FormatError(f"unknown event type code {int(y[cut])} in event {first + cut} (known: "
                                          "0 TimeTag, 1 Error, 2 OverflowBegin, 3 OverflowEnd, 4 MissedEvents; a "
                                          "newer Time Tagger software than timetag knows?)", path=self.path)
                if not fr.hasData():
                    complete = True
                    break
            self._last_marker = str(self._call(fr, "getLastMarker"))
        finally:
            _release(fr)
        if complete and start == 0 and stop is None:
            self.records = events

    def _arrays(self, buf, first: int):
        t = np.asarray(buf.getTimestamps(), dtype=np.int64)
        c = np.asarray(buf.getChannels(), dtype=np.int32)
        y = np.asarray(buf.getEventTypes(), dtype=np.uint8)
        m = np.asarray(buf.getMissedEvents(), dtype=np.uint16)
        size = int(buf.size)
        if not (t.size == c.size == y.size == m.size == size):
            raise FormatError(f"Swabian's FileReader returned a buffer of {size} events whose arrays differ in "
                              f"length (timestamps {t.size}, channels {c.size}, event types {y.size}, missed "
                              f"events {m.size}) after event {first}", path=self.path)
        return t, c, y, m

    def _count(self, chunk: TagChunk, events: int) -> None:
        self._counts["events"] += events
        self._counts["tags"] += len(chunk)
        self._counts["lost_events"] += int(chunk.lost.size)


def open_reader(path, chunk_size: int = DEFAULT_CHUNK_SIZE, **opts) -> TtbinReader:
    return TtbinReader(path, chunk_size, **opts)
