"""Issue 21: calibration right at every scale and refusing what it cannot fit.

Each test fails on the calibration before the issue: the conditional-sync edge behind a stray click (480 ps off
with a 4 ps error bar), an edge low on the pulse's rise refused, the pulse fit's decay 4 % short without the
double emissions, numbers written for a file without syncs.  The pull study over seeds and scales is
``benchmarks/validate_calibration.py`` (minutes; not a unit test).
"""
from __future__ import annotations

import numpy as np
import pytest

from calibrate.delays import calibrate_delays, locate_edge, locate_edges
from calibrate.pulse import FWHM_TO_SIGMA, JITTER_PS, double_cdfs, signal_cdf
from timetag.chunk import TagChunk
from timetag.cli import main
from timetag.errors import CalibrationError
from timetag.formats import iter_stream
from timetag.formats.dump import write_dump
from timetag.simulator import params as sim_params
from timetag.simulator import run as sim_run

SIGMA = 21_000 * FWHM_TO_SIGMA
TAU = 26_200.0
CENTRE = 12_000.0


def _arrivals(rng, n, double=0.12):
    """Click times after the sync tick as the simulator draws them: single emissions (Gaussian excitation +
    Exp(tau) + jitter) and double emissions (first photon uniform between the excitation and the pulse end, the
    last one an exponential decay after it; both detected alike)."""
    n_d = int(n * double / 2)
    n_s = n - 2 * n_d
    single = CENTRE + SIGMA * rng.standard_normal(n_s) + rng.exponential(TAU, n_s)
    exc = CENTRE + SIGMA * rng.standard_normal(n_d)
    end = CENTRE + 21_000 / 2
    t1 = np.where(exc < end, exc + rng.uniform(0, 1, n_d) * (end - exc), exc)
    first = t1 + JITTER_PS * rng.standard_normal(n_d)
    last = t1 + rng.exponential(TAU, n_d) + JITTER_PS * rng.standard_normal(n_d)
    return np.concatenate([single + JITTER_PS * rng.standard_normal(n_s), first, last])


def test_edge_behind_a_stray_click():
    """A lone click 540 ps before the edge used to end the edge search there (issue 21: 480 ps off, +- 4 ps)."""
    rng = np.random.default_rng(11)
    edges = np.arange(-10_000, 10_001, 10).astype(float)
    t = rng.uniform(0, 10_000, 20_000)             # a dense step at 0
    t = np.concatenate([t, [-540.0]])              # and one stray click before it
    got, err = locate_edge(np.histogram(t, edges)[0], edges)
    assert abs(got) < max(3 * err, 10), (got, err)


def test_edge_low_on_the_pulse_rise():
    """The sync tick cuts the pulse where its density is a few % of the peak: still a step, found at its place
    (issue 21: refused as '0.028 of the peak' on the project's own simulation)."""
    rng = np.random.default_rng(12)
    fine = np.arange(-60_000, 200_001, 10).astype(float)
    shifts = (0.0, -900.0, 2_500.0, -2_000.0)
    hists = []
    for s in shifts:
        t = _arrivals(rng, 400_000) - CENTRE - 6_000 + s    # the edge at s sits ~6 ns before the pulse centre
        t = t[t >= s]
        hists.append(np.histogram(t, fine)[0])
    located = locate_edges(hists, fine)
    for (pos, err), s in zip(located, shifts):
        assert abs(pos - s) < max(4 * err, 15), (pos, s, err)


def test_smooth_rise_is_no_edge():
    rng = np.random.default_rng(13)
    fine = np.arange(-60_000, 200_001, 10).astype(float)
    hists = [np.histogram(_arrivals(rng, 50_000) - CENTRE, fine)[0] for _ in range(4)]
    with pytest.raises(CalibrationError, match="no conditional-sync edge"):
        locate_edges(hists, fine)


def test_double_emission_model_is_a_distribution():
    x = np.linspace(-80_000, 400_000, 2001)
    first, last = double_cdfs(x, SIGMA, TAU)
    assert np.all(np.diff(first) >= -1e-12) and np.all(np.diff(last) >= -1e-12)
    assert first[-1] == pytest.approx(1, abs=1e-6) and last[-1] == pytest.approx(1, abs=1e-4)
    # the first photon leaves inside the pulse: all of it before the pulse end + a few jitter widths
    assert double_cdfs(np.array([4 * SIGMA]), SIGMA, TAU)[0][0] > 0.999
    assert double_cdfs(np.array([4 * SIGMA]), SIGMA, TAU)[1][0] < 0.9
    c = signal_cdf(x, 0.0, SIGMA, TAU, 0.1)
    assert c[0] == pytest.approx(0, abs=1e-9) and c[-1] == pytest.approx(1, abs=1e-4)


def test_pulse_fit_recovers_the_decay_time_and_centre():
    """Conditional-sync histograms (cut at each detector's edge) of the simulator's arrival model: the decay
    time and the pulse centre after the sync tick come back within their error bars (issue 21: decay
    25173 +- 8 ps for 26200 with the EMG alone)."""
    rng = np.random.default_rng(14)
    coarse = np.arange(-2_000, 240_001, 500)
    fine = np.arange(-5_000, 10_001, 10)
    shift = {2: 0, 3: -1_300, 4: 700, 5: 1_500}    # corrected = true - delay error
    counts, fh = [], []
    for c in (2, 3, 4, 5):
        t = _arrivals(rng, 300_000)
        t = t[t >= 0] + shift[c]                   # nothing before the attempt's own sync tick
        counts.append(np.histogram(t, coarse)[0])
        fh.append(np.histogram(t, fine)[0])
    res = calibrate_delays(np.array(counts), coarse, [2, 3, 4, 5], {2: 0, 3: 0, 4: 0, 5: 0},
                           edge_hist=(np.array(fh), fine), fix_sigma=float(np.hypot(SIGMA, JITTER_PS)))
    assert res.method == "edge"
    for c in (3, 4, 5):
        assert abs(res.new[c] - res.new[2] - (shift[c] - shift[2])) <= max(4 * res.err[c], 10), res
    f = res.fits[0]
    assert abs(f.tau - TAU) < 4 * f.err["tau"], (f.tau, f.err["tau"])
    assert abs((f.mu - f.cut) - CENTRE) < 4 * f.err["mu"] + 20, (f.mu - f.cut, f.err["mu"])
    assert 0.05 < f.double < 0.2


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    p = sim_params.load_preset("lmu2022")
    out = tmp_path_factory.mktemp("honest")
    return sim_run.simulate(p, n_rounds=60, seed=5, out_dir=out, speedup=20000.0)


def _cli(capsys, argv):
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out + out.err


def test_no_syncs_refuses_and_writes_nothing(small_run, tmp_path, capsys):
    """A file without sync tags: no arrival histogram, no pulse region to leave out of the dark counts -- the
    command refuses with the reason and writes nothing (issue 21: 'only 0 photons above background', dark
    counts 1131 +- 15 Hz for 25 Hz, and a setup written)."""
    nosync = tmp_path / "nosync.dump"

    def chunks():
        for c in iter_stream([small_run.alice]):
            if isinstance(c, TagChunk):
                keep = c.channel != 1
                yield TagChunk(c.time[keep], c.channel[keep])

    write_dump(nosync, chunks())
    out = tmp_path / "cal.toml"
    code, text = _cli(capsys, ["calibrate", str(nosync), "--lab", "alice", "--setup", str(small_run.setup),
                               "--out", str(out), "--steps", "delays,window,darkcounts"])
    assert code != 0
    errors = [line for line in text.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "no sync tags" in errors[0] and "nothing written" in errors[0], text
    assert not out.exists() and not list(tmp_path.glob("cal.toml*"))
    # with a step that can succeed the others are reported as not calibrated, and no dark-count number appears
    code, text = _cli(capsys, ["calibrate", str(nosync), "--lab", "alice", "--setup", str(small_run.setup),
                               "--out", str(out), "--steps", "thresholds,darkcounts"])
    assert code == 0, text
    assert "darkcounts not calibrated" in text and " Hz" not in text


def test_common_shift_is_reported(small_run, tmp_path, capsys):
    """All BSM delays shifted alike: the relative delays stay, and the output says that the common shift is left
    to the window."""
    from timetag.setupfile import load_setup
    s = load_setup(small_run.setup)
    a = s.lab("alice")
    d = dict(a.delays_ps)
    for c in (2, 3, 4, 5):
        d[c] += 3_000
    (tmp_path / "shifted.toml").write_text(s.with_lab("alice", delays_ps=d).dumps())
    out = tmp_path / "cal.toml"
    code, text = _cli(capsys, ["calibrate", str(small_run.alice), "--lab", "alice", "--setup",
                               str(tmp_path / "shifted.toml"), "--out", str(out), "--steps", "delays"])
    assert code == 0, text
    assert "common shift" in text and "left to the window" in text, text
