"""Which two rounds files belong together: the setups' ``[meta] run``, else the same setup, else ``same_run``."""
from __future__ import annotations

from dataclasses import replace

import pytest

from estimate_cases import labs
from timetag.errors import EstimationError, SetupError
from timetag.estimators import estimate
from timetag.roundsfile import read_rounds, write_rounds
from timetag.setupfile import loads_setup, setup_from_dict
from timetag.simulator import load_preset
from timetag.simulator.run import build_setup


def _setup(run="", threshold=None):
    s = replace(build_setup(load_preset("lmu2022"), (3, 3)), run=run)
    if threshold is not None:
        s = s.with_lab("alice", round=replace(s.lab("alice").round, threshold=threshold))
    return s


def _pair(tmp_path, setup_a, setup_b):
    """Alice's rounds written as processed with setup_a, Bob's with setup_b (provenance as `process` writes it)."""
    from timetag.provenance import provenance

    A, B = labs(n=2000, seed=1)
    pa = write_rounds(tmp_path / "a.h5", A, lab="alice", role="alice", provenance=provenance(setup=setup_a))
    pb = write_rounds(tmp_path / "b.h5", B, lab="bob", role="bob", provenance=provenance(setup=setup_b))
    return pa, pb


def test_the_run_id_round_trips_through_the_setup_and_the_rounds_file(tmp_path):
    s = _setup(run="campaign 7, night 3")
    assert loads_setup(s.dumps()).run == "campaign 7, night 3"
    pa, _ = _pair(tmp_path, s, s)
    assert read_rounds(pa).run == "campaign 7, night 3"
    assert "run" not in _setup().to_dict()["meta"]  # a setup that names no run writes no key


def test_a_run_id_that_is_not_a_string_is_refused():
    d = _setup().to_dict()
    d["meta"]["run"] = 7
    with pytest.raises(SetupError, match="meta.run"):
        setup_from_dict(d)


def test_recalibrated_setup_of_the_same_run_is_accepted_and_both_setups_are_named(tmp_path):
    a, b = _setup(run="r1", threshold=5), _setup(run="r1")
    assert a.hash != b.hash
    est = estimate(*_pair(tmp_path, a, b), samples=0)
    note = next(n for n in est.join.notes if "two setups" in n)
    assert a.hash[:12] in note and b.hash[:12] in note and "'r1'" in note


def test_different_runs_are_refused_by_run_id_even_with_equal_setups(tmp_path):
    with pytest.raises(EstimationError, match="different runs: run 'r1'.*'r2'"):
        estimate(*_pair(tmp_path, _setup(run="r1"), _setup(run="r2")), samples=0)


def test_unnamed_runs_with_different_setups_are_refused_unless_the_caller_vouches(tmp_path):
    pa, pb = _pair(tmp_path, _setup(threshold=5), _setup())
    with pytest.raises(EstimationError, match=r"different runs: setup hash.*\[meta\] run.*--same-run"):
        estimate(pa, pb, samples=0)
    est = estimate(pa, pb, samples=0, same_run=True)
    assert any("one run (--same-run)" in n for n in est.join.notes)


def test_simulate_names_its_run(tmp_path):
    from timetag.simulator.run import simulate

    res = simulate(load_preset("lmu2022"), 20, seed=4, out_dir=tmp_path / "run", speedup=20000)
    run = loads_setup(res.setup.read_text()).run
    assert "seed 4" in run and "rounds 20" in run


def test_the_command_line_vouches_with_same_run(tmp_path, capsys):
    from timetag.cli import main

    pa, pb = _pair(tmp_path, _setup(threshold=5), _setup())
    with pytest.raises(SystemExit) as refused:
        main(["estimate", str(pa), str(pb), "--samples", "0"])
    assert refused.value.code == 2 and "--same-run" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ok:
        main(["estimate", str(pa), str(pb), "--samples", "0", "--same-run"])
    assert ok.value.code == 0 and "two setups" in capsys.readouterr().out
