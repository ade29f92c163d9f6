"""Scenario switches of the simulator do what they claim; the CLI runs."""
from __future__ import annotations

import math

import numpy as np
import pytest
from typer.testing import CliRunner

from timetag.chunk import OVERFLOW_BEGIN, OVERFLOW_END
from timetag.cli import app
from timetag.errors import SetupError
from timetag.formats import read_all
from timetag.setupfile import load_setup
from timetag.simulator import load_preset, read_truth, simulate

SP = 3e4


@pytest.fixture(scope="module")
def preset():
    return load_preset("lmu2022")


def _run(tmp_path, preset, n=150, seed=3, **kw):
    return simulate(preset.with_overrides(**kw), n, seed, tmp_path, speedup=SP)


def test_dark_count_rate_matches(tmp_path, preset):
    rate = 3000.0
    r = _run(tmp_path, preset, n=60, dark_rate_hz_bob=rate)
    rounds, _, _ = read_truth(r.truth)
    s = load_setup(r.setup).lab("bob")
    tags = read_all(r.bob)
    t = tags.time[tags.channel == 1] - s.delay(1)
    ready = rounds["bob_time"] - s.delay(2)
    # outside the read-out windows Bob's detector sees only dark counts (and their afterpulses)
    w0, w1 = s.round.fluorescence_window_ps
    inside = np.zeros(t.size, bool)
    for rt in ready:
        inside |= (t >= rt + w0 - 10**6) & (t < rt + w1 + 10**6)
    span = (t.max() - t.min()) * 1e-12 - len(ready) * (w1 - w0 + 2 * 10**6) * 1e-12
    n = (~inside).sum()
    expect = rate * (1 + preset.afterpulse_prob) * span
    assert abs(n - expect) < 5 * math.sqrt(expect)


def test_clock_drift_and_offset_applied(tmp_path, preset):
    drift = 0.8
    r = _run(tmp_path, preset, n=80, bob_clock_drift_ppm=drift)
    rounds, _, attrs = read_truth(r.truth)
    assert attrs["bob_clock_drift_ppm"] == drift
    p = preset
    t_alice = rounds["herald_time"] + p.link_delay_ps          # Bob's ready in Alice's clock (+ jitter)
    t_bob = rounds["bob_time"] - p.delays_bob[1] - p.bob_clock_offset_ps
    slope, icpt = np.polyfit(t_alice.astype(float), (t_bob - t_alice).astype(float), 1)
    assert slope == pytest.approx(drift * 1e-6, rel=0.02)
    # the recorded ready tags in Bob's file are those times
    tags = read_all(r.bob)
    assert np.array_equal(np.sort(tags.time[tags.channel == 2]), np.sort(rounds["bob_time"]))


def test_dead_detector_never_clicks(tmp_path, preset):
    r = _run(tmp_path, preset, n=40, dead_channels_alice=[3])
    tags = read_all(r.alice)
    assert not np.any(tags.channel == 3)
    rounds, _, _ = read_truth(r.truth)
    assert rounds.size == 40  # arm b still heralds
    _, hall, _ = read_truth(r.truth)
    assert not np.any((hall["ch1"] == 3) | (hall["ch2"] == 3))


def test_missing_ready_and_setting_tags(tmp_path, preset):
    r = _run(tmp_path, preset, n=300, bob_ready_missing_prob=0.3, setting_missing_prob=0.1,
             setting_double_prob=0.1)
    rounds, _, _ = read_truth(r.truth)
    miss = 1 - rounds["bob_ready_present"].mean()
    assert abs(miss - 0.3) < 4 * math.sqrt(0.21 / rounds.size)
    assert rounds["alice_ready_present"].all()
    a, b = read_all(r.alice), read_all(r.bob)
    assert (b.channel == 2).sum() == rounds["bob_ready_present"].sum()
    assert np.isin(a.channel, [7, 8, 9, 10]).sum() == rounds["alice_setting_tags"].sum()
    assert np.isin(b.channel, [3, 4]).sum() == rounds["bob_setting_tags"].sum()
    for col in ("alice_setting_tags", "bob_setting_tags"):
        frac = np.bincount(rounds[col], minlength=3) / rounds.size
        assert abs(frac[0] - 0.1) < 0.06 and abs(frac[2] - 0.09) < 0.06


def test_overflow_intervals_drop_tags_and_are_marked(tmp_path, preset):
    r = _run(tmp_path, preset, n=150, overflow_rate_hz=2.0, overflow_duration_ps=50 * 10**9)
    _, _, attrs = read_truth(r.truth)
    tags = read_all(r.alice)
    lost = tags.lost
    begins = lost["time"][lost["kind"] == OVERFLOW_BEGIN]
    ends = lost["time"][lost["kind"] == OVERFLOW_END]
    ivs = attrs["overflow_intervals_alice_raw"]
    assert len(begins) >= 1 and len(begins) == len(ivs)
    for (b, e) in ivs:
        assert b in begins
        inside = (tags.time >= b) & (tags.time < e)
        assert not inside.any()
    assert np.all(np.diff(lost["time"]) >= 0)
    assert len(ends) <= len(begins)
    rounds, _, _ = read_truth(r.truth)
    assert rounds["alice_lost"].any() or rounds["bob_lost"].any()


def test_afterpulse_bursts_add_clicks(tmp_path, preset):
    base = _run(tmp_path / "a", preset, n=60)
    burst = _run(tmp_path / "b", preset, n=60, afterpulse_burst_prob=0.05, afterpulse_burst_size=10)
    ap0 = base.stats["alice_sources"][5]
    ap1 = burst.stats["alice_sources"][5]
    assert ap1 > ap0 + 0.3 * 0.05 * 10 * (sum(burst.stats["alice_sources"][1:5]))


def test_psi_minus_heralds_when_enabled(tmp_path, preset):
    r = _run(tmp_path, preset, n=200, herald_patterns=["psi+", "psi-"])
    rounds, _, _ = read_truth(r.truth)
    n_minus = (rounds["pattern"] == 2).sum()
    assert abs(n_minus - 100) < 4 * math.sqrt(50)
    assert np.all(rounds["bell_state"][rounds["signal"]] == rounds["pattern"][rounds["signal"]])


def test_bad_override_is_a_setup_error(preset):
    with pytest.raises(SetupError, match="unknown simulation parameter"):
        preset.with_overrides(no_such_thing=1)
    with pytest.raises(SetupError, match="speedup"):
        preset.with_overrides(speedup=1e9)
    with pytest.raises(SetupError, match="sync_mode"):
        preset.with_overrides(sync_mode="sometimes")


def test_cli_simulate(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["simulate", "--rounds", "10", "--seed", "4", "--out", str(tmp_path / "o"),
                              "--speedup", "3e4", "--quiet", "--set", "bob_clock_drift_ppm=0.3"])
    assert res.exit_code == 0, res.output
    assert "expected S" in res.output
    for f in ("alice.dump", "bob.dump", "setup.toml", "truth.h5"):
        assert (tmp_path / "o" / f).is_file()
    _, _, attrs = read_truth(tmp_path / "o" / "truth.h5")
    assert attrs["bob_clock_drift_ppm"] == 0.3
    help_ = runner.invoke(app, ["simulate", "--help"])
    assert "--speedup" in help_.output and "--set" in help_.output


def test_cli_bad_set_exits_2(tmp_path):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "timetag", "simulate", "--out", str(tmp_path), "--rounds", "2",
                        "--set", "bogus=1"], capture_output=True, text=True)
    assert p.returncode == 2 and "bogus" in p.stderr


def test_fast_dump_output_equals_generic_writer(tmp_path, preset):
    """simulate() encodes dump records itself: the bytes must be what DumpWriter writes for the same stream
    (overflow begin/end records included, placed after tags of equal time)."""
    from timetag.chunk import concat
    from timetag.formats.dump import DumpReader, write_dump

    r = _run(tmp_path / "s", preset, n=40, overflow_rate_hz=2.0, overflow_duration_ps=10**9)
    for path in (r.alice, r.bob):
        stream = concat(DumpReader(path))
        assert stream.lost.size > 0
        generic = tmp_path / f"generic-{path.stem}.dump"  # a new file each: writers never overwrite
        write_dump(generic, stream)
        assert generic.read_bytes() == path.read_bytes()


def test_dark_counts_are_sorted_and_poisson(preset):
    from timetag.simulator import draws

    rs = np.array([99, 12345], np.uint64)
    out_t, out_ch = np.empty(50_000, np.int64), np.empty(50_000, np.int32)
    cum = np.array([0.25, 1.0])
    n = draws.dark_counts(10**12, 11 * 10**12, 2e-9, cum, np.array([2, 5], np.int32), rs, out_t, out_ch)
    t, ch = out_t[:n], out_ch[:n]
    assert abs(n - 20_000) < 5 * math.sqrt(20_000)
    assert np.all(np.diff(t) >= 0) and t[0] >= 10**12 and t[-1] < 11 * 10**12
    assert abs(np.mean(ch == 2) - 0.25) < 5 * math.sqrt(0.25 * 0.75 / n)
    # too small an output is reported, not overrun
    assert draws.dark_counts(0, 10**13, 2e-9, cum, np.array([2, 5], np.int32), rs, out_t[:10], out_ch[:10]) == -1
