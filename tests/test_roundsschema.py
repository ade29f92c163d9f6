"""Rounds files describe themselves: format version, units and meanings, legends, histograms, the setup text;
`timetag info rounds.h5` shows it, and docs/rounds-format.md says the same."""
from __future__ import annotations

import enum
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from timetag import constants
from timetag.cli import main
from timetag.constants import Pattern, RoundFlag
from timetag.process import process_files
from timetag.records import HERALD_DTYPE, ROUND_DTYPE
from timetag.roundsfile import read_rounds
from timetag.roundsschema import FORMAT_VERSION, HISTOGRAMS
from timetag.setupfile import load_setup, loads_setup
from timetag.simulator import load_preset, simulate

DOC = Path(__file__).resolve().parents[1] / "docs" / "rounds-format.md"


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    d = tmp_path_factory.mktemp("schema")
    p = load_preset("lmu2022")
    sim = simulate(p, 40, 3, d / "run", speedup=p.speedup * 20)
    out = d / "alice.h5"
    process_files([sim.alice], sim.setup, "alice", out, progress=False)
    return sim, out


def test_every_field_flag_pattern_and_histogram_is_described_in_the_file(processed):
    sim, out = processed
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "timetag rounds" and f.attrs["format_version"] == FORMAT_VERSION
        for name, dtype in (("rounds", ROUND_DTYPE), ("heralds", HERALD_DTYPE)):
            fields = json.loads(f[name].attrs["fields"])
            assert [x["name"] for x in fields] == list(dtype.names)
            assert all(x["meaning"] for x in fields)
            assert {int(k): v["name"] for k, v in json.loads(f[name].attrs["patterns"]).items()} == \
                {int(p): p.name for p in Pattern}
        flags = json.loads(f["rounds"].attrs["flags"])
        assert {int(k): v["name"] for k, v in flags.items()} == {int(b): b.name for b in RoundFlag}
        assert all(v["meaning"] for v in flags.values())
        written = set(f["histograms"])
        assert written <= set(HISTOGRAMS), f"histograms without a description: {written - set(HISTOGRAMS)}"
        for name in written:
            assert f["histograms"][name].attrs["description"] == HISTOGRAMS[name][1]


def test_the_setup_text_travels_with_the_rounds(processed):
    sim, out = processed
    data = read_rounds(out)
    assert loads_setup(data.setup_text).hash == load_setup(sim.setup).hash == data.setup_hash
    assert data.format_version == FORMAT_VERSION
    assert "setup" not in data.provenance  # stored once, as its own attribute


def test_info_on_a_rounds_file_counts_flags_and_patterns(processed, capsys):
    _, out = processed
    with pytest.raises(SystemExit) as ended:
        main(["info", str(out), "--json"])
    assert ended.value.code == 0
    info = json.loads(capsys.readouterr().out)
    r = read_rounds(out).rounds
    assert info["rounds"] == r.size and info["format_version"] == FORMAT_VERSION
    for bit in RoundFlag:
        assert info["flags"][bit.name] == int(np.count_nonzero(r["flags"] & int(bit)))
    for p in Pattern:
        assert info["patterns"][p.name] == int(np.count_nonzero(r["pattern"] == int(p)))
    assert info["setup"].startswith("[meta]")
    with pytest.raises(SystemExit):
        main(["info", str(out)])
    text = capsys.readouterr().out
    assert f"(format {FORMAT_VERSION})" in text and "LOST_DATA" in text and "[labs.alice]" in text


def test_every_enum_member_has_its_own_docstring():
    for obj in vars(constants).values():
        if isinstance(obj, type) and issubclass(obj, enum.Enum):
            for member in obj:
                assert member.__doc__ and member.__doc__ != obj.__doc__, f"{obj.__name__}.{member.name}"


def test_the_schema_page_names_every_field_flag_and_histogram():
    text = DOC.read_text()
    names = [*ROUND_DTYPE.names, *HERALD_DTYPE.names, *(b.name for b in RoundFlag), *(p.name for p in Pattern),
             *HISTOGRAMS, "format_version", "setup", "completion"]
    missing = [n for n in names if f"`{n}`" not in text]
    assert not missing, f"docs/rounds-format.md does not name {missing}"


def test_readers_on_hdf5_1_14_open_the_rounds_file(processed):
    """PyTables (its own HDF5 1.14) reads what h5py's newer HDF5 wrote: the file keeps the 1.10 format."""
    tables = pytest.importorskip("tables")
    _, out = processed
    with tables.open_file(str(out)) as f:
        assert f.root.rounds.nrows == read_rounds(out).rounds.size
        assert f.root.rounds.attrs.description.startswith("one record per trigger")
