"""Swabian Instruments Time Tagger legacy ``Dump`` file: 16-byte records, no header.

Record: ``uint8 type, uint8 reserved, uint16 missed_events, int32 channel, int64 time`` (ps).
Types: 0 TimeTag, 1 Error, 2 OverflowBegin, 3 OverflowEnd, 4 MissedEvents.
Non-tag records become lost-data events of the stream (:mod:`timetag.chunk`).
"""
from __future__ import annotations

import mmap
import os
import warnings
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ._common import TagWriter
from ..chunk import DEFAULT_CHUNK_SIZE, ERROR, LOST_DTYPE, MISSED, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk
from ..errors import DataValidationError, FormatError, TimetagWarning

NAME = "dump"
EXTENSIONS = (".dump", ".ttdump", ".bin")
RECORD_DTYPE = np.dtype([("type", "u1"), ("reserved", "u1"), ("missed_events", "<u2"), ("channel", "<i4"), ("time", "<i8")])
RECORD_SIZE = RECORD_DTYPE.itemsize  # 16

TYPE_TAG, TYPE_ERROR, TYPE_OVERFLOW_BEGIN, TYPE_OVERFLOW_END, TYPE_MISSED = 0, 1, 2, 3, 4
_LOST_KIND = np.array([0, ERROR, OVERFLOW_BEGIN, OVERFLOW_END, MISSED], dtype=np.uint8)


def sniff(path, head: bytes) -> bool:
    """No magic bytes: plausible when the size is a multiple of 16 and the first records look like dump records."""
    size = Path(path).stat().st_size
    if size == 0 or size % RECORD_SIZE:
        return False
    n = min(len(head) // RECORD_SIZE, 64)
    if n == 0:
        return False
    rec = np.frombuffer(head[: n * RECORD_SIZE], dtype=RECORD_DTYPE)
    return bool(np.all(rec["type"] <= 4) and np.all(rec["reserved"] == 0) and np.all(rec["time"] >= 0))


# Records are taken through a sliding memory-mapped window of this many (8 MiB): the split reads the page
# cache directly (no copy into a buffer), and unmapping each window keeps the resident set flat however large
# the file.  Where mapping is impossible, blocks of READ_RECORDS (1 MiB, so that the block is still in the L2
# cache when the split reads it) are read with preadv into one reused buffer.
WINDOW_RECORDS = 1 << 19
READ_RECORDS = 1 << 16


class DumpReader:
    """Chunked reader of the records (64-bit offsets throughout).

    The file is never mapped whole (mapped pages count towards the resident set, so peak RSS would grow with
    the file size): each chunk is assembled from windows of at most ``WINDOW_RECORDS`` records, each mapped,
    split into the chunk's tag arrays and unmapped (or read with ``preadv`` when the file cannot be mapped).
    The file size is checked before each window, so a file truncated while it is read gives an error rather
    than a bus error, except in the unavoidable race of a truncation during the window's own split.

    Each chunk gets fresh tag arrays, which the consumer may keep.  (A pool reusing them across chunks was
    measured: no gain once a file is under way, because malloc already hands the freed blocks of earlier
    chunks back without new page faults; only the first two chunks of a file pay first-touch faults.)
    """

    format = NAME
    resolution_ps = 1

    def __init__(self, path, chunk_size: int = DEFAULT_CHUNK_SIZE, check_order: bool = True, use_mmap: bool = True):
        self.path = Path(path)
        self.chunk_size = max(int(chunk_size), 1)
        self.check_order = check_order
        self.use_mmap = use_mmap
        size = self.path.stat().st_size
        if size == 0:
            raise FormatError("file is empty (a dump file holds 16-byte records)", path=self.path)
        self.trailing_bytes = size % RECORD_SIZE
        if self.trailing_bytes:
            warnings.warn(f"{self.path}: truncated final record: {self.trailing_bytes} trailing bytes ignored",
                          TimetagWarning, stacklevel=2)
        self.records = size // RECORD_SIZE

    @property
    def meta(self) -> dict:
        return {"trailing_bytes_ignored": self.trailing_bytes}

    def __iter__(self) -> Iterator[TagChunk]:
        return self.iter_chunks()

    def iter_chunks(self, start: int = 0, stop: int | None = None) -> Iterator[TagChunk]:
        """Chunks of records [start, stop) (record indices; the dump format has no carried state)."""
        from .._cext.fmt_dump import split_records

        start = max(int(start), 0)
        stop = self.records if stop is None else min(int(stop), self.records)
        if stop <= start:
            return
        size = min(self.chunk_size, stop - start)
        window = min(WINDOW_RECORDS if self.use_mmap else READ_RECORDS, size)
        lost_i = np.empty(window, np.int64)
        last = np.iinfo(np.int64).min
        with open(self.path, "rb", buffering=0) as fh:
            windows = _Windows(fh, self.path, window, self.use_mmap)
            for lo in range(start, stop, self.chunk_size):
                hi = min(lo + self.chunk_size, stop)
                out_t, out_c = np.empty(hi - lo, np.int64), np.empty(hi - lo, np.int32)
                w, lost = 0, []
                for b in range(lo, hi, window):
                    rec = windows.open(b, min(b + window, hi))
                    k, m, bad, back, new_last = split_records(rec, last, self.check_order, out_t[w:], out_c[w:],
                                                              lost_i)
                    if bad >= 0:
                        bad_rec = rec[bad:bad + 1].copy()
                        del rec
                        windows.close()
                        decode_records(bad_rec, offset=b + bad, path=self.path)   # raises, naming the code
                    if back >= 0:
                        t_back = int(rec["time"][back])
                        del rec
                        windows.close()
                        raise DataValidationError(f"time goes backwards: {t_back} ps after {new_last} ps",
                                                  path=self.path, index=b + back)
                    if m:
                        lost.append(_lost_events(rec[lost_i[:m]]))
                    del rec
                    windows.close()
                    w += k
                    last = new_last
                yield TagChunk(out_t[:w], out_c[:w], np.concatenate(lost) if lost else None, offset=lo)


class _Windows:
    """Record windows [lo, hi) of an open dump file: mapped when possible, else read into one reused buffer.

    The caller drops every view of a window before ``close()`` (an mmap with live views cannot be closed).
    """

    def __init__(self, fh, path: Path, window: int, use_mmap: bool):
        self.fd, self.path = fh.fileno(), path
        self._mm = None
        self._window = window   # the largest window asked for
        self._buf = None if use_mmap else np.empty(window, RECORD_DTYPE)

    def open(self, lo: int, hi: int) -> np.ndarray:
        start, stop = lo * RECORD_SIZE, hi * RECORD_SIZE
        size = os.fstat(self.fd).st_size
        if size < stop:
            raise FormatError(f"file shrank while reading: expected {hi - lo} records from record {lo}, the file "
                              f"now ends at byte {size}", path=self.path, offset=size)
        if self._buf is None:
            base = start - start % mmap.ALLOCATIONGRANULARITY
            try:
                self._mm = mmap.mmap(self.fd, stop - base, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, offset=base)
            except (OSError, ValueError):   # e.g. a file system without mmap: read instead, from now on
                self._buf = np.empty(self._window, RECORD_DTYPE)
            else:
                return np.frombuffer(self._mm, RECORD_DTYPE, count=hi - lo, offset=start - base)
        rec = self._buf[: hi - lo]
        view = memoryview(rec).cast("B")
        got = 0
        while got < view.nbytes:
            n = os.preadv(self.fd, [view[got:]], start + got)
            if not n:
                raise FormatError(f"file shrank while reading: expected {hi - lo} records from record {lo}",
                                  path=self.path, offset=start + got)
            got += n
        return rec

    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None


def _lost_events(other: np.ndarray) -> np.ndarray:
    lost = np.zeros(other.size, LOST_DTYPE)
    lost["time"] = other["time"]
    lost["kind"] = _LOST_KIND[other["type"]]
    lost["channel"] = other["channel"]
    lost["count"] = other["missed_events"]
    return lost


def decode_records(rec: np.ndarray, offset: int = 0, path=None) -> TagChunk:
    """Split raw dump records into tags and lost-data events."""
    types = rec["type"]
    bad = np.flatnonzero(types > TYPE_MISSED)
    if bad.size:
        i = int(bad[0])
        raise FormatError(f"unknown event type code {int(types[i])} in record {offset + i} "
                          "(known: 0 TimeTag, 1 Error, 2 OverflowBegin, 3 OverflowEnd, 4 MissedEvents)",
                          path=path, offset=(offset + i) * RECORD_SIZE)
    is_tag = types == TYPE_TAG
    if is_tag.all():
        return TagChunk(rec["time"], rec["channel"], offset=offset)
    return TagChunk(rec["time"][is_tag], rec["channel"][is_tag], _lost_events(rec[~is_tag]), offset=offset)


def encode_chunk(chunk: TagChunk) -> np.ndarray:
    """Tags and lost events of one chunk as dump records, merged in time order (lost events after equal-time tags)."""
    n, m = len(chunk), chunk.lost.size
    rec = np.zeros(n + m, RECORD_DTYPE)
    if m == 0:
        rec["time"] = chunk.time
        rec["channel"] = chunk.channel
        return rec
    kind_to_type = np.zeros(5, np.uint8)
    kind_to_type[[ERROR, OVERFLOW_BEGIN, OVERFLOW_END, MISSED]] = [TYPE_ERROR, TYPE_OVERFLOW_BEGIN, TYPE_OVERFLOW_END, TYPE_MISSED]
    pos = np.searchsorted(chunk.time, chunk.lost["time"], side="right") + np.arange(m)
    is_lost = np.zeros(n + m, bool)
    is_lost[pos] = True
    rec["time"][~is_lost] = chunk.time
    rec["channel"][~is_lost] = chunk.channel
    rec["time"][is_lost] = chunk.lost["time"]
    rec["channel"][is_lost] = chunk.lost["channel"]
    rec["type"][is_lost] = kind_to_type[chunk.lost["kind"]]
    rec["missed_events"][is_lost] = np.minimum(chunk.lost["count"], 65535)
    return rec


class DumpWriter(TagWriter):
    """Streaming writer: ``write(chunk)`` appends; use as a context manager."""

    def __init__(self, path):
        self.path = Path(path)
        self._fh = open(self.path, "wb")
        self.records = 0

    def write(self, chunk: TagChunk) -> None:
        rec = encode_chunk(chunk)
        rec.tofile(self._fh)
        self.records += rec.size

    def close(self) -> None:
        self._fh.close()



def write_dump(path, chunks: Iterable[TagChunk] | TagChunk) -> int:
    if isinstance(chunks, TagChunk):
        chunks = [chunks]
    with DumpWriter(path) as w:
        for c in chunks:
            w.write(c)
    return w.records
