"""Fault injection on the rounds outputs of `timetag process` and `timetag live`.

SIGKILL at random moments, a full disk (a real tmpfs where the machine allows, an injected ENOSPC otherwise), two
writers on one output, a reader holding the output, a failing rerun over a good output, the output named as the
input.  Each time: what was on disk before is intact, what was saved is a prefix of the full run, and the file is
readable or recoverable with `timetag recover`.
"""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from timetag.custody import Completion
from timetag.errors import FormatError, IncompleteError, RunStopped
from timetag.records import FLAG_TRUNCATED
from timetag.roundsfile import read_rounds

CHUNK = "5000"  # many chunks, so that a kill lands between flushes as well as inside one


def _cli(*args, env=None):
    return [sys.executable, "-m", "timetag", *map(str, args)]


def _run(*args, env=None, timeout=120):
    return subprocess.run(_cli(*args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A simulated run of both labs (3000 rounds) and the rounds `process` makes of Alice's file."""
    d = tmp_path_factory.mktemp("custody")
    r = _run("simulate", "--preset", "lmu2022", "--rounds", 3000, "--seed", 3, "--speedup", 20000, "--out",
             d / "run", "-q")
    assert r.returncode == 0, r.stderr
    ref = d / "ref.h5"
    r = _run("process", d / "run" / "alice.dump", "--setup", d / "run" / "setup.toml", "--lab", "alice", "--out",
             ref, "-q", "--chunk-size", CHUNK)
    assert r.returncode == 0, r.stderr
    return {"dir": d, "dump": d / "run" / "alice.dump", "setup": d / "run" / "setup.toml",
            "ref": read_rounds(ref)}


def _process_args(run, out, *extra):
    return ["process", run["dump"], "--setup", run["setup"], "--lab", "alice", "--out", out, "-q",
            "--chunk-size", CHUNK, *extra]


def _assert_prefix(rounds: np.ndarray, ref: np.ndarray):
    assert len(rounds) <= len(ref)
    assert np.array_equal(rounds, ref[: len(rounds)])


def _check_after_kill(out: Path, before_sha: str, ref: np.ndarray) -> str:
    """What a kill may leave: the old output intact or the new one complete; a partial file that is recoverable
    (a prefix of the full run) or says cleanly that nothing can be recovered.  Returns what happened."""
    partial = out.with_name(out.name + ".partial")
    if sha256(out) != before_sha:  # the kill came after the rename: the new output is whole
        data = read_rounds(out)
        assert np.array_equal(data.rounds, ref)
        assert not partial.exists()
        return "replaced"
    if not partial.exists():
        return "before-open"
    rec = out.with_name("recovered.h5")
    r = _run("recover", partial, "--out", rec)
    if r.returncode != 0:
        assert r.returncode == 2 and "nothing to recover" in r.stderr and "Traceback" not in r.stderr, r.stderr
        partial.unlink()
        return "unrecoverable-start"
    assert not partial.exists()
    data = read_rounds(rec, accept_incomplete=True)
    assert data.completion is Completion.RECOVERED
    _assert_prefix(data.rounds, ref)
    with h5py.File(rec, "r") as f:  # plain h5py, no SWMR flags
        assert f["rounds"].shape[0] == len(data.rounds)
    rec.unlink()
    return f"recovered {len(data.rounds)}"


def _wait_for(path: Path, proc, timeout=60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def test_sigkill_during_process_never_harms_the_old_output(run, tmp_path):
    out = tmp_path / "a.h5"
    shutil.copy(run["dir"] / "ref.h5", out)  # a good earlier output, replaced with --force
    partial = out.with_name("a.h5.partial")
    t0 = time.monotonic()
    assert _run(*_process_args(run, tmp_path / "timed.h5", "--chunk-size", "1000")).returncode == 0
    whole = time.monotonic() - t0
    rng = random.Random(7)
    outcomes = []
    for i in range(24):
        before = sha256(out)
        proc = subprocess.Popen(_cli(*_process_args(run, out, "--force", "--chunk-size", "1000")),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if i % 4 == 0:  # anywhere, start-up included
            time.sleep(rng.uniform(0.0, whole))
        elif _wait_for(partial, proc):  # while the rounds are being written
            time.sleep(rng.uniform(0.0, 0.5 * whole))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        outcomes.append(_check_after_kill(out, before, run["ref"].rounds))
    assert sum(o.startswith("recovered") for o in outcomes) >= 5, outcomes  # kills landed mid-run
    r = _run(*_process_args(run, out, "--force"))  # the lock died with its holders
    assert r.returncode == 0, r.stderr
    assert np.array_equal(read_rounds(out).rounds, run["ref"].rounds)


def test_sigkill_during_live_leaves_a_recoverable_prefix(run, tmp_path):
    rng = random.Random(11)
    outcomes = []
    for i in range(20):
        out = tmp_path / f"live{i}"
        proc = subprocess.Popen(_cli("live", "--source", f"replay:{run['dump']}", "--setup", run["setup"], "--lab",
                                     "alice", "--out", out, "--speed", "30", "--no-view", "--flush-interval", "0.1"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if i % 4 == 0:  # anywhere, start-up included (how long start-up takes depends on the machine's load)
            time.sleep(rng.uniform(0.0, 3.0))
        elif _wait_for(out / "alice_rounds.h5.partial", proc):  # while the rounds are being written
            time.sleep(rng.uniform(0.0, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        target = out / "alice_rounds.h5"
        if target.exists():
            outcomes.append("finished")
            continue
        partial = out / "alice_rounds.h5.partial"
        if not partial.exists():
            outcomes.append("before-open")
            continue
        # a restart on the same --out is refused, naming the way out
        r = _run("live", "--source", f"replay:{run['dump']}", "--setup", run["setup"], "--lab", "alice", "--out",
                 out, "--speed", "max", "--no-view")
        assert r.returncode == 2 and "timetag recover" in r.stderr and "Traceback" not in r.stderr, r.stderr
        r = _run("recover", partial)
        if r.returncode != 0:
            assert "nothing to recover" in r.stderr and "Traceback" not in r.stderr, r.stderr
            outcomes.append("unrecoverable-start")
            continue
        data = read_rounds(target, accept_incomplete=True)
        _assert_prefix(data.rounds, run["ref"].rounds)
        with pytest.raises(IncompleteError, match="recovered"):
            read_rounds(target)
        outcomes.append(f"recovered {len(data.rounds)}")
    assert sum(o.startswith("recovered") and o != "recovered 0" for o in outcomes) >= 5, outcomes


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    if not _tmpfs(mnt, "2500k"):
        pytest.skip("cannot mount a tmpfs here (not root?): the injected ENOSPC test covers the logic")
    yield mnt
    subprocess.run(["umount", str(mnt)], capture_output=True)


@pytest.mark.parametrize("mode", ["process", "live"])
def test_disk_full_ends_in_one_line_with_only_written_rows(run, small_disk, mode):
    env = {"TIMETAG_DISK_RESERVE": str(2_000_000)}  # leaves ~500 kB for a 730 kB rounds file
    if mode == "process":
        out = small_disk / "a.h5"
        r = _run(*_process_args(run, out), env=env)
    else:
        out = small_disk / "live" / "alice_rounds.h5"
        r = _run("live", "--source", f"replay:{run['dump']}", "--setup", run["setup"], "--lab", "alice", "--out",
                 small_disk / "live", "--speed", "max", "--no-view", env=env)
    assert r.returncode == 1, r.stderr
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "No space left on device" in err[0], r.stderr
    data = read_rounds(out, accept_incomplete=True)
    assert data.completion is Completion.FAILED and "No space left" in data.completion_reason
    assert (data.rounds["index"] >= 0).all()  # no unwritten (fill-value) rows
    _assert_prefix(data.rounds, run["ref"].rounds)
    assert not list(small_disk.rglob(".*.reserve"))


def test_injected_enospc_keeps_the_rows_written_before_it(run, tmp_path, monkeypatch):
    from timetag import roundsfile
    from timetag.process import process_files

    real = roundsfile.RoundsWriter._append
    calls = {"n": 0}

    def failing_append(self, name, ds, arr):
        calls["n"] += 1
        if calls["n"] == 7:
            raise RuntimeError("Can't write data (file write failed: errno = 28, error message = 'No space left on "
                               "device')")
        return real(self, name, ds, arr)

    monkeypatch.setattr(roundsfile.RoundsWriter, "_append", failing_append)
    out = tmp_path / "a.h5"
    with pytest.raises(RunStopped, match="No space left on device") as info:
        process_files([run["dump"]], run["setup"], "alice", out, chunk_size=int(CHUNK), progress=False,
                      checksum=False)
    assert info.value.exit_code == 1 and info.value.kept == out
    data = read_rounds(out, accept_incomplete=True)
    assert data.completion is Completion.FAILED and 0 < len(data.rounds) < len(run["ref"].rounds)
    _assert_prefix(data.rounds, run["ref"].rounds)
    assert not (tmp_path / ".a.h5.reserve").exists() and not (tmp_path / "a.h5.partial").exists()


def _readable(partial: Path) -> bool:
    """The writer has made the partial file and opened it to readers (SWMR)."""
    try:
        read_rounds(partial, accept_incomplete=True)
        return True
    except FormatError:
        return False


def test_second_writer_is_refused_naming_the_first(run, tmp_path):
    out = tmp_path / "a.h5"
    first = subprocess.Popen(_cli(*_process_args(run, out, "--chunk-size", "500")), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _readable(out.with_name("a.h5.partial")) and time.monotonic() < deadline:
            time.sleep(0.01)
        first.send_signal(signal.SIGSTOP)  # the first writer holds its lock, paused, however fast it would finish
        try:
            second = _run(*_process_args(run, out, "--force"))
            reader = read_rounds(out.with_name("a.h5.partial"), accept_incomplete=True)  # a reader never hangs
            assert reader.completion is Completion.RUNNING
        finally:
            first.send_signal(signal.SIGCONT)
    finally:
        _, err = first.communicate(timeout=120)
    assert second.returncode == 2, second.stderr
    assert "another writer is writing it" in second.stderr and f"pid {first.pid}" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.returncode == 0, err
    assert np.array_equal(read_rounds(out).rounds, run["ref"].rounds)


def test_a_reader_holding_the_output_keeps_the_old_file(run, tmp_path):
    out = tmp_path / "a.h5"
    r = _run(*_process_args(run, out, "--chunk-size", "1000000"))
    assert r.returncode == 0
    old = read_rounds(out)
    with h5py.File(out, "r") as held:
        r = _run(*_process_args(run, out, "--force"))
        assert r.returncode == 0, r.stderr
        assert held["rounds"].shape[0] == len(old.rounds)  # the reader's file is the old one, whole
    assert np.array_equal(read_rounds(out).rounds, run["ref"].rounds)


def test_failing_rerun_leaves_the_good_output_identical(run, tmp_path):
    out = tmp_path / "a.h5"
    shutil.copy(run["dir"] / "ref.h5", out)
    before = sha256(out)
    bad = tmp_path / "bad.dump"
    raw = bytearray(run["dump"].read_bytes())
    k = len(raw) // 16 // 2
    raw[16 * k + 8: 16 * k + 16] = (-5).to_bytes(8, "little", signed=True)  # a negative time mid-file
    bad.write_bytes(bytes(raw))
    for args in (["--force"], [], ["--force", "--setup", tmp_path / "missing.toml"]):
        r = _run("process", bad, "--setup", run["setup"], "--lab", "alice", "--out", out, "-q", *args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert sha256(out) == before
    # the failed run's rounds are kept beside it, marked failed, never over the good file
    kept = read_rounds(out.with_name("a.h5.partial"), accept_incomplete=True)
    assert kept.completion is Completion.FAILED and "record" in kept.completion_reason
    _assert_prefix(kept.rounds[(kept.rounds["flags"] & FLAG_TRUNCATED) == 0], run["ref"].rounds)


def test_bad_record_mid_file_keeps_the_rounds_before_it(run, tmp_path):
    bad = tmp_path / "bad.dump"
    raw = bytearray(run["dump"].read_bytes())
    k = len(raw) // 16 // 2
    raw[16 * k + 8: 16 * k + 16] = (-5).to_bytes(8, "little", signed=True)
    bad.write_bytes(bytes(raw))
    out = tmp_path / "a.h5"
    r = _run("process", bad, "--setup", run["setup"], "--lab", "alice", "--out", out, "-q")
    assert r.returncode == 2, r.stderr
    assert f"record {k}" in r.stderr and "kept" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(IncompleteError, match="failed"):
        read_rounds(out)
    data = read_rounds(out, accept_incomplete=True)
    assert len(data.rounds) > 0.4 * len(run["ref"].rounds)  # not only the chunks before the bad one's chunk
    complete = data.rounds[(data.rounds["flags"] & FLAG_TRUNCATED) == 0]  # the rounds cut by the stop are flagged
    _assert_prefix(complete, run["ref"].rounds)
    r = _run("estimate", out, run["dir"] / "ref.h5")
    assert r.returncode == 2 and "incomplete" in r.stderr and "--accept-incomplete" in r.stderr


def test_output_equal_to_input_is_always_refused(run, tmp_path):
    link = tmp_path / "link.dump"
    link.symlink_to(run["dump"])
    before = sha256(run["dump"])
    for out in (run["dump"], link):
        r = _run(*_process_args(run, out, "--force"))
        assert r.returncode == 2 and "is an input file" in r.stderr, r.stderr
    assert sha256(run["dump"]) == before


def test_existing_output_refused_without_force(run, tmp_path):
    out = tmp_path / "a.h5"
    out.write_bytes(b"precious")
    r = _run(*_process_args(run, out))
    assert r.returncode == 2 and "exists; pass --force" in r.stderr
    assert out.read_bytes() == b"precious"


def test_ctrl_c_during_process_keeps_rounds_and_exits_130(run, tmp_path):
    out = tmp_path / "a.h5"
    proc = subprocess.Popen(_cli(*_process_args(run, out, "--chunk-size", "100")), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not out.with_name("a.h5.partial").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before the interrupt")
    assert proc.returncode == 130, err
    assert "interrupted" in err and "kept" in err and "Traceback" not in err
    data = read_rounds(out, accept_incomplete=True)
    assert data.completion is Completion.INTERRUPTED
    _assert_prefix(data.rounds, run["ref"].rounds)


def test_stale_partial_is_refused_then_recovered(run, tmp_path):
    out = tmp_path / "a.h5"
    partial = out.with_name("a.h5.partial")
    partial.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(40))  # what a kill in the first milliseconds leaves
    r = _run(*_process_args(run, out))
    assert r.returncode == 2 and "did not finish" in r.stderr and "timetag recover" in r.stderr
    r = _run("recover", partial)
    assert r.returncode == 2 and "nothing to recover" in r.stderr and "Traceback" not in r.stderr
    r = _run(*_process_args(run, out, "--force"))
    assert r.returncode == 0 and not partial.exists()


def test_sigterm_during_process_keeps_rounds_and_exits_143(run, tmp_path):
    out = tmp_path / "a.h5"
    proc = subprocess.Popen(_cli(*_process_args(run, out, "--chunk-size", "100")), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for(out.with_name("a.h5.partial"), proc)
    time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal")
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "kept" in err and "Traceback" not in err
    data = read_rounds(out, accept_incomplete=True)
    assert data.completion is Completion.INTERRUPTED and "SIGTERM" in data.completion_reason
    _assert_prefix(data.rounds, run["ref"].rounds)
    assert not out.with_name("a.h5.partial").exists()
