"""Custody of the outputs of simulate, convert, calibrate, estimate, scan, demo and process --dask.

For every command: an existing output is refused without --force and stays byte-identical; --force replaces it;
an output that is an input is refused always (also through a symlink); a failure in the middle of writing leaves
the old output byte-identical and no ``.partial`` file.  Incomplete rounds files need --accept-incomplete.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from timetag.cli import main

SPEEDUP = 2e4


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def shas(folder) -> dict:
    return {str(p.relative_to(folder)): sha(p) for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def partials(folder) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*.partial"))


def run(argv, capsys):
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str) -> bool:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err


def fail_on_call(n: int, exc=RuntimeError("simulated failure mid-write")):
    """A replacement for a writer method that works ``n - 1`` times (calling the original) then raises."""
    def wrap(original):
        calls = {"n": 0}

        def method(*args, **kw):
            calls["n"] += 1
            if calls["n"] >= n:
                raise exc
            return original(*args, **kw)
        return method
    return wrap


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A tiny simulated run and both labs' rounds files."""
    from timetag.process import process_files
    from timetag.simulator import load_preset, simulate

    d = tmp_path_factory.mktemp("custody_sim")
    r = simulate(load_preset("lmu2022"), 200, 5, d / "raw", speedup=SPEEDUP)
    for lab, tags in (("alice", r.alice), ("bob", r.bob)):
        process_files([tags], r.setup, lab, d / f"{lab}_rounds.h5", progress=False, checksum=False)
    r.rounds = {lab: d / f"{lab}_rounds.h5" for lab in ("alice", "bob")}
    return r


@pytest.fixture
def no_matplotlib(monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError


# --- simulate ---------------------------------------------------------------------------------------------------

SIM_ARGS = ["simulate", "--rounds", "5", "--speedup", str(SPEEDUP), "--quiet"]


def test_simulate_refuses_existing_files_naming_them_and_force_replaces(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "alice.dump").write_bytes(b"my precious recording")
    (out / "truth.h5").write_bytes(b"not mine either")
    code, _, err = run([*SIM_ARGS, "--out", out], capsys)
    assert code == 2 and one_line_error(err), err
    assert "alice.dump" in err and "truth.h5" in err and "--force" in err and "bob.dump" not in err
    assert (out / "alice.dump").read_bytes() == b"my precious recording"
    assert sorted(p.name for p in out.iterdir()) == ["alice.dump", "truth.h5"]  # nothing else written
    code, _, err = run([*SIM_ARGS, "--out", out, "--force"], capsys)
    assert code == 0, err
    assert (out / "alice.dump").read_bytes() != b"my precious recording"
    assert sorted(p.name for p in out.iterdir()) == ["alice.dump", "bob.dump", "setup.toml", "truth.h5"]


def test_simulate_failure_mid_write_keeps_the_old_files(tmp_path, monkeypatch):
    from timetag.simulator import load_preset, simulate
    from timetag.simulator import run as sim_run

    out = tmp_path / "o"
    simulate(load_preset("lmu2022"), 20, 1, out, speedup=SPEEDUP)
    before = shas(out)
    monkeypatch.setattr(sim_run._DumpOut, "write", fail_on_call(2)(sim_run._DumpOut.write))
    with pytest.raises(RuntimeError, match="mid-write"):
        simulate(load_preset("lmu2022"), 20, 2, out, speedup=SPEEDUP, force=True)
    assert shas(out) == before and not partials(out)
    # a first run that fails leaves nothing at all
    with pytest.raises(RuntimeError, match="mid-write"):
        simulate(load_preset("lmu2022"), 20, 2, tmp_path / "new", speedup=SPEEDUP)
    assert not any(p.is_file() for p in (tmp_path / "new").rglob("*"))


def test_simulate_out_inside_a_file_or_proc_is_one_line(tmp_path, capsys):
    (tmp_path / "somefile.txt").write_text("x")
    for out in (tmp_path / "somefile.txt", tmp_path / "somefile.txt" / "sub", Path("/proc/timetag-test/sub")):
        code, _, err = run([*SIM_ARGS, "--out", out], capsys)
        assert code in (1, 2) and one_line_error(err), (out, err)
    assert (tmp_path / "somefile.txt").read_text() == "x"


# --- convert ----------------------------------------------------------------------------------------------------

@pytest.fixture
def tags(tmp_path):
    from timetag.chunk import TagChunk
    from timetag.formats import write_tags

    src = tmp_path / "in.dump"
    write_tags(src, [TagChunk(np.arange(1, 2001) * 10, np.arange(2000) % 3)], format="dump")
    return src


def test_convert_existing_output_refused_then_replaced_with_force(tmp_path, tags, capsys):
    dst = tmp_path / "out.h5"
    dst.write_bytes(b"old output")
    code, _, err = run(["convert", tags, dst], capsys)
    assert code == 2 and one_line_error(err) and "--force" in err, err
    assert dst.read_bytes() == b"old output"
    code, _, err = run(["convert", tags, dst, "--force"], capsys)
    assert code == 0, err
    from timetag.formats import read_all

    assert read_all(dst).time.size == 2000 and not partials(tmp_path)


def test_convert_output_that_is_the_input_is_refused_even_with_force(tmp_path, tags, capsys):
    before = sha(tags)
    link = tmp_path / "link.dump"
    link.symlink_to(tags)
    for dst in (tags, link):
        code, _, err = run(["convert", tags, dst, "--force"], capsys)
        assert code == 2 and one_line_error(err) and "input" in err, err
    code, _, err = run(["convert", link, tags, "--force"], capsys)
    assert code == 2 and "input" in err
    assert sha(tags) == before and not partials(tmp_path)


@pytest.mark.parametrize("fmt,writer", [("h5", "timetag.formats.h5tags.H5TagWriter"),
                                        ("dump", "timetag.formats.dump.DumpWriter")])
def test_convert_failure_mid_write_keeps_the_old_output(tmp_path, tags, capsys, monkeypatch, fmt, writer):
    import importlib

    dst = tmp_path / f"out.{fmt}"
    code, _, err = run(["convert", tags, dst], capsys)
    assert code == 0, err
    before = sha(dst)
    mod, cls = writer.rsplit(".", 1)
    klass = getattr(importlib.import_module(mod), cls)
    monkeypatch.setattr(klass, "write", fail_on_call(2, OSError(28, "No space left on device"))(klass.write))
    code, _, err = run(["convert", tags, dst, "--force", "--chunk-size", "300"], capsys)
    assert code == 1 and one_line_error(err) and "No space left" in err, err
    assert sha(dst) == before and not partials(tmp_path)


def test_convert_swmr_writes_the_partial_file_then_renames(tmp_path, tags, capsys):
    import h5py

    dst = tmp_path / "live.h5"
    code, _, err = run(["convert", tags, dst, "--swmr"], capsys)
    assert code == 0 and "live.h5.partial" in err, err
    with h5py.File(dst, "r", libver="latest", swmr=True) as f:
        assert f["photon_data/timestamps"].shape == (2000,)


def test_convert_out_in_proc_or_under_a_file_is_one_line(tmp_path, tags, capsys):
    for dst in (tags / "x.h5", Path("/proc/timetag-test/x.h5")):
        code, _, err = run(["convert", tags, dst], capsys)
        assert code in (1, 2) and one_line_error(err), err


# --- calibrate --------------------------------------------------------------------------------------------------

def _calibrate(sim, out, *extra):
    return ["calibrate", sim.alice, sim.bob, "--setup", sim.setup, "--out", out, "--steps", "thresholds", *extra]


def test_calibrate_existing_output_refused_before_the_work_then_replaced(sim, tmp_path, capsys):
    out = tmp_path / "cal.toml"
    out.write_text("# my hand-tuned setup\n")
    before = sha(out)
    code, _, err = run(_calibrate(sim, out), capsys)
    assert code == 2 and one_line_error(err) and "--force" in err, err
    assert sha(out) == before
    code, stdout, err = run(_calibrate(sim, out, "--force", "--plots", tmp_path / "plots"), capsys)
    assert code == 0, err
    assert "[labs.alice]" in out.read_text() and (tmp_path / "plots" / "alice_counts.png").is_file()
    # the figures are outputs too
    figs = shas(tmp_path / "plots")
    code, _, err = run(_calibrate(sim, tmp_path / "other.toml", "--plots", tmp_path / "plots"), capsys)
    assert code == 2 and "alice_counts.png" in err and not (tmp_path / "other.toml").exists()
    assert shas(tmp_path / "plots") == figs and not partials(tmp_path)


def test_calibrate_output_that_is_an_input_is_refused_even_with_force(sim, tmp_path, capsys):
    link = tmp_path / "setup-link.toml"
    link.symlink_to(sim.setup)
    before = sha(sim.setup), sha(sim.alice)
    for out in (sim.setup, link, sim.alice):
        code, _, err = run(_calibrate(sim, out, "--force"), capsys)
        assert code == 2 and one_line_error(err) and "input" in err, (out, err)
    assert (sha(sim.setup), sha(sim.alice)) == before


def test_calibrate_failure_mid_write_keeps_the_old_setup(sim, tmp_path, capsys, monkeypatch):
    import calibrate.api

    out = tmp_path / "cal.toml"
    out.write_text("# old\n")
    # the setup is written first, then the figures: the second figure fails
    monkeypatch.setattr(calibrate.api, "savefig_into", fail_on_call(2)(calibrate.api.savefig_into))
    with pytest.raises(RuntimeError, match="mid-write"):
        main([str(a) for a in _calibrate(sim, out, "--force", "--plots", tmp_path / "plots")])
    assert out.read_text() == "# old\n" and not partials(tmp_path)
    assert not list((tmp_path / "plots").glob("*.png"))


def test_calibrate_plots_without_matplotlib_is_one_line(sim, tmp_path, capsys, no_matplotlib):
    code, _, err = run(_calibrate(sim, tmp_path / "cal.toml", "--plots", tmp_path / "plots"), capsys)
    assert code == 2 and one_line_error(err) and "matplotlib" in err, err
    assert not (tmp_path / "cal.toml").exists()


# --- estimate ---------------------------------------------------------------------------------------------------

def _estimate(sim, *extra):
    return ["estimate", sim.rounds["alice"], sim.rounds["bob"], "--samples", "0", *extra]


def test_estimate_plots_existing_refused_then_replaced(sim, tmp_path, capsys):
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "finite_key.png").write_bytes(b"old figure")
    code, _, err = run(_estimate(sim, "--plots", plots), capsys)
    assert code == 2 and one_line_error(err) and "finite_key.png" in err, err
    assert (plots / "finite_key.png").read_bytes() == b"old figure" and not (plots / "correlations.png").exists()
    code, _, err = run(_estimate(sim, "--plots", plots, "--force"), capsys)
    assert code == 0, err
    assert (plots / "finite_key.png").read_bytes()[:4] == b"\x89PNG" and (plots / "correlations.png").is_file()


def test_estimate_plot_over_an_input_is_refused_even_with_force(sim, tmp_path, capsys):
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "correlations.png").symlink_to(sim.rounds["alice"])
    before = sha(sim.rounds["alice"])
    code, _, err = run(_estimate(sim, "--plots", plots, "--force"), capsys)
    assert code == 2 and one_line_error(err) and "input" in err, err
    assert sha(sim.rounds["alice"]) == before


def test_estimate_plots_failure_mid_write_keeps_the_old_figures(sim, tmp_path, capsys, monkeypatch):
    from timetag.estimators import plots as plots_mod

    plots = tmp_path / "plots"
    assert run(_estimate(sim, "--plots", plots), capsys)[0] == 0
    before = shas(plots)
    monkeypatch.setattr(plots_mod, "savefig_into", fail_on_call(2)(plots_mod.savefig_into))
    with pytest.raises(RuntimeError, match="mid-write"):
        main([str(a) for a in _estimate(sim, "--plots", plots, "--force")])
    assert shas(plots) == before and not partials(tmp_path)


def test_estimate_plots_without_matplotlib_is_one_line(sim, tmp_path, capsys, no_matplotlib):
    code, _, err = run(_estimate(sim, "--plots", tmp_path / "plots"), capsys)
    assert code == 2 and one_line_error(err) and "matplotlib" in err, err


def test_estimate_incomplete_input_refused_unless_accepted_and_then_named(sim, tmp_path, capsys):
    from timetag.custody import Completion
    from timetag.roundsfile import RoundsWriter, read_rounds

    d = read_rounds(sim.rounds["alice"])
    part = tmp_path / "alice_rounds.h5"
    w = RoundsWriter(part, lab=d.lab, role=d.role, setup_hash=d.setup_hash)
    w.append(d.rounds[:150], None)
    w.close(state=Completion.INTERRUPTED, reason="Ctrl-C after 1,234 records")
    argv = ["estimate", part, sim.rounds["bob"], "--samples", "0"]
    code, _, err = run(argv, capsys)
    assert code == 2 and one_line_error(err) and "--accept-incomplete" in err and "interrupted" in err, err
    code, out, err = run([*argv, "--accept-incomplete"], capsys)
    assert code == 0, err
    assert "! alice_rounds.h5 is incomplete (interrupted: Ctrl-C after 1,234 records); the result covers only " \
           "its 150 rounds" in " ".join(out.split())
    code, out, err = run([*argv, "--accept-incomplete", "--json"], capsys)
    res = json.loads(out)
    assert code == 0 and len(res["incomplete_inputs"]) == 1
    inc = res["incomplete_inputs"][0]
    assert inc["state"] == "interrupted" and inc["rounds"] == 150 and inc["file"] == str(part)
    code, out, _ = run([*_estimate(sim), "--json"], capsys)
    assert code == 0 and json.loads(out)["incomplete_inputs"] == []


# --- scan -------------------------------------------------------------------------------------------------------

def _scan(sim, out, *extra):
    return ["scan", sim.alice, sim.bob, "--setup", sim.setup, "--vary", "threshold=10", "--out", out, *extra]


def test_scan_existing_outputs_refused_naming_them_then_replaced(sim, tmp_path, capsys, monkeypatch):
    from timetag.distributed import scan as scan_mod

    out = tmp_path / "scan"
    code, _, err = run(_scan(sim, out), capsys)
    assert code == 0, err
    before = shas(out)
    assert {"scan.csv", "scan.json", "scan.png"} <= set(before) and len(before) == 5  # + two rounds files
    code, _, err = run(_scan(sim, out), capsys)
    assert code == 2 and one_line_error(err) and "scan.csv" in err and "--force" in err, err
    assert shas(out) == before
    # a failure while writing the summary files: the old ones stay, whole
    monkeypatch.setattr(scan_mod, "write_csv", fail_on_call(1)(scan_mod.write_csv))
    with pytest.raises(RuntimeError, match="mid-write"):
        main([str(a) for a in _scan(sim, out, "--force")])
    assert {k: v for k, v in shas(out).items() if k.startswith("scan.")} == \
        {k: v for k, v in before.items() if k.startswith("scan.")}
    assert not partials(out)
    monkeypatch.undo()
    code, _, err = run(_scan(sim, out, "--force"), capsys)
    assert code == 0, err
    assert set(shas(out)) == set(before) and not partials(out)


def test_scan_output_that_is_an_input_is_refused_even_with_force(sim, tmp_path, capsys):
    out = tmp_path / "scan"
    out.mkdir()
    (out / "scan.json").symlink_to(sim.setup)
    before = sha(sim.setup)
    code, _, err = run(_scan(sim, out, "--force"), capsys)
    assert code == 2 and one_line_error(err) and "input" in err, err
    assert sha(sim.setup) == before


def test_scan_without_matplotlib_writes_the_tables_and_says_so(sim, tmp_path, capsys, no_matplotlib):
    out = tmp_path / "scan"
    code, stdout, err = run(_scan(sim, out), capsys)
    assert code == 0, err
    assert (out / "scan.csv").is_file() and not (out / "scan.png").exists() and "matplotlib" in stdout


# --- demo -------------------------------------------------------------------------------------------------------

def test_demo_refreshes_its_own_folder_and_refuses_a_foreign_one(tmp_path, monkeypatch):
    from timetag.demo import MARKER, run_demo
    from timetag.errors import OutputError

    out = tmp_path / "demo"
    run_demo(out, rounds=150, seed=3, plots=False)
    assert (out / MARKER).is_file()
    (out / "my-notes.txt").write_text("mine")
    first = sha(out / "alice_rounds.h5")
    run_demo(out, rounds=150, seed=4, plots=False)   # its own folder: replaced without --force
    assert sha(out / "alice_rounds.h5") != first and (out / "my-notes.txt").read_text() == "mine"
    assert not partials(out)

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "alice_rounds.h5").write_bytes(b"someone else's")
    with pytest.raises(OutputError, match="not made by `timetag demo`"):
        run_demo(foreign, rounds=150, seed=3, plots=False)
    assert [p.name for p in foreign.iterdir()] == ["alice_rounds.h5"]
    assert (foreign / "alice_rounds.h5").read_bytes() == b"someone else's"


# --- process --dask (the merge) ---------------------------------------------------------------------------------

def _parts(tmp_path, n=3, rows=40):
    from timetag.records import ROUND_DTYPE
    from timetag.roundsfile import write_rounds

    paths = []
    for i in range(n):
        r = np.zeros(rows, ROUND_DTYPE)
        r["index"] = np.arange(rows)
        r["trigger_time"] = (i * rows + np.arange(rows)) * 1_000_000
        paths.append(write_rounds(tmp_path / f"part{i}.h5", r, lab="alice", role="alice", summary={"rounds": rows}))
    return paths


def test_merge_refuses_existing_then_force_replaces_and_failure_keeps_the_old(tmp_path, monkeypatch):
    from timetag.distributed.merge import merge_partition_files
    from timetag.errors import OutputError
    from timetag.roundsfile import RoundsWriter, read_rounds

    parts = _parts(tmp_path)
    out = tmp_path / "merged.h5"
    out.write_bytes(b"old merged file")
    with pytest.raises(OutputError, match="exists"):
        merge_partition_files(parts, out, lab="alice", role="alice")
    assert out.read_bytes() == b"old merged file"
    for bad in (parts[1], tmp_path / "in.dump"):
        (tmp_path / "in.dump").write_bytes(b"tags")
        with pytest.raises(OutputError, match="input"):
            merge_partition_files(parts, bad, lab="alice", role="alice", inputs=[tmp_path / "in.dump"], force=True)
    merge_partition_files(parts, out, lab="alice", role="alice", force=True)
    assert read_rounds(out).rounds.size == 120
    before = sha(out)
    monkeypatch.setattr(RoundsWriter, "append", fail_on_call(2)(RoundsWriter.append))
    with pytest.raises(RuntimeError, match="mid-write"):
        merge_partition_files(parts, out, lab="alice", role="alice", force=True)
    assert sha(out) == before and not partials(tmp_path)


def test_process_dask_refuses_before_starting_a_cluster(sim, tmp_path, capsys):
    out = tmp_path / "alice_rounds.h5"
    out.write_bytes(b"old rounds")
    argv = ["process", sim.alice, "--setup", sim.setup, "--lab", "alice", "--dask", "local:1", "--quiet"]
    code, _, err = run([*argv, "--out", out], capsys)
    assert code == 2 and one_line_error(err) and "--force" in err, err
    code, _, err = run([*argv, "--out", sim.alice, "--force"], capsys)
    assert code == 2 and one_line_error(err) and "input" in err, err
    assert out.read_bytes() == b"old rounds" and not (tmp_path / "alice_rounds.h5.parts").exists()
