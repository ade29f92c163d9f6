"""Live sources: pacing arithmetic, replay slicing, tail mode over a growing dump file, the simulated device."""
from __future__ import annotations

import numpy as np
import pytest

from live_cases import make_stream
from timetag.chunk import MISSED, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk, concat, split
from timetag.errors import DataValidationError, FormatError, TimetagError
from timetag.formats.dump import encode_chunk, write_dump
from timetag.live.factory import build_source, parse_speed
from timetag.live.replay import FollowSource, ReplaySource, _time_slices
from timetag.live.simdevice import SimDevice
from timetag.live.sources import ChunkSource, Pacer


def _same(a: TagChunk, b: TagChunk):
    assert np.array_equal(a.time, b.time) and np.array_equal(a.channel, b.channel)
    assert np.array_equal(a.lost, b.lost)


def test_pacer_maps_device_time_to_wall_time():
    p = Pacer(4.0, t0_wall=100.0)
    assert p.due(10**12) == 100.0  # anchored at the first device time
    assert p.due(10**12 + 2 * 10**12) == pytest.approx(100.5)
    assert Pacer(None).due(5 * 10**12) == 0.0
    with pytest.raises(ValueError):
        Pacer(0)


def test_time_slices_cut_on_device_time_and_keep_everything():
    whole = make_stream(10, seed=1, lost=[(120_000_000, OVERFLOW_BEGIN), (130_000_000, OVERFLOW_END)])
    pieces = _time_slices(whole, 100_000_000)
    _same(concat(pieces), whole)
    for p in pieces:
        if len(p):
            assert p.time[-1] // 100_000_000 == p.time[0] // 100_000_000


def test_replay_paced_yields_the_whole_file(tmp_path):
    whole = make_stream(15, seed=2, lost=[(200_000_000, MISSED)])
    write_dump(tmp_path / "x.dump", whole)
    src = ReplaySource(tmp_path / "x.dump", speed=1e5, slice_s=1e-9, chunk_size=64)
    batches = list(src)
    assert len(batches) > 5
    _same(concat(b.chunks["alice"] for b in batches), whole)
    assert all(b.device_time_ps is not None for b in batches)


def test_follow_reads_only_whole_records_of_a_growing_file(tmp_path):
    whole = make_stream(12, seed=3, lost=[(100_000_000, OVERFLOW_BEGIN), (150_000_000, OVERFLOW_END)])
    raw = encode_chunk(whole).tobytes()
    path = tmp_path / "grow.dump"
    cut1 = 16 * 10 + 7  # ten records and a partly written one
    path.write_bytes(raw[:cut1])
    src = FollowSource(path, poll_interval=0.0, idle_timeout=None)
    it = iter(src)
    got = [next(it).chunks["alice"]]
    assert len(got[0]) + got[0].lost.size == 10
    assert len(next(it).chunks["alice"]) == 0  # nothing new: an empty batch keeps the loop alive
    with open(path, "ab") as fh:
        fh.write(raw[cut1:])
    while sum(len(c) + c.lost.size for c in got) < len(raw) // 16:
        got.append(next(it).chunks["alice"])
    src.stop()
    _same(concat(got), whole)
    assert src.stats()["bytes_read"] == len(raw)


def test_follow_ends_after_idle_timeout_and_rejects_a_shrinking_file(tmp_path):
    whole = make_stream(3, seed=4)
    path = tmp_path / "f.dump"
    write_dump(path, whole)
    src = FollowSource(path, poll_interval=0.001, idle_timeout=0.01)
    got = [b.chunks["alice"] for b in src]
    _same(concat(got), whole)
    assert src.end_reason.startswith("idle timeout") and src.stats()["ended"] == src.end_reason
    src = FollowSource(path, poll_interval=0.0, idle_timeout=None)
    it = iter(src)
    next(it)
    path.write_bytes(b"")
    with pytest.raises(DataValidationError, match=f"truncated from {len(whole) * 16} to 0 bytes"):
        next(it)


def test_follow_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FormatError, match="no such file"):
        list(FollowSource(tmp_path / "none.dump", wait_for_file=0.0))


def test_simdevice_releases_slices_for_both_labs_in_order():
    a, b = make_stream(6, seed=5), make_stream(6, seed=6, lab="bob")
    cuts = range(10, len(a), 10)
    stream = [(x, y, [1]) for x, y in zip(split(a, cuts), split(b, range(10, len(b), 10)))]
    dev = SimDevice(stream, slice_ps=10**9, speed=None)
    batches = list(dev)
    assert [bt.device_time_ps for bt in batches] == [(i + 1) * 10**9 for i in range(len(stream))]
    _same(concat(bt.chunks["alice"] for bt in batches), a)
    assert dev.truth_rows == len(stream)


def test_chunk_source_stop_ends_iteration():
    whole = make_stream(10, seed=7)
    src = ChunkSource(split(whole, range(5, len(whole), 5)))
    n = 0
    for _ in src:
        n += 1
        if n == 3:
            src.stop()
    assert n == 3


def test_source_specs(tmp_path):
    from live_cases import toy_setup

    setup = toy_setup()
    assert parse_speed("max") is None and parse_speed("2.5") == 2.5
    with pytest.raises(TimetagError):
        parse_speed("fast")
    with pytest.raises(TimetagError, match="--lab"):
        build_source("replay:" + str(tmp_path / "x"), setup)
    with pytest.raises(TimetagError, match="no such file"):
        build_source("replay:" + str(tmp_path / "x"), setup, lab="alice")
    with pytest.raises(TimetagError, match="unknown --source"):
        build_source("tape:1", setup, lab="alice")
    src, labs = build_source("sim", setup, speed=None)
    assert labs == ("alice", "bob") and src.labs == ("alice", "bob")


def test_follow_h5_reads_a_file_growing_under_swmr(tmp_path):
    import h5py

    from timetag.chunk import LOST_DTYPE
    from timetag.live.replay import FollowH5Source, follow_source

    whole = make_stream(12, seed=8, lost=[(150_000_000, OVERFLOW_BEGIN), (170_000_000, OVERFLOW_END)])
    path = tmp_path / "grow.h5"
    f = h5py.File(path, "w", libver="latest")
    g = f.create_group("photon_data")
    ts = g.create_dataset("timestamps", shape=(0,), maxshape=(None,), dtype="<i8", chunks=(64,))
    det = g.create_dataset("detectors", shape=(0,), maxshape=(None,), dtype="<i4", chunks=(64,))
    lost = g.create_dataset("lost", shape=(0,), maxshape=(None,), dtype=LOST_DTYPE, chunks=(16,))
    f.swmr_mode = True

    def append(piece, det_lags=False):
        n0 = ts.shape[0]
        ts.resize((n0 + len(piece),)); ts[n0:] = piece.time; ts.flush()
        if not det_lags:
            det.resize((n0 + len(piece),)); det[n0:] = piece.channel; det.flush()
        k = lost.shape[0]
        lost.resize((k + piece.lost.size,)); lost[k:] = piece.lost; lost.flush()

    pieces = list(split(whole, [20, 45]))
    append(pieces[0])
    src = follow_source(path, poll_interval=0.0, idle_timeout=None)
    assert isinstance(src, FollowH5Source)
    it = iter(src)
    got = [next(it).chunks["alice"]]
    append(pieces[1], det_lags=True)  # detectors not written yet: those rows must wait
    got.append(next(it).chunks["alice"])
    assert sum(len(c) for c in got) == 20
    det.resize((ts.shape[0],)); det[20:] = pieces[1].channel; det.flush()
    append(pieces[2])
    while sum(len(c) for c in got) < len(whole):
        got.append(next(it).chunks["alice"])
    src.stop()
    f.close()
    _same(concat(got), whole)
