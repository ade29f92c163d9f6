"""Arrays kept in the user's cache folder: computed once, loaded bit for bit afterwards, recomputed when the
file is damaged, and never a failure when the folder cannot be written."""
from __future__ import annotations

import numpy as np
import pytest

from timetag.simulator import arraycache as A
from timetag.simulator import fastrng as F


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return A.cache_dir()


def _counting(values):
    calls = []

    def compute():
        calls.append(1)
        return np.array(values, np.float64)

    return compute, calls


def test_computed_once_then_loaded(cache_home):
    compute, calls = _counting([0.1, 2.5, -3.0])
    first = A.cached_array("t", "k1", 3, compute)
    second = A.cached_array("t", "k1", 3, compute)
    assert len(calls) == 1 and first.tobytes() == second.tobytes()
    assert len(list(cache_home.glob("t-*.npy"))) == 1 and not list(cache_home.glob("*.tmp"))
    # another key is another array
    other, calls2 = _counting([1.0, 2.0, 3.0])
    assert A.cached_array("t", "k2", 3, other).tolist() == [1.0, 2.0, 3.0] and len(calls2) == 1


def test_damaged_or_wrong_size_file_is_recomputed(cache_home):
    compute, calls = _counting([1.0, 2.0])
    A.cached_array("t", "k", 2, compute)
    (path,) = cache_home.glob("t-*.npy")
    path.write_bytes(path.read_bytes()[:-5])  # cut short
    assert A.cached_array("t", "k", 2, compute).tolist() == [1.0, 2.0] and len(calls) == 2
    np.save(path, np.zeros(5))  # a table of another size under the same name
    assert A.cached_array("t", "k", 2, compute).tolist() == [1.0, 2.0] and len(calls) == 3
    assert A.cached_array("t", "k", 2, compute).tolist() == [1.0, 2.0] and len(calls) == 3  # repaired


def test_unwritable_cache_folder_is_no_failure(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    compute, calls = _counting([4.0])
    assert A.cached_array("t", "k", 1, compute).tolist() == [4.0]
    assert A.cached_array("t", "k", 1, compute).tolist() == [4.0] and len(calls) == 2


def test_emg_table_from_the_cache_is_the_computed_table(cache_home):
    F.emg_table.cache_clear()
    try:
        first = F.emg_table(350.0, 26200.0)
        F.emg_table.cache_clear()
        loaded = F.emg_table(350.0, 26200.0)  # from the file now
        assert len(list(cache_home.glob("emg-*.npy"))) == 1
        assert loaded.tobytes() == first.tobytes() == F._emg_quantiles(350.0, 26200.0).tobytes()
        assert not loaded.flags.writeable and loaded.size == F.EMG_NODES
    finally:
        F.emg_table.cache_clear()
