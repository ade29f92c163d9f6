"""Swabian Instruments Time Tagger legacy ``Dump`` file: 16-byte records, no header.

Record: ``uint8 type, uint8 reserved, uint16 missed_events, int32 channel, int64 time`` (ps), the struct
``tt_dump_record`` of ``cext/tt_records.h``.  Types (:class:`timetag.constants.DumpType`): 0 TimeTag, 1 Error,
2 OverflowBegin, 3 OverflowEnd, 4 MissedEvents.
Non-tag records become lost-data events of the stream (:mod:`timetag.chunk`).  Every record is checked on the
way (:class:`DumpDecoder`: unknown type, nonzero reserved byte, time order); a bad record raises after the good
records before it, or becomes lost data (``on_bad_record``).
"""
from __future__ import annotations

import mmap
import os
import warnings
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ._common import (INT64_MIN, BadRecords, TagWriter, check_bad_record_options, first_time_fault, growing_blocks,
                      read_records_into, time_fault, times_ok, write_new)
from ..chunk import DEFAULT_CHUNK_SIZE, LOST_DTYPE, TagChunk, empty_lost
from ..constants import DumpType, LostKind
from ..errors import DataValidationError, FormatError, TimetagWarning

NAME = "dump"
EXTENSIONS = (".dump", ".ttdump", ".bin")
RECORD_DTYPE = np.dtype([("type", "u1"), ("reserved", "u1"), ("missed_events", "<u2"), ("channel", "<i4"), ("time", "<i8")])
RECORD_SIZE = RECORD_DTYPE.itemsize  # 16

TYPE_TAG, TYPE_ERROR, TYPE_OVERFLOW_BEGIN, TYPE_OVERFLOW_END, TYPE_MISSED = DumpType  # their former names
# a lost-data event's kind <-> the record type that carries it
_KINDS = {LostKind.ERROR: DumpType.ERROR, LostKind.OVERFLOW_BEGIN: DumpType.OVERFLOW_BEGIN,
          LostKind.OVERFLOW_END: DumpType.OVERFLOW_END, LostKind.MISSED: DumpType.MISSED}
_LOST_KIND = np.zeros(len(DumpType), np.uint8)
_LOST_KIND[list(_KINDS.values())] = list(_KINDS)
KIND_TO_TYPE = np.zeros(256, np.uint8)  # by LOST_DTYPE's uint8 kind; 0 (a tag) for kinds that are not lost data
KIND_TO_TYPE[list(_KINDS)] = list(_KINDS.values())


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
# A file not in the page cache (fresh from an O_DIRECT simulation, copied from the lab) would otherwise be read
# by page faults, each a synchronous disk read while the decoder waits: the kernel is asked to read this many
# bytes past the window being decoded, so the disk works while the split does (docs/performance.md: "`process`
# on a file that is not in the page cache").
READ_AHEAD_BYTES = 32 << 20


class DumpDecoder:
    """Dump records -> tags and lost-data events, with the checks of a dump stream; keeps its state across calls.

    A record is bad when its type code is unknown (> 4) or its reserved byte is not 0 (:class:`FormatError`),
    or, with ``check_order``, when it is a tag whose time is negative, earlier than the latest good tag (time
    going backwards) or, with ``max_jump_ps``, later than it by more than that (:class:`DataValidationError`;
    see :class:`~timetag.formats._common.OrderGuard` for why a jump counts).  Non-tag records (overflows, missed
    events, errors) are the device's own account of lost data and are not time-checked.  What a bad record does
    is ``on_bad_record``'s (:class:`~timetag.formats._common.BadRecords`): 'fail' stops there, 'lost' drops it
    and brackets the gap as lost data.  ``check_reserved=False`` skips the reserved-byte test (done in the split
    kernel, where it costs nothing measurable).  :class:`DumpReader` and the live ``follow:`` source both decode
    through this class, so a file and a followed file are checked alike.
    """

    def __init__(self, path, check_order: bool = True, on_bad_record: str = "fail", max_jump_ps: int | None = None,
                 check_reserved: bool = True):
        self.check_order = check_order
        self.check_reserved = check_reserved
        self.bad = BadRecords(path, on_bad_record, max_jump_ps)
        self.last = INT64_MIN          # latest time of the good tags decoded
        self._lost_i = np.empty(0, np.int64)

    @property
    def path(self):
        return self.bad.path

    @path.setter
    def path(self, value) -> None:     # a followed sequence of files names the one being read
        self.bad.path = value

    def release_scratch(self) -> None:
        """Free the work buffer (a window's size) once the read is over."""
        self._lost_i = np.empty(0, np.int64)

    def split(self, rec: np.ndarray, index: int, out_t: np.ndarray, out_c: np.ndarray):
        """Decode ``rec`` (records ``index``, ``index + 1``, ... of the file) into ``out_t`` / ``out_c``.

        Returns (tags written, lost events, error): in 'fail' mode the error of the first bad record, to be
        raised once the caller has passed on the tags and events before it (those returned); else None.
        """
        if self._lost_i.size < rec.size:
            self._lost_i = np.empty(rec.size, np.int64)
        w, pos = 0, 0
        events: list[tuple[np.ndarray, bool]] = []
        while pos < rec.size:
            k, lost, lead, fault = self._split_good(rec[pos:], index + pos, out_t[w:], out_c[w:])
            if k:    # the END of a gap goes after the events recorded before its next good tag
                events += [(lost[:lead], False), (self.bad.close(int(out_t[w])), True), (lost[lead:], False)]
            else:
                events.append((lost, False))
            w += k
            if fault is None:
                break
            at, reason, cls = pos + fault[0], fault[1], fault[2]
            if not self.bad.lost:
                return w, self._events(events), self.bad.error(index + at, reason, (index + at) * RECORD_SIZE, cls)
            end = self._next_good(rec, at + 1)
            self.bad.note_run(end - at, lambda j: self._describe(rec[at + j], index + at + j))
            events.append((self.bad.open(self.last), True))
            pos = end
        return w, self._events(events), None

    def decode(self, rec: np.ndarray, index: int, offset: int = 0):
        """(chunk of the good records, error or None): :meth:`split` into fresh arrays."""
        out_t, out_c = np.empty(rec.size, np.int64), np.empty(rec.size, np.int32)
        w, lost, error = self.split(rec, index, out_t, out_c)
        return TagChunk(out_t[:w], out_c[:w], lost, offset), error

    def lose(self, index: int, reason: str, offset: int | None, cls=FormatError):
        """A bad record found by the caller (a partial record left behind, ...): (events to pass on, error)."""
        if not self.bad.lost:
            return empty_lost(), self.bad.error(index, reason, offset, cls)
        self.bad.note_run(1, lambda j: (index, reason, offset))
        return self._events([(self.bad.open(self.last), True)]), None

    def _split_good(self, rec: np.ndarray, index: int, out_t: np.ndarray, out_c: np.ndarray):
        """The records up to the first bad one: (tags written, lost events, how many of those come before the
        first tag, (position, reason, error class) of the bad record or None)."""
        from .._cext.fmt_dump import split_records

        li = self._lost_i
        k, m, bad_type, back, last = split_records(rec, self.last, self.check_order, out_t, out_c, li,
                                                   self.check_reserved)
        stop = min([x for x in (bad_type, back) if x >= 0], default=rec.size)
        if stop < rec.size:
            faults = [(stop, *self._fault(rec[stop], index + stop, last))]
        else:
            faults = []
        if self.check_order and k:
            j, _ = first_time_fault(out_t[:k], self.last, 0, self.bad.max_jump_ps, ordered=True)
            if j >= 0:
                r = _record_of_tag(li[:m], j)
                before = int(out_t[j - 1]) if j else self.last    # the tags are in order: the latest is the one before
                faults.append((r, *self._fault(rec[r], index + r, before)))
        fault = min(faults, key=lambda f: f[0]) if faults else None
        if fault is not None and fault[0] < stop:     # an earlier fault than the kernel's: keep what is before it
            m = int(np.searchsorted(li[:m], fault[0]))
            k = fault[0] - m
            last = self.last if not k else max(self.last, int(out_t[:k].max()))
        self.last = last
        lead = _record_of_tag(li[:m], 0) if self.bad.is_open and k else 0
        return k, _lost_events(rec[li[:m]]), lead, fault

    def _fault(self, r, index: int, last: int) -> tuple[str, type]:
        """(reason, error class) of one record known to be bad, judged after good tags up to ``last``."""
        code = int(r["type"])
        if code > TYPE_MISSED:
            return (f"unknown event type code {code} in record {index} (known: 0 TimeTag, 1 Error, "
                    "2 OverflowBegin, 3 OverflowEnd, 4 MissedEvents)", FormatError)
        if self.check_reserved and int(r["reserved"]):
            return (f"reserved byte is {int(r['reserved'])} in record {index}, not 0 (damaged or not a dump file?)",
                    FormatError)
        return time_fault(int(r["time"]), last, 0, self.bad.max_jump_ps), DataValidationError

    def _describe(self, r, index: int) -> tuple[int, str, int]:
        return index, self._fault(r, index, self.last)[0], index * RECORD_SIZE

    def _next_good(self, rec: np.ndarray, start: int) -> int:
        """Position of the first good record at or after ``start`` (``last`` stays that of the good records)."""
        for lo, hi in growing_blocks(start, rec.size):
            block = rec[lo:hi]
            ok = block["type"] <= TYPE_MISSED
            if self.check_reserved:
                ok &= block["reserved"] == 0
            if self.check_order:
                ok &= (block["type"] != TYPE_TAG) | times_ok(block["time"], self.last, 0, self.bad.max_jump_ps)
            good = np.flatnonzero(ok)
            if good.size:
                return lo + int(good[0])
        return rec.size

    def _events(self, parts: list[tuple[np.ndarray, bool]]) -> np.ndarray:
        parts = [(e, ours) for e, ours in parts if e.size]
        if not parts:
            return empty_lost()
        events = np.concatenate([e for e, _ in parts]) if len(parts) > 1 else parts[0][0]
        if not self.bad.lost:
            return events
        ours = np.concatenate([np.full(e.size, flag) for e, flag in parts])
        return self.bad.union(events, ours)


def _record_of_tag(lost_index: np.ndarray, j: int) -> int:
    """Record position of the ``j``-th tag among records whose non-tag positions are ``lost_index`` (sorted)."""
    # the s-th non-tag record has lost_index[s] - s tags before it
    return j + int(np.searchsorted(lost_index - np.arange(lost_index.size), j, side="right"))


class DumpReader:
    """Chunked reader of the records (64-bit offsets throughout).

    The file is never mapped whole (mapped pages count towards the resident set, so peak RSS would grow with
    the file size): each chunk is assembled from windows of at most ``WINDOW_RECORDS`` records, each mapped,
    split into the chunk's tag arrays and unmapped (or read with ``preadv`` when the file cannot be mapped).
    The file size is checked before each window, so a file truncated while it is read gives an error rather
    than a bus error, except in the unavoidable race of a truncation during the window's own split.

    Records are checked by :class:`DumpDecoder` (unknown types, nonzero reserved bytes and, with ``check_order``,
    negative times, time going backwards and, with ``max_jump_ps``, far jumps forward).  ``on_bad_record='fail'``
    yields the chunk of the records before a bad one, then raises an error naming the file, the record index,
    its byte offset and the value; ``'lost'`` drops bad records, brackets the gap as lost data and reads on
    (``meta['bad_records']``, ``meta['bad_record_examples']``).

    Each chunk gets fresh tag arrays, which the consumer may keep.  (A pool reusing them across chunks was
    measured: no gain once a file is under way, because malloc already hands the freed blocks of earlier
    chunks back without new page faults; only the first two chunks of a file pay first-touch faults.)
    """

    format = NAME
    resolution_ps = 1

    def __init__(self, path, chunk_size: int = DEFAULT_CHUNK_SIZE, check_order: bool = True, use_mmap: bool = True,
                 on_bad_record: str = "fail", max_jump_ps: int | None = None, check_reserved: bool = True,
                 **_ignored):
        self.path = Path(path)
        self.chunk_size = max(int(chunk_size), 1)
        self.check_order = check_order
        self.use_mmap = use_mmap
        self.on_bad_record, self.max_jump_ps = check_bad_record_options(on_bad_record, max_jump_ps)
        self.check_reserved = check_reserved
        size = self.path.stat().st_size
        if size == 0:
            raise FormatError("file is empty (a dump file holds 16-byte records)", path=self.path)
        self.trailing_bytes = size % RECORD_SIZE
        if self.trailing_bytes:
            warnings.warn(f"{self.path}: truncated final record: {self.trailing_bytes} trailing bytes ignored",
                          TimetagWarning, stacklevel=2)
        self.records = size // RECORD_SIZE
        self._decoder = self._new_decoder()
        self._feeder = None

    def _new_decoder(self) -> DumpDecoder:
        return DumpDecoder(self.path, self.check_order, self.on_bad_record, self.max_jump_ps, self.check_reserved)

    @property
    def meta(self) -> dict:
        return {"trailing_bytes_ignored": self.trailing_bytes, **self._decoder.bad.meta}

    @property
    def lost_interval_open(self) -> bool:
        """True when the chunks read end inside a lost-data interval of bad records (closed by the next good tag
        of a following file: :func:`timetag.formats.iter_stream`)."""
        return self._decoder.bad.interval_open

    def __iter__(self) -> Iterator[TagChunk]:
        return self.iter_chunks()

    def hash_while_reading(self, feeder) -> None:
        """Feed ``feeder`` (``update_at(offset, bytes)``, :mod:`timetag.checksums`) every byte the reads map, with
        its offset in the file: the input's checksum without reading it twice
        (:class:`timetag.provenance.InputChecksums`)."""
        self._feeder = feeder

    def iter_chunks(self, start: int = 0, stop: int | None = None) -> Iterator[TagChunk]:
        """Chunks of records [start, stop) (record indices; the dump format has no carried state)."""
        start = max(int(start), 0)
        stop = self.records if stop is None else min(int(stop), self.records)
        if stop <= start:
            return
        dec = self._decoder = self._new_decoder()
        size = min(self.chunk_size, stop - start)
        window = min(WINDOW_RECORDS if self.use_mmap else READ_RECORDS, size)
        with open(self.path, "rb", buffering=0) as fh:
            windows = _Windows(fh, self.path, window, self.use_mmap, limit=stop * RECORD_SIZE)
            try:
                for lo in range(start, stop, self.chunk_size):
                    hi = min(lo + self.chunk_size, stop)
                    out_t, out_c = np.empty(hi - lo, np.int64), np.empty(hi - lo, np.int32)
                    w, lost, error = 0, [], None
                    for b in range(lo, hi, window):
                        rec = windows.open(b, min(b + window, hi))
                        if self._feeder is not None:
                            self._feeder.update_at(b * RECORD_SIZE, rec.view(np.uint8))
                        k, events, error = dec.split(rec, b, out_t[w:], out_c[w:])
                        del rec
                        windows.close()
                        w += k
                        if events.size:
                            lost.append(events)
                        if error is not None:
                            break
                    if error is None and hi == self.records and self._feeder is not None and self.trailing_bytes:
                        self._feeder.update_at(hi * RECORD_SIZE, os.pread(fh.fileno(), self.trailing_bytes,
                                                                         hi * RECORD_SIZE))
                    if w or lost or error is None:
                        yield TagChunk(out_t[:w], out_c[:w], np.concatenate(lost) if lost else None, offset=lo)
                    if error is not None:
                        raise error
            finally:
                dec.release_scratch()   # a reader outlives its read (its bad-record account is kept)


class _Windows:
    """Record windows [lo, hi) of an open dump file: mapped when possible, else read into one reused buffer.

    The caller drops every view of a window before ``close()`` (an mmap with live views cannot be closed).
    Windows come in increasing order up to byte ``limit``: the kernel reads ``READ_AHEAD_BYTES`` ahead of them
    (:class:`ReadAhead`).
    """

    def __init__(self, fh, path: Path, window: int, use_mmap: bool, limit: int | None = None):
        self.fd, self.path = fh.fileno(), path
        self._mm = None
        self._window = window   # the largest window asked for
        self._buf = None if use_mmap else np.empty(window, RECORD_DTYPE)
        self._ahead = ReadAhead(self.fd, limit, READ_AHEAD_BYTES)

    def open(self, lo: int, hi: int) -> np.ndarray:
        start, stop = lo * RECORD_SIZE, hi * RECORD_SIZE
        size = os.fstat(self.fd).st_size
        if size < stop:
            raise FormatError(f"file shrank while reading: expected {hi - lo} records from record {lo}, the file "
                              f"now ends at byte {size}", path=self.path, offset=size)
        self._ahead.reading(start, stop)
        if self._buf is None:
            base = start - start % mmap.ALLOCATIONGRANULARITY
            try:
                self._mm = mmap.mmap(self.fd, stop - base, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, offset=base)
            except (OSError, ValueError):   # e.g. a file system without mmap: read instead, from now on
                self._buf = np.empty(self._window, RECORD_DTYPE)
            else:
                return np.frombuffer(self._mm, RECORD_DTYPE, count=hi - lo, offset=start - base)
        return read_records_into(self.fd, self._buf[: hi - lo], start, lo, self.path)

    def close(self) -> None:
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:
                # a view is still alive somewhere (seen once in a Dask worker, held by a reference cycle): the
                # window is unmapped when that view is freed, instead of failing the read
                pass
            self._mm = None


class ReadAhead:
    """Tells the kernel that a file is read in increasing order up to byte ``limit`` (None: its end) and asks it
    to read ``ahead`` bytes past the bytes being read into the page cache.  Hints only: the pages are not mapped
    (the resident set does not grow), and a hint the system refuses changes nothing but the speed."""

    def __init__(self, fd: int, limit: int | None, ahead: int):
        self.fd, self.limit, self.ahead = fd, limit, ahead
        self.advised: int | None = None    # the byte up to which the kernel was asked to read

    def reading(self, start: int, stop: int) -> None:
        """Bytes [start, stop) are about to be read."""
        if not self.ahead:
            return
        if self.advised is None or start > self.advised:   # the first read, or a jump: start afresh from here
            _advise(self.fd, start, 0 if self.limit is None else self.limit - start, "POSIX_FADV_SEQUENTIAL")
            self.advised = start
        end = stop + self.ahead if self.limit is None else min(stop + self.ahead, self.limit)
        if end > self.advised:
            _advise(self.fd, self.advised, end - self.advised, "POSIX_FADV_WILLNEED")
            self.advised = end


def _advise(fd: int, offset: int, length: int, advice: str) -> None:
    """``posix_fadvise`` where the system has it; a refusal (a pipe, a file system without it) is ignored."""
    try:
        os.posix_fadvise(fd, offset, length, getattr(os, advice))
    except (AttributeError, OSError):
        pass


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


def encode_records(time, channel, lost_time, lost_type, lost_channel, lost_count, out) -> int:
    """Tags and lost events (their record types ``lost_type``) as dump records in ``out``, merged in time order:
    a lost event goes after the tags of equal time.  ``out``: RECORD_DTYPE records, or any C-contiguous buffer
    of whole records (e.g. uint64 pairs).  Returns the number of records.  The one record encoder: the writer
    and the simulator's output both go through it."""
    from .._cext.fmt_dump import encode_records as encode

    rec = out if out.dtype == RECORD_DTYPE else out.reshape(-1).view(RECORD_DTYPE)
    return encode(np.ascontiguousarray(time, np.int64), np.ascontiguousarray(channel, np.int32),
                  np.ascontiguousarray(lost_time, np.int64), np.ascontiguousarray(lost_type, np.uint8),
                  np.ascontiguousarray(lost_channel, np.int32), np.ascontiguousarray(lost_count, np.int64), rec)


def _encode_into(chunk: TagChunk, out: np.ndarray) -> int:
    lost = chunk.lost
    types = KIND_TO_TYPE[lost["kind"]]
    if not types.all():
        raise ValueError(f"lost-data event of unknown kind {int(lost['kind'][types == 0][0])}")
    return encode_records(chunk.time, chunk.channel, lost["time"], types, lost["channel"], lost["count"], out)


def encode_chunk(chunk: TagChunk) -> np.ndarray:
    """Tags and lost events of one chunk as dump records, merged in time order (lost events after equal-time tags)."""
    rec = np.empty(len(chunk) + chunk.lost.size, RECORD_DTYPE)
    _encode_into(chunk, rec)
    return rec


class DumpWriter(TagWriter):
    """Streaming writer: ``write(chunk)`` appends; use as a context manager.  Records are encoded into one
    reused buffer (fresh record arrays per chunk would dominate at simulator rates)."""

    def __init__(self, path):
        self.path = Path(path)
        self._fh = open(self.path, "xb")
        self._buf = np.empty(0, RECORD_DTYPE)
        self.records = 0

    def write(self, chunk: TagChunk) -> None:
        n = len(chunk) + chunk.lost.size
        if self._buf.size < n:
            self._buf = np.empty(n + n // 4 + 1024, RECORD_DTYPE)
        k = _encode_into(chunk, self._buf)
        self._fh.write(self._buf[:k].view(np.uint8))
        self.records += k

    def close(self) -> None:
        self._fh.close()


def write_dump(path, chunks: Iterable[TagChunk] | TagChunk, *, force: bool = False) -> int:
    if isinstance(chunks, TagChunk):
        chunks = [chunks]
    records = []

    def write(partial):
        with DumpWriter(partial) as w:
            for c in chunks:
                w.write(c)
        records.append(w.records)

    write_new(path, write, force=force)
    return records[0]
