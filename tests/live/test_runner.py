"""The live loop: replay equivalence, flush cadence (SWMR readers see flushed rounds), clean stop, estimates."""
from __future__ import annotations

import numpy as np
import pytest

from live_cases import ToyPipeline, make_stream, run_toy, toy_setup
from timetag.chunk import OVERFLOW_BEGIN, OVERFLOW_END, split
from timetag.formats.dump import write_dump
from timetag.live.replay import ReplaySource
from timetag.estimators.running import running_estimate
from timetag.live.runner import LiveRunner
from timetag.live.sources import ChunkSource
from timetag.records import FLAG_LOST_DATA
from timetag.errors import IncompleteError
from timetag.roundsfile import read_rounds


def test_replayed_file_gives_the_rounds_of_whole_stream_processing(tmp_path):
    setup = toy_setup()
    whole = make_stream(60, seed=4, lost=[(300_000_000, OVERFLOW_BEGIN), (420_000_000, OVERFLOW_END)])
    write_dump(tmp_path / "a.dump", whole)
    ref = run_toy([whole], setup.lab("alice"))
    src = ReplaySource(tmp_path / "a.dump", lab="alice", speed=None, chunk_size=37)
    res = LiveRunner(src, setup, tmp_path / "out", pipeline_factory=ToyPipeline, flush_interval=1e-9,
                     status_interval=1e-9).run()
    got = read_rounds(res.paths["alice"])
    assert np.array_equal(got.rounds, ref)
    assert (got.rounds["flags"] & FLAG_LOST_DATA).any()
    assert got.summary["live"]["interrupted"] is False
    assert got.summary["rounds"] == len(ref)  # the pipeline's own summary is stored too
    assert res.flushes > 10


def test_reader_sees_every_flushed_round_while_the_run_goes_on(tmp_path):
    setup = toy_setup()
    whole = make_stream(40, seed=2)
    ref = run_toy([whole], setup.lab("alice"))
    seen = []

    def peek(status):
        # Another process's view of the file mid-run: at least every round reported flushed, all correct.
        data = read_rounds(tmp_path / "out" / "alice_rounds.h5.partial", accept_incomplete=True)
        n_flushed = status["rounds_on_disk"]["alice"]
        assert len(data.rounds) >= n_flushed
        assert np.array_equal(data.rounds, ref[: len(data.rounds)])
        seen.append(n_flushed)

    src = ChunkSource(split(whole, range(50, len(whole), 50)), lab="alice")
    LiveRunner(src, setup, tmp_path / "out", pipeline_factory=ToyPipeline, flush_interval=1e-9,
               status_interval=1e-9, on_status=peek).run()
    assert seen[-1] == len(ref)
    assert len(set(seen)) > 3  # the file grew during the run, not only at the end


def test_keyboard_interrupt_finishes_files_cleanly(tmp_path):
    setup = toy_setup()
    whole = make_stream(30, seed=5)
    pieces = list(split(whole, range(40, len(whole), 40)))

    def chunks():
        for i, p in enumerate(pieces):
            if i == len(pieces) // 2:
                raise KeyboardInterrupt
            yield p

    res = LiveRunner(ChunkSource(chunks(), lab="alice"), setup, tmp_path, pipeline_factory=ToyPipeline,
                     flush_interval=10.0).run()
    assert res.interrupted
    with pytest.raises(IncompleteError, match="interrupted"):
        read_rounds(res.paths["alice"])
    data = read_rounds(res.paths["alice"], accept_incomplete=True)
    ref = run_toy(pieces[: len(pieces) // 2], setup.lab("alice"))  # what the data up to the interrupt give
    assert np.array_equal(data.rounds, ref)
    assert data.summary["live"]["interrupted"] is True
    assert "interrupted" in res.summary_lines()[0]


def test_stop_request_ends_the_run(tmp_path):
    setup = toy_setup()
    whole = make_stream(30, seed=6)
    holder = {}

    def stop_after_first(status):
        holder["runner"].stop()

    runner = LiveRunner(ChunkSource(split(whole, range(20, len(whole), 20)), lab="alice"), setup, tmp_path,
                        pipeline_factory=ToyPipeline, status_interval=1e-9, on_status=stop_after_first)
    holder["runner"] = runner
    res = runner.run()
    assert res.interrupted
    assert res.tags < len(whole)


def test_two_labs_status_has_running_estimate(tmp_path):
    setup = toy_setup()
    a, b = make_stream(50, seed=7, lab="alice"), make_stream(50, seed=8, lab="bob")
    statuses = []
    src = ChunkSource([{"alice": x, "bob": y} for x, y in zip(split(a, range(60, len(a), 60)),
                                                                   split(b, range(60, len(b), 60)))],
                      lab=("alice", "bob"))
    res = LiveRunner(src, setup, tmp_path, pipeline_factory=ToyPipeline, status_interval=1e-9,
                     on_status=statuses.append).run()
    assert res.rounds == {"alice": 50, "bob": 50}
    est = res.final_status["estimate"]
    ra, rb = read_rounds(res.paths["alice"]).rounds, read_rounds(res.paths["bob"]).rounds
    usable = (ra["flags"] == 0) & (rb["flags"] == 0)
    assert est["pairs"] == int(usable.sum())


def test_running_estimate_waits_for_both_labs():
    from timetag.live.runner import _cat

    assert running_estimate(_cat([]), _cat([]))["pairs"] == 0


def test_status_counts_channels_and_lost_data(tmp_path):
    setup = toy_setup()
    whole = make_stream(20, seed=9, lost=[(100_000_000, OVERFLOW_BEGIN), (200_000_000, OVERFLOW_END)])
    res = LiveRunner(ChunkSource([whole], lab="alice"), setup, tmp_path, pipeline_factory=ToyPipeline).run()
    snap = res.final_status["labs"]["alice"]
    for ch in (2, 3, 6):
        assert snap["channel_totals"][str(ch)] == int(np.count_nonzero(whole.channel == ch))
    assert snap["lost"]["overflow_intervals"] == 1
    assert snap["rounds"] == 20
    assert any("lost data" in a for a in res.final_status["alarms"])
    # watched channels that never fired are reported (setting channel 10 may be silent; 4-input Alice)
    assert set(snap["watched_channels"]) == {str(c) for c in setup.lab("alice").channels}


def test_unknown_lab_is_a_setup_error(tmp_path):
    from timetag.errors import SetupError

    with pytest.raises(SetupError, match="no lab 'carol'"):
        LiveRunner(ChunkSource([], lab="carol"), toy_setup(), tmp_path, pipeline_factory=ToyPipeline)
