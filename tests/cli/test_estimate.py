"""`timetag estimate` end to end on hand-made rounds files, and its error messages."""
import json

import numpy as np
import pytest

from estimate_cases import labs, run, write_pair
from timetag.estimators import estimate
from timetag.records import FLAG_LOST_DATA


def test_json_object_keys_and_values(tmp_path, capsys):
    A, B = labs(drop_b=[10, 500])
    pa, pb = write_pair(tmp_path, A, B)
    code, out, err = run(["estimate", str(pa), str(pb), "--json", "--samples", "2000"], capsys)
    assert code == 0, err
    res = json.loads(out)  # exactly one JSON object
    for k in ("rounds", "S", "S_err", "E", "Q0", "Q1", "Q", "key_rate_per_event", "min_block_length"):
        assert k in res
    assert set(res["E"]) == {f"{x},{y}" for x in range(4) for y in range(2)}
    assert set(res["key_rate_per_event"]) >= {"random_basis", "original"}
    assert res["rounds"] == len(A) - 2 and res["join"]["unmatched_alice"] == 2
    assert abs(res["S"] - 2 * np.sqrt(2) * 0.9) < 5 * res["S_err"]
    assert abs(res["Q"] - 0.05) < 5 * res["Q_err"]


def test_table_and_plots(tmp_path, capsys):
    A, B = labs(n=1500)
    A["flags"][:50] = FLAG_LOST_DATA
    pa, pb = write_pair(tmp_path, A, B)
    code, out, err = run(["estimate", str(pa), str(pb), "--plots", str(tmp_path / "figs"), "--samples", "500"], capsys)
    assert code == 0, err
    for word in ("E20", "S", "Q0", "Q1", "key rate", "block length"):
        assert word in out
    assert (tmp_path / "figs" / "correlations.png").stat().st_size > 1000
    assert (tmp_path / "figs" / "finite_key.png").stat().st_size > 1000


def test_flag_policy_reported_both_ways(tmp_path):
    A, B = labs(n=1500)
    A["flags"][:100] = FLAG_LOST_DATA
    pa, pb = write_pair(tmp_path, A, B)
    keep = estimate(pa, pb, samples=0)
    drop = estimate(pa, pb, flagged="drop", samples=0)
    assert keep["rounds"] == 1500 and drop["rounds"] == 1400
    assert keep["flagged_other_policy"]["rounds"] == 1400 and keep["flagged_other_policy"]["S"] == drop["S"]


def test_swapped_argument_order_is_sorted_by_role(tmp_path):
    A, B = labs(n=800)
    pa, pb = write_pair(tmp_path, A, B)
    assert estimate(pb, pa, samples=0)["S"] == estimate(pa, pb, samples=0)["S"]


@pytest.mark.parametrize("case, match", [
    ("same_lab", "same lab"),
    ("hash", "different runs"),
    ("empty", "empty"),
    ("no_test", "no test rounds"),
    ("no_key", "no key rounds"),
])
def test_bad_inputs_clear_messages(tmp_path, capsys, case, match):
    A, B = labs(n=600)
    kw = {}
    if case == "same_lab":
        kw = {"role_b": "alice"}
    elif case == "hash":
        kw = {"hash_a": "aaaa1111", "hash_b": "bbbb2222"}
    elif case == "empty":
        B = B[:0]
    elif case == "no_test":
        A, B = labs(n=600, x_allowed=[0, 1])
    elif case == "no_key":
        A, B = labs(n=600, x_allowed=[2, 3])
    pa, pb = write_pair(tmp_path, A, B, **kw)
    code, out, err = run(["estimate", str(pa), str(pb), "--json"], capsys)
    assert code == 2 and match in err and "Traceback" not in err
    if case == "hash":
        assert "aaaa1111" in err and "bbbb2222" in err


def test_missing_file_is_format_error(tmp_path, capsys):
    code, _, err = run(["estimate", str(tmp_path / "nope.h5"), str(tmp_path / "nope2.h5")], capsys)
    assert code == 2 and "no such file" in err


# --- the clock calibration of the setup ([clock], written by `timetag calibrate`) -------------------------

TRUE_OFFSET, TRUE_DRIFT = 1_234_567_890_123, 5e-7  # the clock of labs() above


def setup_file(tmp_path, clock=None, name="setup.toml"):
    from timetag.simulator import build_setup, load_preset

    s = build_setup(load_preset("lmu2022"), (3, 3))
    if clock is not None:
        s = type(s)(labs=s.labs, name=s.name, extra={**s.extra, "clock": clock})
    path = tmp_path / name
    s.save(path)
    return path


def test_setup_clock_is_used_and_reported(tmp_path, capsys):
    A, B = labs(n=1000, drop_b=[3])
    pa, pb = write_pair(tmp_path, A, B)
    good = setup_file(tmp_path, {"offset_ps": TRUE_OFFSET, "drift": TRUE_DRIFT, "offset_err_ps": 10.0})
    res = estimate(pa, pb, samples=0, setup=good)
    c = res["join"]["clock"]
    assert c["source"] == "calibrated" and c["setup"] == str(good) and c["calibrated"]["offset_err_ps"] == 10.0
    assert res["join"]["offset_ps"] == TRUE_OFFSET and res["join"]["drift"] == TRUE_DRIFT
    assert res["join"]["method"] == "given" and res["join"]["pairs"] == 999
    # the rounds were not processed with this setup: said, not refused
    assert any("only its [clock] table is used" in n for n in res["join"]["notes"])
    code, out, err = run(["estimate", str(pa), str(pb), "--setup", str(good), "--samples", "0"], capsys)
    assert code == 0, err
    assert "clock: [clock] of" in out and "setup.toml" in out and "only its [clock] table" in out


def test_setup_clock_really_drives_the_join_and_explicit_values_win(tmp_path, capsys):
    A, B = labs(n=800)
    pa, pb = write_pair(tmp_path, A, B)
    # offset 0.3 s off: with it no round can pair (the estimated clock would have paired them all)
    bad = setup_file(tmp_path, {"offset_ps": TRUE_OFFSET + 300_000_000_000, "drift": TRUE_DRIFT})
    assert estimate(pa, pb, samples=0)["join"]["pairs"] == 800
    res = estimate(pa, pb, samples=0, setup=bad, strict=False)
    assert res["join"]["pairs"] < 10 and res["join"]["clock"]["source"] == "calibrated"
    assert any("may not belong to this run" in n for n in res["join"]["notes"])
    code, _, err = run(["estimate", str(pa), str(pb), "--setup", str(bad), "--json"], capsys)
    assert code == 2 and "Traceback" not in err
    # 100 s off: beyond Bob's whole run, nothing pairs and the message names the clock used
    far = setup_file(tmp_path, {"offset_ps": TRUE_OFFSET + 10**14, "drift": TRUE_DRIFT}, "far.toml")
    code, _, err = run(["estimate", str(pa), str(pb), "--setup", str(far)], capsys)
    assert code == 2 and "could be paired" in err and "[clock] of" in err and "far.toml" in err
    # an explicit offset overrides the table's; the drift still comes from it
    code, out, err = run(["estimate", str(pa), str(pb), "--setup", str(bad), "--json", "--samples", "0",
                          "--offset-ps", str(TRUE_OFFSET)], capsys)
    assert code == 0, err
    j = json.loads(out)["join"]
    assert j["clock"]["source"] == "calibrated+given" and j["pairs"] == 800 and j["drift"] == TRUE_DRIFT
    both = estimate(pa, pb, samples=0, setup=bad, offset_ps=TRUE_OFFSET, drift=TRUE_DRIFT)["join"]["clock"]
    assert both["source"] == "given" and both["calibrated"]["offset_ps"] == TRUE_OFFSET + 300_000_000_000
    # the clock= argument is the same thing without a file
    res = estimate(pa, pb, samples=0, clock={"offset_ps": TRUE_OFFSET, "drift": TRUE_DRIFT})
    assert res["join"]["clock"]["source"] == "calibrated" and res["join"]["pairs"] == 800


def test_setup_without_clock_falls_back_to_estimation(tmp_path):
    A, B = labs(n=600)
    pa, pb = write_pair(tmp_path, A, B)
    res = estimate(pa, pb, samples=0, setup=setup_file(tmp_path))
    assert res["join"]["clock"]["source"] == "estimated" and res["join"]["pairs"] == 600
    assert any("no [clock] table" in n for n in res["join"]["notes"])
    assert abs(res["join"]["drift"] - TRUE_DRIFT) < 1e-8


@pytest.mark.parametrize("clock, match", [({"offset_ps": "soon", "drift": 0.0}, "offset_ps"),
                                          ({"offset_ps": 5}, "drift")])
def test_bad_clock_table_is_one_line(tmp_path, capsys, clock, match):
    A, B = labs(n=300)
    pa, pb = write_pair(tmp_path, A, B)
    s = setup_file(tmp_path, clock)
    code, _, err = run(["estimate", str(pa), str(pb), "--setup", str(s)], capsys)
    assert code == 2 and match in err and str(s) in err and "Traceback" not in err


def test_calibrated_clock_end_to_end_on_the_simulator(tmp_path):
    """simulate (drifting Bob clock) -> calibrate clock -> process with that setup -> estimate --setup."""
    from calibrate.api import calibrate_run
    from timetag.process import process_files
    from timetag.setupfile import load_setup
    from timetag.simulator import load_preset, simulate

    p = load_preset("lmu2022").with_overrides(bob_clock_drift_ppm=0.4)
    r = simulate(p, 300, 8, tmp_path / "sim", speedup=3000.0)
    cal, _ = calibrate_run([r.alice], [r.bob], load_setup(r.setup), steps=["clock"])
    cal_path = tmp_path / "calibrated.toml"
    cal.save(cal_path)
    for lab in ("alice", "bob"):
        process_files([getattr(r, lab)], cal_path, lab, tmp_path / f"{lab}.h5", progress=False, checksum=False)
    res = estimate(tmp_path / "alice.h5", tmp_path / "bob.h5", samples=0, setup=cal_path, strict=False)
    j = res["join"]
    assert j["clock"]["source"] == "calibrated" and j["notes"] == []
    assert j["offset_ps"] == cal.extra["clock"]["offset_ps"] and abs(j["drift"] - 0.4e-6) < 1e-9
    assert j["pairs"] == 300 and j["unmatched_alice"] == 0 and j["unmatched_bob"] == 0


def test_patterns_option_selects_heralds(tmp_path, capsys):
    from timetag.records import PATTERN_PSI_MINUS, PATTERN_PSI_PLUS

    A, B = labs(n=1200)
    A["pattern"] = np.where(np.arange(1200) % 3 == 0, PATTERN_PSI_MINUS, PATTERN_PSI_PLUS)
    pa, pb = write_pair(tmp_path, A, B)
    code, out, err = run(["estimate", str(pa), str(pb), "--json", "--samples", "0", "--patterns", "psi+"], capsys)
    assert code == 0, err
    res = json.loads(out)
    assert res["rounds"] == 800 and res["sift"]["pattern_selection"] == ["psi+"]
    code, out, err = run(["estimate", str(pa), str(pb), "--samples", "0"], capsys)
    assert code == 0 and "psi- 400" in out
    code, _, err = run(["estimate", str(pa), str(pb), "--patterns", "phi+"], capsys)
    assert code == 2 and "phi+" in err
