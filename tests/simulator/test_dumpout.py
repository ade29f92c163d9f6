"""The simulator's dump output: the same bytes as the formats' DumpWriter, written directly (O_DIRECT, aligned
writes with the remainder carried into the next buffer) or through the page cache, and a refused direct write
falls back without losing or repeating a byte."""
from __future__ import annotations

import errno

import numpy as np
import pytest

from timetag.chunk import LOST_DTYPE, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk
from timetag.formats.dump import DumpWriter
from timetag.simulator import dumpout as D


def _chunks(seed: int, sizes) -> list[TagChunk]:
    """Time-ordered chunks of the given sizes; every third one also carries an overflow interval."""
    rng = np.random.default_rng(seed)
    out, t = [], 1000
    for i, n in enumerate(sizes):
        times = t + np.cumsum(rng.integers(1, 50, n)).astype(np.int64)
        t = int(times[-1]) + 1 if n else t + 1
        lost = np.zeros(0, LOST_DTYPE)
        if i % 3 == 2 and n >= 2:
            lost = np.zeros(2, LOST_DTYPE)
            lost["time"] = [times[0], times[-1]]
            lost["kind"] = [OVERFLOW_BEGIN, OVERFLOW_END]
            lost["channel"] = -1
        out.append(TagChunk(times, rng.integers(1, 11, n).astype(np.int32), lost))
    return out


# sizes around the 4096-byte (256-record) alignment: below, at, just past, several blocks, and empty chunks
SIZES = [0, 1, 255, 256, 257, 0, 3, 1000, 4095, 513, 2, 0, 70_000, 7]


def _reference(tmp_path, chunks) -> bytes:
    with DumpWriter(tmp_path / "ref.dump") as w:
        for c in chunks:
            w.write(c)
    return (tmp_path / "ref.dump").read_bytes()


def _write(path, chunks, direct=True):
    out = D.DumpOut(path, direct=direct)
    for c in chunks:
        out.write(c)
    out.close()
    return out


@pytest.mark.parametrize("direct", [True, False])
def test_same_bytes_as_the_dump_writer(tmp_path, direct):
    chunks = _chunks(1, SIZES)
    _write(tmp_path / "out.dump", chunks, direct=direct)
    ref = _reference(tmp_path, chunks)
    assert len(ref) == 16 * (sum(SIZES) + sum(c.lost.size for c in chunks))
    assert (tmp_path / "out.dump").read_bytes() == ref


def test_direct_writes_where_the_file_system_allows(tmp_path):
    probe = tmp_path / "probe"
    with open(probe, "wb") as fh:
        supported = D.set_direct(fh.fileno(), True)
    out = _write(tmp_path / "out.dump", _chunks(2, [300, 300]))
    # the last partial block goes through the page cache: the flag is off once the file is complete
    assert out.direct is False
    sent = []
    real = D.DumpOut._os_write

    def spy(self, view):
        sent.append((self.direct, view.nbytes))
        return real(self, view)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(D.DumpOut, "_os_write", spy)
        _write(tmp_path / "spied.dump", _chunks(2, [300, 300]))
    if supported:  # every write but the tail is direct and a whole number of blocks
        assert [d for d, _ in sent] == [True] * (len(sent) - 1) + [False]
        assert all(n % D.ALIGN == 0 for _, n in sent[:-1]) and sent[-1][1] % D.ALIGN != 0
    else:
        assert not any(d for d, _ in sent)
    assert sum(n for _, n in sent) == 600 * 16


def test_refused_direct_write_falls_back_to_the_page_cache(tmp_path, monkeypatch):
    real = D.DumpOut._os_write
    calls = []

    def refuse_direct(self, view):
        calls.append(self.direct)
        if self.direct:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(self, view)

    monkeypatch.setattr(D, "set_direct", lambda fd, on: on)  # claim support, then refuse the write
    monkeypatch.setattr(D.DumpOut, "_os_write", refuse_direct)
    chunks = _chunks(3, SIZES)
    out = _write(tmp_path / "out.dump", chunks)
    assert calls[0] is True and out.direct is False
    assert (tmp_path / "out.dump").read_bytes() == _reference(tmp_path, chunks)


def test_other_write_errors_are_raised(tmp_path, monkeypatch):
    def full(self, view):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(D.DumpOut, "_os_write", full)
    out = D.DumpOut(tmp_path / "out.dump")
    with pytest.raises(OSError, match="No space left"):
        try:
            for c in _chunks(4, [5000] * 8):
                out.write(c)
        finally:
            out.close()
    assert out.closed
    out.close()  # a second close does nothing


def test_empty_stream_and_one_tag(tmp_path):
    _write(tmp_path / "empty.dump", [])
    assert (tmp_path / "empty.dump").read_bytes() == b""
    one = [TagChunk(np.array([7], np.int64), np.array([3], np.int32))]
    _write(tmp_path / "one.dump", one)
    assert (tmp_path / "one.dump").read_bytes() == _reference(tmp_path, one)


def test_an_existing_file_is_never_opened(tmp_path):
    (tmp_path / "x.dump").write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        D.DumpOut(tmp_path / "x.dump")
    assert (tmp_path / "x.dump").read_bytes() == b"keep"
