"""timetag's HDF5 tag file, which is Photon-HDF5 (format 0.5); also reads plain Photon-HDF5 and the files of the
previous timetag versions.

Layout written (format_version 2; every node outside /user carries the spec's TITLE)::

    /  attrs: TITLE, format_name "Photon-HDF5", format_version "0.5", format_url
    /description                                   what the file holds (lab, source file)
    /acquisition_duration                          s, from the first to the last tag
    /photon_data/timestamps                        int64, ps (chunked, compressed, resizable)
    /photon_data/detectors                         int32 channel numbers
    /photon_data/timestamps_specs/timestamps_unit  1e-12 (s)
    /photon_data/measurement_specs/measurement_type       "generic"
    /photon_data/measurement_specs/detectors_specs/       (empty: no spectral/polarization/split mapping)
    /setup/num_pixels (channels seen), num_spots = num_spectral_ch = num_polarization_ch = num_split_ch = 1,
          modulated_excitation = lifetime = 0, excitation_alternated = excitation_cw = [] (sources not known)
    /setup/detectors/id, counts                    the channels seen and their numbers of tags
    /identity/filename, creation_time, software "timetag", software_version, format_name/version/url
    /provenance/filename, filename_full            the source file, when there is exactly one
    /user/timetag                                  attrs: format="timetag-tags", format_version, resolution_ps,
                                                   lab, provenance (JSON), software_version, ...
    /user/timetag/lost                             lost-data events (timetag.chunk.LOST_DTYPE, time in ps)

Format version 1 (timetag before Photon-HDF5 compliance) kept the timetag attributes on the root and the lost
events in ``/photon_data/lost``; the reader still reads it.

Reading Photon-HDF5 from elsewhere: the group is ``/photon_data`` (or the nonconforming ``/photon_data0``, with a
warning); the unit comes from ``timestamps_specs/timestamps_unit``; when it is missing, pass
``timestamps_unit_s=...`` or the reader warns and assumes 1 ps per tick.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from .._version import __version__
from ..chunk import DEFAULT_CHUNK_SIZE, LOST_DTYPE, TagChunk, empty_lost
from ..errors import FormatError, TimetagWarning
from ..provenance import provenance as make_prov, read_h5_provenance, write_h5_provenance
from . import photon_hdf5 as ph
from ._common import GuardedReader, OrderGuard, TagWriter, check_bad_record_options, check_readable

NAME = "h5"
EXTENSIONS = (".h5", ".hdf5", ".hdf")
MAGIC = b"\x89HDF\r\n\x1a\n"
FORMAT_TAG = "timetag-tags"
FORMAT_VERSION = 2   # 1: before Photon-HDF5 (attributes on the root, /photon_data/lost)
USER_GROUP = "user/timetag"
_ROWS_PER_CHUNK = 1 << 16
# SWMR needs the HDF5 1.10 file format; capped there, not "latest": with HDF5 2.x "latest" writes objects that
# HDF5 1.14 (PyTables, hence phconvert; MATLAB) cannot open ("bad version number for layout message")
_SWMR_LIBVER = ("v110", "v110")


def sniff(path, head: bytes) -> bool:
    return head[:8] == MAGIC


def _attr_str(v):
    return v.decode() if isinstance(v, bytes) else v


def _final_name(path: Path) -> str:
    """The file's name once complete (custody writes ``<name>.partial`` first)."""
    return path.name[:-len(".partial")] if path.name.endswith(".partial") else path.name


def _describe(lab, prov: dict) -> str:
    text = "Time tags written by timetag: timestamps in ps, detectors are the source's channel numbers"
    if lab:
        text += f"; lab {lab}"
    inputs = prov.get("inputs") or []
    names = [i.get("name") for i in inputs if isinstance(i, dict) and i.get("name")]
    if names:
        text += f"; converted from {', '.join(names)}"
        if prov.get("converted_from"):
            text += f" ({prov['converted_from']})"
    return text + ". Lost-data events and provenance: /user/timetag."


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
        # timetag's attributes: on /user/timetag (format 2, Photon-HDF5) or on the root (format 1)
        tt = f[USER_GROUP] if USER_GROUP in f and isinstance(f[USER_GROUP], h5py.Group) else f
        self.own = _attr_str(tt.attrs.get("format")) == FORMAT_TAG
        self._tt = tt if self.own else f
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
        self.resolution_ps = float(self._tt.attrs.get("resolution_ps", self._unit_ps))
        self.records = int(self._ts.shape[0])
        lost = tt["lost"] if self.own and tt is not f and "lost" in tt else g.get("lost")   # format 2 / format 1
        self.lost = np.asarray(lost).astype(LOST_DTYPE) if lost is not None else empty_lost()
        self._guard = None

    @property
    def meta(self) -> dict:
        m = {"group": self.group, "timetag_file": self.own, "timestamps_unit_s": self.timestamps_unit_s,
             "lab": _attr_str(self._tt.attrs.get("lab")), "lost_events": int(self.lost.size)}
        version = self._f.attrs.get("format_version") if "format_name" in self._f.attrs else None
        if version is None and "identity/format_version" in self._f:
            version = self._f["identity/format_version"][()]
        if version is not None:
            m["photon_hdf5_version"] = _attr_str(version)
        if self.own:
            m["timetag_format_version"] = int(self._tt.attrs.get("format_version", 1))
            m["provenance"] = read_h5_provenance(self._tt)
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
    """Streaming Photon-HDF5 writer with resizable, chunked, compressed datasets (files larger than memory).

    The file is Photon-HDF5 0.5 (phconvert's validator accepts it; layout in the module docstring); timetag's own
    information sits in ``/user/timetag``.  What is known only once every tag has been seen (the detectors and
    their counts, ``/setup/num_pixels``, ``/acquisition_duration``) is written by ``flush()`` and ``close()``,
    into datasets that exist from the start.

    ``swmr=True`` writes a file that can be read while it grows (``timetag live --source follow:FILE``, or
    ``h5py.File(path, "r", libver="latest", swmr=True)`` with ``refresh()``): the file uses the HDF5 1.10 format
    (readable by HDF5 >= 1.10 only), SWMR mode starts once every dataset and attribute exists (none can be
    added after), and each ``write`` flushes, so a reader sees whole chunks: the chunk's lost events first,
    then timestamps, then detectors (a reader takes rows up to the shorter tag dataset), then the summary fields.
    """

    def __init__(self, path, lab: str | None = None, resolution_ps: float = 1, provenance: dict | None = None,
                 compression: str | None = "gzip", swmr: bool = False, name=None, description: str | None = None,
                 **_ignored):
        self.path = Path(path)
        self.swmr = bool(swmr)
        self.records = 0
        self._counts: dict[int, int] = {}
        self._tmin = self._tmax = None
        prov = provenance if provenance is not None else make_prov()
        shown = Path(name).name if name is not None else _final_name(self.path)
        self._f = f = h5py.File(self.path, "w-", **({"libver": _SWMR_LIBVER} if self.swmr else {}))
        try:
            ph.mark_root(f)
            ph.string(f, "description", description or _describe(lab, prov))
            self._duration = ph.scalar(f, "acquisition_duration", 0.0, "<f8")
            g = ph.group(f, "photon_data")
            kw = dict(chunks=(_ROWS_PER_CHUNK,))
            if compression:
                kw.update(compression=compression, shuffle=True)
                if compression == "gzip":
                    kw["compression_opts"] = 1    # fast: tag files are large and written while processing
            self._ts = ph.array(g, "timestamps", "<i8", growing=True, **kw)
            self._det = ph.array(g, "detectors", "<i4", growing=True, **kw)
            ph.scalar(ph.group(g, "timestamps_specs"), "timestamps_unit", 1e-12, "<f8")
            ms = ph.group(g, "measurement_specs")
            ph.string(ms, "measurement_type", "generic")
            ph.group(ms, "detectors_specs")   # no mapping to spectral/polarization/split channels is claimed
            s = ph.group(f, "setup")
            self._num_pixels = ph.scalar(s, "num_pixels", 0, "<i8")
            for key in ("num_spots", "num_spectral_ch", "num_polarization_ch", "num_split_ch"):
                ph.scalar(s, key, 1, "<i8")
            ph.scalar(s, "modulated_excitation", 0, "u1")
            ph.scalar(s, "lifetime", 0, "u1")       # no nanotimes
            # timetag does not know the excitation sources: none is described (zero-length arrays)
            ph.array(s, "excitation_alternated", "u1", data=[])
            ph.array(s, "excitation_cw", "u1", data=[])
            d = ph.group(s, "detectors")
            self._det_id = ph.array(d, "id", "<i4", growing=True)
            self._det_counts = ph.array(d, "counts", "<i8", growing=True)
            i = ph.group(f, "identity")
            for key, text in (("filename", shown), ("creation_time", time.strftime("%Y-%m-%d %H:%M:%S")),
                              ("software", "timetag"), ("software_version", prov.get("version", __version__)),
                              ("format_name", ph.FORMAT_NAME), ("format_version", ph.FORMAT_VERSION),
                              ("format_url", ph.FORMAT_URL)):
                ph.string(i, key, text)
            inputs = prov.get("inputs") or []
            if len(inputs) == 1 and isinstance(inputs[0], dict) and inputs[0].get("name"):
                p = ph.group(f, "provenance")
                ph.string(p, "filename", inputs[0]["name"])
                if inputs[0].get("path"):
                    ph.string(p, "filename_full", inputs[0]["path"])
            # timetag's own information: free-form, where the spec allows it
            u = f.create_group("user").create_group("timetag")
            u.attrs["format"] = FORMAT_TAG
            u.attrs["format_version"] = FORMAT_VERSION
            u.attrs["resolution_ps"] = resolution_ps
            u.attrs["time_unit"] = "ps"
            if lab is not None:
                u.attrs["lab"] = lab
            write_h5_provenance(u, prov)
            self._lost = u.create_dataset("lost", shape=(0,), dtype=LOST_DTYPE, chunks=(1024,), maxshape=(None,))
            self._lost.attrs["description"] = ("lost-data events: time (ps), kind (1 overflow begins, 2 overflow "
                                               "ends, 3 missed events, 4 device error), channel, count")
            if self.swmr:
                f.swmr_mode = True
                f.flush()
        except BaseException:
            f.close()
            raise

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
            self._count(chunk.time, chunk.channel)
            if self.swmr:
                self._write_summary()

    def _count(self, t: np.ndarray, c: np.ndarray) -> None:
        lo, hi = int(t.min()), int(t.max())
        self._tmin = lo if self._tmin is None else min(self._tmin, lo)
        self._tmax = hi if self._tmax is None else max(self._tmax, hi)
        cmin, cmax = int(c.min()), int(c.max())
        if cmax - cmin < 1 << 16:
            per = np.bincount(np.asarray(c, np.int64) - cmin)
            ids = np.flatnonzero(per)
            ids, counts = ids + cmin, per[ids]
        else:
            ids, counts = np.unique(c, return_counts=True)
        for i, k in zip(ids.tolist(), counts.tolist()):
            self._counts[i] = self._counts.get(i, 0) + k

    def _write_summary(self) -> None:
        """The fields known only from the tags seen so far: detectors and counts, pixels, duration."""
        ids = sorted(self._counts)
        for ds, values in ((self._det_id, ids), (self._det_counts, [self._counts[i] for i in ids])):
            ds.resize((len(ids),))
            if ids:
                ds[:] = values
        self._num_pixels[()] = len(ids)
        self._duration[()] = 0.0 if self._tmin is None else (self._tmax - self._tmin) * 1e-12
        if self.swmr:
            for ds in (self._det_id, self._det_counts, self._num_pixels, self._duration):
                ds.flush()

    def flush(self) -> None:
        """Write the summary fields and flush the file (readers then see a complete, valid file so far)."""
        self._write_summary()
        self._f.flush()

    def close(self) -> None:
        if self._f.id.valid:
            try:
                self._write_summary()
            finally:
                self._f.close()


def open_reader(path, chunk_size: int = DEFAULT_CHUNK_SIZE, **opts) -> H5TagReader:
    return H5TagReader(path, chunk_size, **opts)


def open_writer(path, **meta) -> H5TagWriter:
    return H5TagWriter(path, **meta)
