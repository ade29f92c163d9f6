"""The block checksum: pieces fed by any number of readers, in any order, give the plain definition's answer; what
no reader saw whole is read at the end, and nothing else."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import xxhash
from hypothesis import HealthCheck, given, settings, strategies as st

from timetag.checksums import BlockDigest, SequentialDigest, file_checksum, new_digest
from timetag.errors import SetupError

from reference_checksum import block_checksum

MIB = 1 << 20


def _file(tmp_path, size, seed=0):
    p = tmp_path / f"f{size}_{seed}.bin"
    p.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return p


@pytest.mark.parametrize("size", [0, 1, MIB - 1, MIB, MIB + 1, 3 * MIB + 12345])
def test_file_checksum_is_the_definition(tmp_path, size):
    p = _file(tmp_path, size)
    data = p.read_bytes()
    assert file_checksum(p) == block_checksum(data)
    assert file_checksum(p, "xxh3_128") == "xxh3_128:" + xxhash.xxh3_128_hexdigest(data)
    assert file_checksum(p, "sha256") == "sha256:" + hashlib.sha256(data).hexdigest()


def test_an_unknown_algorithm_is_refused(tmp_path):
    with pytest.raises(SetupError, match="unknown checksum 'md5'"):
        file_checksum(_file(tmp_path, 10), "md5")


def _pieces(size, cuts):
    edges = sorted({0, size, *(c % (size + 1) for c in cuts)})
    return list(zip(edges[:-1], edges[1:]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(0, 5 * MIB), cuts=st.lists(st.integers(0, 5 * MIB), max_size=12),
       readers=st.integers(1, 4), windows=st.integers(1, 3 * MIB), order=st.randoms(use_true_random=False))
def test_readers_of_parts_in_any_order_give_the_definition(tmp_path, checksum_rereads, size, cuts, readers, windows,
                                                           order):
    # partitions (pieces between cuts) handed to `readers` feeders in a random order; each reads its partition in
    # windows, in file order, as a dump reader does
    p = tmp_path / "data.bin"
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    p.write_bytes(data.tobytes())
    digest = BlockDigest(size)
    feeders = [digest.feeder() for _ in range(readers)]
    parts = _pieces(size, cuts)
    order.shuffle(parts)
    for i, (lo, hi) in enumerate(parts):
        f = feeders[i % readers]
        for w in range(lo, hi, windows):
            f.update_at(w, data[w:min(w + windows, hi)])
    checksum_rereads.clear()  # (one fixture for every example)
    got = digest.result(p)
    reread = [r.offset for r in checksum_rereads]
    assert got == block_checksum(data.tobytes())
    # only blocks that no partition held whole are read again, each once (a feeder that reads two partitions one
    # after the other may finish the block between them itself)
    whole = {k for lo, hi in parts for k in range(-(-lo // MIB), (size // MIB) + 1)
             if k * MIB >= lo and min((k + 1) * MIB, size) <= hi and k * MIB < size}
    split = set(range(-(-size // MIB))) - whole
    blocks = [o // MIB for o in reread]
    assert len(blocks) == len(set(blocks)) and set(blocks) <= split
    if readers >= len(parts):   # a feeder per partition
        assert set(blocks) == split


def test_a_feeder_that_skips_bytes_leaves_the_block_to_the_final_read(tmp_path):
    p = _file(tmp_path, 2 * MIB + 5)
    data = p.read_bytes()
    digest = BlockDigest(len(data))
    f = digest.feeder()
    f.update_at(0, data[:1000])
    f.update_at(2000, data[2000:MIB + 10])     # a gap: block 0 is not this feeder's to finish
    f.update_at(MIB + 10, data[MIB + 10:])
    assert digest.missing() == [0]
    assert digest.result(p) == block_checksum(data)


def test_a_sequential_digest_takes_only_what_continues_it(tmp_path):
    p = _file(tmp_path, 3 * MIB + 7)
    data = p.read_bytes()
    d = new_digest("sha256", len(data))
    assert isinstance(d, SequentialDigest)
    d.update_at(0, data[:100])
    d.update_at(500, data[500:600])            # not the next byte: ignored
    d.update_at(100, data[100:])
    assert d.complete
    assert d.result(p) == "sha256:" + hashlib.sha256(data).hexdigest()
    d = new_digest("xxh3_128", len(data))
    d.update_at(0, data[:100])
    assert not d.complete                      # read again, from the start
    assert d.result(p) == "xxh3_128:" + xxhash.xxh3_128_hexdigest(data)


def test_a_stop_ends_the_final_read(tmp_path):
    import threading

    p = _file(tmp_path, 3 * MIB)
    stop = threading.Event()
    stop.set()
    assert BlockDigest(3 * MIB).result(p, stop) is None
    assert file_checksum(p, "sha256", stop) is None
