"""Provenance helpers: checksums computed on a background thread."""
from __future__ import annotations

import hashlib

import pytest
import xxhash

from timetag.errors import SetupError
from timetag.provenance import BackgroundChecksums, file_checksum


def test_background_checksums_match_hashlib(tmp_path):
    paths = []
    for i, size in enumerate((0, 1000, 5 << 20)):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(bytes((j * 7 + i) % 251 for j in range(size)) if size < 5000 else bytes(size))
        paths.append(p)
    job = BackgroundChecksums(paths)  # xxh3-128 by default, checked against xxhash's one-shot digest
    expected = ["xxh3_128:" + xxhash.xxh3_128_hexdigest(p.read_bytes()) for p in paths]
    assert job.result() == expected == [file_checksum(p) for p in paths]
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
