"""run_partition: one partition through a fresh chain into memory, as the Dask worker's partition file has it."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from timetag.distributed.partition import Segment
from timetag.distributed.worker import process_partition
from timetag.formats import iter_stream
from timetag.formats.dump import RECORD_DTYPE
from timetag.roundsfile import read_rounds
from timetag.stream.parallel import plan_cuts
from timetag.stream.partition_run import PartitionResult, run_partition, segment_chunks

from stream_cases import small_alice_run

pytest.importorskip("timetag.simulator")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return small_alice_run(tmp_path_factory, "partition_run", 7)


def test_a_partition_in_memory_equals_the_dask_workers_file(run):
    parts = plan_cuts([run["alice"]], run["lab"], 4)
    assert len(parts) == 4 and all(p.lookahead for p in parts[:-1])
    scratch = run["dir"] / "scratch"
    scratch.mkdir()
    for part in parts:
        result = PartitionResult(part)
        run_partition(result, run["lab"], chunk_size=5_000, opts={})
        assert result.done and result.error is None
        report = process_partition(part, run["lab"], str(scratch), chunk_size=7_000)
        on_file = read_rounds(report["path"])
        rounds = np.concatenate(result.rounds) if result.rounds else on_file.rounds[:0]
        assert rounds.tobytes() == on_file.rounds.tobytes() and len(rounds) == report["rounds"]
        heralds = np.concatenate(result.heralds) if result.heralds else on_file.heralds[:0]
        assert heralds.tobytes() == on_file.heralds.tobytes()
        assert result.summary == on_file.summary
        assert sorted(result.histograms) == sorted(on_file.histograms)
        for k, v in result.histograms.items():
            np.testing.assert_array_equal(v, on_file.histograms[k])
        assert result.channel_counts == report["channel_counts"]
        own = sum(((s.stop or 0) - s.start) for s in part.segments) if part.segments[-1].stop else None
        if own is not None:
            assert result.records == own      # every own record counted once, the lookahead's not at all


def test_segments_of_several_files_read_as_iter_stream_reads_the_files(run):
    """A bad-record interval open at the end of one file is closed at the next file's first event, as
    iter_stream closes it, and a file that starts before the previous one ended is an error."""
    rec = np.fromfile(run["alice"], RECORD_DTYPE)
    a, b = run["dir"] / "a.dump", run["dir"] / "b.dump"
    first = rec[: rec.size // 2].copy()
    first["type"][-3:] = 9                 # the file ends inside a run of bad records
    first.tofile(a)
    rec[rec.size // 2:].tofile(b)
    opts = {"on_bad_record": "lost"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = list(iter_stream([a, b], chunk_size=4_000, **opts))
        got = list(segment_chunks([Segment(str(a)), Segment(str(b))], 4_000, opts))
    assert [len(c) for c in got] == [len(c) for c in expected]
    for x, y in zip(got, expected):
        np.testing.assert_array_equal(x.time, y.time)
        assert x.lost.tobytes() == y.lost.tobytes()
    assert any(c.lost.size for c in got)
    rec[rec.size // 2:].tofile(a)            # now the first file starts after the second one
    rec[: rec.size // 2].tofile(b)
    with pytest.raises(Exception, match="before the previous file ended"):
        list(segment_chunks([Segment(str(a)), Segment(str(b))], 4_000, {}))


def test_a_stopped_partition_says_so_and_keeps_what_it_made(run):
    part = plan_cuts([run["alice"]], run["lab"], 2)[0]
    result = PartitionResult(part)
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3

    run_partition(result, run["lab"], chunk_size=2_000, opts={}, stop=stop)
    assert result.done and result.cancelled and result.error is not None
    assert result.records == 3 * 2_000      # three chunks went through before the stop was seen
