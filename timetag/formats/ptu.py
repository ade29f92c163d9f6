"""PicoQuant PTU files (T2 and T3; PicoHarp 300, HydraHarp v1/v2, TimeHarp 260 N/P, MultiHarp / PicoHarp 330).

Channel convention of the tag stream (chosen to match ``ptufile`` for photons):

* photon channel ``c`` -> ``c`` as ptufile numbers it (HydraHarp family: the 6-bit channel field, 0-based;
  PicoHarp T2: the 4-bit field 0..14; PicoHarp T3: field 1..4 -> 0..3);
* the T2 sync special record (HydraHarp family) -> :data:`SYNC_CHANNEL` (64);
* a marker record with bit ``m`` (0..3) set -> one tag on ``MARKER_BASE + m`` (100..103) at the record's time.
  Markers have coarser timing and may be slightly out of order: PTU readers do not police order.

Times are picoseconds.  T2: (overflow sum + time field) x global resolution.  T3: (overflow sum + nsync) x
sync period + dtime x resolution; the T3 sync itself yields no tag (its count is in each record's macrotime).
Overflow records are consumed (counted in ``meta``), never emitted: they are not lost data.
"""
from __future__ import annotations

import datetime as _dt
import math
import mmap
import os
import struct
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..chunk import DEFAULT_CHUNK_SIZE, TagChunk
from ..constants import PTU_MARKER_BASE, PTU_SYNC_CHANNEL, PtuFamily, PtuWrap
from ..errors import FormatError, TimetagWarning
from ._common import TagWriter, check_readable, read_bytes_at, read_records_into, write_new

NAME = "ptu"
EXTENSIONS = (".ptu",)
MAGIC = b"PQTTTR\0\0"
SYNC_CHANNEL = PTU_SYNC_CHANNEL
MARKER_BASE = PTU_MARKER_BASE

STATE_FIELDS = ("overflow", "n_overflow", "n_marker", "n_sync", "n_invalid", "n_photon")

FAM_PICOHARP, FAM_HH1, FAM_HH2 = PtuFamily.PICOHARP, PtuFamily.HYDRAHARP1, PtuFamily.HYDRAHARP2
# record type code -> (device, family, is_t3)
RECORD_TYPES = {
    0x00010203: ("PicoHarp 300 T2", FAM_PICOHARP, False),
    0x00010303: ("PicoHarp 300 T3", FAM_PICOHARP, True),
    0x00010204: ("HydraHarp v1 T2", FAM_HH1, False),
    0x00010304: ("HydraHarp v1 T3", FAM_HH1, True),
    0x01010204: ("HydraHarp v2 T2", FAM_HH2, False),
    0x01010304: ("HydraHarp v2 T3", FAM_HH2, True),
    0x00010205: ("TimeHarp 260 N T2", FAM_HH2, False),
    0x00010305: ("TimeHarp 260 N T3", FAM_HH2, True),
    0x00010206: ("TimeHarp 260 P T2", FAM_HH2, False),
    0x00010306: ("TimeHarp 260 P T3", FAM_HH2, True),
    0x00010207: ("MultiHarp / PicoHarp 330 T2", FAM_HH2, False),
    0x00010307: ("MultiHarp / PicoHarp 330 T3", FAM_HH2, True),
}

TY_EMPTY8, TY_BOOL8, TY_INT8, TY_BITSET64, TY_COLOR8 = 0xFFFF0008, 0x00000008, 0x10000008, 0x11000008, 0x12000008
TY_FLOAT8, TY_DATETIME, TY_FLOAT8ARRAY = 0x20000008, 0x21000008, 0x2001FFFF
TY_ANSISTRING, TY_WIDESTRING, TY_BINARYBLOB = 0x4001FFFF, 0x4002FFFF, 0xFFFFFFFF
TAG_TYPE_NAMES = {
    TY_EMPTY8: "Empty8", TY_BOOL8: "Bool8", TY_INT8: "Int8", TY_BITSET64: "BitSet64", TY_COLOR8: "Color8",
    TY_FLOAT8: "Float8", TY_DATETIME: "TDateTime", TY_FLOAT8ARRAY: "Float8Array", TY_ANSISTRING: "AnsiString",
    TY_WIDESTRING: "WideString", TY_BINARYBLOB: "BinaryBlob",
}
_TAG_HEAD = struct.Struct("<32siI")


def sniff(path, head: bytes) -> bool:
    return head[:8] == MAGIC


def _datetime(days: float) -> str:
    # TDateTime counts days since 1899-12-30 (the Delphi/OLE epoch)
    try:
        return (_dt.datetime(1899, 12, 30) + _dt.timedelta(days=days)).isoformat(timespec="seconds")
    except (OverflowError, ValueError):
        return str(days)


def parse_header(fh, path, magic: bytes = MAGIC) -> tuple[dict, str, int]:
    """Read the tag header from an open binary file; returns (tags, version, offset of the first record).

    Array tags (index >= 0) become dicts index -> value.  Raises FormatError with the byte offset when the
    header is cut short or holds an unknown tag type code.
    """
    start = fh.read(16)
    if len(start) < 16:
        raise FormatError(f"header cut short: {len(start)} bytes, need 16 for magic and version", path=path, offset=0)
    if start[:8] != magic:
        raise FormatError(f"wrong magic {start[:8]!r} (a PTU file starts with {magic!r})", path=path, offset=0)
    version = start[8:].rstrip(b"\0").decode("ascii", "replace")
    tags: dict = {}
    pos = 16
    while True:
        raw = fh.read(48)
        if len(raw) < 48:
            raise FormatError(f"header cut short: tag entry needs 48 bytes, {len(raw)} left before end of file "
                              "(no Header_End tag)", path=path, offset=pos)
        ident, idx, typ = _TAG_HEAD.unpack_from(raw)
        name = ident.split(b"\0", 1)[0].decode("ascii", "replace")
        value_bytes = raw[40:48]
        entry_pos = pos
        pos += 48
        if typ in (TY_EMPTY8,):
            value = None
        elif typ in (TY_BOOL8,):
            value = struct.unpack("<q", value_bytes)[0] != 0
        elif typ in (TY_INT8, TY_BITSET64, TY_COLOR8):
            value = struct.unpack("<q", value_bytes)[0]
        elif typ == TY_FLOAT8:
            value = struct.unpack("<d", value_bytes)[0]
        elif typ == TY_DATETIME:
            value = _datetime(struct.unpack("<d", value_bytes)[0])
        elif typ in (TY_FLOAT8ARRAY, TY_ANSISTRING, TY_WIDESTRING, TY_BINARYBLOB):
            n = struct.unpack("<q", value_bytes)[0]
            if n < 0:
                raise FormatError(f"tag {name!r}: negative payload length {n}", path=path, offset=entry_pos)
            payload = fh.read(n)
            if len(payload) < n:
                raise FormatError(f"header cut short inside tag {name!r}: payload of {n} bytes, "
                                  f"{len(payload)} left", path=path, offset=pos)
            pos += n
            if typ == TY_FLOAT8ARRAY:
                value = np.frombuffer(payload[: n - n % 8], "<f8").copy()
            elif typ == TY_ANSISTRING:
                value = payload.split(b"\0", 1)[0].decode("latin-1")
            elif typ == TY_WIDESTRING:
                value = payload.decode("utf-16-le", "replace").split("\0", 1)[0]
            else:
                value = payload
        else:
            raise FormatError(f"tag {name!r} has unknown type code 0x{typ:08X} (known: "
                              + ", ".join(f"{v} 0x{k:08X}" for k, v in TAG_TYPE_NAMES.items()) + ")",
                              path=path, offset=entry_pos + 36)
        if name == "Header_End":
            return tags, version, pos
        if idx >= 0:
            slot = tags.setdefault(name, {})
            if isinstance(slot, dict):
                slot[idx] = value
        else:
            tags[name] = value


def _split_unit(seconds: float) -> tuple[int, float, float]:
    """A time unit in s -> (integer ps, fractional ps, unit in ps) rounded to 1e-6 ps (float noise of the header)."""
    ps = round(float(seconds) * 1e12, 6)
    whole = math.floor(ps)
    return int(whole), round(ps - whole, 6), ps


@dataclass(frozen=True)
class RecordLayout:
    """How the records of a PTU file decode, from its header: record type, device, family, T2/T3, resolutions."""

    rectype: int
    device: str
    family: int
    is_t3: bool
    global_resolution_s: float
    resolution_s: float

    @classmethod
    def from_tags(cls, tags: dict, path=None) -> "RecordLayout":
        """FormatError (naming ``path``) for a header whose records timetag cannot decode."""
        rectype = tags.get("TTResultFormat_TTTRRecType")
        if rectype is None:
            raise FormatError("header has no TTResultFormat_TTTRRecType tag (is this a histogram file?)", path=path)
        if rectype not in RECORD_TYPES:
            raise FormatError(f"unsupported record type 0x{rectype:08X} (supported: "
                              + ", ".join(f"0x{k:08X} {v[0]}" for k, v in RECORD_TYPES.items()) + ")", path=path)
        device, family, is_t3 = RECORD_TYPES[rectype]
        bits = tags.get("TTResultFormat_BitsPerRecord", 32)
        if bits != 32:
            raise FormatError(f"TTResultFormat_BitsPerRecord is {bits}, only 32-bit records are supported", path=path)
        global_res = float(tags.get("MeasDesc_GlobalResolution", 0) or 0)
        if not global_res > 0:
            raise FormatError(f"MeasDesc_GlobalResolution is {global_res!r}, must be > 0", path=path)
        res = float(tags.get("MeasDesc_Resolution", global_res) or global_res)
        return cls(rectype, device, family, is_t3, global_res, res)

    def decoder(self) -> "_RecordDecoder":
        """A fresh record decoder (overflow state at zero: the file's first record)."""
        return _RecordDecoder(self.family, self.is_t3, self.global_resolution_s, self.resolution_s)


class _RecordDecoder:
    """Streams raw 32-bit records through the Cython kernel, carrying the overflow state."""

    def __init__(self, family: int, t3: bool, global_res_s: float, res_s: float):
        self.family, self.t3 = family, t3
        self.g_int, self.g_frac, _ = _split_unit(global_res_s)
        self.r_int, self.r_frac, _ = _split_unit(res_s)
        self.state = np.zeros(len(STATE_FIELDS), np.int64)

    def decode(self, rec: np.ndarray, want_dtime: bool = False):
        out = _TagBuffer(rec.size + 8, self.t3)
        self.decode_into(rec, out)
        t, c, d = out.tags()
        return (t, c, d) if want_dtime else (t, c)

    def decode_into(self, rec: np.ndarray, out: "_TagBuffer") -> None:
        """Append the tags of ``rec`` to ``out``; the state carries over, so any cut of the records into calls
        gives the same tags."""
        from .._cext import fmt_ptu

        rec = np.ascontiguousarray(rec, dtype=np.uint32)
        n, done = rec.size, 0
        while done < n:
            out.reserve(n - done + 8)     # a tag per record, and slack for markers (up to 4 tags each)
            w = out.written
            if self.t3:
                used, k = fmt_ptu.decode_t3(rec[done:], self.family, self.g_int, self.g_frac, self.r_int,
                                            self.r_frac, self.state, out.time[w:], out.channel[w:], out.dtime[w:])
            else:
                used, k = fmt_ptu.decode_t2(rec[done:], self.family, self.g_int, self.g_frac, self.state,
                                            out.time[w:], out.channel[w:])
            out.written += k
            done += used

    @property
    def counters(self) -> dict:
        return {k: int(v) for k, v in zip(STATE_FIELDS, self.state) if k != "overflow"}


class _TagBuffer:
    """The tags of one chunk, appended call after call.  Sized for one tag per record; it grows only when
    markers (up to 4 tags a record) outnumber the overflow records dropped before them."""

    def __init__(self, capacity: int, t3: bool):
        self.time = np.empty(capacity, np.int64)
        self.channel = np.empty(capacity, np.int32)
        self.dtime = np.empty(capacity, np.int32) if t3 else None
        self.written = 0

    def reserve(self, room: int) -> None:
        if self.time.size - self.written >= room:
            return
        size = max(self.written + room, self.time.size * 3 // 2)
        self.time = _grown(self.time, size, self.written)
        self.channel = _grown(self.channel, size, self.written)
        if self.dtime is not None:
            self.dtime = _grown(self.dtime, size, self.written)

    def tags(self):
        w = self.written
        return self.time[:w], self.channel[:w], None if self.dtime is None else self.dtime[:w]


def _grown(a: np.ndarray, size: int, keep: int) -> np.ndarray:
    out = np.empty(size, a.dtype)
    out[:keep] = a[:keep]
    return out


# Records are decoded a window of at most this many (8 MiB) at a time.  The file is mapped once, and the pages of
# each window are dropped from the mapping (MADV_DONTNEED) once it is decoded: the pages of a mapping count towards
# the resident set while they are mapped, so peak RSS stays flat whatever the file size.  One mapping rather than a
# fresh one per window: its pages fault in with fewer faults (docs/performance.md, "PTU reading with flat memory").
# Where mapping is impossible, each window is read into a reused buffer instead.
WINDOW_RECORDS = 1 << 21
# Dropping also covers this much before a window: the kernel maps pages around the one a fault asks for, so a
# window's first fault can map again the last pages of the window before it.
_DROP_BEHIND = 2 << 20


class _RecordWindows:
    """Windows [lo, hi) (record indices, increasing) of the first ``records`` records of an open file, one at a
    time: views of one mapping of the file where possible, else read into one reused buffer.  ``close()`` ends a
    window (the caller has dropped its views), ``release()`` the whole read.  The file size is checked before each
    window, so a file truncated while it is read gives an error rather than a bus error, except when it shrinks
    during the decoding of the window itself."""

    def __init__(self, fh, path: Path, data_offset: int, records: int, window: int):
        self.fd, self.path, self.data_offset, self.records = fh.fileno(), path, data_offset, records
        self._window = window
        self._mm = None
        self._buf = None
        self._span = None        # the bytes of the open window, to drop when it is closed

    def open(self, lo: int, hi: int) -> np.ndarray:
        start, stop = self.data_offset + 4 * lo, self.data_offset + 4 * hi
        size = os.fstat(self.fd).st_size
        if size < stop:
            raise FormatError(f"file shrank while reading: expected {hi - lo} records from record {lo}, the file "
                              f"now ends at byte {size}", path=self.path, offset=size)
        if self._buf is None and self._mm is None:
            try:
                self._mm = mmap.mmap(self.fd, self.data_offset + 4 * self.records, flags=mmap.MAP_SHARED,
                                     prot=mmap.PROT_READ)
            except (OSError, ValueError):   # e.g. a file system without mmap: read instead
                self._buf = np.empty(self._window, "<u4")
        if self._mm is not None:
            self._span = (start, stop)
            return np.frombuffer(self._mm, "<u4", count=hi - lo, offset=start)
        return read_records_into(self.fd, self._buf[: hi - lo], start, lo, self.path)

    def close(self) -> None:
        if self._span is None:
            return
        start, stop = self._span
        self._span = None
        start = max(start - _DROP_BEHIND, 0)
        start -= start % mmap.PAGESIZE
        try:
            self._mm.madvise(mmap.MADV_DONTNEED, start, stop - start)
        except (AttributeError, OSError):   # no madvise here: the pages stay mapped, as in a whole-file read
            pass

    def release(self) -> None:
        self.close()
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:     # a view still alive: the file is unmapped when that view is freed
                pass
            self._mm = None


class PtuReader:
    """Chunked reader over memory-mapped 32-bit records (64-bit offsets), decoded a window at a time;
    ``iter_chunks`` yields TagChunks."""

    format = NAME

    def __init__(self, path, chunk_size: int = DEFAULT_CHUNK_SIZE, check_order: bool = False, **_ignored):
        self.path = check_readable(path)
        self.chunk_size = max(int(chunk_size), 1)
        self._counters: dict = {}
        self._feeder = None
        self._parse_header()
        self._count_records()

    def _parse_header(self) -> None:
        with open(self.path, "rb") as fh:
            self.tags, self.version, self.data_offset = parse_header(fh, self.path)
        layout = RecordLayout.from_tags(self.tags, self.path)
        self.rectype, self.device, self.family, self.is_t3 = layout.rectype, layout.device, layout.family, layout.is_t3
        self.global_resolution_s, self.resolution_s = layout.global_resolution_s, layout.resolution_s
        self.declared_records = self.tags.get("TTResult_NumberOfRecords")

    def _count_records(self) -> None:
        size = self.path.stat().st_size
        avail_bytes = max(size - self.data_offset, 0)
        available = avail_bytes // 4
        declared = self.declared_records
        self.trailing_bytes = 0
        if declared is None or declared > available:
            if declared is not None:
                warnings.warn(f"{self.path}: header declares {declared} records but only {available} are present "
                              "(file truncated?): reading those", TimetagWarning, stacklevel=3)
            self.records = available
            self.trailing_bytes = avail_bytes - 4 * available
            if self.trailing_bytes:
                warnings.warn(f"{self.path}: truncated final record: {self.trailing_bytes} trailing bytes ignored",
                              TimetagWarning, stacklevel=3)
        else:
            self.records = int(declared)
        self.resolution_ps = _split_unit(self.resolution_s if self.is_t3 else self.global_resolution_s)[2]

    def _mm(self):
        if self.records == 0:
            return np.zeros(0, np.uint32)
        return np.memmap(self.path, dtype="<u4", mode="r", offset=self.data_offset, shape=(self.records,))

    def _decoder(self) -> _RecordDecoder:
        return _RecordDecoder(self.family, self.is_t3, self.global_resolution_s, self.resolution_s)

    @property
    def meta(self) -> dict:
        m = {
            "device": self.device, "record_type": f"0x{self.rectype:08X}", "mode": "T3" if self.is_t3 else "T2",
            "version": self.version, "data_offset": self.data_offset,
            "global_resolution_s": self.global_resolution_s, "resolution_s": self.resolution_s,
            "acquisition_time_s": _acq_time(self.tags), "sync_rate_hz": self.tags.get("TTResult_SyncRate"),
            "created": self.tags.get("File_CreatingTime"), "trailing_bytes_ignored": self.trailing_bytes,
            "channel_convention": f"photon c -> c (as ptufile), T2 sync -> {SYNC_CHANNEL}, "
                                  f"marker bit m -> {MARKER_BASE}+m",
        }
        m.update(self._counters)
        return m

    def __iter__(self) -> Iterator[TagChunk]:
        return self.iter_chunks()

    def iter_chunks(self, start: int = 0, stop: int | None = None, with_dtime: bool = False) -> Iterator[TagChunk]:
        """Chunks of the tags decoded from records [start, stop) (record indices).

        Starting past 0 first runs the overflow bookkeeping over the skipped records.  With ``with_dtime`` (T3
        only) each chunk carries an extra attribute ``dtime`` (raw micro-time bins, -1 for markers).  Records
        are decoded in windows of at most ``WINDOW_RECORDS`` whose pages leave the resident set once decoded, so
        peak RSS does not grow with the file.
        """
        stop = self.records if stop is None else min(int(stop), self.records)
        start = max(0, int(start))
        dec = self._decoder()
        dtime = with_dtime and self.is_t3
        window = max(1, min(WINDOW_RECORDS, self.chunk_size))
        with open(self.path, "rb", buffering=0) as fh:
            if self._feeder is not None:  # (the records are decoded from the first one whatever ``start``)
                self._feeder.update_at(0, read_bytes_at(fh.fileno(), 0, self.data_offset, self.path))
            windows = _RecordWindows(fh, self.path, self.data_offset, self.records, window)
            try:
                skip = min(start, self.records)
                skipped = _TagBuffer(min(skip, window) + 8, self.is_t3)
                for lo in range(0, skip, window):
                    skipped.written = 0
                    self._decode_window(windows, dec, lo, min(lo + window, skip), skipped)
                offset = 0
                for lo in range(start, stop, self.chunk_size):
                    hi = min(lo + self.chunk_size, stop)
                    out = _TagBuffer(hi - lo + 8, self.is_t3)
                    for b in range(lo, hi, window):
                        self._decode_window(windows, dec, b, min(b + window, hi), out)
                    t, c, d = out.tags()
                    chunk = TagChunk(t, c, offset=offset)
                    if dtime:
                        chunk.dtime = d
                    offset += len(chunk)
                    self._counters = dec.counters
                    yield chunk
                if self._feeder is not None and stop == self.records and self.trailing_bytes:
                    at = self.data_offset + 4 * self.records
                    self._feeder.update_at(at, read_bytes_at(fh.fileno(), at, self.trailing_bytes, self.path))
            finally:
                windows.release()
        self._counters = dec.counters

    def hash_while_reading(self, feeder) -> None:
        """Feed ``feeder`` (``update_at(offset, bytes)``, :mod:`timetag.checksums`) every byte the reads take, with
        its offset in the file: the header, the records as they are mapped, the trailing bytes when reading to the
        end (the input's checksum without reading it twice)."""
        self._feeder = feeder

    def _decode_window(self, windows: _RecordWindows, dec: _RecordDecoder, lo: int, hi: int, out: _TagBuffer) -> None:
        rec = windows.open(lo, hi)
        try:
            if self._feeder is not None:
                self._feeder.update_at(self.data_offset + 4 * lo, rec.view(np.uint8))
            dec.decode_into(rec, out)
        finally:
            del rec
            windows.close()

    def read_raw(self) -> np.ndarray:
        """Every record of the file, as one read-only mapping of the whole file (its pages count towards the
        resident set as they are read, and stay: ``iter_chunks`` drops them window by window)."""
        return np.asarray(self._mm())


def _acq_time(tags: dict):
    v = tags.get("MeasDesc_AcquisitionTime")
    return None if v is None else float(v) / 1000.0   # stored in ms


# ----------------------------------------------------------------------------------------------------------- writer
WRITE_RECTYPE = 0x01010204          # HydraHarp v2 T2: readable by every PTU reader we know
_T2_WRAP = int(PtuWrap.T2_HYDRAHARP2)
# The format allows counts up to 2**25-1, but some readers (ptufile 2026.2) multiply the count by the wrap
# in 32 bits; at most 127 wraps per record keeps every reader right at the cost of more records for long gaps.
_MAX_OFL_COUNT = 127


def _tag(name: str, typ: int, value, idx: int = -1) -> bytes:
    ident = name.encode("ascii")[:31].ljust(32, b"\0")
    if typ in (TY_ANSISTRING,):
        payload = value.encode("latin-1") + b"\0"
        payload += b"\0" * (-len(payload) % 8)
        return _TAG_HEAD.pack(ident, idx, typ) + struct.pack("<q", len(payload)) + payload
    if typ == TY_FLOAT8:
        return _TAG_HEAD.pack(ident, idx, typ) + struct.pack("<d", float(value))
    return _TAG_HEAD.pack(ident, idx, typ) + struct.pack("<q", int(value))


class PtuWriter(TagWriter):
    """Streaming T2 writer: HydraHarp v2 T2 records at 1 ps global resolution.

    Channels: 0..63 photons, 64 -> sync special record, 100..103 -> marker bits.  Times must be >= 0 and
    non-decreasing.  PTU cannot represent lost-data events: a chunk carrying them raises FormatError unless
    ``drop_lost=True`` (then they are counted in ``lost_dropped``).  ``meta['name']``: the file's name in
    messages when ``path`` is a temporary one (``OUT.partial`` while ``timetag convert`` writes ``OUT``).
    """

    def __init__(self, path, drop_lost: bool = False, comment: str = "", **meta):
        self.path = Path(path)
        self.name = Path(meta.get("name") or path)
        self.drop_lost = drop_lost
        self.lost_dropped = 0
        self.records = 0
        self.tags_written = 0
        self._ofl = 0          # wraps accounted so far
        self._last = 0
        self._fh = open(self.path, "xb")
        now = (_dt.datetime.now() - _dt.datetime(1899, 12, 30)).total_seconds() / 86400.0
        head = [MAGIC, b"1.0.00\0\0"]
        head.append(_tag("File_Comment", TY_ANSISTRING, comment or "written by timetag"))
        head.append(_TAG_HEAD.pack(b"File_CreatingTime".ljust(32, b"\0"), -1, TY_DATETIME) + struct.pack("<d", now))
        # PicoQuant's own software names each file by a GUID in braces; readers (ptufile, for one) expect it
        head.append(_tag("File_GUID", TY_ANSISTRING, "{" + str(uuid.uuid4()).upper() + "}"))
        head.append(_tag("CreatorSW_Name", TY_ANSISTRING, "timetag"))
        head.append(_tag("Measurement_Mode", TY_INT8, 2))
        head.append(_tag("Measurement_SubMode", TY_INT8, 0))
        head.append(_tag("HW_Type", TY_ANSISTRING, "HydraHarp"))
        head.append(_tag("MeasDesc_GlobalResolution", TY_FLOAT8, 1e-12))
        head.append(_tag("MeasDesc_Resolution", TY_FLOAT8, 1e-12))
        head.append(_tag("TTResult_SyncRate", TY_INT8, int(meta.get("sync_rate_hz", 0) or 0)))
        head.append(_tag("TTResultFormat_TTTRRecType", TY_INT8, WRITE_RECTYPE))
        head.append(_tag("TTResultFormat_BitsPerRecord", TY_INT8, 32))
        self._nrec_pos = sum(len(h) for h in head) + 40
        head.append(_tag("TTResult_NumberOfRecords", TY_INT8, 0))
        head.append(_tag("Header_End", TY_EMPTY8, 0))
        self._fh.write(b"".join(head))

    def write(self, chunk: TagChunk) -> None:
        if chunk.lost.size:
            if not self.drop_lost:
                said = (f"{chunk.lost.size} lost-data event(s) (overflow/missed/error) cannot be represented in "
                        "PTU; write h5 or dump instead, or drop them ({})")
                raise FormatError(said.format("drop_lost=True"), cli_message=said.format("--drop-lost"),
                                  path=self.name)
            self.lost_dropped += int(chunk.lost.size)
        rec = self._encode(chunk)
        rec.tofile(self._fh)
        self.records += rec.size
        self.tags_written += len(chunk)

    def _encode(self, chunk: TagChunk) -> np.ndarray:
        t, c = chunk.time, chunk.channel
        if t.size == 0:
            return np.zeros(0, np.uint32)
        prev = np.concatenate(([self._last], t))
        bad = np.flatnonzero(prev[1:] < prev[:-1])
        if bad.size:
            i = int(bad[0])
            raise FormatError(f"tag {chunk.offset + i}: time {int(t[i])} ps is negative or earlier than the "
                              f"previous tag ({int(prev[i])} ps); PTU T2 needs non-decreasing times", path=self.name)
        ok = (c >= 0) & (c < 64) | (c == SYNC_CHANNEL) | ((c >= MARKER_BASE) & (c < MARKER_BASE + 4))
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise FormatError(f"tag {chunk.offset + i}: channel {int(c[i])} cannot be written to HydraHarp T2 "
                              f"(photons 0..63, sync {SYNC_CHANNEL}, markers {MARKER_BASE}..{MARKER_BASE + 3})",
                              path=self.name)
        wraps = t // _T2_WRAP
        word = np.empty(t.size, np.uint32)
        tf = (t - wraps * _T2_WRAP).astype(np.uint32)
        ph = c < 64
        word[ph] = (c[ph].astype(np.uint32) << 25) | tf[ph]
        word[c == SYNC_CHANNEL] = (np.uint32(1) << 31) | tf[c == SYNC_CHANNEL]
        mk = c >= MARKER_BASE
        word[mk] = (np.uint32(1) << 31) | ((np.uint32(1) << (c[mk] - MARKER_BASE).astype(np.uint32)) << 25) | tf[mk]
        # overflow records before each tag whose wrap count moved on; huge gaps need several records
        dk = np.diff(np.concatenate(([self._ofl], wraps)))
        n_ofl = -(-dk // _MAX_OFL_COUNT)
        total = t.size + int(n_ofl.sum())
        out = np.empty(total, np.uint32)
        pos = np.arange(t.size) + np.cumsum(n_ofl)
        out[pos] = word
        ofl_word = (np.uint32(1) << 31) | (np.uint32(63) << 25)
        tot = int(n_ofl.sum())
        if tot:
            rep = np.repeat(np.arange(t.size), n_ofl)
            j = np.arange(tot) - np.repeat(np.cumsum(n_ofl) - n_ofl, n_ofl)   # index within the gap's block
            last = j == n_ofl[rep] - 1
            counts = np.where(last, dk[rep] - _MAX_OFL_COUNT * (n_ofl[rep] - 1), _MAX_OFL_COUNT)
            out[pos[rep] - n_ofl[rep] + j] = ofl_word | counts.astype(np.uint32)
        self._ofl = int(wraps[-1])
        self._last = int(t[-1])
        return out

    def close(self) -> None:
        if self._fh.closed:
            return
        self._fh.seek(self._nrec_pos)
        self._fh.write(struct.pack("<q", self.records))
        self._fh.close()



def write_ptu(path, chunks: Iterable[TagChunk] | TagChunk, drop_lost: bool = False, *, force: bool = False,
              **meta) -> int:
    if isinstance(chunks, TagChunk):
        chunks = [chunks]
    records = []

    def write(partial):
        with PtuWriter(partial, drop_lost=drop_lost, **meta) as w:
            for c in chunks:
                w.write(c)
        records.append(w.records)

    write_new(path, write, force=force)
    return records[0]


def open_reader(path, chunk_size: int = DEFAULT_CHUNK_SIZE, **opts) -> PtuReader:
    return PtuReader(path, chunk_size, **opts)


def open_writer(path, **meta) -> PtuWriter:
    return PtuWriter(path, **meta)
