"""timetag's HDF5 tag files are Photon-HDF5: phconvert (the format's reference library) validates and loads them;
timetag's lost-data events and provenance travel in /user/timetag and come back exactly; files of the previous
format (timetag attributes on the root, /photon_data/lost) are still read."""
from __future__ import annotations

import json
import sys
import warnings

import h5py
import numpy as np
import pytest

from timetag.chunk import ERROR, LOST_DTYPE, MISSED, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk, concat
from timetag.formats import open_tags, read_all, write_tags
from timetag.formats.convert import convert
from timetag.formats.h5tags import H5TagWriter

_MISSING = object()


@pytest.fixture(scope="module")
def phc():
    """phconvert.hdf5 and PyTables.  phconvert's package import compiles its PicoQuant decoders with numba
    eagerly (~5 s, uncached); the validator does not use them, so numba is hidden from that import only
    (phconvert then falls back to its plain-Python decoders)."""
    saved = sys.modules.get("numba", _MISSING)
    sys.modules["numba"] = None    # "import numba" raises ImportError
    try:
        import phconvert.hdf5
        import tables
    except ImportError as exc:   # a test dependency (pyproject's test extra): missing is a failure, not a skip
        pytest.fail(f"phconvert / PyTables not installed ({exc}): pip install phconvert tables")
    finally:
        if saved is _MISSING:
            del sys.modules["numba"]
        else:
            sys.modules["numba"] = saved
    return phconvert.hdf5, tables


def _validate(phc, path):
    """phconvert's validator with every check strict (descriptions included); optional fields warn only."""
    hdf5, tables = phc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # "Missing field author ...": optional fields
        with tables.open_file(str(path)) as h:
            hdf5.assert_valid_photon_hdf5(h, strict_description=True, require_setup=True, warnings=False)


def _stream():
    """Tags on channels 1..3 (and a negative, falling-edge channel) with every kind of lost-data event."""
    t = np.arange(0, 200_000, 100, dtype=np.int64) * 7
    c = np.array([1, 2, 3, -2], np.int32)[np.arange(t.size) % 4]
    lost = np.zeros(5, LOST_DTYPE)
    lost["time"] = [700, 7000, 35_000, 140_000, 1_399_300]
    lost["kind"] = [OVERFLOW_BEGIN, OVERFLOW_END, MISSED, ERROR, MISSED]
    lost["channel"] = [0, 0, 2, 0, 3]
    lost["count"] = [0, 0, 17, 1, 4]
    return TagChunk(t, c, lost)


def _split(whole, cuts):
    """``whole`` cut before the tags at ``cuts``; each lost event goes with the tags at or after it."""
    bounds = [0, *cuts, len(whole)]
    lb = [0, *(int(np.searchsorted(whole.lost["time"], whole.time[k])) for k in cuts), whole.lost.size]
    return [TagChunk(whole.time[bounds[i]:bounds[i + 1]], whole.channel[bounds[i]:bounds[i + 1]],
                     whole.lost[lb[i]:lb[i + 1]]) for i in range(len(bounds) - 1)]


def test_converted_dump_is_valid_photon_hdf5(tmp_path, phc):
    hdf5, tables = phc
    whole = _stream()
    write_tags(tmp_path / "a.dump", whole)
    convert(tmp_path / "a.dump", tmp_path / "a.h5", chunk_size=300)   # many chunks: the streaming path
    _validate(phc, tmp_path / "a.h5")
    h = hdf5.load_photon_hdf5(str(tmp_path / "a.h5"), warnings=False)
    try:
        r = h.root
        assert r._v_attrs.format_name == b"Photon-HDF5" and r._v_attrs.format_version == b"0.5"
        assert isinstance(r.description.read(), bytes)     # PyTables reads it (no variable-length string)
        pd = r.photon_data
        assert pd.timestamps_specs.timestamps_unit.read() == 1e-12
        np.testing.assert_array_equal(pd.timestamps.read(), whole.time)
        np.testing.assert_array_equal(pd.detectors.read(), whole.channel)
        assert pd.measurement_specs.measurement_type.read() == b"generic"
        s = r.setup
        assert s.num_pixels.read() == 4 and s.lifetime.read() == 0 and s.num_spots.read() == 1
        assert s.detectors.id.read().tolist() == [-2, 1, 2, 3]
        assert s.detectors.counts.read().tolist() == np.unique(whole.channel, return_counts=True)[1].tolist()
        assert r.acquisition_duration.read() == pytest.approx((whole.time[-1] - whole.time[0]) * 1e-12)
        assert r.identity.software.read() == b"timetag"
        assert r.identity.filename.read() == b"a.h5"            # the final name, not the partial file's
        assert r.provenance.filename.read() == b"a.dump"
        assert "lost" in r.user.timetag                          # timetag's extras: in the spec's user group
    finally:
        h.close()


def test_round_trip_keeps_tags_and_lost_events(tmp_path):
    whole = _stream()
    write_tags(tmp_path / "a.dump", whole)
    src = read_all(tmp_path / "a.dump")
    convert(tmp_path / "a.dump", tmp_path / "a.h5", chunk_size=333)
    for chunk_size in (10**6, 77):
        back = read_all(tmp_path / "a.h5", chunk_size=chunk_size)
        np.testing.assert_array_equal(back.time, src.time)
        np.testing.assert_array_equal(back.channel, src.channel)
        np.testing.assert_array_equal(back.lost, src.lost)
    r = open_tags(tmp_path / "a.h5")
    try:
        m = r.meta
        assert m["timetag_file"] and m["timetag_format_version"] == 2 and m["photon_hdf5_version"] == "0.5"
        assert m["provenance"]["converted_from"] == "dump" and m["lost_events"] == 5
    finally:
        r.close()
    convert(tmp_path / "a.h5", tmp_path / "b.dump")   # and back: the dump is the same
    assert (tmp_path / "b.dump").read_bytes() == (tmp_path / "a.dump").read_bytes()


def test_streamed_chunks_swmr_and_empty_files_are_valid(tmp_path, phc):
    whole = _stream()
    # channels far apart (sync 64, markers 100+): the counts take the np.unique path
    wide = TagChunk(whole.time, np.where(whole.channel == 3, 100_000, whole.channel).astype(np.int32), whole.lost)
    for name, data, swmr in (("chunks", whole, False), ("swmr", whole, True), ("wide", wide, False),
                             ("empty", TagChunk(np.zeros(0, np.int64), np.zeros(0, np.int32)), False)):
        fn = tmp_path / f"{name}.h5"
        with H5TagWriter(fn, lab="alice", swmr=swmr) as w:
            for part in _split(data, [1, 500, 1999] if len(data) else []):
                w.write(part)
        _validate(phc, fn)
        with h5py.File(fn, "r") as f:
            ts = f["photon_data/timestamps"]
            assert ts.maxshape == (None,) and ts.chunks is not None     # resizable: written chunk by chunk
            assert f["setup/num_pixels"][()] == len(np.unique(data.channel))
            assert json.loads(f["user/timetag"].attrs["provenance"])["software"] == "timetag"
        back = read_all(fn)
        np.testing.assert_array_equal(back.time, data.time)
        np.testing.assert_array_equal(back.channel, data.channel)
        np.testing.assert_array_equal(back.lost, data.lost)


def test_validator_rejects_a_broken_file(tmp_path, phc):
    """The checks above can fail: the same file without one spec description, or with a field outside /user,
    is rejected."""
    hdf5, _ = phc
    for damage in ("title", "field"):
        fn = tmp_path / f"{damage}.h5"
        write_tags(fn, _stream())
        with h5py.File(fn, "r+") as f:
            if damage == "title":
                del f["setup/num_pixels"].attrs["TITLE"]
            else:
                f["photon_data/lost"] = np.zeros(1, LOST_DTYPE)
        with pytest.raises(hdf5.Invalid_PhotonHDF5):
            _validate(phc, fn)


def _write_format_1(path, whole: TagChunk, lab="alice"):
    """The layout of timetag's previous writer (format_version 1), written with h5py as that writer did."""
    from timetag.provenance import write_h5_provenance

    with h5py.File(path, "w-") as f:
        f.attrs["format"] = "timetag-tags"
        f.attrs["format_version"] = 1
        f.attrs["resolution_ps"] = 1
        f.attrs["lab"] = lab
        write_h5_provenance(f, {"software": "timetag", "version": "0.0.9", "inputs": ["old.dump"]})
        f["description"] = "time tags written by timetag (time in ps, channel numbers as in the source)"
        g = f.create_group("photon_data")
        kw = dict(chunks=(1 << 16,), maxshape=(None,), compression="gzip", shuffle=True, compression_opts=1)
        g.create_dataset("timestamps", data=whole.time.astype("<i8"), **kw)
        g.create_dataset("detectors", data=whole.channel.astype("<i4"), **kw)
        g.create_dataset("lost", data=whole.lost, dtype=LOST_DTYPE, chunks=(1024,), maxshape=(None,))
        g["timestamps_specs/timestamps_unit"] = 1e-12


def test_format_1_files_are_still_read(tmp_path):
    whole = _stream()
    fn = tmp_path / "old.h5"
    _write_format_1(fn, whole)
    back = read_all(fn, chunk_size=250)
    np.testing.assert_array_equal(back.time, whole.time)
    np.testing.assert_array_equal(back.channel, whole.channel)
    np.testing.assert_array_equal(back.lost, whole.lost)
    r = open_tags(fn, chunk_size=250)
    try:
        m = r.meta
        assert m["timetag_file"] and m["timetag_format_version"] == 1 and m["lab"] == "alice"
        assert m["provenance"]["inputs"] == ["old.dump"] and "photon_hdf5_version" not in m
        parts = list(r)
        # each lost event still travels with the chunk holding the last tag at or before it
        assert all(p.lost["time"].max() <= p.time[-1] for p in parts[:-1] if p.lost.size)
        np.testing.assert_array_equal(concat(parts).lost, whole.lost)
    finally:
        r.close()
    convert(fn, tmp_path / "new.h5")   # an old file converts into the new format
    np.testing.assert_array_equal(read_all(tmp_path / "new.h5").lost, whole.lost)
