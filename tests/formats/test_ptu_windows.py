"""The PTU reader's record windows: any window size gives the tags of the whole file decoded in one call (the
overflow sum and the counters carry over from window to window), the file is never mapped whole, and peak RSS
does not grow with the file."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import warnings

import numpy as np
import pytest

from timetag.chunk import TagChunk, concat
from timetag.errors import FormatError
from timetag.formats import ptu as P

REAL_PTU = ["pqsd_picoharp300_v30_t2.ptu", "pqsd_hydraharp_v10_t3.ptu", "pqsd_hydraharp_v20_t2.ptu",
            "pqsd_hydraharp_v20_t3.ptu", "tdctoolkit_multiharp160_1min_ch1_t2.ptu",
            "eta_200204_HH400_T2_320MHz_HBT.ptu", "eta_200204_HH400_T3_320MHz_HBT.ptu"]


def _whole(reader: P.PtuReader):
    """The tags of every record decoded in one call, and the counters after it."""
    dec = reader._decoder()
    t, c, d = dec.decode(reader.read_raw(), want_dtime=True)
    return t, c, d, dec.counters


def _read(path, chunk: int, **kw):
    r = P.PtuReader(path, chunk_size=chunk)
    parts = list(r.iter_chunks(with_dtime=r.is_t3, **kw))
    t = np.concatenate([p.time for p in parts]) if parts else np.zeros(0, np.int64)
    c = np.concatenate([p.channel for p in parts]) if parts else np.zeros(0, np.int32)
    d = np.concatenate([p.dtime for p in parts]) if r.is_t3 and parts else None
    return r, parts, t, c, d


def _ptu_file(path, rectype: int, rec: np.ndarray, blob: bytes = b"\x01\x02\x03\x04\x05") -> None:
    """A PTU file of raw records; a binary blob of odd length in the header puts the records at an odd offset."""
    t3 = P.RECORD_TYPES[rectype][2]
    ident = b"Comment_Blob".ljust(32, b"\0")
    blob_tag = struct.pack("<32siIq", ident, -1, P.TY_BINARYBLOB, len(blob)) + blob
    head = (P.MAGIC + b"1.0.00\0\0" + P._tag("TTResultFormat_TTTRRecType", P.TY_INT8, rectype)
            + P._tag("MeasDesc_GlobalResolution", P.TY_FLOAT8, 2.000016e-07 if t3 else 2.5e-12)
            + P._tag("MeasDesc_Resolution", P.TY_FLOAT8, 1.6e-11 if t3 else 2.5e-12)
            + P._tag("TTResult_NumberOfRecords", P.TY_INT8, rec.size) + blob_tag
            + P._tag("Header_End", P.TY_EMPTY8, 0))
    path.write_bytes(head + rec.astype("<u4").tobytes())


def _records_with_runs(rng, rectype: int, n: int) -> np.ndarray:
    """Random records of ``rectype`` in which overflow records come in runs of 1-40 and markers are common."""
    _, fam, t3 = P.RECORD_TYPES[rectype]
    if fam == P.FAM_PICOHARP:
        ofl = np.uint32(0xF0000000)                                  # T2: time field 0; T3: dtime 0
        marker = lambda k: np.uint32((15 << 28) | ((k + 1) << (16 if t3 else 0)))
        photon = lambda k: np.uint32((((k % 4) + 1) << 28) | (k * 2654435761 % (1 << 16)))
    else:
        ofl = np.uint32((1 << 31) | (63 << 25) | 1)
        marker = lambda k: np.uint32((1 << 31) | ((k % 15 + 1) << 25) | (k * 40503 % 1024))
        photon = lambda k: np.uint32(((k % 4) << 25) | (k * 2654435761 % (1 << 25)))
    out, k = [], 0
    while len(out) < n:
        kind = rng.integers(0, 10)
        if kind < 3:
            out += [ofl] * int(rng.integers(1, 41))
        elif kind == 3:
            out.append(marker(k))
        else:
            out += [photon(k + j) for j in range(int(rng.integers(1, 12)))]
        k += 1
    return np.array(out[:n], np.uint32)


# ------------------------------------------------------------------------------------ any window, the same tags
@pytest.mark.parametrize("rectype", sorted(P.RECORD_TYPES))
@pytest.mark.parametrize("window,chunk", [(1, 5), (7, 64), (8, 8), (9, 1000), (31, 7), (4096, 100_000)])
def test_windows_straddling_overflow_runs_give_the_whole_file_answer(tmp_path, monkeypatch, rectype, window, chunk):
    rec = _records_with_runs(np.random.default_rng(rectype & 0xFFF), rectype, 3000)
    fn = tmp_path / "runs.ptu"
    _ptu_file(fn, rectype, rec)
    monkeypatch.setattr(P, "WINDOW_RECORDS", window)
    r, parts, t, c, d = _read(fn, chunk)
    wt, wc, wd, counters = _whole(r)
    assert r.data_offset % 4 == 1                        # records at an odd offset in the file
    assert counters["n_overflow"] > 100 and counters["n_marker"] > 10
    np.testing.assert_array_equal(t, wt)
    np.testing.assert_array_equal(c, wc)
    if r.is_t3:
        np.testing.assert_array_equal(d, wd)
    assert r.meta["n_overflow"] == counters["n_overflow"] and r.meta["n_photon"] == counters["n_photon"]
    assert [p.offset for p in parts] == np.cumsum([0] + [len(p) for p in parts[:-1]]).tolist()


@pytest.mark.parametrize("window", [1, 9, 1000])
def test_start_skips_through_windows(tmp_path, monkeypatch, window):
    rectype = 0x01010204
    rec = _records_with_runs(np.random.default_rng(5), rectype, 5000)
    fn = tmp_path / "skip.ptu"
    _ptu_file(fn, rectype, rec)
    monkeypatch.setattr(P, "WINDOW_RECORDS", window)
    r = P.PtuReader(fn, chunk_size=333)
    head = concat(r.iter_chunks(stop=2345))
    tail = concat(r.iter_chunks(start=2345))
    wt, wc, _, _ = _whole(r)
    np.testing.assert_array_equal(np.concatenate([head.time, tail.time]), wt)
    np.testing.assert_array_equal(np.concatenate([head.channel, tail.channel]), wc)


@pytest.mark.peer
@pytest.mark.parametrize("name", REAL_PTU)
def test_real_file_in_small_windows_equals_whole_file_and_ptufile(real_data, monkeypatch, name):
    ptufile = pytest.importorskip("ptufile")
    fn = real_data / name
    monkeypatch.setattr(P, "WINDOW_RECORDS", 4093)       # prime: windows cut AVX2 groups and overflow runs
    r, parts, t, c, d = _read(fn, 50_000)
    assert len(parts) >= 2
    wt, wc, wd, counters = _whole(r)
    np.testing.assert_array_equal(t, wt)
    np.testing.assert_array_equal(c, wc)
    assert {k: r.meta[k] for k in counters} == counters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = ptufile.PtuFile(fn).decode_records()
    ph = rec[rec["channel"] >= 0]
    i, f, _ = P._split_unit(r.global_resolution_s)
    units = ph["time"].astype(np.int64)
    exp = units * i + (np.floor(units * f + 0.5).astype(np.int64) if f else 0)
    if r.is_t3:
        dt = ph["dtime"].astype(np.int64)
        i, f, _ = P._split_unit(r.resolution_s)
        exp += dt * i + (np.floor(dt * f + 0.5).astype(np.int64) if f else 0)
        np.testing.assert_array_equal(d, dt.astype(np.int32))
    np.testing.assert_array_equal(c, ph["channel"].astype(np.int32))
    np.testing.assert_array_equal(t, exp)


@pytest.mark.peer
def test_written_file_with_markers_and_long_gaps_equals_ptufile(tmp_path, monkeypatch):
    ptufile = pytest.importorskip("ptufile")
    rng = np.random.default_rng(3)
    n = 20_000
    steps = rng.integers(0, 10**8, n)
    steps[rng.choice(n, 40, replace=False)] += 10**12           # gaps of a second: runs of ~240 overflow records
    t = np.cumsum(steps).astype(np.int64)
    c = rng.choice([0, 1, 5, P.SYNC_CHANNEL, P.MARKER_BASE, P.MARKER_BASE + 3], n).astype(np.int32)
    fn = tmp_path / "w.ptu"
    P.write_ptu(fn, [TagChunk(t, c)])
    monkeypatch.setattr(P, "WINDOW_RECORDS", 97)
    r, parts, got_t, got_c, _ = _read(fn, 1000)
    assert r.meta["n_overflow"] > 40 * 200
    wt, wc, _, _ = _whole(r)
    np.testing.assert_array_equal(got_t, wt)
    np.testing.assert_array_equal(got_c, wc)
    np.testing.assert_array_equal(got_t, t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = ptufile.PtuFile(fn).decode_records()
    ph = d[(d["channel"] >= 0) & (d["marker"] == 0)]           # ptufile gives the T2 sync as channel 0
    np.testing.assert_array_equal(ph["time"].astype(np.int64), got_t[got_c < P.MARKER_BASE])


def test_read_fallback_when_mapping_fails(tmp_path, monkeypatch):
    rectype = 0x00010304
    rec = _records_with_runs(np.random.default_rng(9), rectype, 4000)
    fn = tmp_path / "nomap.ptu"
    _ptu_file(fn, rectype, rec)
    expected = _read(fn, 700)
    monkeypatch.setattr(P, "WINDOW_RECORDS", 123)

    def refuse(*a, **k):
        raise OSError(19, "No such device")
    monkeypatch.setattr(P.mmap, "mmap", refuse)
    got = _read(fn, 700)
    for a, b in zip(got[2:], expected[2:]):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------------ flat memory
def _resident_kb(path) -> int:
    """Resident kB of this process's mappings of ``path`` (/proc/self/smaps)."""
    total, ours = 0, False
    for line in open("/proc/self/smaps"):
        first = line.split(maxsplit=1)[0]
        if "-" in first and not first.endswith(":"):      # a mapping's header line
            ours = line.rstrip().endswith(str(path))
        elif ours and first == "Rss:":
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")
def test_decoded_windows_leave_the_resident_set(tmp_path, monkeypatch):
    rec = np.tile(_records_with_runs(np.random.default_rng(2), 0x01010204, 50_000), 60)     # 12 MB
    fn = tmp_path / "big.ptu"
    _ptu_file(fn, 0x01010204, rec)
    monkeypatch.setattr(P, "WINDOW_RECORDS", 16_384)                                       # 64 KiB
    resident = []
    for chunk in P.PtuReader(fn, chunk_size=300_000).iter_chunks():
        assert len(chunk) > 0
        resident.append(_resident_kb(fn))
    assert len(resident) == 10
    # what stays mapped between windows: the kernel's read-around past the last one (a 2 MiB folio at most)
    assert max(resident) <= 2048 + 64, resident
    assert _resident_kb(fn) == 0                   # unmapped at the end


_RSS_CHILD = """
import json, resource, sys
from timetag.formats import ptu
n = 0
for chunk in ptu.PtuReader(sys.argv[1]):
    n += len(chunk)
print(json.dumps({"tags": n, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def test_peak_rss_does_not_grow_with_the_file(tmp_path):
    """A file 4x the size costs no more memory (a whole-file mapping would add its 96 MB of extra pages)."""
    rss = {}
    for n_rec in (8 << 20, 32 << 20):
        fn = tmp_path / f"zeros_{n_rec}.ptu"
        _ptu_file(fn, 0x01010204, np.zeros(0, np.uint32))
        with open(fn, "r+b") as fh:           # every record 0: a photon on channel 0 at time 0
            head = fh.seek(0, 2)
            fh.seek(0)
            data = bytearray(fh.read())
            pos = data.find(b"TTResult_NumberOfRecords")
            struct.pack_into("<q", data, pos + 40, n_rec)
            fh.seek(0)
            fh.write(data)
            fh.truncate(head + 4 * n_rec)
        out = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(fn)], capture_output=True, text=True, check=True)
        got = json.loads(out.stdout)
        assert got["tags"] == n_rec
        rss[n_rec] = got["rss_kb"] / 1024
        fn.unlink()
    assert rss[32 << 20] - rss[8 << 20] < 16, rss


def test_file_shrinking_while_read_is_one_error(tmp_path, monkeypatch):
    rectype = 0x01010204
    rec = _records_with_runs(np.random.default_rng(4), rectype, 10_000)
    fn = tmp_path / "shrink.ptu"
    _ptu_file(fn, rectype, rec)
    monkeypatch.setattr(P, "WINDOW_RECORDS", 1000)
    it = P.PtuReader(fn, chunk_size=2000).iter_chunks()
    first = next(it)
    assert len(first) > 0
    with open(fn, "r+b") as fh:
        fh.truncate(fh.seek(0, 2) - 4 * 5000)
    with pytest.raises(FormatError, match="file shrank while reading"):
        list(it)
