"""calibrate.clock: the clock offset/drift fit and its typed model (the setup's [clock] table)."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from calibrate.clock import MODEL, ClockModel, calibrate_clock
from calibrate.synthetic import SynthParams, make_setup
from timetag.errors import CalibrationError
from timetag.setupfile import loads_setup

BASE = make_setup(SynthParams())


def _triggers(n=400, offset=1_234_567_890.0, drift=3e-8, seed=2):
    rng = np.random.default_rng(seed)
    ta = np.sort(rng.uniform(0, 4e12, n)).astype(np.int64)
    tb = (ta + offset + drift * ta + rng.normal(0, 1_000, n)).astype(np.int64)
    return ta, tb


def test_clock_fit_and_its_model():
    ta, tb = _triggers()
    clk = calibrate_clock(ta, tb[5:])          # Bob missed a few
    assert abs(clk.offset_ps - 1_234_567_890) < 1_000 and abs(clk.drift - 3e-8) < 1e-9
    m = clk.model
    assert isinstance(m, ClockModel) and m.offset_ps == int(round(clk.offset_ps)) and m.pairs == clk.n_pairs


def test_model_json_is_the_table_written_before():
    """to_json() is, key for key and type for type, the dict calibrate wrote into [clock] before the model was
    typed: the setup file and any JSON of it stay byte-identical."""
    ta, tb = _triggers()
    clk = calibrate_clock(ta, tb)
    before = {"offset_ps": int(round(clk.offset_ps)), "drift": float(clk.drift),
              "offset_err_ps": float(clk.offset_err_ps), "drift_err": float(clk.drift_err),
              "pairs": clk.n_pairs,
              "model": "t_bob = t_alice + offset_ps + drift * t_alice (delay-corrected 'ready' tags)"}
    got = clk.model.to_json()
    assert json.dumps(got) == json.dumps(before)
    assert [type(v) for v in got.values()] == [type(v) for v in before.values()]
    assert replace(BASE, extra={"clock": got}).dumps() == replace(BASE, extra={"clock": before}).dumps()


def test_model_round_trips_through_the_setup_file():
    ta, tb = _triggers()
    m = calibrate_clock(ta, tb).model
    text = replace(BASE, extra={"clock": m.to_json()}).dumps()
    back = ClockModel.from_json(loads_setup(text).extra["clock"])
    assert back == m and back.to_json() == m.to_json() and back.model == MODEL


def test_model_from_a_hand_written_table():
    m = ClockModel.from_json({"offset_ps": 1.5e9, "drift": 0.0})
    assert (m.offset_ps, m.drift, m.pairs, m.model) == (1.5e9, 0.0, None, None)
    assert m.to_json() == {"offset_ps": 1.5e9, "drift": 0.0}
    for bad in ({"drift": 0.0}, {"offset_ps": "soon", "drift": 0.0}, {"offset_ps": 1, "drift": True}, "soon"):
        with pytest.raises(CalibrationError, match=r"\[clock\]"):
            ClockModel.from_json(bad)


def test_too_few_triggers():
    with pytest.raises(CalibrationError, match="at least"):
        calibrate_clock([1, 2], [1, 2, 3])
