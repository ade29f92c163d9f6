"""MergeWriter: partitions' outputs appended in time order into one rounds file, as they come."""
from __future__ import annotations

import numpy as np
import pytest

from timetag.custody import Completion
from timetag.distributed.merge import MergeWriter, PartitionOutput
from timetag.errors import DataValidationError
from timetag.records import empty_heralds, empty_rounds
from timetag.roundsfile import read_rounds


def _output(first_ps: int, n: int, tags: int) -> PartitionOutput:
    r = empty_rounds(n)
    r["index"] = np.arange(n)
    r["trigger_time"] = first_ps + np.arange(n) * 1_000
    h = empty_heralds(n)
    h["time"] = r["trigger_time"] - 10
    return PartitionOutput(r, h, {"tags": tags, "rounds": n, "first_time_ps": first_ps},
                           {"singles_counts": np.array([tags, 1]), "singles_channels": np.array([1, 2])})


def test_outputs_are_renumbered_and_combined_and_the_file_appears_with_the_first(tmp_path):
    dest = tmp_path / "m.h5"
    with MergeWriter(dest, lab="alice", role="alice") as w:
        assert not dest.exists()          # created with the first output, while the partitions still run
        w.append(_output(0, 3, 10), "part0")
        assert dest.exists()
        w.append(_output(10_000, 0, 5), "part1")     # a partition without rounds
        w.append(_output(20_000, 2, 7), "part2")
        summary = w.close(extra_summary=lambda s: {"seen": s["tags"]})
    data = read_rounds(dest)
    assert data.rounds["index"].tolist() == [0, 1, 2, 3, 4]
    assert data.rounds["trigger_time"].tolist() == [0, 1_000, 2_000, 20_000, 21_000]
    assert data.heralds.size == 5
    assert summary["tags"] == 22 and summary["rounds"] == 5 and summary["first_time_ps"] == 0
    assert summary["seen"] == 22
    np.testing.assert_array_equal(data.histograms["singles_counts"], [22, 3])
    np.testing.assert_array_equal(data.histograms["singles_channels"], [1, 2])


def test_an_output_out_of_time_order_fails_the_file(tmp_path):
    dest = tmp_path / "m.h5"
    with pytest.raises(DataValidationError, match="part1 starts at trigger time 500 ps"):
        with MergeWriter(dest, lab="alice", role="alice") as w:
            w.append(_output(10_000, 2, 1), "part0")
            w.append(_output(500, 2, 1), "part1")
    assert read_rounds(dest, accept_incomplete=True).completion == Completion.FAILED


def test_round_indices_must_start_at_zero(tmp_path):
    bad = _output(0, 3, 1)
    bad.rounds["index"] += 1
    with pytest.raises(DataValidationError, match="round indices of part0 are not 0..n-1"):
        with MergeWriter(tmp_path / "m.h5", lab="alice", role="alice") as w:
            w.append(bad, "part0")
    assert not (tmp_path / "m.h5").exists()     # refused before the file was created
