"""Swabian Instruments Time Tagger legacy ``Dump`` file: 16-byte records, no header.

Record: ``uint8 type, uint8 reserved, uint16 missed_events, int32 channel, int64 time`` (ps).
Types: 0 TimeTag, 1 Error, 2 OverflowBegin, 3 OverflowEnd, 4 MissedEvents.
Non-tag records become lost-data events of the stream (:mod:`timetag.chunk`).
"""
from __future__ import annotations

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


class DumpReader:
    """Chunked reader of the records (64-bit offsets throughout).

    Chunks are read with ``readinto`` into one reused buffer rather than through a
    memory map: mapped file pages count towards the resident set, so a memory map
    makes the peak RSS grow with the file size.
    """

    format = NAME
    resolution_ps = 1

    def __init__(self, path, chunk_size: int = DEFAULT_CHUNK_SIZE, check_order: bool = True):
        self.path = Path(path)
        self.chunk_size = int(chunk_size)
        self.check_order = check_order
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
        stop = self.records if stop is None else min(int(stop), self.records)
        last = np.iinfo(np.int64).min
        buf = np.empty(min(self.chunk_size, max(stop - int(start), 0)), RECORD_DTYPE)
        with open(self.path, "rb", buffering=0) as fh:
            for lo in range(int(start), stop, self.chunk_size):
                hi = min(lo + self.chunk_size, stop)
                chunk, last = self._decode(self._read(fh, buf, lo, hi), lo, last)
                yield chunk

    def _read(self, fh, buf: np.ndarray, lo: int, hi: int) -> np.ndarray:
        rec = buf[: hi - lo]
        fh.seek(lo * RECORD_SIZE)
        view = memoryview(rec).cast("B")
        got = 0
        while got < view.nbytes:
            n = fh.readinto(view[got:])
            if not n:
                raise FormatError(f"file shrank while reading: expected {hi - lo} records from record {lo}",
                                  path=self.path, offset=lo * RECORD_SIZE + got)
            got += n
        return rec

    def _decode(self, rec: np.ndarray, lo: int, last: int) -> tuple[TagChunk, int]:
        """One chunk of records -> (TagChunk, latest time seen), in one pass over the raw records."""
        from .._cext.fmt_dump import split_records

        n = rec.size
        out_t, out_c, lost_i = np.empty(n, np.int64), np.empty(n, np.int32), np.empty(n, np.int64)
        w, m, bad, back, new_last = split_records(rec, last, self.check_order, out_t, out_c, lost_i)
        if bad >= 0:
            decode_records(rec[bad:bad + 1], offset=lo + bad, path=self.path)   # raises, naming the code
        if back >= 0:
            prev = max(int(out_t[:w].max()) if w else last, last)
            raise DataValidationError(f"time goes backwards: {int(rec['time'][back])} ps after {prev} ps",
                                      path=self.path, index=lo + back)
        lost = None
        if m:
            other = rec[lost_i[:m]]
            lost = np.zeros(m, LOST_DTYPE)
            lost["time"] = other["time"]
            lost["kind"] = _LOST_KIND[other["type"]]
            lost["channel"] = other["channel"]
            lost["count"] = other["missed_events"]
        return TagChunk(out_t[:w], out_c[:w], lost, offset=lo), new_last


def _tag_index_to_record(rec: np.ndarray, i: int) -> int:
    return int(np.flatnonzero(rec["type"] == TYPE_TAG)[i])


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
    other = rec[~is_tag]
    lost = np.zeros(other.size, LOST_DTYPE)
    lost["time"] = other["time"]
    lost["kind"] = _LOST_KIND[other["type"]]
    lost["channel"] = other["channel"]
    lost["count"] = other["missed_events"]
    return TagChunk(rec["time"][is_tag], rec["channel"][is_tag], lost, offset=offset)


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
