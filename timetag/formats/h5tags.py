"""timetag's own HDF5 tag file, Photon-HDF5 compatible where it is cheap; also reads plain Photon-HDF5.

Layout written::

    /photon_data/timestamps                       int64, ps (chunked, compressed, resizable)
    /photon_data/detectors                        int32 channel numbers
    /photon_data/timestamps_specs/timestamps_unit 1e-12 (s)
    /photon_data/lost                             lost-data events (timetag.chunk.LOST_DTYPE)
    /  attrs: format="timetag-tags", format_version, resolution_ps, lab, provenance (JSON)

Reading Photon-HDF5 from elsewhere: the group is ``/photon_data`` (or the nonconforming ``/photon_data0``, with a
warning); the unit comes from ``timestamps_specs/timestamps_unit``; when it is missing, pass
``timestamps_unit_s=...`` or the reader warns and assumes 1 ps per tick.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from ..chunk import DEFAULT_CHUNK_SIZE, LOST_DTYPE, TagChunk, empty_lost
from ..errors import FormatError, TimetagWarning
from ..provenance import provenance as make_prov, read_h5_provenance, write_h5_provenance
from ._common import GuardedReader, OrderGuard, TagWriter, check_bad_record_options, check_readable

NAME = "h5"
EXTENSIONS = (".h5", ".hdf5", ".hdf")
MAGIC = b"\x89HDF\r\n\x1a\n"
FORMAT_TAG = "timetag-tags"
FORMAT_VERSION = 1
_ROWS_PER_CHUNK = 1 << 16


def sniff(path, head: bytes) -> bool:
    return head[:8] == MAGIC


def _attr_str(v):
    return v.decode() if isinstance(v, bytes) else v


class H5TagReader(GuardedReader):
    format = NAME

    def __init__(self, path, chunk_size: int = DEFAULT_CHUNK_SIZE, check_order: bool = True,
                 timestamps_unit_s: float | None = None, on_bad_record: str = "fail",
                 max_jump_ps: int | None = None, **_ignored):
        self.path = check_readable(path)
        self.chunk_size = max(int(chunk_size), 1)
        self.check_order = check_order
        self.on_bad_record, self.max_jump_ps = check_bad_record_options(on_bad_record, max_jump_ps)
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as exc:
            raise FormatError(f"not a readable HDF5 file ({exc})", path=self.path) from None
        f = self._f
        self.own = _attr_str(f.attrs.get("format")) == FORMAT_TAG
        if "photon_data" in f:
            self.group = "photon_data"
        elif "photon_data0" in f:
            self.group = "photon_data0"
            warnings.warn(f"{self.path}: nonconforming Photon-HDF5: using /photon_data0 (no /photon_data group)",
                          TimetagWarning, stacklevel=3)
        else:
            entries, rounds_file = ", ".join(f.keys()) or "none", "rounds" in f
            f.close()
            if rounds_file:  # the output of `timetag process`, given where tags are read
                raise FormatError(f"a timetag rounds file (/rounds: the output of `timetag process`), not a tag "
                                  f"file (top-level entries: {entries})", path=self.path)
            raise FormatError(f"no /photon_data group (top-level entries: {entries}); not a Photon-HDF5 or "
                              "timetag tag file", path=self.path)
        g = f[self.group]
        for name in ("timestamps", "detectors"):
            if name not in g:
                raise FormatError(f"/{self.group} has no '{name}' dataset (has: {', '.join(g.keys())})",
                                  path=self.path)
        self._ts, self._det = g["timestamps"], g["detectors"]
        if self._ts.shape != self._det.shape:
            raise FormatError(f"/{self.group}: timestamps {self._ts.shape} and detectors {self._det.shape} differ "
                              "in length", path=self.path)
        unit = timestamps_unit_s
        if unit is None and "timestamps_specs/timestamps_unit" in g:
            unit = float(np.asarray(g["timestamps_specs/timestamps_unit"]))
        if unit is None:
            warnings.warn(f"{self.path}: /{self.group} has no timestamps_specs/timestamps_unit: assuming 1 ps per "
                          "tick (pass timestamps_unit_s=... to set it)", TimetagWarning, stacklevel=3)
            unit = 1e-12
        self.timestamps_unit_s = unit
        self._unit_ps = round(unit * 1e12, 6)
        self.resolution_ps = float(f.attrs.get("resolution_ps", self._unit_ps))
        self.records = int(self._ts.shape[0])
        self.lost = np.asarray(g["lost"]).astype(LOST_DTYPE) if "lost" in g else empty_lost()
        self._guard = None

    @property
    def meta(self) -> dict:
        m = {"group": self.group, "timetag_file": self.own, "timestamps_unit_s": self.timestamps_unit_s,
             "lab": _attr_str(self._f.attrs.get("lab")), "lost_events": int(self.lost.size)}
        if self.own:
            m["provenance"] = read_h5_provenance(self._f)
        m.update(self.guard_meta())
        return m

    def _to_ps(self, raw: np.ndarray, lo: int) -> np.ndarray:
        if raw.dtype.kind == "u" and raw.size and int(raw.max()) > np.iinfo(np.int64).max:
            raise FormatError(f"timestamp beyond int64 near record {lo}", path=self.path)
        t = raw.astype(np.int64)
        if self._unit_ps == 1:
            return t
        if float(self._unit_ps).is_integer():
            return t * int(self._unit_ps)
        return np.floor(t * self._unit_ps + 0.5).astype(np.int64)

    def __iter__(self) -> Iterator[TagChunk]:
        return self.iter_chunks()

    def iter_chunks(self, start: int = 0, stop: int | None = None) -> Iterator[TagChunk]:
        stop = self.records if stop is None else min(int(stop), self.records)
        start = max(0, int(start))
        guard = self._guard = OrderGuard(self.path, check=self.check_order, index_of=lambda i: i + start,
                                         on_bad_record=self.on_bad_record, max_jump_ps=self.max_jump_ps)
        lost, lt = self.lost, self.lost["time"]
        li = 0 if start == 0 else int(np.searchsorted(lt, self._to_ps(self._ts[start - 1:start], start)[0],
                                                     side="right"))
        if stop <= start:
            yield TagChunk(np.zeros(0, np.int64), np.zeros(0, np.int32), lost[li:], 0)
            return
        for lo in range(start, stop, self.chunk_size):
            hi = min(lo + self.chunk_size, stop)
            t = self._to_ps(self._ts[lo:hi], lo)
            c = np.asarray(self._det[lo:hi]).astype(np.int32)
            # each lost event travels in the chunk holding the last tag at or before it (the rest in the last)
            lj = lt.size if hi == stop else int(np.searchsorted(lt, t[-1], side="right"))
            lj = max(lj, li)
            yield from guard.checked(TagChunk(t, c, lost[li:lj], offset=lo - start))
            li = lj

    def close(self) -> None:
        self._f.close()


class H5TagWriter(TagWriter):
    """Streaming writer with resizable, chunked, compressed datasets.

    ``swmr=True`` writes a file that can be read while it grows (``timetag live --source follow:FILE``, or
    ``h5py.File(path, "r", libver="latest", swmr=True)`` with ``refresh()``): the file uses the latest format
    (readable by HDF5 >= 1.10 only), SWMR mode starts once every dataset and attribute exists (none can be
    added after), and each ``write`` flushes, so a reader sees whole chunks: the chunk's lost events first,
    then timestamps, then detectors (a reader takes rows up to the shorter tag dataset).
    """

    def __init__(self, path, lab: str | None = None, resolution_ps: float = 1, provenance: dict | None = None,
                 compression: str | None = "gzip", swmr: bool = False, **_ignored):
        self.path = Path(path)
        self.swmr = bool(swmr)
        self._f = f = h5py.File(self.path, "w-", **({"libver": "latest"} if self.swmr else {}))
        try:
            f.attrs["format"] = FORMAT_TAG
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["resolution_ps"] = resolution_ps
            if lab is not None:
                f.attrs["lab"] = lab
            write_h5_provenance(f, provenance if provenance is not None else make_prov())
            f["description"] = "time tags written by timetag (time in ps, channel numbers as in the source)"
            g = f.create_group("photon_data")
            kw = dict(chunks=(_ROWS_PER_CHUNK,), maxshape=(None,))
            if compression:
                kw.update(compression=compression, shuffle=True)
                if compression == "gzip":
                    kw["compression_opts"] = 1    # fast: tag files are large and written while processing
            self._ts = g.create_dataset("timestamps", shape=(0,), dtype="<i8", **kw)
            self._det = g.create_dataset("detectors", shape=(0,), dtype="<i4", **kw)
            g.create_dataset("lost", shape=(0,), dtype=LOST_DTYPE, chunks=(1024,), maxshape=(None,))
            g["timestamps_specs/timestamps_unit"] = 1e-12
            self._lost = g["lost"]
            if self.swmr:
                f.swmr_mode = True
                f.flush()
        except BaseException:
            f.close()
            raise
        self.records = 0

    def write(self, chunk: TagChunk) -> None:
        # lost events first: a SWMR follower holds each until it has read a tag at or after its time, so it
        # must not see those tags before the event
        m = chunk.lost.size
        if m:
            k = self._lost.shape[0]
            self._lost.resize((k + m,))
            self._lost[k:] = chunk.lost
            if self.swmr:
                self._lost.flush()
        n = len(chunk)
        if n:
            for ds, values in ((self._ts, chunk.time), (self._det, chunk.channel)):
                ds.resize((self.records + n,))
                ds[self.records:] = values
                if self.swmr:
                    ds.flush()
            self.records += n

    def close(self) -> None:
        if self._f.id.valid:
            self._f.close()



def open_reader(path, chunk_size: int = DEFAULT_CHUNK_SIZE, **opts) -> H5TagReader:
    return H5TagReader(path, chunk_size, **opts)


def open_writer(path, **meta) -> H5TagWriter:
    return H5TagWriter(path, **meta)
