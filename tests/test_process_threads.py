"""`process --threads N`: quiet-gap partitions on threads write the rounds file the one-thread run writes.

Simulated lmu2022 runs, processed with ``threads=1`` (the reference) and with threads over several chunk sizes
and partition counts; then the same with lost data across cuts, bad records near cuts ('lost' mode), a bad record
in the second partition ('fail' mode), an OS error and Ctrl-C in the middle.
"""
from __future__ import annotations

import hashlib
import json
import threading
import warnings

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from typer.testing import CliRunner

from timetag import interrupts
from timetag.cli import app
from timetag.custody import Completion
from timetag.errors import RunStopped, SetupError
from timetag.formats import read_all, write_tags
from timetag.formats.dump import RECORD_DTYPE, DumpReader, TYPE_OVERFLOW_BEGIN, TYPE_OVERFLOW_END
from timetag.process import process_files
from timetag.roundsfile import read_rounds
from timetag.setupfile import load_setup
from timetag.stream import parallel
from timetag.stream.parallel import plan_cuts

from reference_checksum import block_checksum

sim = pytest.importorskip("timetag.simulator")

# what may differ between a one-thread and a threaded run of the same input: timing, and the output's own name
TIMING_KEYS = {"elapsed_s", "tags_per_s", "out"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("threads")
    res = sim.simulate(sim.load_preset("lmu2022").with_overrides(speedup=2000), 300, 3, d / "sim")
    return {"dir": d, "alice": res.alice, "bob": res.bob, "setup": res.setup,
            "lab": load_setup(res.setup).lab("alice")}


def _process(run, name, path=None, lab="alice", **kw):
    out = run["dir"] / f"{name}.h5"
    kw.setdefault("progress", False)
    summary = process_files([path or run[lab]], run["setup"], lab, out, force=True, **kw)
    return summary, out


def _assert_same(a, b, summaries=None):
    """Rounds, heralds, histograms and summary of two rounds files are equal, timing aside."""
    ra, rb = read_rounds(a, accept_incomplete=True), read_rounds(b, accept_incomplete=True)
    assert ra.rounds.dtype == rb.rounds.dtype and ra.rounds.tobytes() == rb.rounds.tobytes()
    assert ra.heralds.tobytes() == rb.heralds.tobytes()
    assert sorted(ra.histograms) == sorted(rb.histograms)
    for k in ra.histograms:
        np.testing.assert_array_equal(ra.histograms[k], rb.histograms[k], err_msg=k)
    sa = {k: v for k, v in ra.summary.items() if k not in TIMING_KEYS}
    sb = {k: v for k, v in rb.summary.items() if k not in TIMING_KEYS}
    assert sa == sb and list(ra.summary) == list(rb.summary)
    if summaries is not None:
        ja, jb = (json.loads(json.dumps({k: v for k, v in s.to_json().items() if k not in TIMING_KEYS}))
                  for s in summaries)
        assert ja == jb
    return ra, rb


@pytest.mark.parametrize("lab, chunk, parts, threads", [("alice", 7_000, 3, 2), ("alice", 50_000, 9, 2),
                                                        ("alice", 1_000_000, 30, 3), ("bob", 20_000, 7, 2)])
def test_threads_write_what_one_thread_writes(run, lab, chunk, parts, threads):
    one = _process(run, f"one_{lab}", lab=lab, chunk_size=chunk)
    many = _process(run, f"many_{lab}", lab=lab, chunk_size=chunk, threads=threads, partitions=parts)
    ra, _ = _assert_same(one[1], many[1], (one[0], many[0]))
    assert len(ra.rounds) == 300
    with h5py.File(many[1]) as f:
        prov = json.loads(f.attrs["provenance"])
    assert prov["threads"]["threads"] == threads and prov["threads"]["partitions"] > 1
    # the checksum of the input, hashed in order while the workers run, is the one-thread run's
    assert prov["inputs"][0]["checksum"] == read_rounds(one[1]).provenance["inputs"][0]["checksum"]


def test_the_workers_hash_their_own_partitions(run, checksum_rereads):
    # the default block checksum: each worker hashes the blocks it maps; only the block around each cut is read again
    _, out = _process(run, "hashed", chunk_size=20_000, threads=2, partitions=6)
    prov = read_rounds(out).provenance
    assert prov["inputs"][0]["checksum"] == block_checksum(run["alice"].read_bytes())
    sizes = [r.nbytes for r in checksum_rereads]
    assert 1 <= len(sizes) <= prov["threads"]["partitions"] - 1 and set(sizes) == {1 << 20}
    # a whole-file checksum asked for by name is read once more, in order
    _, out = _process(run, "hashed_sha", chunk_size=20_000, threads=2, partitions=6, checksum="sha256")
    assert read_rounds(out).provenance["inputs"][0]["checksum"] == \
        "sha256:" + hashlib.sha256(run["alice"].read_bytes()).hexdigest()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk=st.integers(500, 200_000), parts=st.integers(2, 40), threads=st.integers(2, 4))
def test_any_chunk_size_and_partition_count_gives_the_same_file(run, chunk, parts, threads):
    ref = run["dir"] / "ref_any.h5"
    if not ref.exists():
        _process(run, "ref_any")
    _, out = _process(run, "any", chunk_size=chunk, threads=threads, partitions=parts)
    _assert_same(ref, out)


def _records(run):
    return np.fromfile(run["alice"], RECORD_DTYPE)


def _cut_positions(run, n):
    parts = plan_cuts([run["alice"]], run["lab"], n)
    return [p.segments[0].start for p in parts[1:]]


def _write(run, name, rec):
    path = run["dir"] / f"{name}.dump"
    rec.tofile(path)
    return path


def _insert(rec, pos, new):
    return np.concatenate([rec[:pos], new, rec[pos:]])


def _mark(kind, time):
    r = np.zeros(1, RECORD_DTYPE)
    r["type"], r["time"] = kind, time
    return r


def test_lost_data_across_and_near_cuts(run):
    """An overflow open across a cut with no overflow record near it (the cut is unsafe: its partitions are
    joined), and overflow and missed-event records just before and after other cuts."""
    rec = _records(run)
    cuts = _cut_positions(run, 4)     # far apart: the planner looks ~16 k records around a cut for overflows
    a, b = cuts[0], cuts[2]
    # inserted from the back so that earlier positions stay valid
    rec = _insert(rec, b + 1, _mark(4, rec["time"][b]))                        # missed events just after a cut
    rec = _insert(rec, b, _mark(TYPE_OVERFLOW_END, rec["time"][b - 1]))       # an overflow closing at a cut
    rec = _insert(rec, b - 3, _mark(TYPE_OVERFLOW_BEGIN, rec["time"][b - 4]))
    far = min(30_000, (cuts[1] - a) // 2, a // 2)
    assert far > 20_000
    rec = _insert(rec, a + far, _mark(TYPE_OVERFLOW_END, rec["time"][a + far - 1]))
    rec = _insert(rec, a - far, _mark(TYPE_OVERFLOW_BEGIN, rec["time"][a - far - 1]))
    path = _write(run, "lost_near_cuts", rec)
    one = _process(run, "lost1", path, chunk_size=9_000)
    many = _process(run, "lost2", path, chunk_size=9_000, threads=2, partitions=4)
    ra, rb = _assert_same(one[1], many[1], (one[0], many[0]))
    assert ra.summary["lost"]["overflow_begin"] == 2 and ra.summary["flags"]["lost_data"] > 0
    assert rb.provenance["threads"]["joined"] >= 1     # the cut inside the long overflow


def _corrupt_near_cuts(run):
    rec = _records(run)
    cuts = _cut_positions(run, 8)
    rec["type"][cuts[1]] = 9                       # the first record after a cut: its partition starts bad
    rec["reserved"][cuts[3] - 1] = 1              # the last record before a cut
    rec["time"][cuts[5] + 200] = rec["time"][cuts[5] + 100]    # time going backwards inside a partition
    rec["type"][cuts[0] + 5] = 7                   # in the second partition
    return _write(run, "bad_near_cuts", rec), cuts


def test_bad_records_made_lost_data_near_cuts(run):
    path, _ = _corrupt_near_cuts(run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = _process(run, "bad1", path, chunk_size=11_000, on_bad_record="lost")
        many = _process(run, "bad2", path, chunk_size=11_000, on_bad_record="lost", threads=2, partitions=8)
    ra, rb = _assert_same(one[1], many[1], (one[0], many[0]))
    assert rb.provenance["threads"]["joined"] >= 2     # the bad record after one cut, the one before another
    assert ra.summary["bad_records"]["count"] == 4 and len(ra.summary["bad_records"]["examples"]) == 4


@pytest.mark.parametrize("where", ["middle", "first record", "last record"])
def test_a_bad_record_in_the_second_partition_keeps_what_one_thread_keeps(run, where):
    rec = _records(run)
    cuts = _cut_positions(run, 6)
    at = {"middle": cuts[0] + (cuts[1] - cuts[0]) // 2, "first record": cuts[0], "last record": cuts[1] - 1}[where]
    rec["type"][at] = 9
    path = _write(run, "bad_second", rec)
    stops = []
    for name, kw in (("fail1", {}), ("fail2", {"threads": 2, "partitions": 6})):
        with pytest.raises(RunStopped) as info:
            _process(run, name, path, chunk_size=13_000, **kw)
        stops.append(info.value)
    assert [s.exit_code for s in stops] == [2, 2]
    assert str(stops[0]).replace("fail1.h5", "fail2.h5") == str(stops[1])
    assert [s.rounds for s in stops][0] == stops[1].rounds > 0
    ra, rb = _assert_same(run["dir"] / "fail1.h5", run["dir"] / "fail2.h5")
    assert ra.completion is rb.completion is Completion.FAILED
    assert ra.completion_reason == rb.completion_reason and "record" in ra.completion_reason


def test_an_os_error_in_a_worker_keeps_the_rounds_before_it(run, monkeypatch):
    cuts = _cut_positions(run, 6)
    reference = read_rounds(_process(run, "os_ref")[1]).rounds
    real = DumpReader.iter_chunks

    def failing(self, start=0, stop=None):
        if start == cuts[2] and stop - start > 100:     # its own records, not the lookahead of the one before
            raise OSError(5, "Input/output error")
        yield from real(self, start, stop)

    monkeypatch.setattr(DumpReader, "iter_chunks", failing)
    with pytest.raises(RunStopped) as info:
        _process(run, "os_err", threads=2, partitions=6)
    assert info.value.exit_code == 1 and "Input/output error" in str(info.value)
    kept = read_rounds(run["dir"] / "os_err.h5", accept_incomplete=True)
    assert kept.completion is Completion.FAILED
    before = plan_cuts([run["alice"]], run["lab"], 6)[3].own_start_ps   # the partition that starts at cuts[2]
    assert len(kept.rounds) == int(np.sum(reference["trigger_time"] < before)) > 0
    assert kept.rounds.tobytes() == reference[:len(kept.rounds)].tobytes()
    assert not [t for t in threading.enumerate() if t.name.startswith("timetag-partitions")]


def test_ctrl_c_keeps_a_prefix_and_stops_every_worker(run):
    reference = read_rounds(_process(run, "int_ref")[1]).rounds
    seen = []

    def progress(done, total, rounds):
        seen.append(done)
        if rounds > 40:
            interrupts.on_sigint(None, None)        # what Ctrl-C does: remember it, raise KeyboardInterrupt here

    previous = interrupts.install()
    try:
        with pytest.raises(RunStopped) as info:
            _process(run, "interrupted", chunk_size=3_000, threads=2, partitions=12, progress=progress)
    finally:
        interrupts.restore(previous)
    assert info.value.exit_code == 130 and "interrupted" in str(info.value)
    kept = read_rounds(run["dir"] / "interrupted.h5", accept_incomplete=True)
    assert kept.completion is Completion.INTERRUPTED
    assert 40 < len(kept.rounds) < len(reference)
    assert kept.rounds.tobytes() == reference[:len(kept.rounds)].tobytes()
    assert seen == sorted(seen) and seen[-1] <= len(_records(run))
    assert not [t for t in threading.enumerate() if t.name.startswith("timetag-partitions")]


def test_progress_sums_the_records_of_every_thread(run):
    calls = []
    summary, _ = _process(run, "progress", chunk_size=5_000, threads=2, partitions=10,
                          progress=lambda *a: calls.append(a))
    records = len(_records(run))
    assert calls and all(total == records for _, total, _ in calls)
    assert calls[-1][0] == records and calls[-1][2] == summary["rounds"]
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


def test_inputs_that_cannot_be_cut_run_on_one_thread_and_say_so(run):
    ptu = run["dir"] / "alice.ptu"
    if not ptu.exists():
        write_tags(ptu, read_all(run["alice"]))
    with pytest.warns(Warning, match="only dump files can be cut"):
        s, out = _process(run, "ptu2", ptu, threads=2)
    one = _process(run, "ptu1", ptu)
    _assert_same(one[1], out)
    assert "threads" not in read_rounds(out).provenance


def test_auto_uses_a_thread_per_core_for_large_dump_inputs_from_three_cores(run, monkeypatch):
    assert parallel.auto_threads([run["alice"]]) == 1                     # small
    monkeypatch.setattr(parallel, "AUTO_MIN_BYTES", 0)
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda _pid: {0, 1})
    assert parallel.auto_threads([run["alice"]]) == 1                     # one thread already uses ~1.5 cores
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda _pid: {0, 1, 2})
    assert parallel.auto_threads([run["alice"]]) == 3
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda _pid: set(range(8)))
    assert parallel.auto_threads([run["alice"]]) == parallel.AUTO_MAX_THREADS
    assert parallel.auto_threads([run["alice"]], format="ptu") == 1


def test_cli_threads_option(run):
    outs = []
    for n in ("1", "2"):
        out = run["dir"] / f"cli{n}.h5"
        r = CliRunner().invoke(app, ["process", str(run["alice"]), "--setup", str(run["setup"]), "--lab", "alice",
                                     "--out", str(out), "-q", "--force", "--threads", n])
        assert r.exit_code == 0, r.output
        outs.append(out)
    _assert_same(*outs)
    r = CliRunner().invoke(app, ["process", str(run["alice"]), "--setup", str(run["setup"]), "--lab", "alice",
                                 "--out", str(run["dir"] / "cli0.h5"), "-q", "--threads", "0"])
    assert isinstance(r.exception, SetupError) and "threads" in str(r.exception)


def test_a_run_of_several_files_cut_across_them(run):
    rec = _records(run)
    paths = []
    for i, piece in enumerate(np.array_split(rec, 3)):
        paths.append(run["dir"] / f"series.{i}.dump" if i else run["dir"] / "series.dump")
        piece.tofile(paths[-1])
    outs = []
    for name, kw in (("files1", {}), ("files2", {"threads": 2, "partitions": 7})):
        out = run["dir"] / f"{name}.h5"
        process_files(paths, run["setup"], "alice", out, force=True, progress=False, chunk_size=17_000, **kw)
        outs.append(out)
    _assert_same(*outs)
    prov = read_rounds(outs[1]).provenance
    assert prov["threads"]["partitions"] >= 5
    assert [e["checksum"] for e in prov["inputs"]] == [e["checksum"] for e in read_rounds(outs[0]).provenance["inputs"]]


def test_a_jump_limit_shorter_than_the_quiet_gaps(run):
    """With --max-jump-ps below the gap at a cut, the tag after the cut is a bad record of the one-thread run: the
    fresh reader of the next partition would accept it, so the cut is refused and the partitions joined."""
    gaps = np.diff(_records(run)["time"])
    jump = int(np.quantile(gaps, 0.9999))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = _process(run, "jump1", chunk_size=20_000, on_bad_record="lost", max_jump_ps=jump)
        many = _process(run, "jump2", chunk_size=20_000, on_bad_record="lost", max_jump_ps=jump, threads=2,
                        partitions=6)
    ra, rb = _assert_same(one[1], many[1], (one[0], many[0]))
    assert ra.summary["bad_records"]["count"] > 0 and rb.provenance["threads"]["joined"] >= 1
