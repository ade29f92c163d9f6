"""H5TagWriter(swmr=True): a reader in another process, opened while the file is being written, sees every row
flushed so far, and the live follower reproduces the whole stream."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from timetag.chunk import LOST_DTYPE, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk, concat

h5py = pytest.importorskip("h5py")

# pieces the writer process appends, one per "w" line on its stdin; it answers with its row count
_WRITER = r"""
import sys
import numpy as np
from timetag.chunk import LOST_DTYPE, TagChunk
from timetag.formats.h5tags import H5TagWriter

def piece(i):
    t = np.arange(i * 1000, (i + 1) * 1000, 10, dtype=np.int64) * 1000
    lost = np.zeros(1 if i % 2 else 0, LOST_DTYPE)
    if lost.size:
        lost["time"], lost["kind"], lost["count"] = t[3], 1 + (i // 2) % 2, i
    return TagChunk(t, (np.arange(t.size) % 3).astype(np.int32), lost)

w = H5TagWriter(sys.argv[1], lab="alice", swmr=True)
print("ready", flush=True)
i = 0
for line in sys.stdin:
    if line.strip() == "w":
        w.write(piece(i)); i += 1
        print("rows", w.records, flush=True)
    else:
        break
w.close()
print("closed", flush=True)
"""


def _piece(i):   # the same pieces, built here independently of the writer process
    t = np.arange(i * 1000, (i + 1) * 1000, 10, dtype=np.int64) * 1000
    lost = np.zeros(1 if i % 2 else 0, LOST_DTYPE)
    if lost.size:
        lost["time"], lost["kind"], lost["count"] = t[3], (OVERFLOW_BEGIN, OVERFLOW_END)[(i // 2) % 2], i
    return TagChunk(t, (np.arange(t.size) % 3).astype(np.int32), lost)


class _Writer:
    def __init__(self, path):
        self.p = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        assert self.p.stdout.readline().strip() == "ready"

    def send(self, cmd: str) -> str:
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().strip()


def test_reader_opened_mid_write_sees_the_flushed_rows(tmp_path):
    path = tmp_path / "grow.h5"
    w = _Writer(path)
    try:
        assert w.send("w") == "rows 100"
        assert w.send("w") == "rows 200"
        with h5py.File(path, "r", libver="latest", swmr=True) as f:   # writer still has it open
            ts, det = f["photon_data/timestamps"], f["photon_data/detectors"]
            lost = f["user/timetag/lost"]   # timetag's lost-data events: Photon-HDF5's free /user group
            expect = concat([_piece(0), _piece(1)])
            assert np.array_equal(ts[:], expect.time) and np.array_equal(det[:], expect.channel)
            assert np.array_equal(lost[:], expect.lost)
            assert w.send("w") == "rows 300"
            for ds in (ts, det, lost):
                ds.refresh()
            expect = concat([_piece(i) for i in range(3)])
            assert ts.shape == (300,) and np.array_equal(ts[:], expect.time)
            assert np.array_equal(det[:], expect.channel) and np.array_equal(lost[:], expect.lost)
        assert w.send("q") == "closed"
    finally:
        w.p.kill()
        w.p.wait()
    from timetag.formats import read_all

    whole = read_all(path)   # the finished file is an ordinary tag file
    expect = concat([_piece(i) for i in range(3)])
    assert np.array_equal(whole.time, expect.time) and np.array_equal(whole.lost, expect.lost)


def test_live_follower_reads_the_growing_file(tmp_path):
    from timetag.live.replay import FollowH5Source, follow_source

    path = tmp_path / "grow.h5"
    w = _Writer(path)
    got = []
    try:
        w.send("w")
        src = follow_source(path, poll_interval=0.0, idle_timeout=None)
        assert isinstance(src, FollowH5Source)
        it = iter(src)
        got.append(next(it).chunks["alice"])
        for k in range(2, 5):
            assert w.send("w") == f"rows {100 * k}"
            while sum(len(c) for c in got) < 100 * k:   # idle polls yield empty chunks meanwhile
                got.append(next(it).chunks["alice"])
        assert w.send("q") == "closed"
        src.stop()
        got.extend(b.chunks["alice"] for b in it)
    finally:
        w.p.kill()
        w.p.wait()
    whole, expect = concat(got), concat([_piece(i) for i in range(4)])
    assert np.array_equal(whole.time, expect.time) and np.array_equal(whole.channel, expect.channel)
    assert np.array_equal(whole.lost, expect.lost)
    for c in got:   # every lost event travels with the tags around it
        if c.lost.size:
            assert len(c) and c.lost["time"].max() <= c.time[-1]


def test_only_swmr_files_use_the_latest_file_format(tmp_path):
    from timetag.formats.h5tags import H5TagWriter

    for swmr in (False, True):
        with H5TagWriter(tmp_path / f"{swmr}.h5", swmr=swmr) as w:
            w.write(_piece(0))
        with h5py.File(tmp_path / f"{swmr}.h5", "r") as f:
            # SWMR needs the latest file format (superblock version 3); the default stays widely readable
            assert (f.id.get_create_plist().get_version()[0] >= 3) == swmr
