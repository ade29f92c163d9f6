"""Swabian Instruments Time Tagger legacy ``Dump`` file: 16-byte records, no header.

Record: ``uint8 type, uint8 reserved, uint16 missed_events, int32 channel, int64 time`` (ps).
Types: 0 TimeTag, 1 Error, 2 OverflowBegin, 3 OverflowEnd, 4 MissedEvents.
Non-tag records become lost-data events of the stream (:mod:`timetag.chunk`).
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

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


# Records are read in blocks of this many (1 MiB): a block stays in the L2 cache between the read that
# fills it and the split that empties it, which is what makes the pass run near memory speed.
BLOCK_RECORDS = 1 << 16


class _Recycler:
    """Output arrays for chunks, reused once nothing outside the pool refers to them any more.

    Freshly allocated memory costs a page fault per page on first touch, which is most of the cost of reading
    a dump file.  A set handed out in a chunk is taken again only when CPython's reference count shows that
    no chunk, view or buffer export of it survives (a view or memoryview holds a reference to its base), so a
    consumer that keeps a chunk keeps its data: nothing is ever overwritten under it.
    """

    def __init__(self, size: int, slots: int = 3):
        self.size = size
        self.slots = slots
        self._sets: list[tuple[np.ndarray, np.ndarray]] = []
        self._baseline = None

    @staticmethod
    def _refs(arr: np.ndarray) -> int:
        return sys.getrefcount(arr)

    def get(self) -> tuple[np.ndarray, np.ndarray]:
        for pair in self._sets:
            if self._refs(pair[0]) <= self._baseline and self._refs(pair[1]) <= self._baseline:
                return pair
        pair = (np.empty(self.size, np.int64), np.empty(self.size, np.int32))
        if len(self._sets) < self.slots:
            self._sets.append(pair)
            if self._baseline is None:   # references held by the pool itself, counted the same way as above
                self._baseline = self._refs(self._sets[0][0])
        return pair


class DumpReader:
    """Chunked reader of the records (64-bit offsets throughout).

    Records are read with ``preadv`` into one small reused block buffer rather than through a memory map:
    mapped file pages count towards the resident set, so a memory map makes the peak RSS grow with the file
    size.  Each block is split into the chunk's tag arrays while it is still in cache.

    ``recycle`` (default True): the tag arrays of a chunk are reused for a later chunk once the consumer holds
    no reference to them (see :class:`_Recycler`); chunks that are kept stay intact either way.  False
    allocates fresh arrays for every chunk.
    """

    format = NAME
    resolution_ps = 1

    def __init__(self, path, chunk_size: int = DEFAULT_CHUNK_SIZE, check_order: bool = True, recycle: bool = True):
        self.path = Path(path)
        self.chunk_size = max(int(chunk_size), 1)
        self.check_order = check_order
        self.recycle = recycle
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
        block = min(BLOCK_RECORDS, size)
        buf = np.empty(block, RECORD_DTYPE)
        lost_i = np.empty(block, np.int64)
        pool = _Recycler(size) if self.recycle else None
        last = np.iinfo(np.int64).min
        with open(self.path, "rb", buffering=0) as fh:
            fd = fh.fileno()
            for lo in range(start, stop, self.chunk_size):
                hi = min(lo + self.chunk_size, stop)
                out_t, out_c = pool.get() if pool else (np.empty(size, np.int64), np.empty(size, np.int32))
                w, lost = 0, []
                for b in range(lo, hi, block):
                    rec = self._read(fd, buf, b, min(b + block, hi))
                    k, m, bad, back, new_last = split_records(rec, last, self.check_order, out_t[w:], out_c[w:],
                                                              lost_i)
                    if bad >= 0:
                        decode_records(rec[bad:bad + 1], offset=b + bad, path=self.path)   # raises, naming the code
                    if back >= 0:
                        raise DataValidationError(f"time goes backwards: {int(rec['time'][back])} ps after "
                                                  f"{new_last} ps", path=self.path, index=b + back)
                    if m:
                        lost.append(_lost_events(rec[lost_i[:m]]))
                    w += k
                    last = new_last
                chunk = TagChunk(out_t[:w], out_c[:w], np.concatenate(lost) if lost else None, offset=lo)
                del out_t, out_c, rec   # the pool must see only the chunk's references
                yield chunk
                del chunk

    def _read(self, fd: int, buf: np.ndarray, lo: int, hi: int) -> np.ndarray:
        rec = buf[: hi - lo]
        view = memoryview(rec).cast("B")
        got = 0
        while got < view.nbytes:
            n = os.preadv(fd, [view[got:]], lo * RECORD_SIZE + got)
            if not n:
                raise FormatError(f"file shrank while reading: expected {hi - lo} records from record {lo}",
                                  path=self.path, offset=lo * RECORD_SIZE + got)
            got += n
        return rec


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


class DumpWriter:
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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_dump(path, chunks: Iterable[TagChunk] | TagChunk) -> int:
    if isinstance(chunks, TagChunk):
        chunks = [chunks]
    with DumpWriter(path) as w:
        for c in chunks:
            w.write(c)
    return w.records
