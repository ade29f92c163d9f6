"""RunSummary: named fields, the JSON the rounds file stores, and the mapping view of that JSON."""
from __future__ import annotations

import json

import numpy as np

from engine_cases import alice, herald_ready_stream
from timetag.engine import LabPipeline
from timetag.engine.summary import RunSummary
from timetag.provenance import jsonable


def _summary() -> RunSummary:
    pl = LabPipeline(alice())
    pl.run([herald_ready_stream(np.random.default_rng(2), 200)])
    return pl.summary


def test_fields_and_json_agree():
    s = _summary()
    d = s.to_json()
    assert s.rounds == d["rounds"] > 0 and s["rounds"] == s.rounds
    assert dict(s) == d and list(s) == list(d) and len(s) == len(d)
    assert json.loads(json.dumps(jsonable(s))) == json.loads(json.dumps(d))


def test_driver_fields_appear_only_when_set():
    s = _summary()
    assert "elapsed_s" not in s.to_json() and "bad_records" not in s
    s.elapsed_s, s.out = 1.5, "r.h5"
    assert s.to_json()["elapsed_s"] == 1.5 and s["out"] == "r.h5"


def test_round_trip_keeps_unknown_keys():
    d = dict(_summary().to_json(), live={"wall_s": 3.0})
    back = RunSummary.from_json(d)
    assert back.to_json() == d and back.extra == {"live": {"wall_s": 3.0}}
