"""RoundsData.to_pandas / to_arrow: the rounds file's records as tables, with units, meanings and identity; a
clear ImportError without the optional library."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from timetag.errors import FormatError
from timetag.records import HERALD_DTYPE, ROUND_DTYPE
from timetag.roundsfile import read_rounds, write_rounds
from timetag.roundsschema import HERALD_FIELDS, ROUND_FIELDS


@pytest.fixture
def data(tmp_path):
    r = np.zeros(7, ROUND_DTYPE)
    r["index"] = np.arange(7)
    r["trigger_time"] = np.arange(7) * 1_000_000 + 2**40  # beyond 32 bits: the int64 must survive
    r["setting"] = np.arange(7) % 4
    r["count"] = [0, 3, 9, 1, 12, 0, 5]
    r["flags"] = [0, 1, 0, 0, 4, 0, 0]
    h = np.zeros(3, HERALD_DTYPE)
    h["time"] = [10, 20, 30]
    h["nclicks"] = 2
    p = write_rounds(tmp_path / "r.h5", r, heralds=h, lab="alice", role="alice", setup_hash="abc123")
    return read_rounds(p)


def test_to_pandas_columns_values_units_identity(data):
    pd = pytest.importorskip("pandas")
    df = data.to_pandas()
    assert isinstance(df, pd.DataFrame) and list(df.columns) == list(ROUND_DTYPE.names) and len(df) == 7
    for name in ROUND_DTYPE.names:
        assert df[name].dtype == ROUND_DTYPE[name], name
        assert np.array_equal(df[name].to_numpy(), data.rounds[name]), name
    assert df.attrs["units"]["trigger_time"] == "ps" and df.attrs["units"]["count"] == "photons"
    assert df.attrs["units"] == {k: u for k, (u, _) in ROUND_FIELDS.items()}
    assert df.attrs["meanings"]["flags"] == ROUND_FIELDS["flags"][1]
    assert (df.attrs["lab"], df.attrs["role"], df.attrs["setup_hash"]) == ("alice", "alice", "abc123")
    assert df.attrs["completion"] == str(data.completion) and df.attrs["path"] == str(data.path)


def test_to_pandas_heralds(data):
    pytest.importorskip("pandas")
    df = data.to_pandas("heralds")
    assert list(df.columns) == list(HERALD_DTYPE.names) and list(df["time"]) == [10, 20, 30]
    assert df.attrs["units"]["dt1"] == HERALD_FIELDS["dt1"][0] == "ps"


def test_to_arrow_fields_carry_unit_and_meaning(data):
    pa = pytest.importorskip("pyarrow")
    t = data.to_arrow()
    assert isinstance(t, pa.Table) and t.num_rows == 7 and t.column_names == list(ROUND_DTYPE.names)
    assert t.column("trigger_time").to_pylist() == data.rounds["trigger_time"].tolist()
    assert t.schema.field("trigger_time").type == pa.int64()
    f = t.schema.field("count")
    assert f.metadata[b"unit"] == b"photons" and f.metadata[b"meaning"] == ROUND_FIELDS["count"][1].encode()
    assert t.schema.metadata[b"lab"] == b"alice"
    assert data.to_arrow("heralds").column("nclicks").to_pylist() == [2, 2, 2]


@pytest.mark.parametrize("method, module", [("to_pandas", "pandas"), ("to_arrow", "pyarrow")])
def test_missing_library_is_a_clear_import_error(data, monkeypatch, method, module):
    monkeypatch.setitem(sys.modules, module, None)  # import of a None entry raises ImportError
    with pytest.raises(ImportError, match=rf"RoundsData\.{method}\(\) needs {module}.*pip install {module}"
                                          r".*timetag\[frames\]"):
        getattr(data, method)()


@pytest.mark.parametrize("method", ["to_pandas", "to_arrow"])
def test_bad_what_and_missing_heralds_are_said_before_any_import(data, tmp_path, monkeypatch, method):
    for module in ("pandas", "pyarrow"):  # the mistake is named even where the library is missing
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ValueError, match="'rounds' or 'heralds', got 'round'"):
        getattr(data, method)("round")
    p = write_rounds(tmp_path / "no_heralds.h5", data.rounds, lab="bob", role="bob")
    with pytest.raises(FormatError, match="no_heralds.h5: keeps no heralds"):
        getattr(read_rounds(p), method)("heralds")
