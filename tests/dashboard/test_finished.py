"""finished_payload: what `timetag serve` shows of rounds files, estimates, calibrations and scans."""
from __future__ import annotations

import json

import pytest
from estimate_cases import labs, write_pair

from timetag.dashboard import finished_payload
from timetag.dashboard.finished import find_inputs
from timetag.errors import TimetagError
from timetag.estimators.pipeline import estimate


@pytest.fixture()
def run_dir(tmp_path):
    A, B = labs(n=2000, V=0.9, seed=3)
    write_pair(tmp_path, A, B)
    return tmp_path


def test_a_pair_of_rounds_files_is_drawn_with_the_estimate_of_estimate(run_dir):
    p = finished_payload([run_dir], samples=500)
    assert set(p["labs"]) == {"lab1", "lab2"} and p["mode"] == "finished"
    assert p["labs"]["lab1"]["snapshot"]["rounds"] == 2000
    ref = estimate(run_dir / "alice.h5", run_dir / "bob.h5", samples=500, same_run=True).to_json()
    assert p["estimate"]["S"] == pytest.approx(ref["S"], rel=1e-12)
    assert p["estimate"]["pairs"] == ref["join"]["pairs"]
    assert p["clock"]["offset_ps"] == pytest.approx(ref["join"]["offset_ps"])
    es = p["estimate_series"]["cols"]
    assert es["pairs"] == sorted(es["pairs"]) and es["pairs"][-1] == ref["join"]["pairs"]
    assert es["S"][-1] == pytest.approx(ref["S"], abs=1e-9)  # the last prefix is the whole run
    assert p["finite_key"]["rounds"] == ref["join"]["pairs"]
    ser = p["labs"]["lab1"]["series"]["cols"]
    assert sum(r * (ser["t"][1] - ser["t"][0]) for r in ser["round_rate"]) == pytest.approx(2000, rel=1e-6)
    json.dumps(p, allow_nan=False, default=str)  # what the server sends must be strict JSON


def test_estimates_scans_and_calibrations_found_beside_are_listed(run_dir):
    (run_dir / "est.json").write_text(json.dumps({"S": 2.5, "Q0": 0.05, "Q1": 0.04, "join": {"pairs": 9},
                                                  "key_rate_per_event": {"random_basis": 0.08}}))
    (run_dir / "sub").mkdir()
    (run_dir / "sub" / "scan.json").write_text(json.dumps({"varies": [{"name": "threshold"}], "rows": [
        {"threshold": 3, "herald_rate_hz": 1.5, "S": 2.4, "Q": 0.06, "key_rate_per_event": 0.05}]}))
    (run_dir / "other.json").write_text("[1, 2]")
    found = find_inputs([run_dir])
    assert [f.name for f in found["estimates"]] == ["est.json"] and [f.name for f in found["scans"]] == ["scan.json"]
    titles = {t["title"]: t for t in finished_payload([run_dir], samples=0)["extras"]}
    assert titles["Estimates"]["rows"][0][1:6] == [2.5, 0.05, 0.04, 0.08, 9]
    scan = next(t for name, t in titles.items() if name.startswith("Scan"))
    assert scan["columns"][0] == "threshold" and scan["rows"][0][0] == 3


def test_one_lab_alone_is_shown_without_an_estimate(tmp_path):
    A, B = labs(n=300)
    write_pair(tmp_path, A, B)
    p = finished_payload([tmp_path / "alice.h5"], samples=0)
    assert list(p["labs"]) == ["lab1"] and p["estimate"] is None and p["finite_key"] is None


def test_nothing_there_is_an_error(tmp_path):
    with pytest.raises(TimetagError, match="no such file"):
        finished_payload([tmp_path / "missing"])
    assert finished_payload([tmp_path])["labs"] == {}
