"""The demo runs the whole chain; its numbers must agree with the simulator's own expectation."""
import json

import numpy as np

from timetag.demo import missetup, run_demo
from timetag.roundsfile import read_rounds
from timetag.setupfile import load_setup
from timetag.simulator import build_setup, expected_stats, load_preset


def test_demo_chain_recovers_the_true_setup_numbers(tmp_path):
    res = run_demo(tmp_path / "demo", rounds=600, seed=7, speedup=2e4, plots=False)
    est = res.estimate
    truth_setup = load_setup(res.files["true_setup"])
    cal = load_setup(res.files["calibrated_setup"])
    start = load_setup(res.files["uncalibrated_setup"])
    # calibration moved the thresholds back from the mis-set values to the truth-optimal ones
    for lab in ("alice", "bob"):
        assert start.lab(lab).round.threshold != truth_setup.lab(lab).round.threshold
        assert abs(cal.lab(lab).round.threshold - truth_setup.lab(lab).round.threshold) <= 1
    # every heralded round of the simulation is one joined pair
    assert est["join"]["pairs"] == 600
    assert len(read_rounds(res.files["bob_rounds"]).rounds) == 600
    # S and Q within 4 sigma of the preset's analytic expectation at this speed-up
    exp = expected_stats(load_preset("lmu2022").with_overrides(speedup=2e4))
    assert abs(est["S"] - exp["expected_S"]) < 4 * est["S_err"]
    assert abs(est["Q"] - exp["expected_Q"]) < 4 * est["Q_err"]
    json.dumps(est.to_json())  # the estimate is plain JSON


def test_missetup_changes_delays_of_non_reference_detectors_only(tmp_path):
    s = build_setup(load_preset("lmu2022"))
    m = missetup(s, delay_error_ps=500, threshold_shift=2)
    a, b = s.lab("alice"), m.lab("alice")
    ref = a.bsm[0].channel
    assert b.delay(ref) == a.delay(ref)
    assert [b.delay(d.channel) - a.delay(d.channel) for d in a.bsm[1:]] == [500, -500, 500]
    assert b.round.threshold == a.round.threshold + 2
    assert np.all([b.delay(c) == a.delay(c) for c in a.setting_channels])
