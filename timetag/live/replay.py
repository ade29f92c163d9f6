"""Replay a recorded tag file at real or accelerated pace, or follow a file that another process is still writing.

* :class:`ReplaySource` reads any supported tag file (``timetag.formats.open_tags`` when available, the dump
  reader otherwise) and releases it in slices of device time, each when the wall clock reaches its end divided by
  ``speed``; ``speed=None`` replays unpaced.
* :class:`FollowSource` tails a Swabian dump file as it grows (``tail -f``): it reads only whole 16-byte records,
  leaving a partly written record for the next poll, and ends after ``idle_timeout`` seconds without growth or on
  ``stop()``.  A file that shrinks was replaced or truncated: that is an error, not a silent restart.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from ..chunk import DEFAULT_CHUNK_SIZE, TagChunk, split
from ..errors import FormatError
from ..formats.dump import RECORD_DTYPE, RECORD_SIZE, decode_records
from .sources import Batch, Pacer, Source, empty_chunk


def open_tag_reader(path, chunk_size: int = DEFAULT_CHUNK_SIZE):
    """A chunked reader for any supported format (falls back to the dump reader while the format registry is
    not available)."""
    try:
        from ..formats import open_tags  # type: ignore[attr-defined]
    except ImportError:
        open_tags = None
    if open_tags is not None:
        try:
            return open_tags(path, chunk_size=chunk_size)
        except TypeError:
            return open_tags(path)
    from ..formats.dump import DumpReader

    return DumpReader(path, chunk_size=chunk_size)


class ReplaySource(Source):
    def __init__(self, path, *, lab: str = "alice", speed: float | None = None, chunk_size: int = 1_000_000,
                 slice_s: float = 0.1):
        super().__init__()
        self.path = Path(path)
        self.labs = (lab,)
        self.speed = speed
        self.chunk_size = int(chunk_size)
        # Paced replay cuts chunks every slice_s of wall time so rounds reach the disk promptly.
        self.slice_ps = int(slice_s * (speed or 1.0) * 1e12)
        self.description = f"replay of {self.path.name} ({'unpaced' if speed is None else f'x{speed:g}'})"
        self._tags = 0

    def _batches(self) -> Iterator[Batch]:
        reader = open_tag_reader(self.path, chunk_size=self.chunk_size)
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
        return {"tags_read": self._tags}


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
    """What both tail-mode sources share: one lab, real time, polling, and an idle timeout."""

    def __init__(self, path, *, lab: str, poll_interval: float, idle_timeout: float | None, description: str):
        super().__init__()
        self.path = Path(path)
        self.labs = (lab,)
        self.speed = 1.0
        self.poll_interval = float(poll_interval)
        self.idle_timeout = idle_timeout
        self.description = f"follow {self.path.name}{description}"

    def _idle_too_long(self, last_growth: float) -> bool:
        """True once the file has not grown for ``idle_timeout`` seconds."""
        return self.idle_timeout is not None and time.monotonic() - last_growth >= self.idle_timeout


class FollowSource(_Follower):
    """Tail a growing dump file (``follow:FILE``)."""

    def __init__(self, path, *, lab: str = "alice", poll_interval: float = 0.2, idle_timeout: float | None = 5.0,
                 max_records: int = 1_000_000, wait_for_file: float = 10.0):
        super().__init__(path, lab=lab, poll_interval=poll_interval, idle_timeout=idle_timeout, description="")
        self.max_records = int(max_records)
        self.wait_for_file = float(wait_for_file)
        self._records = 0
        self._pos = 0

    def _open(self):
        deadline = time.monotonic() + self.wait_for_file
        while True:
            try:
                return open(self.path, "rb")
            except FileNotFoundError:
                if time.monotonic() >= deadline or not self._sleep_until(time.monotonic() + self.poll_interval):
                    raise FormatError(f"no such file (waited {self.wait_for_file:g} s for it to appear)",
                                      path=self.path) from None

    def _batches(self) -> Iterator[Batch]:
        fh = self._open()
        try:
            last_growth = time.monotonic()
            offset_tags = 0
            while not self.stopped:
                size = os.fstat(fh.fileno()).st_size
                if size < self._pos:
                    raise FormatError(f"file shrank from {self._pos} to {size} bytes while being followed "
                                      "(replaced or truncated?)", path=self.path, offset=size)
                n = min((size - self._pos) // RECORD_SIZE, self.max_records)
                if n > 0:
                    fh.seek(self._pos)
                    raw = fh.read(n * RECORD_SIZE)
                    n = len(raw) // RECORD_SIZE
                    rec = np.frombuffer(raw[: n * RECORD_SIZE], dtype=RECORD_DTYPE)
                    chunk = decode_records(rec, offset=self._records, path=self.path)
                    chunk.offset = offset_tags
                    offset_tags += len(chunk)
                    self._pos += n * RECORD_SIZE
                    self._records += n
                    last_growth = time.monotonic()
                    yield Batch({self.labs[0]: chunk}, device_time_ps=_end_time(chunk))
                    continue  # more may be waiting: read again before sleeping
                if self._idle_too_long(last_growth):
                    return
                yield Batch({self.labs[0]: empty_chunk(offset_tags)})
                if not self._sleep_until(time.monotonic() + self.poll_interval):
                    return
        finally:
            fh.close()

    def stats(self) -> dict:
        return {"records_read": self._records, "bytes_read": self._pos}


class FollowH5Source(_Follower):
    """Tail a timetag HDF5 tag file (``/photon_data/timestamps``, ``detectors``, ``lost``) that another process
    writes in SWMR mode (``h5py.File(..., libver='latest')`` then ``swmr_mode = True``).

    Rows are taken up to the shorter of the two tag datasets (the writer resizes them one after the other);
    lost-data events are released once a tag at or after their time has been read, so that they land in the
    right chunk, and the rest at the end.
    """

    def __init__(self, path, *, lab: str = "alice", poll_interval: float = 0.2, idle_timeout: float | None = 5.0,
                 max_rows: int = 1_000_000):
        super().__init__(path, lab=lab, poll_interval=poll_interval, idle_timeout=idle_timeout,
                         description=" (HDF5)")
        self.max_rows = int(max_rows)
        self._rows = 0

    def _batches(self) -> Iterator[Batch]:
        import h5py

        from ..chunk import LOST_DTYPE

        try:
            f = h5py.File(self.path, "r", libver="latest", swmr=True)
        except OSError as exc:
            raise FormatError(f"cannot follow this HDF5 file ({exc}); the writer must use SWMR mode",
                              path=self.path) from None
        with f:
            try:
                ts, det = f["photon_data/timestamps"], f["photon_data/detectors"]
            except KeyError:
                raise FormatError("no /photon_data/timestamps and /detectors: not a tag file", path=self.path) from None
            lost_ds = f["photon_data/lost"] if "photon_data/lost" in f else None
            lpos = 0
            held = np.zeros(0, LOST_DTYPE)
            last_t = np.iinfo(np.int64).min
            last_growth = time.monotonic()
            while not self.stopped:
                for ds in (ts, det) + ((lost_ds,) if lost_ds is not None else ()):
                    ds.refresh()
                n_avail = min(ts.shape[0], det.shape[0])
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
                    last_growth = time.monotonic()
                    yield Batch({self.labs[0]: chunk}, device_time_ps=last_t)
                    continue
                if new_lost.size:
                    last_growth = time.monotonic()
                if self._idle_too_long(last_growth):
                    break
                yield Batch({self.labs[0]: empty_chunk(self._rows)})
                if not self._sleep_until(time.monotonic() + self.poll_interval):
                    break
            if held.size:  # lost events after the last tag: still part of the stream
                yield Batch({self.labs[0]: TagChunk(np.zeros(0, np.int64), np.zeros(0, np.int32), held, self._rows)})

    def stats(self) -> dict:
        return {"rows_read": self._rows}


def follow_source(path, **kw) -> Source:
    """FollowSource or FollowH5Source, by the file's first bytes (HDF5 magic) or extension."""
    p = Path(path)
    is_h5 = p.suffix.lower() in (".h5", ".hdf5", ".hdf")
    if p.exists() and p.stat().st_size >= 8:
        with open(p, "rb") as fh:
            is_h5 = fh.read(8) == b"\x89HDF\r\n\x1a\n"
    if is_h5:
        kw.pop("wait_for_file", None)
        return FollowH5Source(p, **kw)
    return FollowSource(p, **kw)
