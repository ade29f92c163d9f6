"""End to end: simulated runs -> process_files / `timetag process` -> rounds files, checked against truth."""
from __future__ import annotations


import numpy as np
import pytest
from typer.testing import CliRunner

from reference_checksum import block_checksum
from timetag.chunk import split
from timetag.cli import app
from timetag.formats import read_all
from timetag.formats.dump import write_dump
from timetag.process import process_chunks, process_files
from timetag.records import (FLAG_HERALD_WITHOUT_READY, FLAG_LOST_DATA, FLAG_SETTING_AMBIGUOUS, FLAG_SETTING_MISSING,
                             PATTERN_PSI_PLUS, SETTING_NONE)
from timetag.roundsfile import read_rounds
from timetag.setupfile import load_setup

sim = pytest.importorskip("timetag.simulator")
from timetag.simulator.truth import read_truth  # noqa: E402


def _run(tmp_path_factory, name, **overrides):
    p = sim.load_preset("lmu2022")
    if overrides:
        p = p.with_overrides(**overrides)
    out = tmp_path_factory.mktemp(name)
    res = sim.simulate(p, 40, 11, out, speedup=100)
    truth, heralds_all, attrs = read_truth(res.truth)
    a = process_files([res.alice], res.setup, "alice", out / "alice_rounds.h5", chunk_size=50_000, progress=False)
    b = process_files([res.bob], res.setup, "bob", out / "bob_rounds.h5", chunk_size=7_777, progress=False)
    return dict(res=res, truth=truth, heralds_all=heralds_all, summary_a=a, summary_b=b,
                alice=read_rounds(out / "alice_rounds.h5"), bob=read_rounds(out / "bob_rounds.h5"))


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return _run(tmp_path_factory, "clean")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    return _run(tmp_path_factory, "scenario", alice_ready_missing_prob=0.15, bob_ready_missing_prob=0.15,
                setting_missing_prob=0.1, setting_double_prob=0.1)


def _by_herald(rounds, truth):
    pos = {int(t): i for i, t in enumerate(rounds["herald_time"])}
    return rounds[[pos[int(t)] for t in truth["herald_time"]]]


def test_every_true_herald_is_found_and_nothing_invented(clean):
    truth, alice = clean["truth"], clean["alice"]
    assert len(truth) == 40
    assert np.all(np.isin(truth["herald_time"], alice.rounds["herald_time"]))
    assert np.all(alice.rounds["pattern"] == PATTERN_PSI_PLUS) and len(alice.rounds) == len(truth)
    # every >=2-click group in the acceptance window is a herald record, no more, no fewer
    np.testing.assert_array_equal(np.sort(alice.heralds["time"]), np.sort(clean["heralds_all"]["time"]))
    assert clean["summary_a"]["flags"] == {k: 0 for k in clean["summary_a"]["flags"]}


def test_alice_rounds_equal_truth(clean):
    truth, setup = clean["truth"], load_setup(clean["res"].setup)
    a = _by_herald(clean["alice"].rounds, truth)
    np.testing.assert_array_equal(a["trigger_time"], truth["alice_time"] - setup.lab("alice").delay(6))
    np.testing.assert_array_equal(a["setting"], truth["x"])
    np.testing.assert_array_equal(a["count"], truth["alice_count"])
    np.testing.assert_array_equal(a["output"], truth["alice_output"].astype(np.int8))


def test_bob_rounds_equal_truth(clean):
    truth, b = clean["truth"], clean["bob"].rounds
    assert len(b) == len(truth)
    np.testing.assert_array_equal(b["setting"], truth["y"])
    np.testing.assert_array_equal(b["count"], truth["bob_count"])
    np.testing.assert_array_equal(b["output"], truth["bob_output"].astype(np.int8))
    assert np.all(b["herald_time"] == -1)


def test_scenario_flags(scenario):
    truth, a = scenario["truth"], scenario["alice"].rounds
    assert len(a) == len(truth)  # every herald yields a round, with or without its ready tag
    a = _by_herald(a, truth)
    np.testing.assert_array_equal((a["flags"] & FLAG_HERALD_WITHOUT_READY) != 0, ~truth["alice_ready_present"])
    np.testing.assert_array_equal((a["flags"] & FLAG_SETTING_MISSING) != 0, truth["alice_setting_tags"] == 0)
    np.testing.assert_array_equal((a["flags"] & FLAG_SETTING_AMBIGUOUS) != 0, truth["alice_setting_tags"] == 2)
    single = truth["alice_setting_tags"] == 1
    np.testing.assert_array_equal(a["setting"][single], truth["x"][single])
    assert np.all(a["setting"][~single] == SETTING_NONE)
    assert (~truth["alice_ready_present"]).sum() > 0 and (truth["alice_setting_tags"] != 1).sum() > 0
    b = scenario["bob"].rounds  # Bob only sees the readies that arrived
    assert len(b) == int(truth["bob_ready_present"].sum())
    tb = truth[truth["bob_ready_present"]]
    np.testing.assert_array_equal((b["flags"] & FLAG_SETTING_MISSING) != 0, tb["bob_setting_tags"] == 0)


def test_lost_data_from_overflows(tmp_path_factory):
    # 1 ms overflows at 20 Hz: about one round in five has a window cut by one
    run = _run(tmp_path_factory, "overflow", overflow_rate_hz=20.0, overflow_duration_ps=1_000_000_000)
    truth, rounds = run["truth"], run["alice"].rounds
    # a herald whose clicks fell into an overflow is not in the data at all; every other one is a round
    found = np.isin(truth["herald_time"], rounds["herald_time"])
    assert found.sum() >= len(truth) - 2
    a = _by_herald(rounds, truth[found])
    lost = (a["flags"] & FLAG_LOST_DATA) != 0
    truth_lost = truth["alice_lost"][found]
    assert truth_lost.sum() >= 2
    # the engine's windows include the herald's acceptance window: a superset of the truth's lost rounds
    assert np.all(lost[truth_lost])
    assert run["summary_a"]["lost"]["overflow_begin"] >= 100
    assert run["summary_a"]["flags"]["lost_data"] == int(np.count_nonzero(rounds["flags"] & FLAG_LOST_DATA))


def test_dead_detector(tmp_path_factory):
    run = _run(tmp_path_factory, "dead", dead_channels_alice=(3,))  # arm a, V: no psi+ from arm a any more
    heralds, truth = run["alice"].heralds, run["truth"]
    assert run["summary_a"]["singles"][3] == 0
    assert not np.any((heralds["det1"] == 3) | (heralds["det2"] == 3))
    psi = heralds[heralds["pattern"] == PATTERN_PSI_PLUS]
    assert len(psi) >= len(truth) and np.all(np.isin(psi["det1"], (4, 5)) & np.isin(psi["det2"], (4, 5)))
    assert np.all(np.isin(truth["herald_time"], run["alice"].rounds["herald_time"]))


def test_rounds_file_contents(clean):
    alice = clean["alice"]
    assert alice.lab == "alice" and alice.role == "alice"
    assert alice.setup_hash == load_setup(clean["res"].setup).hash
    inputs = alice.provenance["inputs"]
    assert inputs[0]["name"] == "alice.dump" and inputs[0]["checksum"].startswith("xxh3_128_1mib:")
    # computed on another thread while processing: it must still be the file's own digest
    assert inputs[0]["checksum"] == block_checksum(clean["res"].alice.read_bytes())
    assert inputs[0]["size"] == clean["res"].alice.stat().st_size
    assert alice.summary["rounds"] == len(alice.rounds) == alice.summary["triggers"]
    assert alice.summary["tags"] == clean["summary_a"]["tags"] > 0
    h = alice.histograms
    assert h["arrival"].shape == (4, h["arrival_edges_ps"].size - 1)
    assert h["fluorescence_counts"].sum() == len(alice.rounds)
    assert h["arrival"].sum() > 0


def test_several_files_are_one_stream(clean, tmp_path):
    res = clean["res"]
    whole = read_all(res.alice)
    parts = list(split(whole, [len(whole) // 3, 2 * len(whole) // 3]))
    paths = []
    for i, part in enumerate(parts):
        paths.append(tmp_path / f"part{i}.dump")
        write_dump(paths[-1], part)
    process_files(paths, res.setup, "alice", tmp_path / "r.h5", chunk_size=10_000, progress=False, checksum=False)
    assert read_rounds(tmp_path / "r.h5").rounds.tolist() == clean["alice"].rounds.tolist()


def test_process_chunks_on_any_iterable(clean):
    setup = load_setup(clean["res"].setup)
    whole = read_all(clean["res"].bob)
    rounds = []

    class Keep:
        def append(self, r, h):
            rounds.append(r)

        def flush(self):
            pass

    pl = process_chunks(split(whole, range(0, len(whole), 1000)), setup.lab("bob"), Keep())
    assert pl.summary["rounds"] == len(clean["bob"].rounds)
    assert np.concatenate(rounds).tolist() == clean["bob"].rounds.tolist()


def test_cli_process(clean, tmp_path):
    res = clean["res"]
    out = tmp_path / "bob.h5"
    r = CliRunner().invoke(app, ["process", str(res.bob), "--setup", str(res.setup), "--lab", "bob",
                                 "--out", str(out), "--chunk-size", "5000"])
    assert r.exit_code == 0, r.output
    assert "rounds" in r.output and "ready tags" in r.output
    assert read_rounds(out).rounds.tolist() == clean["bob"].rounds.tolist()


def test_cli_user_mistakes_are_one_line(clean, tmp_path):
    from timetag.cli import main

    res = clean["res"]
    with pytest.raises(SystemExit) as exc:
        main(["process", str(res.bob), "--setup", str(res.setup), "--lab", "carol", "--out", str(tmp_path / "x.h5")])
    assert exc.value.code == 2


def test_mis_signed_bsm_channels_are_reported_with_a_hint(tmp_path):
    """Regression: Swabian falling edges are negative channels; a setup with the wrong sign gave BSM clicks 0 and
    300 ready_without_herald without a word."""
    import warnings as _warnings

    from timetag.formats.dump import RECORD_DTYPE

    simulator = pytest.importorskip("timetag.simulator")
    simulator.simulate(simulator.load_preset("lmu2022").with_overrides(speedup=20000), 30, 4, tmp_path / "sim")
    rec = np.fromfile(tmp_path / "sim" / "alice.dump", RECORD_DTYPE)
    flip = (rec["type"] == 0) & np.isin(rec["channel"], [2, 3, 4, 5])
    rec["channel"][flip] *= -1
    rec.tofile(tmp_path / "neg.dump")
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        summary = process_files([tmp_path / "neg.dump"], tmp_path / "sim" / "setup.toml", "alice",
                                tmp_path / "r.h5", progress=False, checksum=False)
    text = [str(w.message) for w in caught]
    assert any("saw no tags" in t and "-2, -3, -4, -5" in t and "falling edges" in t for t in text), text
    unused = {c["channel"]: c["tags"] for c in summary["channels"]["channels"] if c["roles"] == ["unused"]}
    assert set(unused) == {-2, -3, -4, -5} and sum(unused.values()) == int(flip.sum())


def test_a_globbed_rotated_series_is_read_in_recording_order(tmp_path):
    """Regression: `timetag process raw/alice*.dump` lists alice.dump last and the run stopped 'out of order'."""
    from timetag.formats import order_series
    from timetag.formats.dump import RECORD_DTYPE

    simulator = pytest.importorskip("timetag.simulator")
    simulator.simulate(simulator.load_preset("lmu2022").with_overrides(speedup=20000), 30, 5, tmp_path / "sim")
    rec = np.fromfile(tmp_path / "sim" / "alice.dump", RECORD_DTYPE)
    (tmp_path / "raw").mkdir()
    for i, part in enumerate(np.array_split(rec, 3)):
        part.tofile(tmp_path / "raw" / ("alice.dump" if i == 0 else f"alice.{i}.dump"))
    globbed = sorted((tmp_path / "raw").glob("alice*.dump"))
    assert [p.name for p in globbed] == ["alice.1.dump", "alice.2.dump", "alice.dump"]
    assert [p.name for p in order_series(globbed)] == ["alice.dump", "alice.1.dump", "alice.2.dump"]
    assert order_series([tmp_path / "b.dump", tmp_path / "a.dump"]) == [tmp_path / "b.dump", tmp_path / "a.dump"]
    r = CliRunner().invoke(app, ["process", *map(str, globbed), "--setup", str(tmp_path / "sim" / "setup.toml"),
                                 "--lab", "alice", "--out", str(tmp_path / "r.h5"), "-q"])
    assert r.exit_code == 0, r.output
    process_files([tmp_path / "sim" / "alice.dump"], tmp_path / "sim" / "setup.toml", "alice", tmp_path / "ref.h5",
                  progress=False, checksum=False)
    assert read_rounds(tmp_path / "r.h5").rounds.tobytes() == read_rounds(tmp_path / "ref.h5").rounds.tobytes()


def test_progress_tells_the_rounds_made_so_far(clean, tmp_path):
    # the CLI's bar shows "N rounds": the rounds written so far, growing to the run's total
    res = clean["res"]
    seen = []
    summary = process_files([res.alice], res.setup, "alice", tmp_path / "r.h5", chunk_size=20_000,
                            progress=lambda done, total, rounds: seen.append((done, total, rounds)), checksum=False)
    assert len(seen) > 2
    rounds = [r for _, _, r in seen]
    assert rounds == sorted(rounds) and rounds[-1] > 0
    assert rounds[-1] <= summary.rounds
    assert seen[-1][0] == seen[-1][1]  # every record read
