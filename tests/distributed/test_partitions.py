"""Partitioned processing on a real local Dask cluster (2 worker processes) equals the single-process run.

The data are hand-made dump files of Alice's lab with heralds close together (so some requested cuts land
inside read-out windows and must move), lost data, missing readies and duplicate settings.  The pipeline
is the engine when it is importable, and always the plain-Python reference of tests/reference_engine.py
wrapped as a pipeline (buffers the stream, computes at flush) — so the partition/merge machinery is
checked against an implementation that cannot share its bugs.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

import reference_engine  # noqa: E402
from reference_checksum import block_checksum  # noqa: E402

from timetag.chunk import MISSED, OVERFLOW_BEGIN, OVERFLOW_END, LOST_DTYPE, TagChunk, concat  # noqa: E402
from timetag.formats.dump import DumpReader, RECORD_DTYPE, write_dump  # noqa: E402
from timetag.records import FLAG_NAMES, empty_heralds, empty_rounds  # noqa: E402
from timetag.roundsfile import read_rounds  # noqa: E402
from timetag.setupfile import setup_from_dict  # noqa: E402
from timetag.distributed.partition import Partition, Segment, join_partitions, plan_partitions, safe_gap_ps  # noqa: E402
from timetag.distributed.run import PartitionError, parse_dask_spec, process_files_dask  # noqa: E402

distributed = pytest.importorskip("distributed")

# Workers cannot import modules from tests/: ship these by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
cloudpickle.register_pickle_by_value(reference_engine)

SETUP = {
    "meta": {"name": "distributed test", "schema": 1},
    "labs": {"alice": {
        "role": "alice", "sync_channel": 1, "ready_channel": 6, "setting_channels": [7, 8, 9, 10],
        "fluorescence_channels": [2, 3, 4, 5], "delays_ps": {"1": 0, "2": 1000, "3": -500, "4": 0, "5": 0, "6": 0, "7": 0, "8": 0, "9": 0, "10": 0},
        "bsm": [{"channel": 2, "arm": "a", "pol": "H"}, {"channel": 3, "arm": "a", "pol": "V"},
                {"channel": 4, "arm": "b", "pol": "H"}, {"channel": 5, "arm": "b", "pol": "V"}],
        "herald": {"sync_reference": "previous", "window_start_ps": 30000, "window_stop_ps": 110000,
                   "coincidence_ps": 100000, "patterns": ["psi+"]},
        "round": {"trigger": "both", "ready_delay_ps": 1000000, "ready_tolerance_ps": 50000,
                  "setting_window_ps": [0, 2000000], "fluorescence_window_ps": [5000000, 25000000],
                  "threshold": 4},
    }},
}


class RefPipeline:
    """The reference engine as a pipeline: buffers chunks, computes everything at flush."""

    def __init__(self, lab):
        self.lab = lab
        self.chunks = []
        self.summary = {}
        self.histograms = {}

    def process(self, chunk):
        self.chunks.append(chunk)
        return empty_rounds(), empty_heralds()

    def flush(self):
        whole = concat(self.chunks)
        rounds, heralds, extras = reference_engine.reference_process(whole, self.lab)
        flags = {name: int(np.count_nonzero(rounds["flags"] & bit)) for bit, name in FLAG_NAMES.items()}
        self.summary = {
            "tags": len(whole), "lost_events": int(whole.lost.size), "rounds": int(rounds.size),
            "heralds": int(heralds.size), "clicks_accepted": extras["clicks_accepted"],
            "singles": {str(c): n for c, n in sorted(extras["singles"].items())}, "flags": flags,
            "first_time_ps": int(whole.time[0]) if len(whole) else None,
            "last_time_ps": int(whole.time[-1]) if len(whole) else None,
        }
        self.histograms = {"arrival": extras["arrival"]}
        return rounds, heralds


def _engine_factory():
    try:
        from timetag.engine import LabPipeline
    except ImportError:
        return None
    return LabPipeline


FACTORIES = [pytest.param(RefPipeline, id="reference")]
if _engine_factory() is not None:
    FACTORIES.append(pytest.param(None, id="engine"))


def make_alice_stream(n_heralds=120, seed=1) -> TagChunk:
    """Heralded events with exponential spacing (many closer than one read-out), dark counts, lost data."""
    rng = np.random.default_rng(seed)
    t_list, c_list = [], []

    def add(t, c):
        t_list.append(int(t))
        c_list.append(int(c))

    T = 1_000_000
    pairs = [(2, 3), (3, 2), (4, 5), (5, 4)]  # psi+
    for _ in range(n_heralds):
        T += int(rng.exponential(40e6)) + 2_000_000
        add(T, 1)
        u = rng.random()
        c1, c2 = pairs[rng.integers(4)] if u < 0.75 else ((2, 4) if u < 0.9 else (2, 2))
        d1, d2 = 40_000 + int(rng.integers(0, 30_000)), 70_000 + int(rng.integers(0, 30_000))
        add(T + d1 + (1000 if c1 == 2 else -500 if c1 == 3 else 0), c1)
        add(T + d2 + (1000 if c2 == 2 else -500 if c2 == 3 else 0), c2)
        ready = T + d2 + 1_000_000 + int(rng.integers(-20_000, 20_000))
        if rng.random() > 0.05:
            add(ready, 6)
        for _k in range(int(rng.random() > 0.03) + int(rng.random() < 0.03)):
            add(ready + 300_000 + int(rng.integers(0, 100_000)), 7 + int(rng.integers(4)))
        for _k in range(rng.poisson(12 if rng.random() < 0.5 else 1.5)):
            add(ready + int(rng.integers(5_000_000, 25_000_000)), 2 + int(rng.integers(4)))
    end = T + 30_000_000
    for _ in range(int(end / 1e12 * 30_000)):  # dark counts and unheralded attempts, ~30 kHz in all
        t = int(rng.integers(0, end))
        add(t, int(rng.integers(1, 6)))
    order = np.argsort(np.array(t_list), kind="stable")
    time = np.array(t_list, np.int64)[order]
    chan = np.array(c_list, np.int32)[order]
    lost = np.zeros(4, LOST_DTYPE)
    lost["time"] = [end // 5, end // 3, end // 3 + 3_000_000, end // 2]
    lost["kind"] = [MISSED, OVERFLOW_BEGIN, OVERFLOW_END, MISSED]
    lost["count"] = [3, 0, 0, 1]
    return TagChunk(time, chan, lost)


@pytest.fixture(scope="module")
def setup():
    return setup_from_dict(SETUP)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    """The stream as two dump files, split in the middle of a read-out window (an unsafe file boundary)."""
    d = tmp_path_factory.mktemp("dist")
    whole = make_alice_stream()
    i = int(np.flatnonzero(whole.channel == 6)[40]) + 3  # just after a 'ready': inside its windows
    first, second = whole.time[:i], whole.time[i:]
    lost1 = whole.lost[whole.lost["time"] < first[-1]]
    lost2 = whole.lost[whole.lost["time"] >= first[-1]]
    a, b = d / "alice_0.dump", d / "alice_1.dump"
    write_dump(a, TagChunk(first, whole.channel[:i], lost1))
    write_dump(b, TagChunk(second, whole.channel[i:], lost2))
    return [a, b], whole


def single_process(paths, lab, factory, chunk_size=997):
    pipe = (factory or _engine_factory())(lab)
    rounds, heralds = [], []
    for p in paths:
        for chunk in DumpReader(p, chunk_size=chunk_size).iter_chunks():
            r, h = pipe.process(chunk)
            rounds.append(r)
            heralds.append(h)
    r, h = pipe.flush()
    rounds.append(r)
    heralds.append(h)
    return np.concatenate(rounds), np.concatenate(heralds), pipe.summary, pipe.histograms


def window_records(paths):
    """Global record positions of 'ready' tags and fluorescence-window tags: the worst places to cut."""
    recs = np.concatenate([np.fromfile(p, RECORD_DTYPE) for p in paths])
    ready = np.flatnonzero(recs["channel"] == 6)
    return ready, recs


@pytest.mark.parametrize("factory", FACTORIES)
def test_partitioned_equals_single_process(client, setup, run_files, tmp_path, factory, checksum_rereads):
    paths, _whole = run_files
    reread = checksum_rereads    # by the client: the workers send the digests of the blocks they read
    lab = setup.lab("alice")
    r0, h0, s0, hist0 = single_process(paths, lab, factory)
    assert r0.size > 50 and np.count_nonzero(r0["flags"]) > 0  # the data exercise flags

    ready, recs = window_records(paths)
    # cuts requested right after ready tags (inside setting and fluorescence windows) and mid-read-out
    cuts = [int(x) + 2 for x in ready[5::12]]
    out = tmp_path / "alice.h5"
    seen = []
    summary = process_files_dask(paths, setup, "alice", out, dask=client, cuts=cuts, chunk_size=500,
                                 pipeline_factory=factory, progress=lambda done, total: seen.append((done, total)))
    merged = read_rounds(out)
    parts = merged.provenance["distributed"]["partitions"]
    assert len(parts) >= 5, parts
    # the command line's bar: 0 of n, then one step per partition as it ends
    assert seen == [(k, len(parts)) for k in range(len(parts) + 1)]
    # checksums from the workers' block digests, the blocks around the cuts read again: each the file's own
    assert [e["checksum"] for e in merged.provenance["inputs"]] == [block_checksum(Path(p).read_bytes()) for p in paths]
    assert len(reread) <= len(parts) - 1
    np.testing.assert_array_equal(merged.rounds, r0)
    assert np.array_equal(merged.rounds["index"], np.arange(r0.size))
    np.testing.assert_array_equal(merged.heralds, h0)
    assert merged.summary == summary
    # what the process layer adds to the pipeline's summary (the tags per channel: compared in the simulated test)
    volatile = {"elapsed_s", "tags_per_s", "inputs", "out", "channels"}
    assert volatile <= set(summary)
    summary = {k: v for k, v in summary.items() if k not in volatile}
    assert summary == (s0 if factory is RefPipeline else _json_like(s0))
    for k, v in hist0.items():
        np.testing.assert_array_equal(merged.histograms[k], np.asarray(v), err_msg=k)
    assert not (tmp_path / "alice.h5.parts").exists()


def _json_like(obj):
    import json

    from timetag.provenance import jsonable as _jsonable

    return json.loads(json.dumps(_jsonable(obj)))


def test_cuts_move_out_of_windows(setup, run_files):
    paths, whole = run_files
    lab = setup.lab("alice")
    gap = safe_gap_ps(lab)
    ready, recs = window_records(paths)
    cuts = [int(x) + 1 for x in ready[3::10]]
    parts = plan_partitions(paths, lab, cuts=cuts)
    assert len(parts) > 3
    starts = np.concatenate(([0], np.cumsum([p.stat().st_size // 16 for p in paths])))
    for prev, nxt in zip(parts[:-1], parts[1:]):
        first = nxt.segments[0]
        g = int(starts[[str(p) for p in paths].index(first.path)]) + first.start
        assert recs["time"][g] - recs["time"][g - 1] > gap
        assert prev.own_stop_ps == nxt.own_start_ps
        assert recs["time"][g - 1] < nxt.own_start_ps <= recs["time"][g]
        assert nxt.own_start_ps - recs["time"][g - 1] > gap // 2
    # ownership covers the time axis without holes or overlaps
    assert parts[0].own_start_ps is None and parts[-1].own_stop_ps is None


def test_cut_inside_an_overflow_is_refused(tmp_path, setup):
    lab = setup.lab("alice")
    gap = safe_gap_ps(lab)
    t = np.arange(0, 40) * (3 * gap)  # every gap is long enough...
    lost = np.zeros(2, LOST_DTYPE)
    lost["time"] = [t[5] + 1, t[30] + 1]
    lost["kind"] = [OVERFLOW_BEGIN, OVERFLOW_END]
    p = tmp_path / "x.dump"
    write_dump(p, TagChunk(t, np.full(t.size, 2, np.int32), lost))
    parts = plan_partitions([p], lab, cuts=[15])  # ...but 15 lies inside the overflow
    assert len(parts) == 2
    cut = parts[1].segments[0].start
    recs = np.fromfile(p, RECORD_DTYPE)
    begin, end = np.flatnonzero(recs["type"] == 2)[0], np.flatnonzero(recs["type"] == 3)[0]
    assert not (begin < cut <= end)


def test_naive_cuts_would_differ(client, setup, run_files, tmp_path):
    """The identity test can fail: cutting inside windows without moving the cut changes the rounds."""
    paths, _ = run_files
    lab = setup.lab("alice")
    r0, *_ = single_process(paths, lab, RefPipeline)
    ready, _ = window_records(paths)
    out = tmp_path / "naive.h5"
    process_files_dask(paths, setup, "alice", out, dask=client, cuts=[int(x) + 2 for x in ready[5::12]],
                       gap_ps=0, pipeline_factory=RefPipeline)
    r = read_rounds(out).rounds
    assert r.size != r0.size or not np.array_equal(r, r0)


def test_failed_partition_is_named_and_nothing_is_merged(client, setup, run_files, tmp_path):
    paths, _ = run_files
    bad = tmp_path / "bad_1.dump"
    rec = np.fromfile(paths[1], RECORD_DTYPE)
    rec["type"][rec.size // 2] = 9  # not a dump record type
    rec.tofile(bad)
    out = tmp_path / "out.h5"
    with pytest.raises(PartitionError, match=r"(?s)1 of \d+ partitions failed.*part\d{4} \(bad_1\.dump.*unknown event type"):
        process_files_dask([paths[0], bad], setup, "alice", out, dask=client, n_partitions=4,
                           pipeline_factory=RefPipeline)
    assert not out.exists() and not (tmp_path / "out.h5.partial").exists()
    assert not (tmp_path / "out.h5.parts").exists()


class FlakyPipeline(RefPipeline):
    """Raises OSError the first time it is built in each partition's process (a marker file per attempt)."""

    marker_dir: str = ""

    def __init__(self, lab):
        m = Path(self.marker_dir) / "failed-once"
        if not m.exists():
            m.write_text("x")
            raise OSError("simulated flaky file system")
        super().__init__(lab)


def test_transient_failure_is_retried(client, setup, run_files, tmp_path):
    paths, _ = run_files
    lab = setup.lab("alice")
    r0, *_ = single_process(paths, lab, RefPipeline)
    flaky = type("Flaky", (FlakyPipeline,), {"marker_dir": str(tmp_path)})
    out = tmp_path / "retry.h5"
    process_files_dask(paths, setup, "alice", out, dask=client, n_partitions=3, retries=2, pipeline_factory=flaky)
    assert (tmp_path / "failed-once").exists()
    np.testing.assert_array_equal(read_rounds(out).rounds, r0)


def test_parse_dask_spec():
    assert parse_dask_spec("local:3") == ("local", 3)
    assert parse_dask_spec("local[2]") == ("local", 2)
    assert parse_dask_spec("local")[0] == "local"
    assert parse_dask_spec("tcp://10.0.0.1:8786") == ("remote", "tcp://10.0.0.1:8786")
    assert parse_dask_spec("threads:2") == ("threads", 2)
    assert parse_dask_spec("threads")[0] == "threads"
    from timetag.errors import SetupError

    with pytest.raises(SetupError, match="scheduler address"):
        parse_dask_spec("cluster42")


@pytest.mark.skipif(_engine_factory() is None, reason="engine not importable")
def test_simulated_run_on_two_workers_equals_single_process(client, tmp_path):
    """The simulator's data and setup (sync_reference 'next', long read-out windows), both labs."""
    from timetag.process import process_files
    from timetag.simulator import load_preset, simulate

    p = load_preset("lmu2022")
    sim = simulate(p, 25, 7, tmp_path / "sim", speedup=p.speedup * 20)
    for lab, path in (("alice", sim.alice), ("bob", sim.bob)):
        single = tmp_path / f"{lab}-single.h5"
        s0 = process_files([path], sim.setup, lab, single, progress=False, chunk_size=4096)
        recs = np.fromfile(path, RECORD_DTYPE)
        ready = np.flatnonzero(recs["channel"] == (6 if lab == "alice" else 2))
        out = tmp_path / f"{lab}-dask.h5"
        process_files_dask([path], sim.setup, lab, out, dask=client, cuts=[int(x) + 1 for x in ready[2::5]],
                           chunk_size=4096)
        a, b = read_rounds(single), read_rounds(out)
        assert len(b.provenance["distributed"]["partitions"]) >= 3
        np.testing.assert_array_equal(b.rounds, a.rounds)
        np.testing.assert_array_equal(b.heralds, a.heralds)
        volatile = {"elapsed_s", "tags_per_s", "inputs", "out"}
        assert set(s0) <= set(b.summary)
        assert {k: v for k, v in b.summary.items() if k not in volatile} == \
            {k: v for k, v in a.summary.items() if k not in volatile}
        for k, v in a.histograms.items():
            np.testing.assert_array_equal(b.histograms[k], v, err_msg=k)


@pytest.mark.skipif(_engine_factory() is None, reason="engine not importable")
def test_threads_in_one_process_equal_single_process(tmp_path):
    """--dask threads:2: partitions on two threads of this process (no worker processes), same rounds."""
    from timetag.process import process_files
    from timetag.simulator import load_preset, simulate

    p = load_preset("lmu2022")
    sim = simulate(p, 25, 8, tmp_path / "sim", speedup=p.speedup * 20)
    single = tmp_path / "single.h5"
    process_files([sim.alice], sim.setup, "alice", single, progress=False, chunk_size=4096)
    out = tmp_path / "threads.h5"
    process_files_dask([sim.alice], sim.setup, "alice", out, dask="threads:2", n_partitions=4, chunk_size=4096)
    a, b = read_rounds(single), read_rounds(out)
    assert b.provenance["distributed"]["dask"] == "threads:2" and len(b.provenance["distributed"]["partitions"]) > 1
    np.testing.assert_array_equal(b.rounds, a.rounds)
    np.testing.assert_array_equal(b.heralds, a.heralds)


def _busy_overflow_file(tmp_path, lab, n_busy=20_000):
    """An overflow opens, ``n_busy`` busy tags follow (no quiet gap), then 40 tags 3 safe gaps apart, then the
    overflow ends: the records around a cut among the sparse tags do not show the overflow record, so only a
    pass over the run (or the partitions' own reading) tells that such a cut lies inside the overflow."""
    gap = safe_gap_ps(lab)
    busy = 10 + np.arange(n_busy, dtype=np.int64) * 10
    sparse = busy[-1] + (1 + np.arange(40, dtype=np.int64)) * (3 * gap)
    tail = sparse[-1] + (1 + np.arange(10, dtype=np.int64)) * (3 * gap)
    t = np.concatenate([busy, sparse, tail])
    lost = np.zeros(2, LOST_DTYPE)
    lost["time"] = [0, sparse[-1] + 1]
    lost["kind"] = [OVERFLOW_BEGIN, OVERFLOW_END]
    p = tmp_path / "busy.dump"
    write_dump(p, TagChunk(t, np.full(t.size, 2, np.int32), lost))
    return p


def test_planning_without_the_overflow_pass_reads_only_around_the_cuts(tmp_path, setup):
    lab = setup.lab("alice")
    p = _busy_overflow_file(tmp_path, lab, n_busy=100_000)
    cut = 100_000 + 1 + 20  # the BEGIN record, the busy tags, then 20 sparse ones
    full, quick = {}, {}
    checked = plan_partitions([p], lab, cuts=[cut], stats=full)
    parts = plan_partitions([p], lab, cuts=[cut], overflow_check=False, stats=quick)
    assert full["bytes_read"] >= p.stat().st_size  # the pass over every record type
    assert quick["bytes_read"] < p.stat().st_size // 2
    # the checked plan moves the cut out of the overflow, past its end
    assert len(checked) == 2 and checked[1].segments[0].start > 100_000 + 41
    # without the pass the cut stays inside the overflow: the run must check it afterwards
    assert len(parts) == 2 and abs(parts[1].segments[0].start - cut) < 3


def test_cuts_inside_overflow_follow_the_marks_across_partitions():
    from timetag.distributed.run import cuts_inside_overflow

    reps = [{"last_overflow_mark": None}, {"last_overflow_mark": int(OVERFLOW_BEGIN)},
            {"last_overflow_mark": None}, {"last_overflow_mark": int(OVERFLOW_END)}, {"last_overflow_mark": None}]
    # open after partition 1, still open after 2 (no mark in it), closed in 3
    assert cuts_inside_overflow(reps) == [1, 2]
    assert cuts_inside_overflow([{"last_overflow_mark": None}] * 3) == []


def test_cut_inside_an_overflow_is_joined_on_the_cluster(client, tmp_path, setup):
    lab = setup.lab("alice")
    p = _busy_overflow_file(tmp_path, lab)
    r0, h0, s0, _ = single_process([p], lab, RefPipeline)
    out = tmp_path / "o.h5"
    first = 20_001
    # the first two cuts lie inside the overflow (found only when their partitions have been read), the third
    # after it
    summary = process_files_dask([p], setup, "alice", out, dask=client, cuts=[first + 10, first + 25, first + 46],
                                 pipeline_factory=RefPipeline, checksum=False)
    merged = read_rounds(out)
    names = merged.provenance["distributed"]["partitions"]
    assert len(names) == 2, names  # the three partitions around the two bad cuts joined and run again
    assert names[0].endswith(f"[0:{first + 46}])") or names[0].endswith(f"[0:{first + 47}])"), names
    np.testing.assert_array_equal(merged.rounds, r0)
    np.testing.assert_array_equal(merged.heralds, h0)
    assert summary["lost_events"] == s0["lost_events"] == 2 and summary["tags"] == s0["tags"]
    assert not (tmp_path / "o.h5.parts").exists()


def test_by_file_cuts_start_at_the_file_boundaries(setup, run_files):
    paths, _ = run_files
    lab = setup.lab("alice")
    parts = plan_partitions(paths, lab, n_partitions=4, by_file=True, overflow_check=False)
    sizes = [p.stat().st_size // 16 for p in paths]
    # each file gets its share; the boundary cut moves to the nearest quiet gap, so a partition starts near
    # the start of the second file (in it, or just before it in the first)
    starts = [(q.segments[0].path, q.segments[0].start) for q in parts]
    assert len(parts) == 4
    near = [abs(s - 0) if path == str(paths[1]) else abs(sizes[0] - s) for path, s in starts[1:]]
    assert min(near) < sizes[0] // 4


def test_joining_keeps_one_segment_per_file():
    a = Partition(0, (Segment("x", 0, 10),), None, 50, (Segment("x", 10, 11),))
    b = Partition(1, (Segment("x", 10, 20), Segment("y", 0, 5)), 50, 90, (Segment("y", 5, 6),))
    j = join_partitions(a, b)
    assert j.segments == (Segment("x", 0, 20), Segment("y", 0, 5))
    assert (j.own_start_ps, j.own_stop_ps, j.lookahead, j.index) == (None, 90, (Segment("y", 5, 6),), 0)


def test_workers_send_the_digests_of_the_blocks_they_read(setup, tmp_path, checksum_rereads):
    # a 3.5 MiB file in three partitions, each run as a worker runs it: the client joins their block digests and
    # reads only the blocks around the two cuts again
    from timetag.distributed.worker import process_partition
    from timetag.provenance import InputChecksums

    one = make_alice_stream()
    span = int(one.time[-1]) + 10**12            # a second of quiet between the copies
    copies = 150
    big = tmp_path / "big.dump"
    write_dump(big, TagChunk(np.concatenate([one.time + k * span for k in range(copies)]),
                             np.tile(one.channel, copies)))
    lab = setup.lab("alice")
    n = len(one) * copies
    parts = plan_partitions([big], lab, cuts=[n // 3, 2 * n // 3], overflow_check=False)
    assert len(parts) == 3
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    reports = [process_partition(p, lab, str(scratch), chunk_size=20_000, hash_blocks=True) for p in parts]
    size, mib = big.stat().st_size, 1 << 20
    for p, rep in zip(parts, reports):
        lo, hi = p.segments[0].start * 16, (p.segments[0].stop if p.segments[0].stop is not None else n) * 16
        whole = {k for k in range(-(-size // mib)) if k * mib >= lo and min((k + 1) * mib, size) <= hi}
        assert set(rep["block_digests"][str(big)]) == whole
    checksum_rereads.clear()
    sums = InputChecksums([big], in_stream=lambda _p: True)
    for rep in reports:
        sums.join_blocks(str(big), rep["block_digests"][str(big)])
    assert sums.result() == [block_checksum(big.read_bytes())]
    assert 1 <= len(checksum_rereads) <= 2


def test_reports_are_handed_on_in_order_and_stop_at_a_cut_inside_an_overflow():
    from timetag.distributed.run import _InOrder

    got = []
    order = _InOrder(5, lambda i, rep: got.append(i))
    order.add(1, {"last_overflow_mark": None})
    assert got == []                                  # partition 0 is not in yet
    order.add(0, {"last_overflow_mark": None})
    assert got == [0, 1]
    order.add(3, {"last_overflow_mark": int(OVERFLOW_END)})
    order.add(2, {"last_overflow_mark": int(OVERFLOW_BEGIN)})
    assert got == [0, 1] and order.stopped           # the cut after 2 lies inside an overflow: 2 and on wait
    order.add(4, {"last_overflow_mark": None})
    assert got == [0, 1] and order.next == 2
    ends_open = _InOrder(2, lambda i, rep: got.append(i))
    ends_open.add(0, {"last_overflow_mark": None})
    ends_open.add(1, {"last_overflow_mark": int(OVERFLOW_BEGIN)})   # the last partition has no cut after it
    assert got[-2:] == [0, 1] and not ends_open.stopped


def test_a_join_after_partitions_already_merged_gives_the_single_process_output(client, tmp_path, setup,
                                                                              monkeypatch):
    """Quiet tags, then an overflow: partition 0 (before it) is merged as soon as it is in; the two partitions
    whose cut lies inside the overflow are joined and run again, then merged after it: each final partition
    is appended once, in order."""
    from timetag.distributed.merge import MergeWriter

    appended = []
    real_append = MergeWriter.append
    def append(self, data, label, path=None):
        appended.append(label)
        real_append(self, data, label, path)

    monkeypatch.setattr(MergeWriter, "append", append)
    lab = setup.lab("alice")
    gap = safe_gap_ps(lab)
    quiet = 10 + np.arange(10, dtype=np.int64) * (3 * gap)
    busy = quiet[-1] + 3 * gap + np.arange(5_000, dtype=np.int64) * 10
    sparse = busy[-1] + (1 + np.arange(40, dtype=np.int64)) * (3 * gap)
    tail = sparse[-1] + (1 + np.arange(10, dtype=np.int64)) * (3 * gap)
    t = np.concatenate([quiet, busy, sparse, tail])
    lost = np.zeros(2, LOST_DTYPE)
    lost["time"] = [busy[0] - 1, sparse[-1] + 1]
    lost["kind"] = [OVERFLOW_BEGIN, OVERFLOW_END]
    p = tmp_path / "late_overflow.dump"
    write_dump(p, TagChunk(t, np.full(t.size, 2, np.int32), lost))
    r0, h0, s0, _ = single_process([p], lab, RefPipeline)
    out = tmp_path / "o.h5"
    first_sparse = 10 + 1 + 5_000   # records: the quiet tags, the BEGIN, the busy tags
    summary = process_files_dask([p], setup, "alice", out, dask=client, checksum=False, pipeline_factory=RefPipeline,
                                 cuts=[5, first_sparse + 20, first_sparse + 46])
    merged = read_rounds(out)
    names = merged.provenance["distributed"]["partitions"]
    assert len(names) == 3 and names[0].endswith("[0:5])"), names
    assert appended == names
    np.testing.assert_array_equal(merged.rounds, r0)
    np.testing.assert_array_equal(merged.heralds, h0)
    assert summary["lost_events"] == s0["lost_events"] == 2 and summary["tags"] == s0["tags"]


def test_outputs_through_scratch_files_equal_outputs_in_memory(client, setup, run_files, tmp_path):
    paths, _whole = run_files
    ready, _ = window_records(paths)
    cuts = [int(x) + 2 for x in ready[5::12]]
    kw = dict(dask=client, cuts=cuts, chunk_size=500, pipeline_factory=RefPipeline, checksum=False)
    a = process_files_dask(paths, setup, "alice", tmp_path / "memory.h5", **kw)
    b = process_files_dask(paths, setup, "alice", tmp_path / "files.h5", scratch=True, **kw)
    x, y = read_rounds(tmp_path / "memory.h5"), read_rounds(tmp_path / "files.h5")
    assert x.rounds.size > 50 and len(x.provenance["distributed"]["partitions"]) >= 5
    np.testing.assert_array_equal(x.rounds, y.rounds)
    np.testing.assert_array_equal(x.heralds, y.heralds)
    volatile = {"elapsed_s", "tags_per_s", "out"}
    assert {k: v for k, v in a.items() if k not in volatile} == {k: v for k, v in b.items() if k not in volatile}
    assert not (tmp_path / "files.h5.parts").exists()


def test_spare_cores_only_where_the_workers_leave_a_core(client):
    import os

    from timetag.distributed.run import spare_cores

    cores = len(os.sched_getaffinity(0))
    assert spare_cores(client) == (cores > 2)   # the fixture: 2 single-threaded workers on this machine
