"""Format registry: sniffing, bad paths, multi-file streams, round trips of every writable format."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

from timetag.chunk import ERROR, LOST_DTYPE, MISSED, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk, concat, split
from timetag.errors import DataValidationError, FormatError, TimetagWarning
from timetag.formats import FORMATS, iter_stream, open_tags, read_all, sniff, write_tags, writer_for
from timetag.formats.dump import RECORD_DTYPE, write_dump

EXPECTED = {"pqsd_picoharp300_v30_t2.ptu": "ptu", "eta_200204_HH400_T3_320MHz_HBT.ptu": "ptu",
            "pqsd_hydraharp_v20.ht3": "ht3", "eta_19_qutag_80MHz_HBT_sync_filtered.qutag": "qutag",
            "phototools_photon_hdf5_min.h5": "h5"}


@pytest.mark.parametrize("name,fmt", sorted(EXPECTED.items()))
def test_sniff_real_files(real_data, name, fmt):
    assert sniff(real_data / name) == fmt


def test_unknown_format_lists_supported(tmp_path, real_data):
    fn = tmp_path / "x.weird"
    fn.write_bytes(b"hello world, certainly not tags")
    with pytest.raises(FormatError, match="supported: ptu"):
        sniff(fn)
    with pytest.raises(FormatError, match="cannot tell|supported"):
        open_tags(real_data / "phconvert_bh_spc150_test_noise.spc")


def test_bad_paths(tmp_path):
    with pytest.raises(FormatError, match="directory"):
        open_tags(tmp_path)
    with pytest.raises(FormatError, match="no such file"):
        open_tags(tmp_path / "missing.ptu")
    (tmp_path / "e.dump").write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        open_tags(tmp_path / "e.dump")
    (tmp_path / "f.dump").write_bytes(b"\0" * 16)
    with pytest.raises(FormatError, match="unknown format 'zip'"):
        open_tags(tmp_path / "f.dump", format="zip")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read anything")
def test_unreadable_file(tmp_path):
    fn = tmp_path / "a.dump"
    write_dump(fn, TagChunk(np.array([1]), np.array([1])))
    fn.chmod(0)
    try:
        with pytest.raises(FormatError, match="not readable"):
            open_tags(fn)
    finally:
        fn.chmod(0o600)


# --------------------------------------------------------------------------------------------------- dump bad input
def _dump(tmp_path, rows):
    rec = np.zeros(len(rows), RECORD_DTYPE)
    for i, (typ, ch, t) in enumerate(rows):
        rec[i] = (typ, 0, 0, ch, t)
    fn = tmp_path / "d.dump"
    rec.tofile(fn)
    return fn


def test_dump_unknown_event_type(tmp_path):
    fn = _dump(tmp_path, [(0, 1, 5), (7, 1, 6)])
    with pytest.raises(FormatError, match="unknown event type code 7 in record 1"):
        read_all(fn)


def test_dump_time_backwards_names_record(tmp_path):
    fn = _dump(tmp_path, [(0, 1, 5), (2, 0, 6), (0, 1, 9), (0, 2, 7)])
    with pytest.raises(DataValidationError, match="record 3"):
        read_all(fn, chunk_size=2)


def test_dump_truncated_final_record(tmp_path):
    fn = _dump(tmp_path, [(0, 1, 5), (0, 2, 6)])
    with open(fn, "ab") as fh:
        fh.write(b"\0" * 5)
    with pytest.warns(TimetagWarning, match="5 trailing bytes"):
        c = read_all(fn, format="dump")
    assert c.time.tolist() == [5, 6]


# --------------------------------------------------------------------------------------------------------- streams
def test_iter_stream_chains_and_checks_continuity(tmp_path):
    a, b = tmp_path / "a.dump", tmp_path / "b.dump"
    write_dump(a, TagChunk(np.array([1, 5]), np.array([1, 2])))
    write_dump(b, TagChunk(np.array([7, 9]), np.array([1, 1])))
    s = list(iter_stream([a, b], chunk_size=1))
    assert concat(s).time.tolist() == [1, 5, 7, 9]
    assert [c.offset for c in s] == [0, 1, 2, 3]
    with pytest.raises(DataValidationError, match="before the previous file"):
        list(iter_stream([b, a]))


# ----------------------------------------------------------------------------------------------------- round trips
@st.composite
def streams(draw):
    n = draw(st.integers(0, 60))
    t = np.cumsum(np.array(draw(st.lists(st.integers(0, 2**36), min_size=n, max_size=n)), np.int64))
    c = np.array(draw(st.lists(st.sampled_from([0, 1, 2, 7, 63]), min_size=n, max_size=n)), np.int32)
    m = draw(st.integers(0, 4))
    lt = np.sort(np.array(draw(st.lists(st.integers(0, int(t[-1]) if n else 10), min_size=m, max_size=m)),
                          np.int64))
    lost = np.zeros(m, LOST_DTYPE)
    lost["time"] = lt
    lost["kind"] = draw(st.lists(st.sampled_from([OVERFLOW_BEGIN, OVERFLOW_END, MISSED, ERROR]), min_size=m,
                                 max_size=m))
    lost["channel"] = 1
    lost["count"] = draw(st.lists(st.integers(0, 1000), min_size=m, max_size=m))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=3)))
    return TagChunk(t, c, lost), cuts


@pytest.mark.parametrize("fmt,ext", [("dump", "dump"), ("h5", "h5"), ("text", "txt"), ("ptu", "ptu")])
@given(data=streams(), read_chunk=st.integers(1, 50))
def test_write_read_round_trip(tmp_path_factory, fmt, ext, data, read_chunk):
    whole, cuts = data
    fn = tmp_path_factory.mktemp(fmt) / f"r.{ext}"
    if fmt == "ptu" and whole.lost.size:
        with pytest.raises(FormatError, match="lost-data"):
            write_tags(fn, list(split(whole, cuts)), format=fmt)
        write_tags(fn, list(split(whole, cuts)), format=fmt, drop_lost=True)
    else:
        write_tags(fn, list(split(whole, cuts)), format=fmt)
    if len(whole) == 0 and fmt == "dump" and whole.lost.size == 0:
        return   # an empty dump file is not a valid file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = read_all(fn, format=fmt, chunk_size=read_chunk)
    np.testing.assert_array_equal(back.time, whole.time)
    np.testing.assert_array_equal(back.channel, whole.channel)
    if fmt != "ptu":
        # lost events keep their content and order (dump/text put them after equal-time tags)
        np.testing.assert_array_equal(np.sort(back.lost, order=["time", "kind"]),
                                      np.sort(whole.lost, order=["time", "kind"]))


def test_writer_for_rejects_read_only_format(tmp_path):
    with pytest.raises(FormatError, match="not written"):
        writer_for(tmp_path / "a.qutag", "qutag")
    with pytest.raises(FormatError, match="extension"):
        writer_for(tmp_path / "a.xyz")
    assert {f for f, i in FORMATS.items() if i.writable} == {"dump", "h5", "ptu", "text"}


# ------------------------------------------------------------------------------------------------------------- h5
def test_h5_meta_provenance_and_lost_chunking(tmp_path):
    lost = np.zeros(3, LOST_DTYPE)
    lost["time"], lost["kind"] = [0, 25, 99], [OVERFLOW_BEGIN, OVERFLOW_END, MISSED]
    whole = TagChunk(np.arange(0, 100, 10), np.arange(10) % 2, lost)
    fn = tmp_path / "a.h5"
    write_tags(fn, whole, lab="alice", provenance={"software": "timetag", "version": "x", "inputs": ["q"]})
    r = open_tags(fn, chunk_size=3)
    parts = list(r)
    assert r.meta["lab"] == "alice" and r.meta["provenance"]["inputs"] == ["q"]
    # each lost event sits in the chunk holding the last tag at or before it
    assert [p.lost["time"].tolist() for p in parts] == [[0], [25], [], [99]]


def test_photon_hdf5_nonconforming_sample(real_data):
    import h5py

    fn = real_data / "phototools_photon_hdf5_min.h5"
    with h5py.File(fn) as f:
        ts, det = f["photon_data0/timestamps"][:], f["photon_data0/detectors"][:]
    with pytest.warns(TimetagWarning, match="photon_data0"):
        c = read_all(fn, timestamps_unit_s=5e-9)
    assert len(c) == 1280
    np.testing.assert_array_equal(c.time, ts.astype(np.int64) * 5000)
    np.testing.assert_array_equal(c.channel, det)
    assert np.bincount(c.channel).tolist() == [727, 553]
    with pytest.warns(TimetagWarning, match="assuming 1 ps"):
        read_all(fn)


def test_h5_without_photon_data(tmp_path):
    import h5py

    fn = tmp_path / "x.h5"
    with h5py.File(fn, "w") as f:
        f["other"] = [1, 2]
    with pytest.raises(FormatError, match="no /photon_data"):
        open_tags(fn)


def test_text_comments_and_bad_line(tmp_path):
    fn = tmp_path / "a.txt"
    fn.write_text("# header\n1 10\n\n2 twenty\n")
    with pytest.raises(FormatError, match="line 4"):
        read_all(fn)
    fn.write_text("# header\n1 10\n\n2, 20  # trailing comment\n")
    c = read_all(fn)
    assert c.time.tolist() == [10, 20] and c.channel.tolist() == [1, 2]


@pytest.mark.parametrize("data", [b"1 10\n2 \x00\x00 20\n", b"1 10\n\xfe\xff 3 4\n", b"1 10\n2 20 \xe9t\xe9\n"])
def test_text_reader_says_binary_data_is_not_text(tmp_path, data):
    fn = tmp_path / "a.txt"
    fn.write_bytes(data)
    with pytest.raises(FormatError, match=r"line 2: binary data, not text") as e:
        read_all(fn, format="text")
    assert "\\x00" not in str(e.value)  # the bytes themselves are not echoed
