"""`timetag live` end to end: replay equals offline processing; SIGKILL mid-run leaves every flushed round."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from live_cases import make_stream, toy_setup
from timetag.chunk import OVERFLOW_BEGIN, OVERFLOW_END
from timetag.formats.dump import DumpReader, write_dump
from timetag.records import FLAG_LOST_DATA
from timetag.custody import Completion
from timetag.roundsfile import read_rounds

engine = pytest.importorskip("timetag.engine")


def offline_rounds(path, setup, lab, tmp_path):
    """The rounds `timetag process` makes of the file (process_files when available, else the engine's run)."""
    try:
        from timetag.process import process_files
    except ImportError:
        pipe = engine.LabPipeline(setup.lab(lab))
        return pipe.run(DumpReader(path, chunk_size=1000))[0]
    out = tmp_path / "offline"
    out.mkdir(exist_ok=True)
    res = process_files([path], setup, lab, out / f"{lab}_rounds.h5", progress=False, checksum=False)
    produced = getattr(res, "path", None) or getattr(res, "out", None) or out / f"{lab}_rounds.h5"
    return read_rounds(produced).rounds


@pytest.fixture
def recorded(tmp_path):
    setup = toy_setup()
    setup_path = tmp_path / "setup.toml"
    setup.save(setup_path)
    whole = make_stream(400, seed=12, lost=[(3_000_000_000, OVERFLOW_BEGIN), (3_200_000_000, OVERFLOW_END)])
    write_dump(tmp_path / "alice.dump", whole)
    return setup, setup_path, tmp_path / "alice.dump"


def _cli(*args):
    return [sys.executable, "-m", "timetag", "live", *map(str, args)]


def test_cli_replay_gives_the_offline_rounds(recorded, tmp_path):
    setup, setup_path, dump = recorded
    r = subprocess.run(_cli("--source", f"replay:{dump}", "--setup", setup_path, "--lab", "alice",
                            "--out", tmp_path / "live", "--speed", "max", "--json-lines"),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert lines[-1]["kind"] == "summary" and lines[-1]["rounds"]["alice"] == 400
    live = read_rounds(tmp_path / "live" / "alice_rounds.h5")
    ref = offline_rounds(dump, setup, "alice", tmp_path)
    assert np.array_equal(live.rounds, ref)
    assert (live.rounds["flags"] & FLAG_LOST_DATA).any()
    assert live.provenance.get("mode") == "live" and live.setup_hash == setup.hash


def test_sigkill_mid_run_leaves_every_flushed_round(recorded, tmp_path):
    setup, setup_path, dump = recorded
    # 400 rounds over 20 ms of device time, replayed at x0.002: about 10 s of wall time.
    proc = subprocess.Popen(_cli("--source", f"replay:{dump}", "--setup", setup_path, "--lab", "alice",
                                 "--out", tmp_path / "live", "--speed", "0.002", "--json-lines",
                                 "--flush-interval", "0.1", "--status-interval", "0.1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    flushed = 0
    try:
        deadline = time.monotonic() + 90
        for line in proc.stdout:
            obj = json.loads(line)
            if obj["kind"] == "status":
                flushed = obj["rounds_on_disk"]["alice"]
            if flushed >= 60 or time.monotonic() > deadline:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert 60 <= flushed < 400, "the run must be killed mid-way for this test to mean anything"
    partial = tmp_path / "live" / "alice_rounds.h5.partial"
    assert not (tmp_path / "live" / "alice_rounds.h5").exists()
    r = subprocess.run([sys.executable, "-m", "timetag", "recover", str(partial)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert not partial.exists()
    data = read_rounds(tmp_path / "live" / "alice_rounds.h5", accept_incomplete=True)
    assert data.completion is Completion.RECOVERED
    ref = offline_rounds(dump, setup, "alice", tmp_path)
    assert len(data.rounds) >= flushed
    assert np.array_equal(data.rounds, ref[: len(data.rounds)])


def test_cli_user_mistakes_are_one_line_errors(recorded, tmp_path):
    _, setup_path, dump = recorded
    r = subprocess.run(_cli("--source", "tape:x", "--setup", setup_path, "--lab", "alice", "--out", tmp_path / "o"),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "unknown --source 'tape:x'" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("lab", ["alice", "bob"])
def test_replay_of_simulated_files_equals_process_files(tmp_path, lab):
    simulator = pytest.importorskip("timetag.simulator")
    from timetag.live.replay import ReplaySource
    from timetag.live.runner import LiveRunner
    from timetag.process import process_files
    from timetag.setupfile import load_setup

    params = simulator.load_preset("lmu2022").with_overrides(speedup=1000)
    simulator.simulate(params, 150, 5, tmp_path / "sim")
    setup = load_setup(tmp_path / "sim" / "setup.toml")
    path = tmp_path / "sim" / f"{lab}.dump"
    process_files([path], setup, lab, tmp_path / "off.h5", progress=False, checksum=False)
    ref = read_rounds(tmp_path / "off.h5")
    res = LiveRunner(ReplaySource(path, lab=lab, speed=None, chunk_size=5000), setup, tmp_path / "live",
                     labs=(lab,)).run()
    live = read_rounds(res.paths[lab])
    assert len(ref.rounds) >= 150
    assert np.array_equal(live.rounds, ref.rounds)
    assert np.array_equal(live.heralds, ref.heralds)
    for name, hist in ref.histograms.items():
        assert np.array_equal(live.histograms[name], hist), name


def test_ctrl_c_stops_cleanly_with_summary(recorded, tmp_path):
    setup, setup_path, dump = recorded
    proc = subprocess.Popen(_cli("--source", f"replay:{dump}", "--setup", setup_path, "--lab", "alice",
                                 "--out", tmp_path / "live", "--speed", "0.002", "--json-lines",
                                 "--status-interval", "0.1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if json.loads(line)["kind"] == "status" and json.loads(line)["rounds_on_disk"]["alice"] > 20:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["kind"] == "summary" and summary["interrupted"] is True
    assert summary["completion"] == "interrupted"
    assert "interrupted" in err and "Traceback" not in err
    data = read_rounds(tmp_path / "live" / "alice_rounds.h5", accept_incomplete=True)
    assert data.completion is Completion.INTERRUPTED and "Ctrl-C" in data.completion_reason
    assert data.summary["live"]["interrupted"] is True  # closed properly: the summary was written
    assert len(data.rounds) == summary["rounds"]["alice"] < 400
    ref = offline_rounds(dump, setup, "alice", tmp_path)
    # all but the last round (cut by the stop: its windows may be truncated) agree with offline processing
    assert np.array_equal(data.rounds[:-1], ref[: len(data.rounds) - 1])
