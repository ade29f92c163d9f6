"""timetag.stream.parallel: the pool hands results back in order with a bounded number in flight; the boundary
check accepts a cut only when the next partition's fresh readers see what the single-thread readers see."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from timetag.chunk import OVERFLOW_BEGIN
from timetag.distributed.partition import Partition, Segment, plan_partitions
from timetag.formats.dump import RECORD_DTYPE, TYPE_MISSED, TYPE_OVERFLOW_BEGIN, TYPE_TAG
from timetag.setupfile import load_setup
from timetag.stream import parallel
from timetag.stream.parallel import PartitionPool, boundary_ok, plan_cuts, plan_threads
from timetag.stream.partition_run import PartitionResult

sim = pytest.importorskip("timetag.simulator")


def _parts(n):
    return [Partition(i, (Segment("x", i * 10, i * 10 + 10),)) for i in range(n)]


def test_the_pool_never_runs_more_than_ahead_partitions_beyond_the_one_waited_for():
    running, peak, order = [], [0], []
    lock = threading.Lock()

    def work(result, stop):
        with lock:
            running.append(result.part.index)
            peak[0] = max(peak[0], len(running))
        time.sleep(0.01 * (result.part.index % 3))
        with lock:
            running.remove(result.part.index)
        result.records = result.part.index
        result.done = True

    parts = _parts(12)
    pool = PartitionPool(parts, work, threads=3, ahead=2)
    try:
        for p in parts:
            r = pool.wait(p)
            order.append(r.part.index)
            pool.consume(p)
    finally:
        pool.close()
    assert order == list(range(12)) and peak[0] <= 2
    assert not [t for t in threading.enumerate() if t.name.startswith("timetag-partitions")]


def test_closing_the_pool_stops_the_workers_at_their_next_check():
    started = threading.Event()

    def work(result, stop):
        started.set()
        while not stop():
            time.sleep(0.001)
        result.done = True

    pool = PartitionPool(_parts(4), work, threads=2, ahead=4)
    assert started.wait(5)
    t0 = time.perf_counter()
    pool.close()
    assert time.perf_counter() - t0 < 2
    assert not [t for t in threading.enumerate() if t.name.startswith("timetag-partitions")]


def _file(tmp_path, records):
    rec = np.zeros(len(records), RECORD_DTYPE)
    for i, (kind, t) in enumerate(records):
        rec["type"][i], rec["time"][i] = kind, t
    path = tmp_path / "head.dump"
    rec.tofile(path)
    return str(path)


def _result(path, start=0, stop=None, last_tag=1000, **kw):
    part = Partition(0, (Segment(path, 0, start),), None, 10, (Segment(path, start, stop),))
    r = PartitionResult(part, last_tag_ps=last_tag, **kw)
    r.done = True
    return r


@pytest.mark.parametrize("records, kw, opts, ok", [
    ([(TYPE_TAG, 5000)], {}, {}, True),
    ([(TYPE_MISSED, 4000), (TYPE_TAG, 5000)], {}, {}, True),                # lost data before the first tag
    ([(TYPE_TAG, 500)], {}, {}, False),                                    # earlier than the last tag
    ([(9, 4000), (TYPE_TAG, 5000)], {}, {}, False),                        # a bad record at the start
    ([(TYPE_MISSED, 4000)], {}, {}, False),                                # no tag after the cut
    ([(TYPE_TAG, 5000)], {"interval_open": True}, {}, False),              # a bad-record interval still open
    ([(TYPE_TAG, 5000)], {"last_overflow_mark": OVERFLOW_BEGIN}, {}, False),              # a device overflow still open
    ([(TYPE_TAG, 5000)], {}, {"max_jump_ps": 3000}, False),               # the jump would be a bad record
    ([(TYPE_TAG, 5000)], {}, {"max_jump_ps": 4000}, True),
    ([(TYPE_TAG, 5000)], {"last_tag": None}, {"max_jump_ps": 1}, True),   # no tag before: nothing to jump from
])
def test_boundary_check(tmp_path, records, kw, opts, ok):
    path = _file(tmp_path, [(TYPE_TAG, 1000)] + records)
    assert boundary_ok(_result(path, 1, 1 + len(records), **kw), None, opts) is ok


def test_a_partition_without_tags_is_checked_against_the_tag_before_it(tmp_path):
    path = _file(tmp_path, [(TYPE_TAG, 1000), (TYPE_TAG, 800)])
    assert boundary_ok(_result(path, 1, 2, last_tag=None), 900, {}) is False
    assert boundary_ok(_result(path, 1, 2, last_tag=None), 700, {}) is True


def test_an_error_in_the_lookahead_fails_the_check(tmp_path):
    path = _file(tmp_path, [(TYPE_TAG, 1000), (TYPE_TAG, 5000)])
    assert boundary_ok(_result(path, 1, 2, error=OSError("x"), error_in_lookahead=True), None, {}) is False


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("parallel")
    res = sim.simulate(sim.load_preset("lmu2022").with_overrides(speedup=2000), 100, 2, d / "sim")
    return {"alice": res.alice, "lab": load_setup(res.setup).lab("alice")}


def test_the_cuts_are_the_planners_when_no_overflow_is_open(run):
    rec = np.fromfile(run["alice"], RECORD_DTYPE)
    assert not np.any(rec["type"] == TYPE_OVERFLOW_BEGIN)
    for n in (2, 5, 11):
        assert plan_cuts([run["alice"]], run["lab"], n) == plan_partitions([run["alice"]], run["lab"],
                                                                           n_partitions=n)


def test_plan_threads(run, monkeypatch):
    assert plan_threads([run["alice"]], run["lab"], 1) == (1, [], None)
    n, parts, note = plan_threads([run["alice"]], run["lab"], 2, partitions=5)
    assert n == 2 and len(parts) == 5 and note is None
    assert plan_threads([run["alice"]], run["lab"], "auto")[0] == 1          # a small file
    n, parts, note = plan_threads([run["alice"]], run["lab"], 3, format="ptu")
    assert (n, parts) == (1, []) and "only dump files" in note
    monkeypatch.setattr(parallel, "PARTITION_BYTES", 1 << 16)
    assert parallel.default_partitions([run["alice"]], 2) == -(-run["alice"].stat().st_size // (1 << 16))
    assert parallel.default_partitions([run["alice"]], 200) == 800
    cut = run["alice"].with_name("cut.dump")
    cut.write_bytes(run["alice"].read_bytes()[:-3])
    n, parts, note = plan_threads([cut], run["lab"], 2)
    assert (n, parts) == (1, []) and "partial record" in note
    for bad in (0, -1, "x", True):
        with pytest.raises(Exception, match="threads must be"):
            plan_threads([run["alice"]], run["lab"], bad)


def test_a_stream_without_quiet_gaps_is_planned_in_one_read_and_runs_on_one_thread(run, tmp_path, monkeypatch):
    # tags 100 ps apart, never a safe gap: each planned cut searches only near where it was asked for (the
    # search once went through the whole file for every cut, mapping it all), and the run says why it has one
    # thread when threads were asked for
    from timetag.chunk import TagChunk
    from timetag.distributed.partition import plan_partitions
    from timetag.formats.dump import write_dump

    n = 3_000_000
    dense = tmp_path / "dense.dump"
    write_dump(dense, TagChunk(np.arange(1, n + 1, dtype=np.int64) * 100, (np.arange(n) % 4 + 1).astype(np.int32)))
    stats = {}
    parts = plan_partitions([dense], run["lab"], n_partitions=8, overflow_check=False, stats=stats)
    assert len(parts) == 1 and 0 < stats["bytes_read"] <= dense.stat().st_size
    threads, parts, note = plan_threads([dense], run["lab"], 2)
    assert (threads, parts) == (1, []) and "no quiet gap" in note
    monkeypatch.setattr(parallel, "AUTO_MIN_BYTES", 0)
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert parallel.auto_threads([dense]) == 4
    assert plan_threads([dense], run["lab"], "auto") == (1, [], None)     # 'auto' needs no note
