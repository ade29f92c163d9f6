"""Replay a recorded tag file at real or accelerated pace, or follow a file that another process is still writing.

* :class:`ReplaySource` reads any supported tag file (``timetag.formats.open_tags`` when available, the dump
  reader otherwise) and releases it in slices of device time, each when the wall clock reaches its end divided by
  ``speed``; ``speed=None`` replays unpaced.
* :class:`FollowSource` tails a Swabian dump file as it grows (``tail -f``), and the numbered files that continue
  it: it reads only whole 16-byte records, leaving a partly written record for the next poll, checks them as the
  file reader does, and rejects a followed file that is truncated, replaced or rewritten.  It waits for data as
  long as the acquisition runs (or ``idle_timeout`` seconds), sending an empty heartbeat batch every poll.
* :class:`FollowH5Source` does the same for a timetag HDF5 tag file written in SWMR mode.
"""
from __future__ import annotations

import abc
import os
import re
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from ..chunk import DEFAULT_CHUNK_SIZE, TagChunk, split
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

    def __init__(self, path, *, lab: str = "alice", speed: float | None = None, chunk_size: int = 1_000_000,
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


class FollowSource(_Follower):
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

    def __init__(self, path, *, lab: str = "alice", poll_interval: float = 0.2, idle_timeout: float | None = None,
                 max_records: int = 1_000_000, wait_for_file: float = 10.0, on_bad_record: str = "fail",
                 max_jump_ps: int | None = None, rotate: bool = True):
        super().__init__(path, lab=lab, poll_interval=poll_interval, idle_timeout=idle_timeout, description="",
                         on_bad_record=on_bad_record, max_jump_ps=max_jump_ps)
        self.max_records = int(max_records)
        self.wait_for_file = float(wait_for_file)
        self.files = _FileSequence(self.path, rotate)
        self._decoder = DumpDecoder(self.files.current, on_bad_record=self.on_bad_record,
                                    max_jump_ps=self.max_jump_ps)
        self._records = 0      # in all files
        self._bytes = 0
        self._tags = 0
        self._pos = 0          # bytes of the current file read
        self._tail = b""       # the last record read, to notice a rewrite
        self._files_done = 0

    def _follow(self) -> Iterator[Batch]:
        fh = yield from self._wait_open(self.files.current)
        if fh is None:
            return
        try:
            while not self.stopped:
                # looked at before the size: the writer finishes a file before it starts the next
                next_ready = self.files.next is not None and self.files.next.exists()
                size = self._check_unchanged(fh)
                n = min((size - self._pos) // RECORD_SIZE, self.max_records)
                if n > 0:
                    chunk, error = self._read(fh, n)
                    if len(chunk) or chunk.lost.size:
                        yield Batch({self.labs[0]: chunk}, device_time_ps=_end_time(chunk))
                    if error is not None:
                        raise error
                    continue  # more may be waiting: read again before sleeping
                if next_ready:
                    yield from self._complete(size)
                    fh.close()
                    fh = self._next_file()
                    continue
                if self._idle_too_long() or not (yield from self._pause(self._tags)):
                    return
        finally:
            fh.close()

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
        if self._tail and os.pread(fh.fileno(), RECORD_SIZE, self._pos - RECORD_SIZE) != self._tail:
            raise DataValidationError(f"file was rewritten while being followed: the record at byte "
                                      f"{self._pos - RECORD_SIZE} changed", path=path)
        return st.st_size

    def _read(self, fh, n: int):
        """(chunk, error or None) of the next ``n`` whole records."""
        raw = os.pread(fh.fileno(), n * RECORD_SIZE, self._pos)
        n = len(raw) // RECORD_SIZE
        rec = np.frombuffer(raw, RECORD_DTYPE, count=n)
        chunk, error = self._decoder.decode(rec, self._pos // RECORD_SIZE, offset=self._tags)
        self._tail = raw[(n - 1) * RECORD_SIZE: n * RECORD_SIZE] if n else self._tail
        self._pos += n * RECORD_SIZE
        self._records += n
        self._bytes += n * RECORD_SIZE
        self._tags += len(chunk)
        self._grew()
        return chunk, error

    def _complete(self, size: int) -> Iterator[Batch]:
        """The end of a file the next one continues: its partial final record, if any, is a bad record."""
        partial = size - self._pos
        if partial:
            events, error = self._decoder.lose(
                self._pos // RECORD_SIZE, f"partial final record ({partial} of {RECORD_SIZE} bytes) left when "
                f"the next file {self.files.next.name} began", self._pos)
            if events.size:
                yield Batch({self.labs[0]: TagChunk(np.zeros(0, np.int64), np.zeros(0, np.int32), events,
                                                    self._tags)})
            if error is not None:
                raise error

    def _next_file(self):
        self.files.advance()
        self._files_done += 1
        self._decoder.path = self.files.current
        self._pos, self._tail = 0, b""
        self._grew()
        try:
            return open(self.files.current, "rb")
        except FileNotFoundError:
            raise DataValidationError("file disappeared right after it appeared", path=self.files.current) from None

    def stats(self) -> dict:
        return {"records_read": self._records, "bytes_read": self._bytes, "file": self.files.current.name,
                "files_done": self._files_done, "bad_records": self._decoder.bad.count, **self._common_stats()}


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
    """Tail a timetag HDF5 tag file (``/photon_data/timestamps``, ``detectors``, ``lost``) that another process
    writes in SWMR mode (``h5py.File(..., libver='latest')`` then ``swmr_mode = True``).

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
            lost_ds = f["photon_data/lost"] if "photon_data/lost" in f else None
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


def follow_source(path, **kw) -> Source:
    """FollowSource or FollowH5Source, by the file's first bytes (HDF5 magic) or extension."""
    p = Path(path)
    is_h5 = p.suffix.lower() in (".h5", ".hdf5", ".hdf")
    if p.exists() and p.stat().st_size >= 8:
        with open(p, "rb") as fh:
            is_h5 = fh.read(8) == b"\x89HDF\r\n\x1a\n"
    if is_h5:
        kw.pop("wait_for_file", None)
        kw.pop("rotate", None)
        return FollowH5Source(p, **kw)
    return FollowSource(p, **kw)
