"""The records the engine's kernels read and write, as numpy dtypes.

Each mirrors a struct of ``cext/tt_records.h`` (named in its comment), where the fields are documented;
``tests/engine/test_kernel_records.py`` checks that names, offsets and sizes agree with what the C
compiler laid out.  A kernel takes a record array as a typed memoryview and reads its fields by name, and
so does Python: ``io["horizon"]``, ``params["window_start_ps"]``, ``triggers["time"]``.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "HERALD_PARAMS_DTYPE", "HERALD_STATE_DTYPE", "HERALD_IO_DTYPE", "ATTEMPT_DTYPE", "CLOSED_ATTEMPT_DTYPE",
    "TRIGGER_PARAMS_DTYPE", "ROUND_PARAMS_DTYPE", "TRIGGER_DTYPE", "C_RECORDS", "record",
]


def _int64s(*names: str) -> np.dtype:
    return np.dtype([(name, "<i8") for name in names])


# tt_herald_params: one lab's herald parameters (compile_lab)
HERALD_PARAMS_DTYPE = _int64s("sync_next", "window_start_ps", "window_stop_ps", "coincidence_ps",
                              "arrival_start_ps", "arrival_stop_ps", "arrival_bin_ps")
# tt_herald_state: what the herald stage carries across chunks besides the rows
HERALD_STATE_DTYPE = _int64s("carry", "carry_n", "carry_k1", "carry_k2", "clicks_accepted", "clicks_without_sync")
# tt_herald_io: in and out of one engine_slots.process_chunk call
HERALD_IO_DTYPE = _int64s("last_raw", "horizon", "attempts", "closed", "heralds", "sync_lo")
# tt_agg: one attempt (clicks and keys)
ATTEMPT_DTYPE = _int64s("k1", "k2", "n", "pad")
# tt_her: a closed attempt with >= 2 accepted clicks and its sync
CLOSED_ATTEMPT_DTYPE = _int64s("k1", "k2", "n", "sync")
# tt_trigger_params: how one lab makes triggers (engine_rounds.make_triggers)
TRIGGER_PARAMS_DTYPE = _int64s("mode", "ready_delay_ps", "ready_tolerance_ps", "window_start_ps", "window_stop_ps")
# tt_round_params: how one lab evaluates rounds (engine_rounds.RoundTables)
ROUND_PARAMS_DTYPE = _int64s("setting_start_ps", "setting_stop_ps", "fluorescence_start_ps", "fluorescence_stop_ps",
                             "threshold")
# tt_trigger: a trigger waiting for its round
TRIGGER_DTYPE = _int64s("time", "herald_time", "pattern", "flags", "herald_window_start", "herald_window_stop")

# C record name -> its dtype here (the herald, round and dump records are timetag.records' and
# timetag.formats.dump's: the layout test takes them from there)
C_RECORDS = {
    "tt_herald_params": HERALD_PARAMS_DTYPE,
    "tt_herald_state": HERALD_STATE_DTYPE,
    "tt_herald_io": HERALD_IO_DTYPE,
    "tt_agg": ATTEMPT_DTYPE,
    "tt_her": CLOSED_ATTEMPT_DTYPE,
    "tt_trigger_params": TRIGGER_PARAMS_DTYPE,
    "tt_round_params": ROUND_PARAMS_DTYPE,
    "tt_trigger": TRIGGER_DTYPE,
}


def record(dtype: np.dtype, **fields) -> np.ndarray:
    """One record (an array of one, as the kernels take it), every field given by name."""
    missing = set(dtype.names) - set(fields)
    unknown = set(fields) - set(dtype.names)
    if missing or unknown:
        raise TypeError(f"record fields: missing {sorted(missing)}, unknown {sorted(unknown)}")
    out = np.zeros(1, dtype)
    for name, value in fields.items():
        out[name] = value
    return out
