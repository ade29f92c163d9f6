"""Rounds-only simulation: the same physical model as the tag-level simulator (expected S and Q), no raw tags."""
from __future__ import annotations

import math

import numpy as np
import pytest
from typer.testing import CliRunner

from timetag.cli import app
from timetag.errors import OutputError
from timetag.estimators.chsh import chsh, correlators, qber
from timetag.estimators.counts import tally
from timetag.estimators.join import join_rounds, sift
from timetag.roundsfile import read_rounds
from timetag.simulator import expected_stats, load_preset
from timetag.simulator.rounds_only import simulate_rounds


def _measured(res):
    a, b = read_rounds(res.alice), read_rounds(res.bob)
    j = join_rounds(a, b)
    s = sift(a, b, j)
    n = tally(s.x, s.y, s.a, s.b)
    return a, b, j, chsh(correlators(n)), qber(n)[2], int(s.stats["used"])


@pytest.mark.parametrize("overrides", [{}, {"state_visibility": 0.9, "speedup": 3e4, "herald_patterns": ["psi+", "psi-"],
                                            "bob_clock_drift_ppm": 0.4}])
def test_S_and_Q_match_the_analytic_expectation(tmp_path, overrides):
    p = load_preset("lmu2022")
    if overrides:
        p = p.with_overrides(**overrides)
    n = 400_000
    res = simulate_rounds(p, n, 3, tmp_path)
    exp = expected_stats(p)
    a, b, j, S, Q, used = _measured(res)
    assert j.n_pairs == used == n  # every round pairs (no missing ready tags, no setting problems here)
    # statistical errors: S from n/2 test rounds (4 correlators of n/8 each), Q from n/4 key rounds
    sd_S = math.sqrt(sum((1 - e ** 2) / (n / 8) for e in (0.6, 0.6, 0.6, 0.6)))
    sd_Q = math.sqrt(exp["expected_Q"] * (1 - exp["expected_Q"]) / (n / 4))
    assert abs(S - exp["expected_S"]) < 5 * sd_S, (S, exp["expected_S"], sd_S)
    assert abs(Q - exp["expected_Q"]) < 5 * sd_Q, (Q, exp["expected_Q"], sd_Q)
    if overrides:  # both patterns announced: psi- heralds present and relabelled by the sift
        assert set(np.unique(a.rounds["pattern"])) == {1, 2}
    # a model that ignored the noise heralds or the read-out would be far off: the tolerance can fail
    assert 5 * sd_S < 0.04 and 5 * sd_Q < 0.005  # (2.3 % noise heralds alone move S by 0.06)


def test_files_name_the_run_and_pair_and_same_seed_same_rounds(tmp_path):
    p = load_preset("lmu2022")
    r1 = simulate_rounds(p, 5000, 7, tmp_path / "a")
    r2 = simulate_rounds(p, 5000, 7, tmp_path / "b")
    r3 = simulate_rounds(p, 5000, 8, tmp_path / "c")
    a1, b1 = read_rounds(r1.alice), read_rounds(r1.bob)
    assert (a1.role, b1.role) == ("alice", "bob")
    assert a1.run == b1.run == "simulate lmu2022 seed 7 rounds 5000 speedup 1 rounds-only"
    assert a1.setup_hash == b1.setup_hash and a1.setup_text and "[labs.alice]" in a1.setup_text
    assert a1.provenance["rounds_only"] is True and a1.provenance["seed"] == 7
    assert np.array_equal(a1.rounds, read_rounds(r2.alice).rounds)
    assert np.array_equal(b1.rounds, read_rounds(r2.bob).rounds)
    assert not np.array_equal(a1.rounds["output"], read_rounds(r3.alice).rounds["output"])
    # Bob's clock: offset + link delay - ready latency, as the tag-level simulator
    j = join_rounds(a1, b1)
    assert j.offset_ps == pytest.approx(p.bob_clock_offset_ps + p.link_delay_ps - p.ready_latency_ps, abs=1e3)
    # the lmu2022 rate: ~80 s per round -> 5000 rounds fit the int64 range uncompressed
    assert r1.stats["time_scale"] == 1.0
    assert r1.stats["simulated_seconds"] / 5000 == pytest.approx(expected_stats(p)["seconds_per_round"], rel=0.05)


def test_long_runs_are_compressed_in_time_and_say_so(tmp_path):
    res = simulate_rounds(load_preset("lmu2022"), 200_000, 1, tmp_path)
    assert 0 < res.stats["time_scale"] < 1
    a = read_rounds(res.alice)
    assert a.provenance["time_scale"] == res.stats["time_scale"]
    t = a.rounds["trigger_time"]
    assert t[-1] < 2 ** 62 + 10 ** 13 and np.all(np.diff(t) > 0)


def test_missing_ready_and_settings_are_modelled(tmp_path):
    p = load_preset("lmu2022").with_overrides(bob_ready_missing_prob=0.05, setting_missing_prob=0.02,
                                               setting_double_prob=0.01)
    res = simulate_rounds(p, 20_000, 2, tmp_path)
    a, b = read_rounds(res.alice), read_rounds(res.bob)
    assert len(b.rounds) == pytest.approx(0.95 * 20_000, rel=0.03) and len(a.rounds) == 20_000
    assert np.mean(a.rounds["setting"] < 0) == pytest.approx(0.03, abs=0.006)
    j = join_rounds(a, b)
    assert j.n_pairs == len(b.rounds)  # Bob's missing rounds cost exactly those rounds


def test_cli_rounds_only(tmp_path):
    out = tmp_path / "o"
    r = CliRunner().invoke(app, ["simulate", "--rounds-only", "--rounds", "3000", "--out", str(out), "--seed", "2"])
    assert r.exit_code == 0, r.output
    assert "expected S" in r.output and sorted(x.name for x in out.iterdir()) == ["alice_rounds.h5", "bob_rounds.h5"]
    r = CliRunner().invoke(app, ["simulate", "--rounds-only", "--rounds", "3000", "--out", str(out)])
    assert r.exit_code != 0 and isinstance(r.exception, OutputError)
