"""The records between Python and the kernels: one declaration (cext/tt_records.h), read by name.

Every numpy dtype must have its C struct's layout exactly (names, offsets, sizes, record size), as each
Cython module was compiled; the parameters of a setup must reach the kernels' records field by field;
and the kernels must refuse (not crash on) buffers that disagree with their tables.
"""
from dataclasses import replace

import numpy as np
import pytest

from engine_cases import alice, bob
from timetag._cext import constants, engine_rounds, engine_slots, fmt_dump
from timetag.engine import HeraldStage, RoundStage, compile_lab
from timetag.engine.records import C_RECORDS, HERALD_IO_DTYPE, HERALD_STATE_DTYPE, TRIGGER_DTYPE, record
from timetag.errors import SetupError
from timetag.formats.dump import RECORD_DTYPE
from timetag.records import HERALD_DTYPE, ROUND_DTYPE

DTYPES = {**C_RECORDS, "tt_herald_record": HERALD_DTYPE, "tt_round_record": ROUND_DTYPE,
          "tt_dump_record": RECORD_DTYPE}
MODULES = {m.__name__.rpartition(".")[2]: m for m in (constants, engine_slots, engine_rounds, fmt_dump)}


def _layout(dtype: np.dtype):
    return dtype.itemsize, [(name, dtype.fields[name][1], dtype.fields[name][0].itemsize) for name in dtype.names]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_is_built_with_the_same_records(module):
    assert MODULES[module].record_layouts() == constants.record_layouts()


def test_every_c_record_has_a_numpy_dtype():
    assert sorted(constants.record_layouts()) == sorted(DTYPES)


@pytest.mark.parametrize("name", sorted(DTYPES))
def test_numpy_dtype_has_the_c_layout(name):
    assert _layout(DTYPES[name]) == constants.record_layouts()[name]
    assert all(DTYPES[name].fields[f][0].byteorder in "<|=" for f in DTYPES[name].names)


def test_setup_values_reach_the_kernel_records_by_name():
    lab = alice(ref="next")
    p = compile_lab(lab)
    hc, rc, hg = lab.herald, lab.round, lab.histograms
    hp, tp, rp = p.herald_params[0], p.trigger_params[0], p.round_params[0]
    assert (hp["sync_next"], hp["window_start_ps"], hp["window_stop_ps"], hp["coincidence_ps"]) == \
        (1, hc.window_start_ps, hc.window_stop_ps, hc.coincidence_ps)
    assert (hp["arrival_start_ps"], hp["arrival_stop_ps"], hp["arrival_bin_ps"]) == \
        (*hg.arrival_range_ps, hg.arrival_bin_ps)
    assert (tp["mode"], tp["ready_delay_ps"], tp["ready_tolerance_ps"], tp["window_start_ps"], tp["window_stop_ps"]) \
        == (2, rc.ready_delay_ps, rc.ready_tolerance_ps, hc.window_start_ps, hc.window_stop_ps)
    assert (rp["setting_start_ps"], rp["setting_stop_ps"], rp["fluorescence_start_ps"], rp["fluorescence_stop_ps"],
            rp["threshold"]) == (*rc.setting_window_ps, *rc.fluorescence_window_ps, rc.threshold)


def test_record_helper_wants_every_field_by_name():
    assert record(TRIGGER_DTYPE, time=1, herald_time=2, pattern=3, flags=4, herald_window_start=5,
                  herald_window_stop=6).tolist() == [(1, 2, 3, 4, 5, 6)]
    with pytest.raises(TypeError, match="missing.*'time'"):
        record(TRIGGER_DTYPE, herald_time=2, pattern=3, flags=4, herald_window_start=5, herald_window_stop=6)


# --- setups built in Python pass the setup file's rules before a kernel sees them -----------------------------

@pytest.mark.parametrize("ref, change, key, why", [
    ("previous", dict(window_start_ps=-10), "herald.window_start_ps", "with sync_reference 'previous'"),
    ("next", dict(window_stop_ps=10), "herald.window_stop_ps", "with sync_reference 'next'"),
    ("previous", dict(window_start_ps=50, window_stop_ps=40), "herald.window_stop_ps", "must end after it starts"),
    ("previous", dict(window_stop_ps=1 << 31), "herald.window_stop_ps", r"within \+-2\*\*31 ps"),
    ("previous", dict(coincidence_ps=-1), "herald.coincidence_ps", "must be >= 0"),
])
def test_python_built_herald_mistakes_are_setup_errors_naming_the_key(ref, change, key, why):
    lab = alice(ref=ref)
    bad = replace(lab, herald=replace(lab.herald, **change))
    with pytest.raises(SetupError, match=rf"\[labs\.alice\.{key}\] .*{why}"):
        HeraldStage(bad)


@pytest.mark.parametrize("change, key", [
    (dict(threshold=0), "round.threshold"), (dict(fluorescence_window_ps=(5, 5)), "round.fluorescence_window_ps"),
    (dict(trigger="sometimes"), "round.trigger"), (dict(ready_tolerance_ps=-1), "round.ready_tolerance_ps"),
])
def test_python_built_round_mistakes_are_setup_errors_naming_the_key(change, key):
    lab = bob()
    with pytest.raises(SetupError, match=rf"\[labs\.bob\.{key}\]"):
        RoundStage(replace(lab, round=replace(lab.round, **change)))


def test_numpy_integers_in_a_python_built_setup_are_accepted():
    lab = alice()
    lab = replace(lab, round=replace(lab.round, threshold=np.int64(3)))
    assert compile_lab(lab).round_params["threshold"][0] == 3


# --- the kernels refuse buffers that disagree with their tables -----------------------------------------------

def _herald_call(**over):
    hs = HeraldStage(alice())
    r = hs.rows
    r.make_room(0)
    bufs = dict(rows=r.rows, hi=r.hi, io=np.zeros(1, HERALD_IO_DTYPE), state=np.zeros(1, HERALD_STATE_DTYPE),
                bsm_lo=r.ptr[0, r.bsm_slots].copy(), agg=np.zeros(1, hs._agg.dtype), her=np.zeros(1, hs._her.dtype),
                arrival=hs.arrival)
    bufs.update(over)
    return engine_slots.process_chunk(hs._tables, np.zeros(0, np.int64), np.zeros(0, np.int32), 1, **bufs)


def test_process_chunk_takes_well_formed_buffers():
    assert _herald_call() == 0


@pytest.mark.parametrize("over, match", [
    (dict(io=np.zeros(2, HERALD_IO_DTYPE)), "one record each"),
    (dict(rows=np.zeros((3, 16), np.int64)), "row buffers disagree"),
    (dict(bsm_lo=np.zeros(1, np.int64)), "disagree with the tables"),
    (dict(arrival=np.zeros((1, 1), np.int64)), "disagree with the tables"),
])
def test_process_chunk_refuses_buffers_that_disagree_with_its_tables(over, match):
    with pytest.raises(ValueError, match=match):
        _herald_call(**over)


def test_herald_tables_refuse_inconsistent_tables():
    p = compile_lab(alice())
    hs = HeraldStage(alice())
    r = hs.rows
    good = dict(chan_lo=r.chan_lo, slot_of=r.slot_of, slot_delay=r.delay, max_delay=p.max_delay,
                sync_slot=r.sync_slot, bsm_slot=r.bsm_slots, bsm_det=p.slot_det[r.bsm_slots], det_arm=p.det_arm,
                det_pol=p.det_pol, det_chan=p.det_chan, patterns=p.pattern_codes, lut=hs._lut,
                lane_slot=r.lane_slot, scal_slot=r.scal_slot, split_code=r.split_code)
    engine_slots.HeraldTables(p.herald_params, **good)
    for change, match in ((dict(slot_of=np.full(r.slot_of.size, 99, np.int32)), "slot table out of range"),
                          (dict(split_code=np.zeros(r.split_code.size, np.uint8)), "vector split code"),
                          (dict(bsm_det=np.full(r.bsm_slots.size, 9)), "BSM row or detector"),
                          (dict(lut=np.full(hs._lut.size, 10**6, np.int32)), "lookup table out of the bins")):
        with pytest.raises(ValueError, match=match):
            engine_slots.HeraldTables(p.herald_params, **{**good, **change})
    zero_bin = p.herald_params.copy()
    zero_bin["arrival_bin_ps"] = 0
    with pytest.raises(ValueError, match="arrival histogram"):
        engine_slots.HeraldTables(zero_bin, **good)


def test_make_triggers_needs_room_for_every_trigger():
    p = compile_lab(alice(trigger="ready"))
    ready = np.arange(3, dtype=np.int64)
    e = np.zeros(0, np.int64)
    with pytest.raises(ValueError, match="no room"):
        engine_rounds.make_triggers(p.trigger_params, e, e, np.zeros(0, np.int8), ready, 0, 10,
                                    np.zeros(2, TRIGGER_DTYPE))
    out = np.zeros(3, TRIGGER_DTYPE)
    n, _, used, _ = engine_rounds.make_triggers(p.trigger_params, e, e, np.zeros(0, np.int8), ready, 0, 10, out)
    assert n == used == 3 and out["time"].tolist() == [0, 1, 2] and out["herald_time"].tolist() == [-1] * 3
