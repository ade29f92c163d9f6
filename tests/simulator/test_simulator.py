"""The simulator against its own physics: timing, BSM rules, S/Q vs the analytic expectation, determinism."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from timetag.formats import read_all
from timetag.setupfile import load_setup
from timetag.simulator import (LinkSimulator, expected_correlator, expected_stats, load_preset, read_truth,
                               simulate)
from timetag.simulator.params import ALICE_BSM, ALICE_SYNC

ARM = {2: "a", 3: "a", 4: "b", 5: "b"}
POL = {2: "H", 3: "V", 4: "H", 5: "V"}


@pytest.fixture(scope="module")
def preset():
    return load_preset("lmu2022")


@pytest.fixture(scope="module")
def every_run(tmp_path_factory, preset):
    out = tmp_path_factory.mktemp("every")
    p = preset.with_overrides(sync_mode="every")
    # moderate speedup: at very high photon rates dead time after an early photon distorts the decay shape
    return simulate(p, 300, 11, out, speedup=3e3)


@pytest.fixture(scope="module")
def big_run(tmp_path_factory, preset):
    out = tmp_path_factory.mktemp("big")
    return simulate(preset, 5000, 2024, out, speedup=3e4)


def test_preset_reproduces_paper_scale(preset):
    e = expected_stats(preset)
    assert abs(e["expected_S"] - 2.578) < 2 * 0.075      # inside the paper's 2-sigma interval
    assert abs(e["expected_Q"] - 0.078) < 2 * 0.009
    assert 70 < e["seconds_per_round"] < 95               # paper: one event per ~82 s
    assert 3.5 < e["time_filter_rate_cost"] < 5.0         # paper: the post-pulse filter costs ~4
    assert 10 <= e["readout_error_alice"][0] * 1000 <= 30  # ionisation inefficiency dominates e0


def test_setup_loads_and_matches_channel_map(every_run):
    s = load_setup(every_run.setup)
    a, b = s.lab("alice"), s.lab("bob")
    assert a.sync_channel == ALICE_SYNC and a.ready_channel == 6 and a.setting_channels == (7, 8, 9, 10)
    assert {(d.channel, d.arm, d.pol) for d in a.bsm} == {(c, ARM[c], POL[c]) for c in ALICE_BSM}
    assert b.fluorescence_channels == (1,) and b.setting_channels == (3, 4) and b.ready_channel == 2
    assert a.herald.sync_reference == "previous" and a.herald.window_start_ps > 0
    assert a.round.trigger == "both" and b.round.trigger == "ready"


def test_conditional_setup_uses_next_sync(big_run):
    a = load_setup(big_run.setup).lab("alice")
    assert a.herald.sync_reference == "next" and a.herald.window_stop_ps <= 0


def _sync_offsets(run):
    """Corrected click time minus the previous recorded sync (every-sync mode) for every BSM click."""
    s = load_setup(run.setup).lab("alice")
    tags = read_all(run.alice)
    t = tags.time - np.array([s.delay(c) for c in range(11)])[tags.channel]
    sync = np.sort(t[tags.channel == ALICE_SYNC])
    clicks = np.isin(tags.channel, ALICE_BSM)
    tc = t[clicks]
    i = np.searchsorted(sync, tc, side="right") - 1
    ok = i >= 0
    return tc[ok] - sync[i[ok]]


def test_arrival_histogram_is_pulse_plus_exponential_decay(every_run, preset):
    dt = _sync_offsets(every_run)
    # well after the pulse the arrival density is exp(-t/tau): maximum-likelihood fit of a truncated
    # exponential on [60, 200) ns
    a, b = 60_000, 200_000
    x = dt[(dt >= a) & (dt < b)] - a
    span = b - a
    tau = brentq(lambda t: t - span / np.expm1(span / t) - x.mean(), 1_000, 1e6)
    sigma = tau / math.sqrt(x.size)
    assert x.size > 2000
    assert abs(tau - preset.lifetime_ps) < 4 * sigma + 0.01 * preset.lifetime_ps
    # the peak sits after the pulse centre (rise = excitation pulse convolved with the decay)
    hh, ee = np.histogram(dt, np.arange(-20_000, 100_001, 2_000))
    peak = ee[np.argmax(hh)]
    assert preset.pulse_center_ps - 4_000 < peak < preset.pulse_center_ps + preset.pulse_fwhm_ps


def test_herald_patterns_follow_bsm_rules(big_run):
    rounds, hall, _ = read_truth(big_run.truth)
    two = hall[hall["nclicks"] == 2]
    for h in two:
        c1, c2 = int(h["ch1"]), int(h["ch2"])
        if c1 == c2 or POL[c1] == POL[c2]:
            want = 3
        else:
            want = 1 if ARM[c1] == ARM[c2] else 2
        assert h["pattern"] == want
    assert np.all(hall["pattern"][hall["nclicks"] >= 3] == 3)
    sig = two[two["signal"]]
    n_plus, n_minus = (sig["pattern"] == 1).sum(), (sig["pattern"] == 2).sum()
    # orthogonal polarisations split evenly between same arm and different arms
    assert abs(n_plus - n_minus) < 4 * math.sqrt(n_plus + n_minus)
    # every announced psi+ is a round; signal rounds carry the psi+ state
    assert np.all(rounds["pattern"] == 1)
    assert np.all(rounds["bell_state"][rounds["signal"]] == 1)
    assert np.all(rounds["bell_state"][~rounds["signal"]] == 0)
    announced = hall[(hall["pattern"] == 1) & ~hall["gated"]]
    assert announced.size == rounds.size


def test_truth_S_and_Q_match_analytic_expectation(big_run):
    rounds, _, attrs = read_truth(big_run.truth)
    p = load_preset("lmu2022").with_overrides(speedup=3e4)
    exp = expected_stats(p)
    assert attrs["expected_S"] == pytest.approx(exp["expected_S"])
    A = np.where(rounds["alice_output"], 1, -1)
    B = np.where(rounds["bob_output"], 1, -1)
    S, var_s = 0.0, 0.0
    for (x, y), sign in {(2, 1): 1, (2, 0): -1, (3, 0): -1, (3, 1): -1}.items():
        m = (rounds["x"] == x) & (rounds["y"] == y)
        e = float((A[m] * B[m]).mean())
        # each correlator on its own also matches
        e_exp = expected_correlator(p, x, y, exp)
        assert abs(e - e_exp) < 3.5 * math.sqrt((1 - e_exp ** 2) / m.sum())
        S += sign * e
        var_s += (1 - e_exp ** 2) / m.sum()
    assert abs(S - exp["expected_S"]) < 3 * math.sqrt(var_s)
    key = rounds["x"] == rounds["y"]
    Q = float((A[key] == B[key]).mean())
    q = exp["expected_Q"]
    assert abs(Q - q) < 3 * math.sqrt(q * (1 - q) / key.sum())
    # the noise share of heralds matches the analytic accidental/early-photon estimate
    f = 1 - rounds["signal"].mean()
    assert abs(f - exp["noise_fraction"]) < 4 * math.sqrt(exp["noise_fraction"] / rounds.size) + 0.002


def test_truth_counts_equal_recorded_tags(every_run):
    rounds, _, _ = read_truth(every_run.truth)
    s = load_setup(every_run.setup)
    for lab, path, col, tcol in (("alice", every_run.alice, "alice_count", "alice_time"),
                                 ("bob", every_run.bob, "bob_count", "bob_time")):
        L = s.lab(lab)
        tags = read_all(path)
        fl = np.isin(tags.channel, L.fluorescence_channels)
        tc = np.sort(tags.time[fl] - np.array([L.delay(c) for c in range(16)])[tags.channel[fl]])
        ready = rounds[tcol] - L.delay(L.ready_channel)
        w0, w1 = L.round.fluorescence_window_ps
        counts = np.searchsorted(tc, ready + w1) - np.searchsorted(tc, ready + w0)
        assert np.array_equal(counts, rounds[col])
        assert np.array_equal(rounds[col.replace("count", "output")], counts >= L.round.threshold)
        # ready tags recorded where the truth says
        rt = tags.time[tags.channel == L.ready_channel]
        assert np.array_equal(np.sort(rt), np.sort(rounds[tcol]))


def test_same_seed_same_bytes(tmp_path, preset):
    r1 = simulate(preset, 20, 7, tmp_path / "a", speedup=3e4)
    r2 = simulate(preset, 20, 7, tmp_path / "b", speedup=3e4)
    r3 = simulate(preset, 20, 8, tmp_path / "c", speedup=3e4)
    for f in ("alice.dump", "bob.dump", "setup.toml"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert (tmp_path / "a" / "alice.dump").read_bytes() != (tmp_path / "c" / "alice.dump").read_bytes()
    t1, _, _ = read_truth(r1.truth)
    t2, _, _ = read_truth(r2.truth)
    assert np.array_equal(t1, t2)
    assert r3.stats["rounds"] == 20


def test_stream_slices_equal_blocks(preset):
    p = preset.with_overrides(speedup=3e4)
    whole = list(LinkSimulator(p, 5, n_rounds=15).stream())
    sliced = list(LinkSimulator(p, 5, n_rounds=15).stream(slice_ps=50 * 10**9))
    for lab in (0, 1):
        t1 = np.concatenate([c[lab].time for c in whole])
        t2 = np.concatenate([c[lab].time for c in sliced])
        c1 = np.concatenate([c[lab].channel for c in whole])
        c2 = np.concatenate([c[lab].channel for c in sliced])
        assert np.array_equal(t1, t2) and np.array_equal(c1, c2)
        assert np.all(np.diff(t2) >= 0)
    rows1 = [r for c in whole for r in c[2]]
    rows2 = [r for c in sliced for r in c[2]]
    assert len(rows1) == len(rows2) == 15
    # each slice ends before the next begins
    ends = [c[0].time[-1] for c in sliced if len(c[0])]
    starts = [c[0].time[0] for c in sliced if len(c[0])]
    assert all(e <= s for e, s in zip(ends[:-1], starts[1:]))


def test_poisson_at_least_is_the_poisson_survival_function():
    from scipy.stats import poisson

    from timetag.simulator.analytic import poisson_at_least
    thr = np.arange(-2, 160)  # far into both tails
    for mu in (0.0, 0.03, 1.7, 12.0, 35.5, 90.0):
        np.testing.assert_allclose(poisson_at_least(thr, mu), poisson.sf(thr - 1, mu), rtol=1e-11, atol=1e-300)


def test_simulator_thresholds_as_with_scipys_incomplete_gamma(monkeypatch):
    """The read-out thresholds over a grid of means are those scipy's regularised incomplete gamma gives."""
    from scipy.special import gammainc

    from timetag.simulator import analytic as A
    p = load_preset("lmu2022")
    grid = [(a, b) for a in np.linspace(0.5, 80, 24) for b in np.linspace(0.0, 5, 9)]
    ours = [A.best_threshold(p, a, b) for a, b in grid]
    monkeypatch.setattr(A, "poisson_at_least",
                        lambda thr, mu: np.where(np.asarray(thr) <= 0, 1.0, gammainc(np.maximum(thr, 1.0), mu)))
    assert ours == [A.best_threshold(p, a, b) for a, b in grid]
    assert len(set(ours)) > 10
