"""qutools quTAG binary files (``FORMAT_BINARY``): a 40-byte header, then 10-byte records.

Record: ``uint64 time`` (1 ps on the quTAG HR) + ``uint16 channel``; markers appear as channels 100-104 and
200-203 and are passed through unchanged.  The header is undocumented; it starts with ``87 B3 91 FA`` and its
uint32 at offset 4 is the file size (checked only as a warning).

Real quTAG files are not always monotonic (one sample has 173 backward steps of up to 86 ns).  By default the
reader raises :class:`DataValidationError` at the first backward step, naming the record.  Options:
``tolerance_ps=N`` reorders tags displaced by at most N ps (stable sort by time), ``check_order=False`` passes
them through unchanged and counts them (``meta['backward_steps']``, ``meta['max_backward_ps']``).
``on_bad_record='lost'`` turns bad tags (backward steps beyond the tolerance, times beyond int64, jumps beyond
``max_jump_ps``) into lost-data intervals instead of raising (:class:`~timetag.formats._common.OrderGuard`).

The records are read in windows into one reused buffer (:func:`~timetag.formats._common.read_records_into`),
never mapped whole, so the resident set does not grow with the file; the bytes read (header and trailing bytes
included) can feed the input's checksum (:meth:`QutagReader.hash_while_reading`), so ``process`` reads the file
once.
"""
from __future__ import annotations

import struct
import warnings
from typing import Iterator

import numpy as np

from ..chunk import DEFAULT_CHUNK_SIZE, TagChunk
from ..errors import FormatError, TimetagWarning
from ._common import (GuardedReader, OrderGuard, check_bad_record_options, check_readable, read_bytes_at,
                      read_records_into, write_new)

NAME = "qutag"
EXTENSIONS = (".qutag",)
MAGIC = b"\x87\xb3\x91\xfa"
HEADER_SIZE = 40
RECORD_DTYPE = np.dtype([("time", "<u8"), ("channel", "<u2")])   # packed: 10 bytes
RECORD_SIZE = RECORD_DTYPE.itemsize
# records read per window (about 1 MiB): few reads per chunk, and the buffer is still in the L2 cache when its
# fields are copied out
WINDOW_RECORDS = (1 << 20) // RECORD_SIZE


def sniff(path, head: bytes) -> bool:
    return head[:4] == MAGIC


class QutagReader(GuardedReader):
    format = NAME
    resolution_ps = 1

    def __init__(self, path, chunk_size: int = DEFAULT_CHUNK_SIZE, check_order: bool = True, tolerance_ps: int = 0,
                 on_bad_record: str = "fail", max_jump_ps: int | None = None, **_ignored):
        self.path = check_readable(path)
        self.chunk_size = max(int(chunk_size), 1)
        self.check_order = check_order
        self.tolerance_ps = int(tolerance_ps)
        self.on_bad_record, self.max_jump_ps = check_bad_record_options(on_bad_record, max_jump_ps)
        size = self.path.stat().st_size
        with open(self.path, "rb") as fh:
            head = fh.read(HEADER_SIZE)
        if head[:4] != MAGIC:
            raise FormatError(f"wrong magic {head[:4].hex(' ')} (a quTAG binary file starts with 87 b3 91 fa)",
                              path=self.path, offset=0)
        if len(head) < HEADER_SIZE:
            raise FormatError(f"header cut short: {len(head)} of {HEADER_SIZE} bytes", path=self.path,
                              offset=len(head))
        declared_size = struct.unpack_from("<I", head, 4)[0]
        if declared_size != size & 0xFFFFFFFF:
            warnings.warn(f"{self.path}: header says the file has {declared_size} bytes, it has {size}",
                          TimetagWarning, stacklevel=2)
        self.header = head
        self.records = (size - HEADER_SIZE) // RECORD_SIZE
        self.trailing_bytes = (size - HEADER_SIZE) % RECORD_SIZE
        if self.trailing_bytes:
            warnings.warn(f"{self.path}: truncated final record: {self.trailing_bytes} trailing bytes ignored",
                          TimetagWarning, stacklevel=2)
        self._guard: OrderGuard | None = None
        self._feeder = None

    @property
    def meta(self) -> dict:
        m = {"header_size_field": struct.unpack_from("<I", self.header, 4)[0],
             "header_words": list(struct.unpack_from("<8I", self.header, 8)),
             "trailing_bytes_ignored": self.trailing_bytes}
        m.update(self.guard_meta())
        return m

    def __iter__(self) -> Iterator[TagChunk]:
        return self.iter_chunks()

    def hash_while_reading(self, feeder) -> None:
        """Feed ``feeder`` (``update_at(offset, bytes)``, :mod:`timetag.checksums`) every byte the reads take, with
        its offset in the file (the header when reading from record 0, the trailing bytes when reading to the
        end): the input's checksum without reading it twice (:class:`timetag.provenance.InputChecksums`)."""
        self._feeder = feeder

    def iter_chunks(self, start: int = 0, stop: int | None = None) -> Iterator[TagChunk]:
        """Chunks of records [start, stop) (record indices), each assembled from windows of at most
        ``WINDOW_RECORDS`` records read into one reused buffer; a file that shrinks meanwhile is a FormatError."""
        stop = self.records if stop is None else min(int(stop), self.records)
        start = max(0, int(start))
        dec = QutagDecoder(self.path, check_order=self.check_order, tolerance_ps=self.tolerance_ps,
                           on_bad_record=self.on_bad_record, max_jump_ps=self.max_jump_ps, first_record=start)
        self._guard = dec.guard
        feeder = self._feeder
        with open(self.path, "rb", buffering=0) as fh:
            fd = fh.fileno()
            if feeder is not None and start == 0:
                feeder.update_at(0, read_bytes_at(fd, 0, HEADER_SIZE, self.path))
            window = max(1, min(WINDOW_RECORDS, self.chunk_size, stop - start))
            buf = np.empty(window, RECORD_DTYPE)
            for lo in range(start, stop, self.chunk_size):
                hi = min(lo + self.chunk_size, stop)
                t, c = np.empty(hi - lo, np.int64), np.empty(hi - lo, np.int32)
                for b in range(lo, hi, window):
                    n = min(window, hi - b)
                    at = HEADER_SIZE + b * RECORD_SIZE
                    rec = read_records_into(fd, buf[:n], at, b, self.path)
                    if feeder is not None:
                        feeder.update_at(at, rec.view(np.uint8))
                    t[b - lo:b - lo + n] = rec["time"]   # a time beyond int64 wraps negative: the decoder's check
                    c[b - lo:b - lo + n] = rec["channel"]
                yield from dec.tags(t, c, lo)
            if feeder is not None and stop == self.records and self.trailing_bytes:
                at = HEADER_SIZE + stop * RECORD_SIZE
                feeder.update_at(at, read_bytes_at(fd, at, self.trailing_bytes, self.path))
        yield from dec.flush()


class QutagDecoder:
    """quTAG records -> checked chunks, keeping the order state across calls (the file reader and the live
    ``follow:`` source both decode through it, so a file and a followed file are checked alike).

    A time beyond int64 is an error (in 'lost' mode, with checks on, a bad record the guard drops); the rest is
    :class:`~timetag.formats._common.OrderGuard`'s.  ``first_record``: the record index of the first record given
    (messages name records by their index in the file).
    """

    def __init__(self, path, check_order: bool = True, tolerance_ps: int = 0, on_bad_record: str = "fail",
                 max_jump_ps: int | None = None, first_record: int = 0):
        self.path = path
        self.guard = OrderGuard(path, check=check_order, tolerance_ps=tolerance_ps,
                                index_of=lambda i: i + first_record, on_bad_record=on_bad_record,
                                max_jump_ps=max_jump_ps, offset_of=lambda i: HEADER_SIZE + i * RECORD_SIZE,
                                reorders=True)
        self.first_record = first_record

    def chunks(self, rec: np.ndarray, index: int) -> Iterator[TagChunk]:
        """The checked chunks of records ``rec`` (``index``: the file's record index of ``rec[0]``); in 'fail'
        mode the error of a bad record is raised after the chunks of the good records before it."""
        return self.tags(rec["time"].astype(np.int64), rec["channel"].astype(np.int32), index)

    def tags(self, t: np.ndarray, c: np.ndarray, index: int) -> Iterator[TagChunk]:
        """:meth:`chunks` of records already split into times ``t`` (the uint64 times as int64: one beyond int64
        is negative) and channels ``c``, which the chunks may keep."""
        guard = self.guard
        offset = index - self.first_record
        # a time beyond int64 turns negative: a bad record the guard drops in 'lost' mode, else an error
        dropped_by_guard = guard.bad.lost and (guard.check or guard.tolerance)
        if not dropped_by_guard and t.size and int(t.min()) < 0:
            i = int(np.flatnonzero(t < 0)[0])
            yield from guard.checked(TagChunk(t[:i], c[:i], offset=offset))
            yield from self.flush()
            raise FormatError(f"record {index + i}: time {int(t[i:i + 1].view(np.uint64)[0])} does not fit in "
                              "int64 ps", path=self.path, offset=HEADER_SIZE + (index + i) * RECORD_SIZE)
        yield from guard.checked(TagChunk(t, c, offset=offset))

    def flush(self) -> list[TagChunk]:
        """The tags a tolerance still holds back (end of the stream)."""
        return _present(self.guard.flush())


def _present(chunk: TagChunk | None) -> list[TagChunk]:
    return [] if chunk is None else [chunk]


def write_qutag_raw(path, time: np.ndarray, channel: np.ndarray, header_words=(2048, 115), *,
                    force: bool = False) -> None:
    """Write a quTAG-like binary file (for tests and fixtures; the vendor header is undocumented)."""
    rec = np.zeros(len(time), RECORD_DTYPE)
    rec["time"] = time
    rec["channel"] = channel
    size = HEADER_SIZE + rec.nbytes
    head = MAGIC + struct.pack("<I", size & 0xFFFFFFFF) + struct.pack("<2I", *header_words)
    head = head.ljust(HEADER_SIZE, b"\0")
    def write(partial):
        with open(partial, "xb") as fh:
            fh.write(head)
            rec.tofile(fh)

    write_new(path, write, force=force)


def open_reader(path, chunk_size: int = DEFAULT_CHUNK_SIZE, **opts) -> QutagReader:
    return QutagReader(path, chunk_size, **opts)
