import h5py
import numpy as np
import pytest

from timetag.custody import Completion
from timetag.errors import FormatError, IncompleteError
from timetag.records import ROUND_DTYPE
from timetag.roundsfile import RoundsWriter, read_rounds, write_rounds


def _rounds(n):
    r = np.zeros(n, ROUND_DTYPE)
    r["index"] = np.arange(n)
    r["trigger_time"] = np.arange(n) * 1000
    r["setting"] = np.arange(n) % 4
    return r


def test_round_trip_with_summary_and_histograms(tmp_path):
    p = write_rounds(tmp_path / "r.h5", _rounds(10), lab="alice", role="alice", setup_hash="abc",
                     summary={"triggers": 10}, histograms={"counts": np.arange(5)})
    d = read_rounds(p)
    assert np.array_equal(d.rounds, _rounds(10))
    assert (d.lab, d.role, d.setup_hash) == ("alice", "alice", "abc")
    assert d.summary == {"triggers": 10} and list(d.histograms["counts"]) == [0, 1, 2, 3, 4]


def test_appends_are_readable_after_each_flush_while_open(tmp_path):
    p = tmp_path / "live.h5"
    w = RoundsWriter(p, lab="bob", role="bob", setup_hash="x")
    for k in range(3):
        w.append(_rounds(5)[k:k + 1])
        w.flush()
        with pytest.raises(IncompleteError, match="never finished"):
            read_rounds(p)
        d = read_rounds(p, accept_incomplete=True)
        assert len(d.rounds) == k + 1 and d.completion is Completion.RUNNING
    w.close()
    assert read_rounds(p).complete


def test_not_a_rounds_file(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["other"] = [1]
    with pytest.raises(FormatError, match="no /rounds"):
        read_rounds(tmp_path / "x.h5")
    (tmp_path / "t.txt").write_text("hello")
    with pytest.raises(FormatError, match="not a readable HDF5"):
        read_rounds(tmp_path / "t.txt")
    with pytest.raises(FormatError, match="directory"):
        read_rounds(tmp_path)
