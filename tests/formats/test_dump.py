"""Dump reader: windowed reading (mapped or preadv) gives exactly the records' content, at any chunking."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st

import timetag.formats.dump as dump
from timetag.chunk import LOST_DTYPE, concat
from timetag.errors import DataValidationError, FormatError
from timetag.formats.dump import RECORD_DTYPE, DumpReader


def _records(n: int, seed: int, lost_every: int | None = 7) -> np.ndarray:
    """Records in time order, every ``lost_every``-th a non-tag record of a random kind."""
    rng = np.random.default_rng(seed)
    rec = np.zeros(n, RECORD_DTYPE)
    rec["time"] = np.cumsum(rng.integers(0, 1000, n))   # zero gaps: equal times are legal
    rec["channel"] = rng.integers(-3, 8, n)
    if lost_every:
        k = np.arange(0, n, lost_every)
        rec["type"][k] = rng.integers(1, 5, k.size)
        rec["missed_events"][k] = rng.integers(0, 65535, k.size)
    return rec


def _expected(rec: np.ndarray):
    """Independent split with plain numpy boolean masks."""
    tag = rec["type"] == 0
    return rec["time"][tag], rec["channel"][tag], rec[~tag]


def _check(chunks, rec):
    t, c, other = _expected(rec)
    whole = concat(chunks)
    assert np.array_equal(whole.time, t) and np.array_equal(whole.channel, c)
    kinds = {1: 4, 2: 1, 3: 2, 4: 3}   # dump type -> LOST kind (ERROR, OVERFLOW_BEGIN, OVERFLOW_END, MISSED)
    assert whole.lost.dtype == LOST_DTYPE
    assert np.array_equal(whole.lost["time"], other["time"])
    assert whole.lost["kind"].tolist() == [kinds[int(x)] for x in other["type"]]
    assert np.array_equal(whole.lost["channel"], other["channel"])
    assert np.array_equal(whole.lost["count"], other["missed_events"])


@given(n=st.integers(1, 400), seed=st.integers(0, 10**6), chunk=st.integers(1, 120), window=st.integers(1, 70),
       lost_every=st.sampled_from([None, 1, 3, 50]), use_mmap=st.booleans())
def test_any_chunking_and_window_gives_the_records(tmp_path_factory, n, seed, chunk, window, lost_every,
                                                   use_mmap):
    rec = _records(n, seed, lost_every)
    fn = tmp_path_factory.mktemp("d") / "x.dump"
    rec.tofile(fn)
    old = dump.WINDOW_RECORDS, dump.READ_RECORDS
    dump.WINDOW_RECORDS = dump.READ_RECORDS = window   # windows cut chunks anywhere, unaligned to pages
    try:
        chunks = [c for c in DumpReader(fn, chunk_size=chunk, use_mmap=use_mmap)]
        part = list(DumpReader(fn, chunk_size=chunk, use_mmap=use_mmap).iter_chunks(n // 3, n - n // 4))
    finally:
        dump.WINDOW_RECORDS, dump.READ_RECORDS = old
    _check(chunks, rec)
    assert [c.offset for c in chunks] == list(range(0, n, chunk))
    _check(part, rec[n // 3: n - n // 4])


def test_kept_chunks_stay_intact(tmp_path):
    rec = _records(5000, 1)
    fn = tmp_path / "x.dump"
    rec.tofile(fn)
    kept = list(DumpReader(fn, chunk_size=300))        # all alive at once: no chunk may share another's memory
    _check(kept, rec)
    views = [c.time[5:9] for c in DumpReader(fn, chunk_size=300)]   # a view alone must also pin its chunk
    assert [v.tolist() for v in views] == [c.time[5:9].tolist() for c in kept]


def test_running_maximum_without_order_check(tmp_path):
    rec = np.zeros(6, RECORD_DTYPE)
    rec["time"] = [5, 9, 7, 10, 8, 12]
    fn = tmp_path / "x.dump"
    rec.tofile(fn)
    assert concat(DumpReader(fn, chunk_size=4, check_order=False)).time.tolist() == [5, 9, 7, 10, 8, 12]
    with pytest.raises(DataValidationError, match=r"7 ps after 9 ps.*record 2|record 2.*7 ps after 9 ps"):
        list(DumpReader(fn, chunk_size=4))


@pytest.mark.parametrize("use_mmap", [True, False])
def test_errors_name_the_record_across_windows(tmp_path, monkeypatch, use_mmap):
    monkeypatch.setattr(dump, "WINDOW_RECORDS", 8)
    monkeypatch.setattr(dump, "READ_RECORDS", 8)
    rec = _records(100, 3, lost_every=None)
    rec["type"][61] = 9
    fn = tmp_path / "x.dump"
    rec.tofile(fn)
    with pytest.raises(FormatError, match="unknown event type code 9 in record 61"):
        list(DumpReader(fn, chunk_size=30, use_mmap=use_mmap))
    rec["type"][61] = 0
    rec["time"][45] = rec["time"][44] - 1
    rec.tofile(fn)
    with pytest.raises(DataValidationError, match="record 45"):
        list(DumpReader(fn, chunk_size=30, use_mmap=use_mmap))


@pytest.mark.parametrize("use_mmap", [True, False])
def test_file_shrinking_while_read_is_an_error_not_a_crash(tmp_path, use_mmap):
    rec = _records(1000, 4)
    fn = tmp_path / "x.dump"
    rec.tofile(fn)
    it = iter(DumpReader(fn, chunk_size=100, use_mmap=use_mmap))
    next(it)
    with open(fn, "r+b") as fh:
        fh.truncate(500 * 16)
    with pytest.raises(FormatError, match="shrank"):
        list(it)


def test_peak_rss_does_not_grow_with_the_file(tmp_path):
    fn = tmp_path / "big.dump"
    rec = np.zeros(4_000_000, RECORD_DTYPE)     # 64 MB
    rec["time"] = np.arange(rec.size)
    rec.tofile(fn)
    del rec
    code = f"""
import resource, numpy as np
from timetag.formats.dump import DumpReader
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
n = 0
for c in DumpReader({str(fn)!r}, chunk_size=200_000):
    n += int(c.time[-1] >= 0) * len(c)
print(n, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) == 4_000_000
    assert int(out[1]) < 32, f"peak RSS grew by {out[1]} MB reading a 64 MB file"


def _split_reference(rec, previous, check_order, check_reserved=False):
    """The contract of split_records, record by record in plain Python."""
    t_out, c_out, lost = [], [], []
    last = previous
    for i, r in enumerate(rec.tolist()):
        ty, reserved, _, ch, t = r
        if check_reserved and reserved:
            return t_out, c_out, lost, i, -1, last
        if ty == 0:
            if check_order and t < last:
                return t_out, c_out, lost, -1, i, last
            last = max(last, t)
            t_out.append(t)
            c_out.append(ch)
        elif ty <= 4:
            lost.append(i)
        else:
            return t_out, c_out, lost, i, -1, last
    return t_out, c_out, lost, -1, -1, last


@given(data=st.data(), n=st.integers(0, 5000), check_order=st.booleans(), check_reserved=st.booleans())
def test_split_kernel_matches_a_plain_loop(data, n, check_order, check_reserved):
    from timetag._cext.fmt_dump import split_records

    seed = data.draw(st.integers(0, 10**6))
    rng = np.random.default_rng(seed)
    rec = np.zeros(n, RECORD_DTYPE)
    rec["time"] = np.cumsum(rng.integers(0, 50, n)) + data.draw(st.sampled_from([0, -500, 2**62]))
    rec["channel"] = rng.integers(-(2**31), 2**31, n)
    # unchecked, the reserved byte must not disturb the split; checked, a rare nonzero one is a bad record
    rec["reserved"] = rng.integers(0, 256, n) if not check_reserved else (rng.random(n) < 2 / max(n, 1)) * 7
    for _ in range(data.draw(st.integers(0, 3))):   # a few disturbances anywhere, often none
        if n:
            i = int(rng.integers(0, n))
            what = data.draw(st.sampled_from(["lost", "bad", "back"]))
            if what == "back":
                rec["time"][i] -= 1000
            else:
                rec["type"][i] = rng.integers(1, 5) if what == "lost" else 5 + rng.integers(0, 200)
    previous = data.draw(st.sampled_from([np.iinfo(np.int64).min, -10, int(rec["time"][0]) if n else 0]))
    out_t, out_c, lost_i = np.empty(n, np.int64), np.empty(n, np.int32), np.empty(n, np.int64)
    w, m, bad, back, last = split_records(rec, previous, check_order, out_t, out_c, lost_i, check_reserved)
    t_ref, c_ref, lost_ref, bad_ref, back_ref, last_ref = _split_reference(rec, previous, check_order,
                                                                           check_reserved)
    assert (w, m, bad, back, last) == (len(t_ref), len(lost_ref), bad_ref, back_ref, last_ref)
    assert out_t[:w].tolist() == t_ref and out_c[:w].tolist() == c_ref and lost_i[:m].tolist() == lost_ref


class _Advice:
    """Records the read-ahead hints given (os.posix_fadvise) and the windows opened, in order."""

    def __init__(self, monkeypatch, fail: BaseException | None = None):
        self.calls: list[tuple] = []
        self.fail = fail
        monkeypatch.setattr(dump.os, "posix_fadvise", self._fadvise)
        opened = dump._Windows.open

        def spy(windows, lo, hi):
            self.calls.append(("open", lo * 16, hi * 16))
            return opened(windows, lo, hi)

        monkeypatch.setattr(dump._Windows, "open", spy)

    def _fadvise(self, fd, offset, length, advice):
        name = {dump.os.POSIX_FADV_SEQUENTIAL: "seq", dump.os.POSIX_FADV_WILLNEED: "willneed"}[advice]
        self.calls.append((name, offset, length))
        if self.fail is not None:
            raise self.fail


@pytest.mark.parametrize("use_mmap", [True, False])
@pytest.mark.parametrize("start,stop", [(0, None), (17, 230)])
def test_read_ahead_hints_run_ahead_of_every_window_within_the_range(tmp_path, monkeypatch, use_mmap, start, stop):
    monkeypatch.setattr(dump, "WINDOW_RECORDS", 8)
    monkeypatch.setattr(dump, "READ_RECORDS", 8)
    monkeypatch.setattr(dump, "READ_AHEAD_BYTES", 40 * 16)
    rec = _records(300, 5)
    fn = tmp_path / "x.dump"
    rec.tofile(fn)
    advice = _Advice(monkeypatch)
    _check(list(DumpReader(fn, chunk_size=30, use_mmap=use_mmap).iter_chunks(start, stop)), rec[start:stop])
    first, last = start * 16, (stop or 300) * 16
    # each window's open gives its hints (before mapping or reading it): the first one says "sequential to the
    # end of the range", then each asks for what follows the last hint, up to READ_AHEAD_BYTES past the window
    assert advice.calls[:2] == [("open", first, first + 8 * 16), ("seq", first, last - first)]
    assert sum(c[0] == "seq" for c in advice.calls) == 1
    advised, window_end = first, None
    for kind, offset, length in advice.calls + [("open", None, None)]:
        if kind == "willneed":
            assert offset == advised and length > 0 and offset + length <= last
            advised = offset + length
        elif kind == "open":
            if window_end is not None:
                assert advised == min(window_end + 40 * 16, last)
            window_end = length
    assert advised == last


@pytest.mark.parametrize("fail", [OSError(29, "Illegal seek"), AttributeError("no posix_fadvise")])
@pytest.mark.parametrize("use_mmap", [True, False])
def test_a_refused_read_ahead_hint_is_harmless(tmp_path, monkeypatch, fail, use_mmap):
    monkeypatch.setattr(dump, "WINDOW_RECORDS", 8)
    monkeypatch.setattr(dump, "READ_RECORDS", 8)
    rec = _records(200, 6)
    fn = tmp_path / "x.dump"
    rec.tofile(fn)
    advice = _Advice(monkeypatch, fail)
    _check(list(DumpReader(fn, chunk_size=30, use_mmap=use_mmap)), rec)
    assert any(c[0] == "willneed" for c in advice.calls)     # the hints were tried, and refused


def test_no_read_ahead_hints_when_turned_off(tmp_path, monkeypatch):
    monkeypatch.setattr(dump, "READ_AHEAD_BYTES", 0)
    rec = _records(100, 7)
    fn = tmp_path / "x.dump"
    rec.tofile(fn)
    advice = _Advice(monkeypatch)
    _check(list(DumpReader(fn, chunk_size=30)), rec)
    assert advice.calls and all(c[0] == "open" for c in advice.calls)


def test_a_reader_kept_after_its_read_holds_no_window_buffer(tmp_path):
    # `process --threads` keeps every partition's readers for their bad-record accounts: a window-sized work buffer
    # each (4 MiB, faulted in as huge pages) made peak RSS grow with the number of partitions
    import gc

    fn = tmp_path / "r.dump"
    _records(300_000, 3).tofile(fn)
    reader = DumpReader(fn, chunk_size=100_000)
    assert sum(len(c) for c in reader.iter_chunks()) > 0

    def arrays(obj, seen, depth=0):
        if id(obj) in seen or depth > 6:
            return 0
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            return obj.nbytes
        return sum(arrays(o, seen, depth + 1) for o in gc.get_referents(obj) if not isinstance(o, type))

    assert arrays(reader, set()) < 64 << 10
