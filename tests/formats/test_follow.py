"""follow: sources against a writer that keeps appending: the file reader's checks, truncation, replacement,
rotation over numbered files, pauses (heartbeats, idle time) and how the source ends."""
from __future__ import annotations

import os
import re
import time

import numpy as np
import pytest

from timetag.chunk import OVERFLOW_BEGIN, OVERFLOW_END, TagChunk, concat
from timetag.errors import DataValidationError, FormatError, SetupError
from timetag.live.replay import FollowH5Source, FollowSource, follow_source
from follow_cases import HOUR_PS, POLL, _append, _drain, _later, _n_tags, _quiet, _rec, _tags

@pytest.mark.parametrize("bad, message", [(25, r"time goes backwards: 25 ps after 70 ps"),
                                          (-5, r"negative time -5 ps")])
def test_a_bad_tag_ends_the_run_after_the_tags_before_it(tmp_path, bad, message):
    path = tmp_path / "run.dump"
    _append(path, [0, 10, 20, 30, 40])
    _later((0.05, lambda: _append(path, [60, 70, bad, 80])))
    batches, exc = _drain(FollowSource(path, poll_interval=POLL))
    assert _tags(batches) == [0, 10, 20, 30, 40, 60, 70]
    assert isinstance(exc, DataValidationError) and exc.index == 7
    assert str(path) in str(exc) and "byte 112" in str(exc)
    assert re.search(message, str(exc))


@pytest.mark.parametrize("bad", [25, -5])
def test_lost_mode_turns_a_bad_tag_into_a_lost_interval_and_reads_on(tmp_path, bad):
    path = tmp_path / "run.dump"
    _append(path, [0, 10, 20])
    src = FollowSource(path, poll_interval=POLL, on_bad_record="lost")
    _later((0.05, lambda: _append(path, [60, 70, bad])), (0.05, lambda: _append(path, [80, 90])))
    batches, exc = _quiet(_drain, src, _n_tags(7))
    assert exc is None and _tags(batches) == [0, 10, 20, 60, 70, 80, 90]
    lost = concat(b.chunks["alice"] for b in batches).lost
    assert lost[["time", "kind"]].tolist() == [(70, OVERFLOW_BEGIN), (80, OVERFLOW_END)]
    assert src.stats()["bad_records"] == 1


def test_a_tag_an_hour_ahead_is_a_bad_record_with_max_jump(tmp_path):
    path = tmp_path / "run.dump"
    _append(path, [0, 10])
    _later((0.05, lambda: _append(path, [20, HOUR_PS, 30])))
    batches, exc = _drain(FollowSource(path, poll_interval=POLL, max_jump_ps=10**12))
    assert _tags(batches) == [0, 10, 20] and isinstance(exc, DataValidationError)
    assert exc.index == 3 and "jumps forward" in str(exc) and "max_jump_ps 1000000000000" in str(exc)

    lost_path = tmp_path / "lost.dump"
    _append(lost_path, [0, 10])
    src = FollowSource(lost_path, poll_interval=POLL, max_jump_ps=10**12, on_bad_record="lost")
    _later((0.05, lambda: _append(lost_path, [20, HOUR_PS, 30])))
    batches, exc = _quiet(_drain, src, _n_tags(4))
    assert exc is None and _tags(batches) == [0, 10, 20, 30] and src.stats()["bad_records"] == 1


def test_without_max_jump_the_tag_after_a_far_jump_goes_backwards(tmp_path):
    path = tmp_path / "run.dump"
    _append(path, [0, 10, HOUR_PS, 30])
    batches, exc = _drain(FollowSource(path, poll_interval=POLL))
    assert _tags(batches) == [0, 10, HOUR_PS] and exc.index == 3


def test_an_unknown_record_type_is_a_format_error(tmp_path):
    path = tmp_path / "run.dump"
    _append(path, [0, 10, 20], types=[0, 0, 9])
    batches, exc = _drain(FollowSource(path, poll_interval=POLL))
    assert _tags(batches) == [0, 10] and isinstance(exc, FormatError) and "type code 9 in record 2" in str(exc)


# ------------------------------------------------------------------------------------- the followed file changes
def test_truncation_is_reported_with_both_sizes(tmp_path):
    path = tmp_path / "run.dump"
    _append(path, [0, 10, 20, 30, 40])
    _later((0.05, lambda: os.truncate(path, 32)))
    batches, exc = _drain(FollowSource(path, poll_interval=POLL))
    assert _tags(batches) == [0, 10, 20, 30, 40]
    assert isinstance(exc, DataValidationError) and "truncated from 80 to 32 bytes while being followed" in str(exc)


def test_truncate_and_rewrite_between_two_polls_is_noticed(tmp_path):
    path = tmp_path / "run.dump"
    _append(path, [0, 10, 20])
    it = iter(FollowSource(path, poll_interval=POLL))
    assert len(next(it).chunks["alice"]) == 3
    path.write_bytes(_rec([100, 200, 300, 400, 500]))     # a new stream, longer than what was read
    with pytest.raises(DataValidationError, match="rewritten while being followed: the record at byte 32 changed"):
        next(it)


def test_replacement_is_reported(tmp_path):
    path = tmp_path / "run.dump"
    _append(path, [0, 10, 20])

    def replace():
        (tmp_path / "new.dump").write_bytes(_rec([0, 10, 20, 30, 40, 50]))
        os.replace(tmp_path / "new.dump", path)

    _later((0.05, replace))
    batches, exc = _drain(FollowSource(path, poll_interval=POLL))
    assert _tags(batches) == [0, 10, 20]
    assert isinstance(exc, DataValidationError) and "replaced (inode changed" in str(exc) and str(path) in str(exc)


def test_a_removed_file_is_reported(tmp_path):
    path = tmp_path / "run.dump"
    _append(path, [0, 10])
    _later((0.05, lambda: os.remove(path)))
    _, exc = _drain(FollowSource(path, poll_interval=POLL))
    assert isinstance(exc, DataValidationError) and "removed or renamed" in str(exc)


# ------------------------------------------------------------------------------------------------------- rotation
def test_rotation_follows_the_numbered_files_in_order(tmp_path):
    base, one, two = tmp_path / "run.dump", tmp_path / "run.1.dump", tmp_path / "run.2.dump"
    _append(base, [0, 10])

    def finish_base_and_start_one():    # the last records of a file land just before the next file appears
        _append(base, [20, 30])
        _append(one, [40])

    src = FollowSource(base, poll_interval=POLL)
    _later((0.05, finish_base_and_start_one), (0.05, lambda: _append(one, [50, 60])),
           (0.05, lambda: _append(two, [70])), (0.05, lambda: _append(two, [80, 90])))
    batches, exc = _drain(src, _n_tags(10))
    assert exc is None and _tags(batches) == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]
    stats = src.stats()
    assert stats["file"] == "run.2.dump" and stats["files_done"] == 2 and stats["bytes_read"] == 10 * 16


def test_rotation_carries_the_order_check_across_files(tmp_path):
    base, one = tmp_path / "run.dump", tmp_path / "run.1.dump"
    _append(base, [0, 10, 20])
    _later((0.05, lambda: _append(one, [15, 30])))
    batches, exc = _drain(FollowSource(base, poll_interval=POLL))
    assert _tags(batches) == [0, 10, 20]
    assert isinstance(exc, DataValidationError) and exc.index == 0 and str(one) in str(exc)


def test_a_partial_record_left_when_the_next_file_begins(tmp_path):
    base, one = tmp_path / "run.dump", tmp_path / "run.1.dump"
    base.write_bytes(_rec([0, 10]) + b"\0" * 7)
    one.write_bytes(_rec([20, 30]))
    batches, exc = _drain(FollowSource(base, poll_interval=POLL))
    assert _tags(batches) == [0, 10] and isinstance(exc, FormatError)
    assert "partial final record (7 of 16 bytes)" in str(exc) and "run.1.dump" in str(exc)

    src = FollowSource(base, poll_interval=POLL, on_bad_record="lost")
    batches, exc = _quiet(_drain, src, _n_tags(4))
    assert exc is None and _tags(batches) == [0, 10, 20, 30]
    lost = concat(b.chunks["alice"] for b in batches).lost
    assert lost[["time", "kind"]].tolist() == [(10, OVERFLOW_BEGIN), (20, OVERFLOW_END)]


def test_rotation_from_a_numbered_file_and_by_an_explicit_pattern(tmp_path):
    _append(tmp_path / "run.3.dump", [0, 10])
    _append(tmp_path / "run.4.dump", [20])
    batches, _ = _drain(FollowSource(tmp_path / "run.3.dump", poll_interval=POLL), _n_tags(3))
    assert _tags(batches) == [0, 10, 20]

    _append(tmp_path / "day_00.dump", [0])
    _append(tmp_path / "day_01.dump", [5])
    _append(tmp_path / "day_02.dump", [9])
    src = follow_source(tmp_path / "day_{n:02d}.dump", poll_interval=POLL)
    batches, _ = _drain(src, _n_tags(3))
    assert _tags(batches) == [0, 5, 9] and src.stats()["file"] == "day_02.dump"
    with pytest.raises(FormatError, match="bad file pattern"):
        FollowSource(tmp_path / "day_{n}_{m}.dump")


def test_no_rotation_when_switched_off(tmp_path):
    _append(tmp_path / "run.dump", [0, 10])
    _append(tmp_path / "run.1.dump", [20])
    batches, _ = _drain(FollowSource(tmp_path / "run.dump", poll_interval=POLL, rotate=False), timeout=0.2)
    assert _tags(batches) == [0, 10]


# ------------------------------------------------------------------------------------------- pauses and the end
def test_a_pause_gives_heartbeats_and_idle_time_but_no_end(tmp_path):
    path = tmp_path / "run.dump"
    _append(path, [0, 10, 20])
    src = FollowSource(path, poll_interval=POLL)
    assert src.idle_timeout is None
    _later((0.4, lambda: _append(path, [30, 40])))
    idle, heartbeats = [], 0
    batches = []
    for b in src:
        batches.append(b)
        idle.append(src.stats()["idle_s"])
        heartbeats += b.n_tags == 0 and b.n_lost_events == 0
        if _n_tags(5)(batches) or len(batches) > 2000:
            break
    assert _tags(batches) == [0, 10, 20, 30, 40]
    assert heartbeats >= 10 and max(idle) >= 0.3 and src.stats()["idle_s"] < 0.2
    assert src.end_reason is None and src.stats()["ended"] == "stopped"


def test_an_idle_timeout_ends_the_source_and_says_why(tmp_path):
    path = tmp_path / "run.dump"
    _append(path, [0, 10])
    src = FollowSource(path, poll_interval=POLL, idle_timeout=0.2)
    t0 = time.monotonic()
    batches = list(src)
    assert 0.2 <= time.monotonic() - t0 < 1.5
    assert _tags(batches) == [0, 10]
    assert src.end_reason == "idle timeout: no new data for 0.2 s" and src.stats()["ended"] == src.end_reason


def test_stop_ends_the_source_with_no_reason(tmp_path):
    path = tmp_path / "run.dump"
    _append(path, [0])
    src = FollowSource(path, poll_interval=POLL)
    _later((0.1, src.stop))
    batches = list(src)
    assert _tags(batches) == [0] and src.end_reason is None and src.stats()["ended"] == "stopped"


def test_heartbeats_while_waiting_for_the_file(tmp_path):
    path = tmp_path / "late.dump"
    _later((0.1, lambda: _append(path, [0, 10])))
    batches, exc = _drain(FollowSource(path, poll_interval=POLL, wait_for_file=2.0), _n_tags(2))
    assert exc is None and _tags(batches) == [0, 10]
    assert sum(b.n_tags == 0 for b in batches) >= 3


def test_an_error_is_recorded_as_the_end(tmp_path):
    path = tmp_path / "run.dump"
    _append(path, [10, 0])
    src = FollowSource(path, poll_interval=POLL)
    _, exc = _drain(src)
    assert exc is not None and src.stats()["ended"].startswith("error: ") and src.end_reason is None


# ----------------------------------------------------------------------------------------------------- HDF5 (SWMR)
def _h5_writer(path):
    import h5py

    from timetag.chunk import LOST_DTYPE

    f = h5py.File(path, "w", libver="latest")
    g = f.create_group("photon_data")
    ts = g.create_dataset("timestamps", shape=(0,), maxshape=(None,), dtype="<i8", chunks=(64,))
    det = g.create_dataset("detectors", shape=(0,), maxshape=(None,), dtype="<i4", chunks=(64,))
    g.create_dataset("lost", shape=(0,), maxshape=(None,), dtype=LOST_DTYPE, chunks=(16,))
    f.swmr_mode = True

    def append(times):
        n0 = ts.shape[0]
        for ds, values in ((ts, times), (det, np.ones(len(times)))):
            ds.resize((n0 + len(times),))
            ds[n0:] = values
            ds.flush()

    def shrink(n):
        for ds in (ts, det):
            ds.resize((n,))
            ds.flush()

    return f, append, shrink


def test_h5_follow_applies_the_order_checks(tmp_path):
    path = tmp_path / "run.h5"
    f, append, _ = _h5_writer(path)
    try:
        append([0, 10, 20])
        src = follow_source(path, poll_interval=POLL)
        assert isinstance(src, FollowH5Source)
        _later((0.05, lambda: append([30, 5, 40])))
        batches, exc = _drain(src)
        assert _tags(batches) == [0, 10, 20, 30]
        assert isinstance(exc, DataValidationError) and exc.index == 4 and "5 ps after 30 ps" in str(exc)

        src = FollowH5Source(path, poll_interval=POLL, on_bad_record="lost", max_jump_ps=10**12)
        _later((0.05, lambda: append([HOUR_PS, 50])))
        batches, exc = _quiet(_drain, src, _n_tags(6))
        assert exc is None and _tags(batches) == [0, 10, 20, 30, 40, 50]
        assert src.stats()["bad_records"] == 2
    finally:
        f.close()


def test_h5_follow_reports_truncation(tmp_path):
    path = tmp_path / "run.h5"
    f, append, shrink = _h5_writer(path)
    try:
        append([0, 10, 20, 30])
        _later((0.05, lambda: shrink(2)))
        batches, exc = _drain(FollowH5Source(path, poll_interval=POLL))
        assert _tags(batches) == [0, 10, 20, 30]
        assert isinstance(exc, DataValidationError) and "truncated from 4 to 2 rows" in str(exc)
    finally:
        f.close()


# ---------------------------------------------------------------------------------------------------- the factory
def test_build_source_waits_by_default_and_passes_the_bad_record_options(tmp_path):
    from live_cases import toy_setup
    from timetag.live.factory import build_source

    setup = toy_setup()
    spec = "follow:" + str(tmp_path / "x.dump")
    src, _ = build_source(spec, setup, lab="alice")
    assert src.idle_timeout is None
    src, _ = build_source(spec, setup, lab="alice", idle_timeout=0, on_bad_record="lost", max_jump_ps=10**12)
    assert src.idle_timeout is None and src.on_bad_record == "lost" and src.max_jump_ps == 10**12
    src, _ = build_source(spec, setup, lab="alice", idle_timeout=3)
    assert src.idle_timeout == 3.0
    with pytest.raises(SetupError, match=r"\[on_bad_record\]"):
        build_source(spec, setup, lab="alice", on_bad_record="ignore")
    with pytest.raises(SetupError, match=r"\[max_jump_ps\]"):
        FollowSource(tmp_path / "x.dump", max_jump_ps=0)


def test_follow_and_the_file_reader_agree_on_a_clean_stream(tmp_path):
    from live_cases import make_stream

    from timetag.formats import read_all
    from timetag.formats.dump import encode_chunk

    whole = make_stream(12, seed=3)
    raw = encode_chunk(whole).tobytes()
    path = tmp_path / "run.dump"
    path.write_bytes(raw[:16 * 40 + 5])
    _later((0.05, lambda: open(path, "ab").write(raw[16 * 40 + 5:])))
    batches, exc = _drain(FollowSource(path, poll_interval=POLL), _n_tags(len(whole)))
    got = concat(b.chunks["alice"] for b in batches)
    ref = read_all(path)
    assert exc is None and np.array_equal(got.time, ref.time) and np.array_equal(got.lost, ref.lost)
    assert isinstance(got, TagChunk)
