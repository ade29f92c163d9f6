"""Provenance helpers: checksums computed on a background thread, or on the bytes a reader maps anyway."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import xxhash

from timetag.errors import SetupError
from timetag.provenance import BackgroundChecksums, InputChecksums, file_checksum

from reference_checksum import block_checksum


def test_background_checksums_match_hashlib(tmp_path):
    paths = []
    for i, size in enumerate((0, 1000, 5 << 20)):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(bytes((j * 7 + i) % 251 for j in range(size)) if size < 5000 else bytes(size))
        paths.append(p)
    job = BackgroundChecksums(paths)  # the block checksum by default, checked against its plain definition
    expected = [block_checksum(p.read_bytes()) for p in paths]
    assert job.result() == expected == [file_checksum(p) for p in paths]
    job = BackgroundChecksums(paths, "xxh3_128")   # as `xxhsum -H2` gives it
    expected = ["xxh3_128:" + xxhash.xxh3_128_hexdigest(p.read_bytes()) for p in paths]
    assert job.result() == expected == [file_checksum(p, "xxh3_128") for p in paths]
    job = BackgroundChecksums(paths, "sha256")
    expected = ["sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert job.result() == expected == [file_checksum(p, "sha256") for p in paths]


def test_an_unknown_checksum_is_refused_before_any_work(tmp_path):
    with pytest.raises(SetupError, match="unknown checksum 'md5'"):
        BackgroundChecksums([tmp_path / "never-read.bin"], "md5")


def test_a_cancelled_or_failed_job_says_so(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(64 << 20))
    job = BackgroundChecksums([big] * 8)
    job.cancel()
    with pytest.raises(RuntimeError, match="cancelled"):
        job.result()
    missing = BackgroundChecksums([tmp_path / "nope.bin"])
    with pytest.raises(FileNotFoundError):
        missing.result()


def _dump(path, n, trailing=b""):
    from timetag.chunk import TagChunk
    from timetag.formats.dump import write_dump

    write_dump(path, TagChunk(np.arange(1, n + 1, dtype=np.int64) * 1000, (np.arange(n) % 4 + 1).astype(np.int32)))
    if trailing:
        with open(path, "ab") as fh:
            fh.write(trailing)
    return path


@pytest.mark.parametrize("use_mmap", [True, False])
@pytest.mark.parametrize("trailing", [b"", b"12345"])
def test_a_dump_is_hashed_on_the_bytes_its_reader_maps(tmp_path, checksum_rereads, use_mmap, trailing):
    # chunks and windows of several sizes: every byte once, in file order, the trailing bytes included
    from timetag.formats.dump import DumpReader

    p = _dump(tmp_path / "a.dump", 25_000, trailing)
    text = tmp_path / "b.txt"
    text.write_text("".join(f"{1 + i % 3} {1000 * (i + 1)}\n" for i in range(500)))
    sums = InputChecksums([p, text], in_stream=lambda q: q.suffix == ".dump")
    with pytest.warns(UserWarning) if trailing else _nothing():
        reader = DumpReader(p, chunk_size=7_777, use_mmap=use_mmap)
    sums.attach(reader)
    sums.attach(object())  # the text input's reader: hashed by the background thread
    n = sum(len(c) for c in reader)
    assert n == 25_000
    assert sums.result() == [block_checksum(p.read_bytes()), block_checksum(text.read_bytes())]
    assert checksum_rereads and all(r.path == text.resolve() for r in checksum_rereads)  # the dump: never


@pytest.mark.parametrize("algo", ["xxh3_128", "sha256"])
def test_a_whole_file_checksum_is_hashed_on_the_mapped_bytes_too(tmp_path, checksum_rereads, algo):
    from timetag.formats.dump import DumpReader

    p = _dump(tmp_path / "a.dump", 25_000, b"123")
    sums = InputChecksums([p], algo, in_stream=lambda q: True)
    with pytest.warns(UserWarning):
        reader = DumpReader(p, chunk_size=7_777)
    sums.attach(reader)
    assert sum(len(c) for c in reader) == 25_000
    want = hashlib.sha256(p.read_bytes()).hexdigest() if algo == "sha256" else xxhash.xxh3_128_hexdigest(p.read_bytes())
    assert sums.result() == [f"{algo}:{want}"]
    assert checksum_rereads == []


def test_a_reader_stopped_before_the_end_means_a_second_read(tmp_path):
    from timetag.formats.dump import DumpReader

    p = _dump(tmp_path / "a.dump", 10_000)
    sums = InputChecksums([p], "sha256", in_stream=lambda q: True)
    reader = DumpReader(p, chunk_size=1000)
    sums.attach(reader)
    next(iter(reader))
    assert sums.result() == ["sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()]


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("name", ["eta_200204_HH400_T2_320MHz_HBT.ptu", "eta_200204_HH400_T3_320MHz_HBT.ptu"])
def test_a_ptu_file_is_hashed_on_its_records_as_they_are_decoded(real_data, checksum_rereads, name):
    # the header and the records from the reader's reads: nothing is read again, for the block checksum and a
    # whole-file one alike
    from timetag.formats.ptu import PtuReader

    p = real_data / name
    reread = checksum_rereads
    for algo, want in (("xxh3_128_1mib", block_checksum(p.read_bytes())),
                       ("sha256", "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest())):
        sums = InputChecksums([p], algo, in_stream=lambda q: True)
        reader = PtuReader(p, chunk_size=50_000)
        sums.attach(reader)
        assert sum(len(c) for c in reader) > 0
        assert sums.result() == [want]
        assert reread == [] and reader.data_offset > 0
