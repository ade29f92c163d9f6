"""The quTAG reader's windows: the real files decode to what the documented record layout says, whatever the chunk
and window sizes and the record range; the file is never mapped whole; a file that shrinks while read is one
error; and the input checksum is computed on the bytes the reader reads (``process`` reads the file once)."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import xxhash
from hypothesis import HealthCheck, given, settings, strategies as st

from reference_checksum import block_checksum
from timetag.errors import DataValidationError, FormatError, TimetagWarning
from timetag.formats import qutag as Q
from timetag.provenance import InputChecksums

REAL_QUTAG = ["eta_19_qutag_80MHz_HBT_sync_filtered.qutag", "eta_200204_qutag_320MHz_HBT_sync_filtered.qutag"]
MONOTONIC = REAL_QUTAG[1]


def _layout(data: bytes):
    """Times and channels by the documented layout, byte by byte: after 40 header bytes, 10-byte records of a
    little-endian uint64 time and uint16 channel (a partial final record ignored)."""
    raw = np.frombuffer(data, np.uint8)[40:]
    raw = raw[: raw.size - raw.size % 10].reshape(-1, 10).astype(np.uint64)
    t = np.zeros(raw.shape[0], np.uint64)
    for k in range(8):
        t |= raw[:, k] << np.uint64(8 * k)
    c = raw[:, 8] | (raw[:, 9] << np.uint64(8))
    return t, c


def _read(reader, *args):
    parts = list(reader.iter_chunks(*args))
    t = np.concatenate([p.time for p in parts]) if parts else np.zeros(0, np.int64)
    c = np.concatenate([p.channel for p in parts]) if parts else np.zeros(0, np.int32)
    return parts, t, c


@pytest.fixture(scope="module")
def decoded(real_data):
    return {name: _layout((real_data / name).read_bytes()) for name in REAL_QUTAG}


@pytest.mark.parametrize("name", REAL_QUTAG)
@pytest.mark.parametrize("chunk, window", [(10**6, None), (50_000, None), (50_000, 333), (777, 5000), (4096, 4096)])
def test_real_files_decode_to_the_documented_layout(real_data, decoded, monkeypatch, name, chunk, window):
    if window is not None:
        monkeypatch.setattr(Q, "WINDOW_RECORDS", window)
    t, c = decoded[name]
    reader = Q.QutagReader(real_data / name, chunk_size=chunk, check_order=name == MONOTONIC)
    parts, got_t, got_c = _read(reader)
    assert got_t.dtype == np.int64 and got_c.dtype == np.int32
    np.testing.assert_array_equal(got_t, t.astype(np.int64))
    np.testing.assert_array_equal(got_c, c.astype(np.int32))
    # chunks of chunk_size records, whatever the window
    assert [len(p) for p in parts] == [min(chunk, t.size - lo) for lo in range(0, t.size, chunk)]
    assert [p.offset for p in parts] == list(range(0, t.size, chunk))


def test_the_unordered_real_file_still_stops_at_its_first_backward_step(real_data, decoded, monkeypatch):
    monkeypatch.setattr(Q, "WINDOW_RECORDS", 1000)
    t, _ = decoded[REAL_QUTAG[0]]
    first = int(np.flatnonzero(np.diff(t.astype(np.int64)) < 0)[0]) + 1
    got = []
    with pytest.raises(DataValidationError, match=f"record {first}: time goes backwards"):
        for part in Q.QutagReader(real_data / REAL_QUTAG[0], chunk_size=2500):
            got.append(part.time)
    np.testing.assert_array_equal(np.concatenate(got), t[:first].astype(np.int64))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), chunk=st.integers(7, 60_000), window=st.integers(1, 20_000),
       mode=st.sampled_from(["pass", "tolerance", "ordered"]))
def test_any_chunk_window_and_range_gives_the_records(real_data, decoded, data, chunk, window, mode):
    name = MONOTONIC if mode == "ordered" else REAL_QUTAG[0]
    t, c = decoded[name]
    start = data.draw(st.integers(0, t.size), label="start")
    stop = data.draw(st.one_of(st.none(), st.integers(start, min(t.size + 5, start + 40_000))), label="stop")
    opts = {"pass": dict(check_order=False), "tolerance": dict(tolerance_ps=86_000), "ordered": {}}[mode]
    old = Q.WINDOW_RECORDS
    Q.WINDOW_RECORDS = window
    try:
        _, got_t, got_c = _read(Q.QutagReader(real_data / name, chunk_size=chunk, **opts), start, stop)
    finally:
        Q.WINDOW_RECORDS = old
    want_t, want_c = t[start:stop].astype(np.int64), c[start:stop].astype(np.int32)
    if mode == "tolerance":    # the stable sort of the range read
        order = np.argsort(want_t, kind="stable")
        want_t, want_c = want_t[order], want_c[order]
    np.testing.assert_array_equal(got_t, want_t)
    np.testing.assert_array_equal(got_c, want_c)


def test_the_file_is_never_mapped(real_data, monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("the file was mapped")

    monkeypatch.setattr(np, "memmap", refuse)
    monkeypatch.setattr("mmap.mmap", refuse)
    reader = Q.QutagReader(real_data / MONOTONIC, chunk_size=100_000)
    assert sum(len(p) for p in reader) == reader.records == 211_773


def test_a_time_beyond_int64_names_its_record_across_windows(tmp_path, monkeypatch):
    monkeypatch.setattr(Q, "WINDOW_RECORDS", 3)
    fn = tmp_path / "big.qutag"
    times = np.arange(1, 11, dtype=np.uint64) * 100
    times[7] = 2**63 + 5
    Q.write_qutag_raw(fn, times, np.ones(10, np.uint16))
    got = []
    with pytest.raises(FormatError, match=f"record 7: time {2**63 + 5} does not fit in int64 ps") as err:
        for part in Q.QutagReader(fn, chunk_size=5):
            got.append(part.time)
    assert np.concatenate(got).tolist() == times[:7].astype(np.int64).tolist()
    assert err.value.offset == Q.HEADER_SIZE + 7 * Q.RECORD_SIZE


@pytest.mark.parametrize("cut", [5000 * 10 + 3, 40 + 10 * 2500, 20])
def test_a_file_shrinking_while_read_is_one_error(tmp_path, monkeypatch, cut):
    monkeypatch.setattr(Q, "WINDOW_RECORDS", 1000)
    fn = tmp_path / "shrink.qutag"
    Q.write_qutag_raw(fn, np.arange(1, 10_001, dtype=np.uint64) * 7, np.full(10_000, 2, np.uint16))
    it = iter(Q.QutagReader(fn, chunk_size=2000))
    assert len(next(it)) == 2000
    with open(fn, "r+b") as fh:
        fh.truncate(cut)
    with pytest.raises(FormatError, match="file shrank while reading") as err:
        list(it)
    assert "\n" not in str(err.value) and str(fn) in str(err.value)


def test_the_header_cut_away_before_the_read_is_one_error(tmp_path):
    fn = tmp_path / "shrink.qutag"
    Q.write_qutag_raw(fn, np.arange(1, 101, dtype=np.uint64), np.ones(100, np.uint16))
    reader = Q.QutagReader(fn)
    InputChecksums([fn], in_stream=lambda _p: True).attach(reader)
    with open(fn, "r+b") as fh:
        fh.truncate(20)
    with pytest.raises(FormatError, match="file shrank while reading: expected 40 bytes at byte 0, got 20"):
        list(reader)


# ---------------------------------------------------------------------------------------------------- checksums
def _reads_of(path, rereads) -> list:
    """Offsets at which the checksum code read ``path`` again (``rereads``: the ``checksum_rereads`` fixture)."""
    return [r.offset for r in rereads if r.path == path.resolve()]


@pytest.mark.parametrize("name", REAL_QUTAG)
@pytest.mark.parametrize("algo", ["xxh3_128_1mib", "xxh3_128", "sha256"])
def test_a_real_file_is_hashed_on_the_bytes_its_reader_reads(real_data, checksum_rereads, name, algo):
    p = real_data / name
    sums = InputChecksums([p], algo, in_stream=lambda _q: True)
    reader = Q.QutagReader(p, chunk_size=30_000, check_order=False)
    sums.attach(reader)
    assert sum(len(c) for c in reader) == reader.records
    data = p.read_bytes()
    want = {"xxh3_128_1mib": block_checksum(data), "xxh3_128": "xxh3_128:" + xxhash.xxh3_128_hexdigest(data),
            "sha256": "sha256:" + hashlib.sha256(data).hexdigest()}[algo]
    assert sums.result() == [want]
    assert _reads_of(p, checksum_rereads) == []     # the header block too: nothing read a second time


def test_trailing_bytes_are_hashed_and_a_partial_read_is_completed(tmp_path, monkeypatch, checksum_rereads):
    monkeypatch.setattr(Q, "WINDOW_RECORDS", 4099)     # windows that straddle the 1 MiB blocks
    fn = tmp_path / "t.qutag"
    Q.write_qutag_raw(fn, np.arange(1, 250_001, dtype=np.uint64) * 3, np.full(250_000, 5, np.uint16))
    with open(fn, "ab") as fh:
        fh.write(b"\1\2\3\4")
    data = fn.read_bytes()
    sums = InputChecksums([fn], in_stream=lambda _q: True)
    with pytest.warns(TimetagWarning, match="4 trailing bytes"):
        reader = Q.QutagReader(fn, chunk_size=60_000)
    sums.attach(reader)
    assert sum(len(c) for c in reader) == 250_000
    assert sums.result() == [block_checksum(data)] and _reads_of(fn, checksum_rereads) == []
    # a reader stopped early: the blocks it did not finish are read at the end, and the checksum is the same
    checksum_rereads.clear()
    sums = InputChecksums([fn], in_stream=lambda _q: True)
    with pytest.warns(TimetagWarning):
        reader = Q.QutagReader(fn, chunk_size=120_000)
    sums.attach(reader)
    next(iter(reader))     # the first 1.2 MB: block 0 whole
    assert sums.result() == [block_checksum(data)]
    assert _reads_of(fn, checksum_rereads) == [1 << 20, 2 << 20]


@pytest.fixture(scope="module")
def sim_qutag(tmp_path_factory):
    """A simulated run's Alice stream written as a quTAG file (with 3 trailing bytes), its setup and the rounds
    file of the same stream read from the simulator's dump."""
    sim = pytest.importorskip("timetag.simulator")
    from timetag.formats import read_all
    from timetag.process import process_files

    out = tmp_path_factory.mktemp("qutag_process")
    res = sim.simulate(sim.load_preset("lmu2022"), 40, 11, out, speedup=100)
    tags = read_all(res.alice)
    assert tags.lost.size == 0
    fn = out / "alice.qutag"
    Q.write_qutag_raw(fn, tags.time.astype(np.uint64), tags.channel.astype(np.uint16))
    with open(fn, "ab") as fh:
        fh.write(b"xyz")
    process_files([res.alice], res.setup, "alice", out / "from_dump.h5", chunk_size=20_000, progress=False)
    return fn, res.setup, out / "from_dump.h5"


@pytest.mark.parametrize("checksum", [True, "sha256"])
def test_process_reads_a_qutag_file_once_and_records_its_checksum(sim_qutag, tmp_path, checksum_rereads, checksum):
    from timetag.process import process_files
    from timetag.roundsfile import read_rounds

    fn, setup, from_dump = sim_qutag
    with pytest.warns(TimetagWarning, match="3 trailing bytes"):
        process_files([fn], setup, "alice", tmp_path / "r.h5", chunk_size=20_000, progress=False,
                      checksum=checksum)
    data = fn.read_bytes()
    want = block_checksum(data) if checksum is True else "sha256:" + hashlib.sha256(data).hexdigest()
    got = read_rounds(tmp_path / "r.h5")
    assert got.provenance["inputs"][0]["checksum"] == want
    assert _reads_of(fn, checksum_rereads) == []
    ref = read_rounds(from_dump)
    assert len(got.rounds) == len(ref.rounds) == 40
    np.testing.assert_array_equal(got.rounds, ref.rounds)
