"""Raw tags kept by live mode (timetag.live.rawtags): the saved stream re-derives the run's rounds byte for byte,
rotates into numbered files read as one stream, survives SIGKILL as a readable prefix, and keeps to custody."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from live_cases import ToyPipeline, make_stream, toy_setup
from timetag.chunk import MISSED, OVERFLOW_BEGIN, OVERFLOW_END, concat, split
from timetag.cli import main
from timetag.errors import OutputError, RunStopped, TimetagError
from timetag.formats import iter_stream, open_tags
from timetag.formats.dump import write_dump
from timetag.live import rawtags
from timetag.live.rawtags import RawTagSink
from timetag.live.runner import LiveRunner
from timetag.live.simdevice import SimDevice
from timetag.live.sources import Batch, ChunkSource, Source, empty_chunk
from timetag.process import process_files
from timetag.records import FLAG_LOST_DATA
from timetag.roundsfile import read_rounds

SIM = ["--speedup", "1000", "--seed", "3"]


def _cli(argv, capsys):
    with pytest.raises(SystemExit) as ei:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return ei.value.code or 0, out.out, out.err


def _datasets(path) -> dict[str, bytes]:
    with h5py.File(path, "r") as f:
        return {name: f[name][()].tobytes() for name in ("rounds", "heralds")}


def _provenance(path) -> dict:
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["provenance"])


def _tree(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _lossy_stream(n_rounds=120, seed=21):
    """A toy stream with an overflow interval and a missed-events report."""
    whole = make_stream(n_rounds, seed=seed, lost=[(1_000_000_000, OVERFLOW_BEGIN), (1_300_000_000, OVERFLOW_END),
                                                   (3_000_000_000, MISSED)])
    whole.lost["count"][2] = 17
    return whole


def test_sim_run_keeps_raw_tags_that_process_to_identical_rounds(tmp_path, capsys):
    out = tmp_path / "live"
    code, stdout, err = _cli(["live", "--source", "sim", "--out", out, "--duration", "1.5", "--speed", "20",
                              "--no-view", *SIM], capsys)
    assert code == 0, err
    for lab in ("alice", "bob"):
        raw = out / "raw" / f"{lab}.dump"
        assert raw.is_file() and not list(out.rglob("*.partial"))
        assert f"{lab}: raw tags -> {raw}" in stdout
        assert _provenance(out / f"{lab}_rounds.h5")["raw_tags"] == [f"raw/{lab}.dump"]
        code, _, err = _cli(["process", raw, "--setup", out / "setup.toml", "--lab", lab, "--out",
                             tmp_path / f"{lab}_offline.h5", "--quiet"], capsys)
        assert code == 0, err
        live, offline = _datasets(out / f"{lab}_rounds.h5"), _datasets(tmp_path / f"{lab}_offline.h5")
        assert live == offline, lab
    assert read_rounds(out / "alice_rounds.h5").rounds.size > 50


def test_rotated_files_process_as_one_stream_to_the_same_rounds(tmp_path):
    dev = SimDevice(speed=None, seed=3, sim_params={"speedup": 1000}, duration_device_s=12)
    setup = dev.matching_setup()
    res = LiveRunner(dev, setup, tmp_path / "live", labs=("alice",), raw_rotate_bytes=200_000).run()
    files = res.raw_files["alice"]
    assert len(files) >= 4
    assert [p.name for p in files] == ["alice.dump"] + [f"alice.{i}.dump" for i in range(1, len(files))]
    assert all(p.stat().st_size >= 200_000 for p in files[:-1]) and not list(tmp_path.rglob("*.partial"))
    assert _provenance(res.paths["alice"])["raw_tags"] == [f"raw/{p.name}" for p in files]
    process_files(files, setup, "alice", tmp_path / "offline.h5", progress=False, checksum=False)
    assert _datasets(res.paths["alice"]) == _datasets(tmp_path / "offline.h5")
    # the follow: source's numbering: `follow:raw/alice.dump` goes on into alice.1.dump, ...
    from timetag.live.replay import _FileSequence

    seq = _FileSequence(files[0], rotate=True)
    for p in files[1:]:
        assert seq.next == p
        seq.advance()


@pytest.mark.parametrize("fmt", ["dump", "h5"])
def test_lost_data_events_are_kept_and_give_the_same_flags(tmp_path, fmt):
    setup = toy_setup()
    whole = _lossy_stream()
    src = ChunkSource(split(whole, range(97, len(whole), 97)), lab="alice")
    res = LiveRunner(src, setup, tmp_path / "live", raw_format=fmt, raw_rotate_bytes=4096).run()
    files = res.raw_files["alice"]
    assert len(files) > 2 and all(p.suffix == f".{fmt}" for p in files)
    back = concat(iter_stream(files))
    assert np.array_equal(back.time, whole.time) and np.array_equal(back.channel, whole.channel)
    assert np.array_equal(back.lost, whole.lost)  # overflow interval and the missed-events count
    process_files(files, setup, "alice", tmp_path / "offline.h5", progress=False, checksum=False)
    assert _datasets(res.paths["alice"]) == _datasets(tmp_path / "offline.h5")
    assert (read_rounds(res.paths["alice"]).rounds["flags"] & FLAG_LOST_DATA).any()


def _reference_alice(n_tags: int):
    """The first tags of the simulated device's Alice stream (what `--source sim --seed 3` produces)."""
    chunks, n = [], 0
    for batch in SimDevice(speed=None, seed=3, sim_params={"speedup": 1000}):
        chunks.append(batch.chunks["alice"])
        n += len(chunks[-1])
        if n >= n_tags:
            return concat(chunks)


def test_sigkill_leaves_a_partial_dump_holding_a_prefix_of_the_stream(tmp_path):
    out = tmp_path / "live"
    proc = subprocess.Popen([sys.executable, "-m", "timetag", "live", "--source", "sim", "--lab", "alice", "--out",
                             str(out), "--speed", "5", "--json-lines", "--flush-interval", "0.1",
                             "--status-interval", "0.1", *SIM], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    processed = 0
    try:
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            obj = json.loads(line)
            if obj["kind"] == "status":
                processed = obj["labs"]["alice"]["tags"]
            if processed > 20_000 or time.monotonic() > deadline:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL and processed > 20_000
    partial = out / "raw" / "alice.dump.partial"
    assert partial.is_file() and not (out / "raw" / "alice.dump").exists()
    partial.rename(out / "raw" / "alice.dump")  # what the docs say to do with it
    got = concat(open_tags(out / "raw" / "alice.dump"))
    assert len(got) >= processed  # every tag processed before the last status (and so before the kill)
    ref = _reference_alice(len(got))
    assert np.array_equal(got.time, ref.time[: len(got)]) and np.array_equal(got.channel, ref.channel[: len(got)])
    # a new run on that --out is refused (the rounds partial of the killed run, and its raw tags)
    r = subprocess.run([sys.executable, "-m", "timetag", "live", "--source", "sim", "--lab", "alice", "--out",
                        str(out), "--setup", str(out / "setup.toml"), "--duration", "1", "--no-view"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_no_raw_writes_none_and_says_so(tmp_path, capsys):
    out = tmp_path / "live"
    code, stdout, err = _cli(["live", "--source", "sim", "--out", out, "--duration", "0.6", "--speed", "20",
                              "--no-view", "--no-raw", *SIM], capsys)
    assert code == 0, err
    assert not (out / "raw").exists()
    assert "raw tags not kept: --no-raw: the rounds cannot be re-derived" in stdout
    assert _provenance(out / "alice_rounds.h5")["raw_tags"] == []
    code, stdout, _ = _cli(["live", "--help"], capsys)
    text = " ".join(stdout.replace("│", " ").split())  # the help's table wraps lines
    assert "--no-raw" in text and "cannot be re-derived" in text


def test_replay_keeps_no_raw_tags_unless_asked(tmp_path, capsys):
    setup = toy_setup()
    setup.save(tmp_path / "setup.toml")
    whole = _lossy_stream(60)
    write_dump(tmp_path / "alice.dump", whole)
    base = ["live", "--setup", tmp_path / "setup.toml", "--lab", "alice", "--speed", "max", "--no-view",
            "--source", f"replay:{tmp_path / 'alice.dump'}"]
    code, stdout, err = _cli([*base, "--out", tmp_path / "a"], capsys)
    assert code == 0, err
    assert not (tmp_path / "a" / "raw").exists() and "the replayed file is the raw record" in stdout
    code, stdout, err = _cli([*base, "--out", tmp_path / "b", "--raw"], capsys)
    assert code == 0, err
    # the same stream in the same format: the kept copy is the input, byte for byte
    assert (tmp_path / "b" / "raw" / "alice.dump").read_bytes() == (tmp_path / "alice.dump").read_bytes()


def test_second_run_on_the_same_out_is_refused_and_touches_nothing(tmp_path, capsys):
    setup = toy_setup()
    setup.save(tmp_path / "setup.toml")
    write_dump(tmp_path / "alice.dump", _lossy_stream(60))
    run = ["live", "--setup", tmp_path / "setup.toml", "--lab", "alice", "--speed", "max", "--no-view", "--raw",
           "--source", f"replay:{tmp_path / 'alice.dump'}", "--out", tmp_path / "live"]
    code, _, err = _cli(run, capsys)
    assert code == 0, err
    before = _tree(tmp_path / "live")
    code, _, err = _cli(run, capsys)
    assert code == 2 and "alice_rounds.h5: exists" in err
    # the raw tags alone are enough to refuse
    (tmp_path / "live" / "alice_rounds.h5").rename(tmp_path / "kept.h5")
    del before["alice_rounds.h5"]
    code, _, err = _cli(run, capsys)
    assert code == 2 and "raw/alice.dump: exists" in err and "never replaces raw tag files" in err, err
    assert len(err.strip().splitlines()) == 1
    assert _tree(tmp_path / "live") == before  # nothing written, no lock or partial file left
    # and so is the partial raw file of a killed run
    (tmp_path / "live" / "raw" / "alice.dump").rename(tmp_path / "live" / "raw" / "alice.dump.partial")
    code, _, err = _cli(run, capsys)
    assert code == 2 and "alice.dump.partial: exists" in err, err


def test_a_refused_lab_leaves_no_file_of_the_other(tmp_path):
    setup = toy_setup()
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "bob.3.dump").write_bytes(b"x" * 16)
    src = ChunkSource([], lab=("alice", "bob"))
    with pytest.raises(OutputError, match="bob.3.dump: exists"):
        LiveRunner(src, setup, tmp_path, pipeline_factory=ToyPipeline).run()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["bob.3.dump", "raw"]
    # refused only while opening (a killed run's partial rounds file of bob): alice's opened files go again
    (tmp_path / "raw" / "bob.3.dump").unlink()
    (tmp_path / "bob_rounds.h5.partial").write_bytes(b"old")
    with pytest.raises(OutputError, match="bob_rounds.h5.partial: left by an earlier run"):
        LiveRunner(ChunkSource([], lab=("alice", "bob")), setup, tmp_path, pipeline_factory=ToyPipeline).run()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["bob_rounds.h5.partial", "raw"]


def test_interrupted_run_renames_its_raw_tags_and_they_give_its_rounds(tmp_path):
    setup = toy_setup()
    whole = _lossy_stream(100)
    pieces = list(split(whole, range(53, len(whole), 53)))

    def chunks():
        for i, piece in enumerate(pieces):
            if i == len(pieces) // 2:
                raise KeyboardInterrupt
            yield piece

    res = LiveRunner(ChunkSource(chunks(), lab="alice"), setup, tmp_path / "live", flush_interval=10.0).run()
    assert res.interrupted and res.raw_files["alice"] == [tmp_path / "live" / "raw" / "alice.dump"]
    assert not list(tmp_path.rglob("*.partial"))
    got = concat(open_tags(res.raw_files["alice"][0]))
    assert np.array_equal(got.time, concat(pieces[: len(pieces) // 2]).time)
    process_files(res.raw_files["alice"], setup, "alice", tmp_path / "offline.h5", progress=False, checksum=False)
    assert _datasets(res.paths["alice"]) == _datasets(tmp_path / "offline.h5")


def test_full_disk_while_writing_raw_tags_keeps_the_rounds_and_whole_records(tmp_path, monkeypatch):
    """ENOSPC in the middle of a chunk's records: the file is cut back to whole chunks, the run fails in one
    line with exit code 1, and the rounds kept are those the kept raw tags give."""
    budget = {"left": 10_000}
    real_open = open

    class SmallDisk:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            room = budget["left"]
            if room <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            n = self.fh.write(memoryview(data).cast("B")[:room])
            budget["left"] -= n
            return n

        def __getattr__(self, name):
            return getattr(self.fh, name)

    monkeypatch.setattr(rawtags, "open", lambda *a, **k: SmallDisk(real_open(*a, **k)), raising=False)
    setup = toy_setup()
    whole = _lossy_stream(200)
    src = ChunkSource(split(whole, range(101, len(whole), 101)), lab="alice")
    with pytest.raises(RunStopped) as info:
        LiveRunner(src, setup, tmp_path / "live").run()
    msg = str(info.value)
    assert info.value.exit_code == 1 and "\n" not in msg
    assert "raw/alice.dump.partial: No space left on device" in msg and "raw tags of alice in" in msg
    raw = tmp_path / "live" / "raw" / "alice.dump"
    assert raw.is_file() and raw.stat().st_size % 16 == 0 and raw.stat().st_size < 10_000
    kept = read_rounds(tmp_path / "live" / "alice_rounds.h5", accept_incomplete=True)
    assert str(kept.completion) == "failed" and "No space left" in kept.completion_reason
    process_files([raw], setup, "alice", tmp_path / "offline.h5", progress=False, checksum=False)
    assert _datasets(tmp_path / "live" / "alice_rounds.h5") == _datasets(tmp_path / "offline.h5")
    assert 0 < kept.rounds.size < 200


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3000k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root?): the injected ENOSPC test covers the logic")
    yield mnt
    subprocess.run(["umount", str(mnt)], capture_output=True)


def test_real_full_disk_ends_in_one_line_with_rounds_and_raw_tags_kept(small_disk, tmp_path):
    out = small_disk / "live"
    r = subprocess.run([sys.executable, "-m", "timetag", "live", "--source", "sim", "--lab", "alice", "--out",
                        str(out), "--speed", "20", "--duration", "30", "--no-view", *SIM], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, TIMETAG_DISK_RESERVE="1000000"))
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 1 and len(err) == 1 and "No space left on device" in err[0], r.stderr
    assert "raw tags of alice in" in err[0]
    raw = out / "raw" / "alice.dump"
    assert raw.stat().st_size % 16 == 0 and not list(out.rglob("*.partial")) and not list(out.rglob(".*"))
    kept = read_rounds(out / "alice_rounds.h5", accept_incomplete=True)
    assert str(kept.completion) == "failed" and kept.rounds.size > 0
    process_files([raw], out / "setup.toml", "alice", tmp_path / "offline.h5", progress=False, checksum=False)
    assert _datasets(out / "alice_rounds.h5") == _datasets(tmp_path / "offline.h5")


class _SelfRecording(Source):
    """A stand-in for a tagger that records its own raw tags (the Swabian FileWriter hook)."""

    writes_own_raw_tags = True

    def __init__(self, chunks):
        super().__init__()
        self.labs = ("alice",)
        self.speed = None
        self.raw_path = None
        self.raw_max_file_size = None
        self._chunks = chunks

    def _batches(self):
        assert self.raw_path is not None  # set by the runner before the stream starts
        self.raw_path.write_bytes(b"vendor")
        self.raw_path.with_name("alice.1.ttbin").write_bytes(b"vendor")
        for c in self._chunks:
            yield Batch({"alice": c})


def test_a_source_that_records_its_own_raw_tags_gets_the_path(tmp_path):
    whole = make_stream(20, seed=3)
    src = _SelfRecording(split(whole, [50]))
    res = LiveRunner(src, toy_setup(), tmp_path, pipeline_factory=ToyPipeline, raw_rotate_bytes=10**6).run()
    assert src.raw_max_file_size == 10**6
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["alice.1.ttbin", "alice.ttbin"]
    assert res.raw_files["alice"] == [tmp_path / "raw" / "alice.ttbin", tmp_path / "raw" / "alice.1.ttbin"]
    prov = _provenance(res.paths["alice"])
    assert prov["raw_tags"] == ["raw/alice.ttbin", "raw/alice.1.ttbin"] and prov["raw_tags_format"] == "ttbin"
    (tmp_path / "alice_rounds.h5").rename(tmp_path / "moved.h5")
    with pytest.raises(OutputError, match="alice.ttbin: exists"):
        LiveRunner(_SelfRecording([]), toy_setup(), tmp_path, pipeline_factory=ToyPipeline).run()


def test_sink_on_its_own(tmp_path):
    whole = _lossy_stream(30)
    pieces = list(split(whole, range(10, len(whole), 10)))
    sink = RawTagSink(tmp_path, "alice", rotate_bytes=16).open()
    for piece in pieces:
        sink.write(piece)
        sink.write(empty_chunk())  # heartbeats: nothing written, no file started
    files = sink.close()
    assert len(files) == sum(1 for p in pieces if len(p) or p.lost.size)  # one chunk a file at 16 bytes
    assert not list(tmp_path.glob(".*")) and not list(tmp_path.glob("*.partial"))
    back = concat(iter_stream(files))
    assert np.array_equal(back.time, whole.time) and np.array_equal(back.lost, whole.lost)
    empty = RawTagSink(tmp_path / "none", "bob").open()
    assert empty.close() == [] and not (tmp_path / "none").exists()  # no tags: no file, no folder
    with pytest.raises(TimetagError, match="--raw-format"):
        RawTagSink(tmp_path, "alice", format="ptu")


@pytest.mark.parametrize("opts,msg", [(["--raw-rotate-mb", "0"], "--raw-rotate-mb must be a positive"),
                                      (["--raw-rotate-mb", "nan"], "--raw-rotate-mb must be a positive"),
                                      (["--raw-format", "ptu"], "--raw-format must be 'dump' or 'h5'")])
def test_bad_raw_options_are_one_line_errors_leaving_nothing(tmp_path, capsys, opts, msg):
    code, _, err = _cli(["live", "--source", "sim", "--out", tmp_path / "live", "--duration", "1", "--no-view",
                         *opts], capsys)
    assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "live").exists()
