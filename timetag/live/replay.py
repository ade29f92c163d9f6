"""Replay a recorded tag file at real or accelerated pace, or follow a file that another process is still writing.

* :class:`ReplaySource` reads any supported tag file (``timetag.formats.open_tags`` when available, the dump
  reader otherwise) and releases it in slices of device time, each when the wall clock reaches its end divided by
  ``speed``; ``speed=None`` replays unpaced.
* :class:`FollowSource` tails a Swabian dump file as it grows (``tail -f``), and the numbered files that continue
  it: it reads only whole 16-byte records, leaving a partly written record for the next poll, checks them as the
  file reader does, and rejects a followed file that is truncated, replaced or rewritten.  It waits for data as
  long as the acquisition runs (or ``idle_timeout`` seconds), sending an empty heartbeat batch every poll.
* :class:`FollowPtuSource` and :class:`FollowQutagSource` do the same for a PicoQuant PTU file (T2 or T3) and a
  quTAG binary file that the vendor's software is writing: header first, then whole records as they appear (the
  header's record count, 0 or stale while recording, is ignored), checked as the file readers check them.
* :class:`FollowH5Source` does the same for a timetag HDF5 tag file written in SWMR mode.
* :func:`follow_source` picks the follower by magic bytes or extension; a Swabian ``.ttbin`` is refused (the
  vendor's FileReader reads files to their end; following a growing one is not part of its documented API).
"""
from __future__ import annotations

import abc
import os
import re
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from ..chunk import DEFAULT_CHUNK_SIZE, TagChunk, empty_lost, split
from ..errors import DataValidationError, FormatError
from ..formats import open_tags
from ..formats._common import OrderGuard, check_bad_record_options
from ..formats.dump import RECORD_DTYPE, RECORD_SIZE, DumpDecoder
from .sources import Batch, Pacer, Source, empty_chunk


def open_tag_reader(path, chunk_size: int = DEFAULT_CHUNK_SIZE, **opts):
    """A chunked reader for any supported format (``opts``: ``on_bad_record``, ``max_jump_ps``, ... as for
    :func:`timetag.formats.open_tags`)."""
    return open_tags(path, chunk_size=chunk_size, **opts)


class ReplaySource(Source):
    """Replay a recorded file; ``on_bad_record`` / ``max_jump_ps`` as for :func:`timetag.formats.open_tags` (in
    'fail' mode the tags before a bad record are replayed, then its error ends the run)."""

    def __init__(self, path, *, lab: str = "alice", speed: float | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 slice_s: float = 0.1, on_bad_record: str = "fail", max_jump_ps: int | None = None):
        super().__init__()
        self.path = Path(path)
        self.labs = (lab,)
        self.speed = speed
        self.chunk_size = int(chunk_size)
        self.read_opts = dict(zip(("on_bad_record", "max_jump_ps"),
                                  check_bad_record_options(on_bad_record, max_jump_ps)))
        # Paced replay cuts chunks every slice_s of wall time so rounds reach the disk promptly.
        self.slice_ps = int(slice_s * (speed or 1.0) * 1e12)
        self.description = f"replay of {self.path.name} ({'unpaced' if speed is None else f'x{speed:g}'})"
        self._tags = 0

    def _batches(self) -> Iterator[Batch]:
        reader = self._reader = open_tag_reader(self.path, chunk_size=self.chunk_size, **self.read_opts)
        pacer = Pacer(self.speed)
        lab = self.labs[0]
        for chunk in reader:
            pieces = [chunk] if self.speed is None else _time_slices(chunk, self.slice_ps)
            for piece in pieces:
                t_dev = _end_time(piece)
                if t_dev is not None and not self._sleep_until(pacer.due(t_dev)):
                    return
                self._tags += len(piece)
                yield Batch({lab: piece}, device_time_ps=t_dev)
        close = getattr(reader, "close", None)
        if close:
            close()

    def stats(self) -> dict:
        out = {"tags_read": self._tags}
        reader = getattr(self, "_reader", None)
        if reader is not None and self.read_opts["on_bad_record"] == "lost":   # 'fail' ends at the first one
            out["bad_records"] = reader.meta.get("bad_records", 0)
        return out


def _end_time(c: TagChunk) -> int | None:
    ends = [x for x in (c.last_time, int(c.lost["time"][-1]) if c.lost.size else None) if x is not None]
    return max(ends) if ends else None


def _time_slices(chunk: TagChunk, slice_ps: int) -> list[TagChunk]:
    """Cut a chunk where its tags cross multiples of ``slice_ps`` (lost events follow their tags)."""
    if len(chunk) < 2 or slice_ps <= 0:
        return [chunk]
    t = chunk.time
    edges = np.arange((int(t[0]) // slice_ps + 1) * slice_ps, int(t[-1]) + 1, slice_ps, dtype=np.int64)
    if edges.size == 0:
        return [chunk]
    cuts = np.unique(np.searchsorted(t, edges, side="left"))
    cuts = cuts[(cuts > 0) & (cuts < len(chunk))]
    return list(split(chunk, cuts.tolist()))


class _Follower(Source):
    """What both tail-mode sources share: one lab, real time, polling, the bad-record options, heartbeats while
    the file does not grow, the idle timeout and the record of how the iteration ended.

    ``idle_timeout`` None (or 0): wait for data as long as the acquisition runs.  ``end_reason`` is None while
    running and after an end on :meth:`stop`; after an idle timeout it says so ("idle timeout: no new data for
    5.0 s").  ``stats()['ended']`` tells every end apart: absent while running, then ``'stopped'``, the idle
    timeout's reason, or ``'error: ...'``.
    """

    def __init__(self, path, *, lab: str, poll_interval: float, idle_timeout: float | None, description: str,
                 on_bad_record: str = "fail", max_jump_ps: int | None = None):
        super().__init__()
        self.path = Path(path)
        self.labs = (lab,)
        self.speed = 1.0
        self.poll_interval = float(poll_interval)
        self.idle_timeout = float(idle_timeout) if idle_timeout else None
        self.on_bad_record, self.max_jump_ps = check_bad_record_options(on_bad_record, max_jump_ps)
        self.description = f"follow {self.path.name}{description}"
        self.end_reason: str | None = None
        self._ended: str | None = None
        self._last_growth = time.monotonic()

    def _batches(self) -> Iterator[Batch]:
        self._grew()
        try:
            yield from self._follow()
        except GeneratorExit:           # the consumer stopped iterating
            self._ended = self._ended or "stopped"
            raise
        except Exception as exc:
            self._ended = f"error: {exc}"
            raise
        self._ended = self.end_reason or "stopped"

    @abc.abstractmethod
    def _follow(self) -> Iterator[Batch]:
        """The batches, until stopped, idle for too long, or an error."""

    def _grew(self) -> None:
        self._last_growth = time.monotonic()

    @property
    def idle_s(self) -> float:
        """Seconds since the followed file last grew (or since the start)."""
        return time.monotonic() - self._last_growth

    def _idle_too_long(self) -> bool:
        """True (and ``end_reason`` set) once the file has not grown for ``idle_timeout`` seconds."""
        if self.idle_timeout is None or self.idle_s < self.idle_timeout:
            return False
        self.end_reason = f"idle timeout: no new data for {self.idle_timeout:.1f} s"
        return True

    def _pause(self, offset: int):
        """One poll without data: a heartbeat batch, then the poll interval's sleep; False when it is time to end."""
        yield Batch({self.labs[0]: empty_chunk(offset)})
        return self._sleep_until(time.monotonic() + self.poll_interval)

    def _common_stats(self) -> dict:
        out = {"idle_s": round(self.idle_s, 3)}
        ended = self._ended or ("stopped" if self.stopped else None)
        if ended:
            out["ended"] = ended
        return out


class _RecordFollower(_Follower):
    """Tail a growing file of fixed-size records after an optional header, and (``rotate``) the numbered files
    that continue it: what the dump, PTU and quTAG followers share.

    Only whole records are read: a partly written record waits for the next poll.  The followed file may only
    grow: one that shrinks, whose name now points to another file, that disappears, or whose last records read
    have changed (truncated and rewritten between two polls) raises :class:`~timetag.errors.DataValidationError`.
    The header is not watched (writers patch counts in it when they finish).  A subclass says how long a record
    is (``record_size``), how to read the header (:meth:`_header`: the byte offset of the first record, waiting
    while it is incomplete) and how to decode records (:meth:`_decode`).
    """

    record_size: int     # bytes per record (the subclass's)
    TAIL_BYTES = 16      # at least this many bytes of the last records read are compared at every poll

    def __init__(self, path, *, lab: str, poll_interval: float, idle_timeout: float | None, max_records: int,
                 wait_for_file: float, on_bad_record: str, max_jump_ps: int | None, rotate: bool,
                 description: str = ""):
        super().__init__(path, lab=lab, poll_interval=poll_interval, idle_timeout=idle_timeout,
                         description=description, on_bad_record=on_bad_record, max_jump_ps=max_jump_ps)
        self.max_records = int(max_records)
        self.wait_for_file = float(wait_for_file)
        self.files = _FileSequence(self.path, rotate)
        self._records = 0      # in all files
        self._bytes = 0
        self._tags = 0
        self._data = 0         # byte offset of the current file's first record
        self._pos = 0          # bytes of the current file read
        self._tail = b""       # the last records read, to notice a rewrite
        self._files_done = 0

    # ------------------------------------------------------------------------------------------ format hooks
    def _header(self, fh):
        """(generator) The byte offset of the first record once the header is complete, None if stopped first;
        heartbeats while waiting.  Without a header: 0."""
        return 0
        yield  # pragma: no cover  (a generator)

    @abc.abstractmethod
    def _decode(self, raw: bytes, index: int) -> tuple[list[TagChunk], Exception | None]:
        """(chunks, error or None) of whole records ``raw``, the first being record ``index`` of the file."""

    def _lose(self, index: int, reason: str, offset: int) -> tuple[np.ndarray, Exception | None]:
        """A bad record found by the follower (a partial final record): (lost events to pass on, error)."""
        return empty_lost(), FormatError(reason, path=self.files.current, offset=offset)

    def _file_changed(self, path: Path) -> None:
        """The follower moved on to ``path`` (rotation)."""

    def _end(self) -> list[TagChunk]:
        """Tags still held back when following ends normally."""
        return []

    # ----------------------------------------------------------------------------------------------- the loop
    def _follow(self) -> Iterator[Batch]:
        fh = yield from self._wait_open(self.files.current)
        if fh is None:
            return
        try:
            if not (yield from self._begin(fh)):
                return
            while not self.stopped:
                # looked at before the size: the writer finishes a file before it starts the next
                next_ready = self.files.next is not None and self.files.next.exists()
                size = self._check_unchanged(fh)
                n = min((size - self._pos) // self.record_size, self.max_records)
                if n > 0:
                    chunks, error = self._read(fh, n)
                    for chunk in chunks:
                        if len(chunk) or chunk.lost.size:
                            yield Batch({self.labs[0]: chunk}, device_time_ps=_end_time(chunk))
                    if error is not None:
                        raise error
                    continue  # more may be waiting: read again before sleeping
                if next_ready:
                    yield from self._complete(size)
                    fh.close()
                    fh = self._next_file()
                    if not (yield from self._begin(fh)):
                        return
                    continue
                if self._idle_too_long() or not (yield from self._pause(self._tags)):
                    break
            for chunk in self._end():
                if len(chunk) or chunk.lost.size:
                    yield Batch({self.labs[0]: chunk}, device_time_ps=_end_time(chunk))
        finally:
            fh.close()

    def _begin(self, fh):
        """(generator) Read the header of a newly opened file; False if stopped first."""
        data = yield from self._header(fh)
        if data is None:
            return False
        self._data = self._pos = int(data)
        self._tail = b""
        return True

    def _wait_open(self, path: Path):
        """The open file once it exists (heartbeats meanwhile), None if stopped first; FormatError after
        ``wait_for_file`` seconds."""
        deadline = time.monotonic() + self.wait_for_file
        while True:
            try:
                return open(path, "rb")
            except FileNotFoundError:
                if time.monotonic() >= deadline:
                    raise FormatError(f"no such file (waited {self.wait_for_file:g} s for it to appear)",
                                      path=path) from None
            if not (yield from self._pause(self._tags)):
                return None

    def _check_unchanged(self, fh) -> int:
        """The size of the followed file, after making sure it is still the file read so far, only grown."""
        path, st = self.files.current, os.fstat(fh.fileno())
        _check_same_file(path, st)
        if st.st_size < self._pos:
            raise DataValidationError(f"file was truncated from {self._pos} to {st.st_size} bytes while being "
                                      "followed", path=path)
        if self._tail:
            start = self._pos - len(self._tail)
            now = os.pread(fh.fileno(), len(self._tail), start)
            if now != self._tail:
                k = next(i for i in range(len(self._tail)) if i >= len(now) or now[i] != self._tail[i])
                at = start + k - (start + k - self._data) % self.record_size
                raise DataValidationError(f"file was rewritten while being followed: the record at byte {at} "
                                          "changed", path=path)
        return st.st_size

    def _read(self, fh, n: int):
        """(chunks, error or None) of the next ``n`` whole records."""
        raw = os.pread(fh.fileno(), n * self.record_size, self._pos)
        n = len(raw) // self.record_size
        raw = raw[:n * self.record_size]
        chunks, error = self._decode(raw, (self._pos - self._data) // self.record_size)
        keep = -(-self.TAIL_BYTES // self.record_size) * self.record_size
        self._tail = raw[-keep:] if len(raw) >= keep else (self._tail + raw)[-keep:]
        self._pos += n * self.record_size
        self._records += n
        self._bytes += n * self.record_size
        self._tags += sum(len(c) for c in chunks)
        self._grew()
        return chunks, error

    def _complete(self, size: int) -> Iterator[Batch]:
        """The end of a file the next one continues: its partial final record, if any, is a bad record."""
        partial = size - self._pos
        if partial:
            events, error = self._lose(
                (self._pos - self._data) // self.record_size, f"partial final record ({partial} of "
                f"{self.record_size} bytes) left when the next file {self.files.next.name} began", self._pos)
            if events.size:
                yield Batch({self.labs[0]: TagChunk(np.zeros(0, np.int64), np.zeros(0, np.int32), events,
                                                    self._tags)})
            if error is not None:
                raise error

    def _next_file(self):
        self.files.advance()
        self._files_done += 1
        self._file_changed(self.files.current)
        self._grew()
        try:
            return open(self.files.current, "rb")
        except FileNotFoundError:
            raise DataValidationError("file disappeared right after it appeared", path=self.files.current) from None

    def _wait_header(self, fh, parse):
        """(generator) ``parse(fh)`` -> the first record's offset, retried at every poll while the header is
        still being written (``parse`` returns None); None if stopped first.  The idle timeout applies."""
        while True:
            _check_same_file(self.files.current, os.fstat(fh.fileno()))
            fh.seek(0)
            data = parse(fh)
            if data is not None:
                self._grew()
                return data
            if self._idle_too_long() or not (yield from self._pause(self._tags)):
                return None

    def stats(self) -> dict:
        return {"records_read": self._records, "bytes_read": self._bytes, "file": self.files.current.name,
                "files_done": self._files_done, **self._common_stats()}


class FollowSource(_RecordFollower):
    """Tail a growing dump file (``follow:FILE``) and the numbered files that continue it.

    * Checks: records are decoded by :class:`~timetag.formats.dump.DumpDecoder`, like a dump file read by
      ``timetag process``: an unknown record type, a nonzero reserved byte, a negative time, time going
      backwards and (with ``max_jump_ps``) a jump forward beyond it are bad records.  ``on_bad_record='fail'``
      (default) passes on the records before one, then raises an error naming the file, the record index in it
      and its byte offset; ``'lost'`` makes it a lost-data interval and reads on (``stats()['bad_records']``).
    * A followed file may only grow.  One that shrinks ("FILE: file was truncated from N to M bytes while being
      followed"), whose name now points to another file (replaced: inode or device changed), that disappears, or
      whose last record read has changed (truncated and rewritten between two polls) raises
      :class:`~timetag.errors.DataValidationError`.
    * Rotation (``rotate=True``): FILE ``name.dump`` is continued by ``name.1.dump``, ``name.2.dump``, ... (the
      numbering of Swabian's FileWriter; following ``name.3.dump`` continues with ``name.4.dump``; a trailing
      number of up to 6 digits without a leading zero counts as such).  A FILE with ``{n}`` in its name is an
      explicit pattern, formatted with n = 0, 1, 2, ... (``run_{n}.dump``, ``run_{n:03d}.dump``).  Once the next
      file exists the current one is complete: it is read to its end (a partial final record there is a bad
      record) and following moves on; the files form one stream (order checks carry across them).
    * Idle: see :class:`_Follower` (heartbeat batches every ``poll_interval``, ``stats()['idle_s']``,
      ``idle_timeout``, ``end_reason``).  The first file may take up to ``wait_for_file`` seconds to appear.
    """

    record_size = RECORD_SIZE

    def __init__(self, path, *, lab: str = "alice", poll_interval: float = 0.2, idle_timeout: float | None = None,
                 max_records: int = 1_000_000, wait_for_file: float = 10.0, on_bad_record: str = "fail",
                 max_jump_ps: int | None = None, rotate: bool = True):
        super().__init__(path, lab=lab, poll_interval=poll_interval, idle_timeout=idle_timeout,
                         max_records=max_records, wait_for_file=wait_for_file, on_bad_record=on_bad_record,
                         max_jump_ps=max_jump_ps, rotate=rotate)
        self._decoder = DumpDecoder(self.files.current, on_bad_record=self.on_bad_record,
                                    max_jump_ps=self.max_jump_ps)

    def _decode(self, raw: bytes, index: int):
        rec = np.frombuffer(raw, RECORD_DTYPE)
        chunk, error = self._decoder.decode(rec, index, offset=self._tags)
        return [chunk], error

    def _lose(self, index: int, reason: str, offset: int):
        return self._decoder.lose(index, reason, offset)

    def _file_changed(self, path: Path) -> None:
        self._decoder.path = path

    def stats(self) -> dict:
        return {**super().stats(), "bad_records": self._decoder.bad.count}


class FollowPtuSource(_RecordFollower):
    """Tail a PicoQuant PTU file (T2 or T3, every record type the PTU reader knows) that the vendor's software is
    still writing: the header first, then 32-bit records appended.

    The header is read once it is complete (up to ``Header_End``; until then the source waits, sending
    heartbeats), and its record count is ignored: while recording it is 0 or stale, so records are read as they
    appear, whole 32-bit words only.  They are decoded by the PTU reader's decoder (overflow state carried across
    polls), so the tags are those ``open_tags`` gives for the finished file; like the PTU file reader this
    source does not police time order (markers may be slightly out of order), it counts backward steps
    (``stats()['backward_steps']``).  ``on_bad_record`` / ``max_jump_ps`` therefore do not apply.  Truncation,
    replacement and rewriting of the records read are errors as for :class:`FollowSource`; the header is not
    watched (the software patches its counts at the end).  PTU files are not continued by numbered files.
    """

    record_size = 4

    def __init__(self, path, *, lab: str = "alice", poll_interval: float = 0.2, idle_timeout: float | None = None,
                 max_records: int = 4_000_000, wait_for_file: float = 10.0, on_bad_record: str = "fail",
                 max_jump_ps: int | None = None):
        super().__init__(path, lab=lab, poll_interval=poll_interval, idle_timeout=idle_timeout,
                         max_records=max_records, wait_for_file=wait_for_file, on_bad_record=on_bad_record,
                         max_jump_ps=max_jump_ps, rotate=False, description=" (PTU)")
        self.layout = None
        self._decoder = None
        self._guard = OrderGuard(self.path, check=False)     # counts backward steps, as `timetag info` does

    def _header(self, fh):
        from ..formats.ptu import MAGIC, RecordLayout, parse_header

        path = self.files.current

        def parse(fh):
            head = fh.read(len(MAGIC))
            if head != MAGIC[:len(head)]:
                raise FormatError(f"wrong magic {head!r} (a PTU file starts with {MAGIC!r})", path=path, offset=0)
            fh.seek(0)
            watched = _EofWatch(fh)
            try:
                tags, _, data = parse_header(watched, path)
            except FormatError:
                if watched.short:     # the header is still being written
                    return None
                raise
            self.layout = RecordLayout.from_tags(tags, path)
            return data

        data = yield from self._wait_header(fh, parse)
        if data is not None:
            self._decoder = self.layout.decoder()
        return data

    def _decode(self, raw: bytes, index: int):
        t, c = self._decoder.decode(np.frombuffer(raw, "<u4"))
        chunk = TagChunk(t, c, offset=self._tags)
        return list(self._guard.checked(chunk)), None

    def stats(self) -> dict:
        out = super().stats()
        if self.layout is not None:
            out.update(device=self.layout.device, mode="T3" if self.layout.is_t3 else "T2",
                       **(self._decoder.counters if self._decoder is not None else {}))
        out["backward_steps"] = self._guard.backward_steps
        return out


class FollowQutagSource(_RecordFollower):
    """Tail a qutools quTAG binary file (``FORMAT_BINARY``: 40-byte header, 10-byte records) still being written.

    Records are read as they appear (whole 10-byte records only) and checked by the quTAG file reader's decoder
    (:class:`~timetag.formats.qutag.QutagDecoder`): a time going backwards, a negative time or one beyond int64,
    and a jump beyond ``max_jump_ps`` are bad records under ``on_bad_record`` as for :class:`FollowSource`
    (``tolerance_ps`` reorders small backward steps as the file reader does; the tags it holds back are released
    when following ends).  The header's file-size field is not checked while the file grows.  Truncation,
    replacement and rewriting are errors as for :class:`FollowSource`.  quTAG files are not continued by
    numbered files.
    """

    def __init__(self, path, *, lab: str = "alice", poll_interval: float = 0.2, idle_timeout: float | None = None,
                 max_records: int = 1_000_000, wait_for_file: float = 10.0, on_bad_record: str = "fail",
                 max_jump_ps: int | None = None, tolerance_ps: int = 0):
        from ..formats import qutag

        super().__init__(path, lab=lab, poll_interval=poll_interval, idle_timeout=idle_timeout,
                         max_records=max_records, wait_for_file=wait_for_file, on_bad_record=on_bad_record,
                         max_jump_ps=max_jump_ps, rotate=False, description=" (quTAG)")
        self._fmt = qutag
        self.record_size = qutag.RECORD_SIZE
        self._decoder = qutag.QutagDecoder(self.path, tolerance_ps=int(tolerance_ps),
                                           on_bad_record=self.on_bad_record, max_jump_ps=self.max_jump_ps)

    def _header(self, fh):
        q, path = self._fmt, self.files.current

        def parse(fh):
            head = fh.read(q.HEADER_SIZE)
            if head[:4] != q.MAGIC[:len(head[:4])]:
                raise FormatError(f"wrong magic {head[:4].hex(' ')} (a quTAG binary file starts with 87 b3 91 fa)",
                                  path=path, offset=0)
            return q.HEADER_SIZE if len(head) == q.HEADER_SIZE else None

        return (yield from self._wait_header(fh, parse))

    def _decode(self, raw: bytes, index: int):
        rec = np.frombuffer(raw, self._fmt.RECORD_DTYPE)
        return _collect(self._decoder.chunks(rec, index))

    def _end(self) -> list[TagChunk]:
        return self._decoder.flush()

    def stats(self) -> dict:
        return {**super().stats(), "bad_records": self._decoder.guard.bad.count}


def _collect(chunks: Iterator[TagChunk]) -> tuple[list[TagChunk], Exception | None]:
    """(the chunks a checking decoder yields, the error it raises after them or None)."""
    out: list[TagChunk] = []
    try:
        for c in chunks:
            out.append(c)
    except (FormatError, DataValidationError) as exc:
        return out, exc
    return out, None


class _EofWatch:
    """A binary file whose reads notice when they come up short (the end of a file still being written)."""

    def __init__(self, fh):
        self._fh = fh
        self.short = False

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        if n is not None and n >= 0 and len(data) < n:
            self.short = True
        return data


class _FileSequence:
    """The files a followed dump file continues into (see :class:`FollowSource`)."""

    _NUMBERED = re.compile(r"(.*)\.([1-9][0-9]{0,5})")

    def __init__(self, path: Path, rotate: bool):
        self.rotate = rotate
        self._dir, name = path.parent, path.name
        self._pattern = name if "{n" in name else None
        if self._pattern is not None:
            self.n = 0
            try:
                self._name(0)
            except (KeyError, IndexError, ValueError) as exc:
                raise FormatError(f"bad file pattern {name!r} ({exc}): write the number as {{n}} or e.g. {{n:03d}}",
                                  path=path) from None
            return
        stem, self._ext = os.path.splitext(name)
        numbered = self._NUMBERED.fullmatch(stem)
        self._base, self.n = (numbered.group(1), int(numbered.group(2))) if numbered else (stem, 0)

    def _name(self, n: int) -> str:
        if self._pattern is not None:
            return self._pattern.format(n=n)
        return f"{self._base}.{n}{self._ext}" if n else f"{self._base}{self._ext}"

    @property
    def current(self) -> Path:
        return self._dir / self._name(self.n)

    @property
    def next(self) -> Path | None:
        return self._dir / self._name(self.n + 1) if self.rotate else None

    def advance(self) -> None:
        self.n += 1


class FollowH5Source(_Follower):
    """Tail a timetag HDF5 tag file (``/photon_data/timestamps``, ``detectors``; lost events in ``/user/timetag``)
    that another process writes in SWMR mode (``h5py.File(..., libver='latest')`` then ``swmr_mode = True``).

    Rows are taken up to the shorter of the two tag datasets (the writer resizes them one after the other);
    lost-data events are released once a tag at or after their time has been read, so that they land in the
    right chunk, and the rest at the end.  Tags go through the order checks of the HDF5 file reader
    (:class:`~timetag.formats._common.OrderGuard`: negative times, time going backwards, jumps beyond
    ``max_jump_ps``; the record index is the row) under ``on_bad_record`` as in :class:`FollowSource`.  Datasets
    that shrink (truncated) or a name that now points to another file (replaced) raise
    :class:`~timetag.errors.DataValidationError`.  Idle behaviour: see :class:`_Follower`.
    """

    def __init__(self, path, *, lab: str = "alice", poll_interval: float = 0.2, idle_timeout: float | None = None,
                 max_rows: int = 1_000_000, on_bad_record: str = "fail", max_jump_ps: int | None = None):
        super().__init__(path, lab=lab, poll_interval=poll_interval, idle_timeout=idle_timeout,
                         description=" (HDF5)", on_bad_record=on_bad_record, max_jump_ps=max_jump_ps)
        self.max_rows = int(max_rows)
        self._rows = 0
        self._guard = OrderGuard(self.path, on_bad_record=self.on_bad_record, max_jump_ps=self.max_jump_ps)

    def _follow(self) -> Iterator[Batch]:
        import h5py

        from ..chunk import LOST_DTYPE

        try:
            f = h5py.File(self.path, "r", libver="latest", swmr=True)
        except OSError as exc:
            raise FormatError(f"cannot follow this HDF5 file ({exc}); the writer must use SWMR mode",
                              path=self.path) from None
        opened = os.stat(self.path)
        lab = self.labs[0]
        with f:
            try:
                ts, det = f["photon_data/timestamps"], f["photon_data/detectors"]
            except KeyError:
                raise FormatError("no /photon_data/timestamps and /detectors: not a tag file", path=self.path) from None
            # lost-data events: /user/timetag/lost (Photon-HDF5 tag files), /photon_data/lost (format 1)
            lost_key = next((k for k in ("user/timetag/lost", "photon_data/lost") if k in f), None)
            lost_ds = f[lost_key] if lost_key is not None else None
            lpos = 0
            held = np.zeros(0, LOST_DTYPE)
            while not self.stopped:
                for ds in (ts, det) + ((lost_ds,) if lost_ds is not None else ()):
                    ds.refresh()
                n_avail = min(ts.shape[0], det.shape[0])
                _check_same_file(self.path, opened)
                if n_avail < self._rows:
                    raise DataValidationError(f"file was truncated from {self._rows} to {n_avail} rows while being "
                                              "followed", path=self.path)
                n = min(n_avail - self._rows, self.max_rows)
                new_lost = np.zeros(0, LOST_DTYPE)
                if lost_ds is not None and lost_ds.shape[0] > lpos:
                    new_lost = np.asarray(lost_ds[lpos:lost_ds.shape[0]]).astype(LOST_DTYPE)
                    lpos = lost_ds.shape[0]
                held = np.concatenate([held, new_lost]) if new_lost.size else held
                if n > 0:
                    t = np.asarray(ts[self._rows:self._rows + n], dtype=np.int64)
                    c = np.asarray(det[self._rows:self._rows + n], dtype=np.int32)
                    last_t = int(t[-1])
                    k = int(np.searchsorted(held["time"], last_t, side="right"))
                    chunk = TagChunk(t, c, held[:k], self._rows)
                    held = held[k:]
                    self._rows += n
                    self._grew()
                    for out in self._guard.checked(chunk):    # in 'fail' mode: the good part, then the error
                        yield Batch({lab: out}, device_time_ps=last_t)
                    continue
                if new_lost.size:
                    self._grew()
                if self._idle_too_long() or not (yield from self._pause(self._rows)):
                    break
            if held.size:  # lost events after the last tag: still part of the stream
                for out in self._guard.checked(TagChunk(np.zeros(0, np.int64), np.zeros(0, np.int32), held,
                                                        self._rows)):
                    yield Batch({lab: out})

    def stats(self) -> dict:
        return {"rows_read": self._rows, "bad_records": self._guard.bad.count, **self._common_stats()}


def _check_same_file(path: Path, opened: os.stat_result) -> None:
    """DataValidationError when ``path`` no longer names the file that was opened (replaced, removed, renamed)."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        raise DataValidationError("file was removed or renamed while being followed", path=path) from None
    if (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino):
        raise DataValidationError(f"file was replaced (inode changed: {opened.st_dev}:{opened.st_ino} -> "
                                  f"{now.st_dev}:{now.st_ino}) while being followed", path=path)


H5_MAGIC = b"\x89HDF\r\n\x1a\n"


def follow_kind(path) -> str:
    """Which follower a file needs: 'h5', 'ptu', 'qutag', 'ttbin' or 'dump', by its first bytes when it has them
    (magic bytes), else by its extension (a file not yet created, or whose header is still being written)."""
    from ..formats import FORMATS

    p = Path(path)
    head = b""
    if p.is_file():
        with open(p, "rb") as fh:
            head = fh.read(8)
    magics = {"h5": H5_MAGIC, "ptu": FORMATS["ptu"].magic, "qutag": FORMATS["qutag"].magic,
              "ttbin": FORMATS["ttbin"].magic}
    for kind, magic in magics.items():
        if len(head) >= len(magic) and head.startswith(magic):
            return kind
    ext = p.suffix.lower()
    for kind in ("h5", "ptu", "qutag", "ttbin"):
        if ext in FORMATS[kind].extensions:
            return kind
    return "dump"


def follow_source(path, **kw) -> Source:
    """The follower for a file: :class:`FollowH5Source`, :class:`FollowPtuSource`, :class:`FollowQutagSource` or
    :class:`FollowSource` (dump), by :func:`follow_kind`.  A Swabian ``.ttbin`` recording is refused: the vendor's
    FileReader reads finished files (its ``hasData()`` is documented as the end of the files named, not as
    "nothing new yet"), so a file still being written cannot be followed through it."""
    p = Path(path)
    kind = follow_kind(p)
    if kind == "ttbin":
        raise FormatError("cannot follow a Swabian .ttbin (FileWriter) recording while it is written: the vendor's "
                          "FileReader reads a file to its end and is not documented to see data appended later. "
                          "For live data use --source swabian (the Time "
                          "Tagger itself), or record with the Dump measurement and follow the .dump file; replay "
                          "the .ttbin with --source replay:FILE once it is complete", path=p)
    if kind == "h5":
        kw.pop("wait_for_file", None)
        kw.pop("rotate", None)
        return FollowH5Source(p, **kw)
    if kind in ("ptu", "qutag"):
        kw.pop("rotate", None)
        return (FollowPtuSource if kind == "ptu" else FollowQutagSource)(p, **kw)
    return FollowSource(p, **kw)
