"""Parameter scans: --vary parsing, one processing per distinct lab setting, rows equal to direct runs."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner

from timetag.cli import app
from timetag.distributed.scan import parse_values, parse_vary, resolve_key, run_scan, scan_points
from timetag.errors import SetupError
from timetag.roundsfile import read_rounds
from timetag.setupfile import load_setup


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from timetag.simulator import load_preset, simulate

    p = load_preset("lmu2022")
    return simulate(p, 30, 3, tmp_path_factory.mktemp("scan_sim"), speedup=p.speedup * 20)


def test_parse_values_ranges_units_lists():
    assert parse_values("20000:120000:50000", "k") == (20000, 70000, 120000)
    assert parse_values("20ns:40ns:10ns", "k") == (20000, 30000, 40000)
    assert parse_values("1.5us,2us", "k") == (1_500_000, 2_000_000)
    assert parse_values("4,8,12", "k") == (4, 8, 12)
    assert parse_values("10:0:-5", "k") == (10, 5, 0)
    with pytest.raises(SetupError, match="step"):
        parse_values("0:10:-1", "k")
    with pytest.raises(SetupError, match="unknown unit"):
        parse_values("3parsecs", "k")


def test_keys_resolve_to_the_labs_that_have_them(sim):
    d = load_setup(sim.setup).to_dict()
    assert resolve_key(d, "threshold") == ("labs.alice.round.threshold", "labs.bob.round.threshold")
    # Bob has no sync: the herald window only concerns Alice
    assert resolve_key(d, "window.stop") == ("labs.alice.herald.window_stop_ps",)
    assert resolve_key(d, "labs.bob.round.threshold") == ("labs.bob.round.threshold",)
    assert resolve_key(d, "fluorescence.stop") == ("labs.alice.round.fluorescence_window_ps[1]",
                                                   "labs.bob.round.fluorescence_window_ps[1]")
    with pytest.raises(SetupError, match="no such setup parameter"):
        resolve_key(d, "labs.alice.round.thresh")


def test_invalid_scan_point_is_named(sim):
    s = load_setup(sim.setup)
    v = parse_vary("labs.alice.round.threshold=0,4", s.to_dict())
    with pytest.raises(SetupError, match=r"scan point \{'labs.alice.round.threshold': 0\}.*threshold"):
        scan_points(s, [v])


def test_scan_rows_equal_direct_processing(sim, tmp_path):
    from timetag.estimators.pipeline import estimate
    from timetag.process import process_files

    s = load_setup(sim.setup)
    base_thr = s.lab("bob").round.threshold
    out = tmp_path / "scan"
    rows = run_scan([sim.alice], [sim.bob], s, [f"labs.bob.round.threshold=100000,{base_thr}"], out)
    assert [r["labs.bob.round.threshold"] for r in rows] == [100000, base_thr]
    # Alice's setup is the same at both points: processed once; Bob twice
    files = sorted(p.name.split("-")[0] for p in (out / "rounds").glob("*.h5"))
    assert files == ["alice", "bob", "bob"]
    # the second point is the unchanged setup: compare with a direct run
    pa, pb = tmp_path / "a.h5", tmp_path / "b.h5"
    sa = process_files([sim.alice], s, "alice", pa, progress=False)
    sb = process_files([sim.bob], s, "bob", pb, progress=False)
    direct = estimate(pa, pb, samples=0)
    row = rows[1]
    assert row["S"] == pytest.approx(direct["S"])
    assert row["Q"] == pytest.approx(direct["Q"])
    assert row["pairs"] == direct["rounds"]
    assert row["herald_rate_hz"] == pytest.approx(sa["heralds_heralding"] / (sa["duration_ps"] * 1e-12))
    # an unreachable threshold makes every Bob output 'down': Bob's 'up' count drops to zero
    assert sb["rounds_up"] > 0
    ups = sorted(read_rounds(p).summary["rounds_up"] for p in (out / "rounds").glob("bob-*.h5"))
    assert ups == [0, sb["rounds_up"]]
    assert rows[0]["S"] != rows[1]["S"]
    with open(out / "scan.csv") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 2 and float(table[1]["S"]) == pytest.approx(row["S"])
    assert (out / "scan.png").stat().st_size > 1000


def test_scan_on_dask_equals_local(sim, tmp_path):
    distributed = pytest.importorskip("distributed")
    s = load_setup(sim.setup)
    vary = ["window.stop=-19120000,-19108769"]
    local = run_scan([sim.alice], [sim.bob], s, vary, tmp_path / "local")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        remote = run_scan([sim.alice], [sim.bob], s, vary, tmp_path / "dask", dask=client)
    assert len(local) == 2
    for a, b in zip(local, remote):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], float):
                assert np.isclose(a[k], b[k], equal_nan=True), k
            else:
                assert a[k] == b[k], k


def test_cli_scan_writes_table_and_plot(sim, tmp_path):
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["scan", str(sim.alice), str(sim.bob), "--setup", str(sim.setup),
                                   "--vary", "threshold=8,12", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "timetag scan" in res.output and (out / "scan.csv").exists() and (out / "scan.png").exists()
    bad = CliRunner().invoke(app, ["scan", str(sim.alice), str(sim.bob), "--setup", str(sim.setup),
                                   "--vary", "nonsense=1,2", "--out", str(out)])
    assert bad.exit_code != 0
