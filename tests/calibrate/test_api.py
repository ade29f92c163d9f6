"""calibrate_run and `timetag calibrate` on small synthetic tag files with known truth."""
from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from calibrate.api import calibrate_run
from calibrate.synthetic import SynthParams, make_setup, make_streams
from calibrate.thresholds import misclassification, optimal_threshold
from timetag.cli import app
from timetag.errors import CalibrationError
from timetag.formats.dump import write_dump
from timetag.setupfile import load_setup


@pytest.fixture(scope="module", params=["every", "conditional"])
def run(request, tmp_path_factory):
    return _make_run(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def run_every(tmp_path_factory):
    return _make_run("every", tmp_path_factory)


def _make_run(mode, tmp_path_factory):
    p = SynthParams(duration_ps=4_000_000_000_000, photon_prob=0.02, sync_mode=mode, seed=7)
    a, b, truth = make_streams(p)
    d = tmp_path_factory.mktemp(f"cal_{mode}")
    write_dump(d / "alice.dump", a)
    write_dump(d / "bob.dump", b)
    bad = dict(p.delays)
    bad[3] += 3_000
    bad[5] -= 2_000
    setup = make_setup(p, delays=bad, thresholds=(1, 1))
    setup.save(d / "setup.toml")
    return p, d, setup, truth


def test_calibrate_run_recovers_truth(run):
    p, d, setup, truth = run
    new, rep = calibrate_run([d / "alice.dump"], [d / "bob.dump"], setup, strict=True)
    cal = rep.results["alice"]
    lab = new.lab("alice")
    # delays: relative to the reference (channel 2, correctly set), within 4 sigma of the fit
    for c in (3, 4, 5):
        assert abs(lab.delays_ps[c] - p.delays[c]) < 4 * cal.delays.err[c], (c, lab.delays_ps[c], p.delays[c])
    assert lab.delays_ps[2] == p.delays[2]
    # window: after the pulse rise, a few lifetimes long, sign per sync reference
    w = cal.window
    base = 0 if p.sync_mode == "every" else -p.period_ps
    assert base + 5_000 < w.start < base + 45_000 and base + 60_000 < w.stop < base + 200_000
    # thresholds: the truth-optimal ones (or one away with equal true error)
    for name, (m0, m1) in (("alice", (p.mean_dark, p.mean_bright)), ("bob", (p.bob_mean_dark, p.bob_mean_bright))):
        truth_par = (p.p_bright, m0 + _dark_in_window(p, name), m1 + _dark_in_window(p, name), 0.0, 0.0)
        t_true = optimal_threshold(truth_par)
        err = misclassification(truth_par, 100)
        got = new.lab(name).round.threshold
        assert got == t_true or (abs(got - t_true) == 1 and err[got] - err[t_true] < 0.2 * err[t_true] + 1e-3)
    # clock: t_bob = t_alice + offset + drift t_alice on corrected ready times
    clk = rep.results["clock"]
    expected_offset = p.bob_offset_ps + p.link_ps * (1 + p.bob_drift)
    assert abs(clk.offset_ps - expected_offset) < 1_000
    assert abs(clk.drift - p.bob_drift) < 1e-8
    assert new.extra["clock"]["offset_ps"] == int(round(clk.offset_ps))
    # dark counts: the synthetic rate per detector (2 kHz)
    dk = cal.dark
    if p.sync_mode == "every":
        assert np.all(np.abs(dk.rate_hz - p.dark_hz) < 4 * dk.rate_err_hz + 0.02 * p.dark_hz)
    else:
        # conditional sync recording: the syncs are caused by clicks, so the excluded pulse regions go on the
        # reconstructed attempt grid (calibrate.darkcounts); before that the estimate was biased low (< 20 %)
        assert np.all((dk.rate_hz > 0.8 * p.dark_hz) & (dk.rate_hz < p.dark_hz + 4 * dk.rate_err_hz))
        assert np.all(np.abs(dk.rate_hz - p.dark_hz) < 4 * dk.rate_err_hz + 0.02 * p.dark_hz)
        assert dk.period_ps == pytest.approx(p.period_ps, abs=1e-6)
        assert not any("dark counts" in w for w in rep.warnings)
        assert "attempt_grid" in rep.text()
    # the report lists every changed value with old -> new
    text = rep.text()
    line = next(ln for ln in text.splitlines() if "alice.delays_ps.3 " in ln)
    assert line.split()[1:4] == [str(setup.lab("alice").delays_ps[3]), "->", str(lab.delays_ps[3])]
    assert "alice.round.threshold" in text and "clock.offset_ps" in text


def _dark_in_window(p, name):
    f0, f1 = p.fluo_window_ps
    n_det = 4 if name == "alice" else 1
    return p.dark_hz * n_det * (f1 - f0) * 1e-12


def test_saved_setup_round_trips(run, tmp_path):
    p, d, setup, truth = run
    new, rep = calibrate_run([d / "alice.dump"], [d / "bob.dump"], setup, steps=("delays", "thresholds", "clock"))
    new.save(tmp_path / "cal.toml")
    again = load_setup(tmp_path / "cal.toml")
    assert again.lab("alice").delays_ps == new.lab("alice").delays_ps
    assert again.lab("bob").round.threshold == new.lab("bob").round.threshold
    assert again.extra["clock"]["drift"] == pytest.approx(new.extra["clock"]["drift"])
    # window untouched when not asked for
    assert again.lab("alice").herald == setup.lab("alice").herald


def test_cli_calibrate_with_plots(run_every, tmp_path):
    p, d, setup, truth = run_every
    out = tmp_path / "cal.toml"
    res = CliRunner().invoke(app, ["calibrate", str(d / "alice.dump"), str(d / "bob.dump"), "--setup",
                                   str(d / "setup.toml"), "--out", str(out), "--plots", str(tmp_path / "plots")])
    assert res.exit_code == 0, res.output
    assert "->" in res.output and "clock.offset_ps" in res.output
    cal = load_setup(out)
    assert cal.lab("alice").round.threshold != 1
    names = sorted(x.name for x in (tmp_path / "plots").iterdir())
    assert names == ["alice_arrival.png", "alice_counts.png", "alice_fom.png", "bob_counts.png",
                     "clock_residuals.png"]
    assert all((tmp_path / "plots" / n).stat().st_size > 5000 for n in names)


def test_cli_one_lab(run_every, tmp_path):
    p, d, setup, truth = run_every
    out = tmp_path / "bob.toml"
    res = CliRunner().invoke(app, ["calibrate", str(d / "bob.dump"), "--lab", "bob", "--setup",
                                   str(d / "setup.toml"), "--out", str(out), "--steps", "thresholds"])
    assert res.exit_code == 0, res.output
    cal = load_setup(out)
    assert cal.lab("bob").round.threshold != 1
    assert cal.lab("alice") == setup.lab("alice")


def test_no_overlap_between_labs_is_a_clear_error(tmp_path):
    p = SynthParams(duration_ps=1_000_000_000_000, photon_prob=0.005, seed=9)
    a, b, _ = make_streams(p)
    # Bob's tags from a different run: shuffle his trigger pattern
    p2 = SynthParams(duration_ps=1_000_000_000_000, photon_prob=0.005, seed=99)
    _, b2, _ = make_streams(p2)
    write_dump(tmp_path / "a.dump", a)
    write_dump(tmp_path / "b.dump", b2)
    with pytest.raises(CalibrationError, match="clock"):
        calibrate_run([tmp_path / "a.dump"], [tmp_path / "b.dump"], make_setup(p), steps=("clock",), strict=True)


def test_too_few_counts_is_a_clear_error(tmp_path):
    p = SynthParams(duration_ps=200_000_000_000, photon_prob=0.001, ready_rate_hz=20, seed=4)
    a, b, _ = make_streams(p)
    write_dump(tmp_path / "a.dump", a)
    setup = make_setup(p)
    with pytest.raises(CalibrationError, match="photons above background|rounds"):
        calibrate_run([tmp_path / "a.dump"], None, setup, steps=("delays",), strict=True)
    with pytest.raises(CalibrationError, match="rounds"):
        calibrate_run([tmp_path / "a.dump"], None, setup, steps=("thresholds",), strict=True)
    # not strict: a step that cannot succeed is skipped with its reason; when none succeeds, nothing is written:
    # the run refuses with every reason (issue 21)
    with pytest.raises(CalibrationError, match="nothing calibrated.*photons above background.*rounds"):
        calibrate_run([tmp_path / "a.dump"], None, setup, steps=("delays", "thresholds"))
    new, rep = calibrate_run([tmp_path / "a.dump"], None, setup, steps=("delays", "thresholds", "darkcounts"))
    assert new.lab("alice") == setup.lab("alice")
    assert any("delays not calibrated" in w for w in rep.warnings)
    res = CliRunner().invoke(app, ["calibrate", str(tmp_path / "a.dump"), "--lab", "alice", "--setup",
                                   str(_save(setup, tmp_path)), "--out", str(tmp_path / "o.toml"), "--strict"])
    assert res.exit_code != 0


def _save(setup, tmp_path):
    setup.save(tmp_path / "s.toml")
    return tmp_path / "s.toml"


def test_unknown_step():
    p = SynthParams()
    with pytest.raises(CalibrationError, match="unknown calibration step"):
        calibrate_run(None, None, make_setup(p), steps=("magic",))


def test_progress_reports_every_record_of_each_lab(run_every):
    _, d, setup, _ = run_every
    calls = []
    calibrate_run([d / "alice.dump"], [d / "bob.dump"], setup, steps=("thresholds",), chunk_size=2_000,
                  progress=lambda lab, done, total: calls.append((lab, done, total)))
    for lab in ("alice", "bob"):
        mine = [(done, total) for name, done, total in calls if name == lab]
        records = (d / f"{lab}.dump").stat().st_size // 16
        assert len(mine) >= 2 and all(total == records for _, total in mine), (lab, mine[:3])
        dones = [done for done, _ in mine]
        assert dones == sorted(dones) and dones[-1] == records


def test_cli_keeps_the_comments_of_the_setup_it_rewrites(run_every, tmp_path):
    _, d, setup, _ = run_every
    commented = tmp_path / "setup.toml"
    commented.write_text("# written by hand: the December run\n" + (d / "setup.toml").read_text())
    out = tmp_path / "cal.toml"
    res = CliRunner().invoke(app, ["calibrate", str(d / "bob.dump"), "--lab", "bob", "--setup", str(commented),
                                   "--out", str(out), "--steps", "thresholds", "-q"])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert text.startswith("# written by hand: the December run\n")
    cal = load_setup(out)
    assert cal.lab("bob").round.threshold != 1 and cal.lab("alice") == setup.lab("alice")


def test_fom_and_pulse_width_as_given_or_by_default(run_every):
    """calibrate_run takes the window's FOM as FomParams or as a dict of its fields (the command line's way: it
    need not import the fits' modules), and the default pulse width is the literature's."""
    from calibrate.pulse import PULSE_FWHM_PS
    from calibrate.window import FomParams

    p, d, setup, truth = run_every
    args = ([d / "alice.dump"], [d / "bob.dump"], setup)
    fom = dict(v_state=0.9, ionisation_efficiency=0.97, p_double=0.05)
    by_dict, rep_d = calibrate_run(*args, fom=fom)
    by_cls, rep_c = calibrate_run(*args, fom=FomParams(**fom), pulse_fwhm_ps=PULSE_FWHM_PS)
    default, rep_0 = calibrate_run(*args)
    assert by_dict == by_cls and rep_d.text() == rep_c.text()
    assert "v_state=0.9 " in rep_d.text() and "v_state=0.94 " in rep_0.text()
    free, rep_f = calibrate_run(*args, pulse_fwhm_ps=None)
    assert rep_f.text() != rep_c.text()


def test_calibrate_api_leaves_the_fits_and_figures_unimported():
    """Importing calibrate.api (the command does, before the tags are read) loads no scipy fit module, no
    matplotlib, no simulator: calibrate_run imports the fits' modules in a thread while the tags are read."""
    import subprocess
    import sys

    code = ("import sys, calibrate.api; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('matplotlib', 'h5py') or m.startswith(('scipy.interpolate', 'scipy.optimize', 'scipy.special', "
            "'timetag.simulator', 'calibrate.delays', 'calibrate.window', 'calibrate.thresholds', "
            "'calibrate.pulse', 'calibrate.plots', 'timetag.estimators.plots'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_threshold_fit_made_once_per_lab(run_every, monkeypatch):
    """The window's FOM needs the labs' read-out contrast before the thresholds step: one fit serves both."""
    import calibrate.thresholds as th

    p, d, setup, truth = run_every
    calls = []
    real = th.choose_threshold

    def counted(hist, *a, **k):
        calls.append(k.get("what"))
        return real(hist, *a, **k)

    monkeypatch.setattr(th, "choose_threshold", counted)
    new, rep = calibrate_run([d / "alice.dump"], [d / "bob.dump"], setup)
    assert sorted(calls) == ["lab 'alice' fluorescence counts", "lab 'bob' fluorescence counts"]
    assert new.lab("alice").round.threshold == rep.results["alice"].threshold.threshold
