"""The Dask task: its output in memory equals its partition file, and the malloc settings around it."""
from __future__ import annotations

import numpy as np
import pytest

from timetag.distributed import worker
from timetag.distributed.partition import plan_partitions
from timetag.distributed.worker import process_partition, streaming_malloc
from timetag.roundsfile import read_rounds

from stream_cases import small_alice_run

pytest.importorskip("timetag.simulator")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return small_alice_run(tmp_path_factory, "worker", 3)


def test_output_in_memory_equals_the_partition_file(run):
    n = run["alice"].stat().st_size // 16
    parts = plan_partitions([run["alice"]], run["lab"], cuts=[n // 3, 2 * n // 3], overflow_check=False)
    assert len(parts) == 3
    scratch = run["dir"] / "scratch"
    scratch.mkdir()
    kept = 0
    for part in parts:
        for prefetch in (True, False):
            mem = process_partition(part, run["lab"], None, chunk_size=3_000, prefetch=prefetch)
            on_file = read_rounds(process_partition(part, run["lab"], str(scratch), chunk_size=5_000)["path"])
            out = mem["output"]
            assert "path" not in mem and out.rounds.tobytes() == on_file.rounds.tobytes()
            assert out.heralds.tobytes() == on_file.heralds.tobytes()
            assert out.summary == on_file.summary and sorted(out.histograms) == sorted(on_file.histograms)
            for k, v in out.histograms.items():
                np.testing.assert_array_equal(v, on_file.histograms[k])
            assert mem["rounds"] == out.rounds.size
        kept += out.rounds.size
    assert kept > 10


class _FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


def test_streaming_malloc_keeps_freed_chunks_during_the_task_and_restores_the_nannys_setting(monkeypatch):
    libc = _FakeLibc()
    monkeypatch.setattr(worker, "_libc", lambda: libc)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    with streaming_malloc():
        with streaming_malloc():       # a second task thread of the same worker
            assert libc.calls == [("mallopt", -3, 32 << 20), ("mallopt", -1, 64 << 20)]
        assert len(libc.calls) == 2    # the other task still runs
    assert libc.calls[2:] == [("mallopt", -1, 65536), ("mallopt", -3, 128 << 10), ("malloc_trim", 0)]


@pytest.mark.parametrize("trim", [None, "lots"])   # not a nanny's worker (glibc adapts itself); a value it cannot read
def test_streaming_malloc_leaves_other_settings_alone(monkeypatch, trim):
    libc = _FakeLibc()
    monkeypatch.setattr(worker, "_libc", lambda: libc)
    if trim is None:
        monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    else:
        monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", trim)
    with streaming_malloc():
        pass
    assert libc.calls == []


def test_streaming_malloc_restores_after_an_error(monkeypatch):
    libc = _FakeLibc()
    monkeypatch.setattr(worker, "_libc", lambda: libc)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "4096")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    with pytest.raises(RuntimeError):
        with streaming_malloc():
            raise RuntimeError("task failed")
    assert libc.calls[2:] == [("mallopt", -1, 4096), ("mallopt", -3, 1048576), ("malloc_trim", 0)]
