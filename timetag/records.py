"""Record layouts shared by the engine, the rounds file, the estimators and live mode.

Kept in one place so that every producer and consumer agrees on field names; the codes and flag bits
are :mod:`timetag.constants`' (defined with the kernels, in ``cext/tt_constants.h``).  The kernels write
these records as the packed structs ``tt_herald_record`` and ``tt_round_record`` of ``cext/tt_records.h``
(tests/engine/test_kernel_records.py holds the two to the same layout).
"""
from __future__ import annotations

import numpy as np

from .constants import SETTING_NONE, Pattern, RoundFlag

# --- herald patterns (timetag.constants.Pattern; these names are kept for their many users) ---------------
PATTERN_NONE = Pattern.NONE
PATTERN_PSI_PLUS = Pattern.PSI_PLUS
PATTERN_PSI_MINUS = Pattern.PSI_MINUS
PATTERN_OTHER = Pattern.OTHER
PATTERN_NAMES = {PATTERN_NONE: "none", PATTERN_PSI_PLUS: "psi+", PATTERN_PSI_MINUS: "psi-", PATTERN_OTHER: "other"}
PATTERN_CODES = {v: k for k, v in PATTERN_NAMES.items()}

# --- round flags (timetag.constants.RoundFlag) --------------------------------------------------------------
FLAG_LOST_DATA = RoundFlag.LOST_DATA
FLAG_SETTING_MISSING = RoundFlag.SETTING_MISSING
FLAG_SETTING_AMBIGUOUS = RoundFlag.SETTING_AMBIGUOUS
FLAG_HERALD_WITHOUT_READY = RoundFlag.HERALD_WITHOUT_READY
FLAG_READY_WITHOUT_HERALD = RoundFlag.READY_WITHOUT_HERALD
FLAG_TRUNCATED = RoundFlag.TRUNCATED
FLAG_NAMES = {
    FLAG_LOST_DATA: "lost_data",
    FLAG_SETTING_MISSING: "setting_missing",
    FLAG_SETTING_AMBIGUOUS: "setting_ambiguous",
    FLAG_HERALD_WITHOUT_READY: "herald_without_ready",
    FLAG_READY_WITHOUT_HERALD: "ready_without_herald",
    FLAG_TRUNCATED: "truncated",
}

# One record per excitation attempt that passed the time filter with >= 2 clicks.
HERALD_DTYPE = np.dtype(
    [
        ("time", "<i8"),        # ps, local clock, delay-corrected time of the later click
        ("sync_time", "<i8"),   # ps, delay-corrected time of the attempt's sync
        ("pattern", "i1"),      # PATTERN_*
        ("det1", "<i4"),        # channel of the earlier click
        ("det2", "<i4"),        # channel of the later click
        ("dt1", "<i8"),         # ps, earlier click relative to the sync
        ("dt2", "<i8"),         # ps, later click relative to the sync
        ("nclicks", "<i4"),     # clicks in the acceptance window of this attempt
    ]
)

# One record per trigger (herald or 'ready'): every herald yields exactly one round.
ROUND_DTYPE = np.dtype(
    [
        ("index", "<i8"),        # 0, 1, 2, ... per lab and run
        ("trigger_time", "<i8"), # ps, local clock
        ("herald_time", "<i8"),  # ps, time of the software herald (-1 if none)
        ("pattern", "i1"),       # PATTERN_* of the herald (PATTERN_NONE if none)
        ("setting", "i1"),       # input X (Alice 0..3) or Y (Bob 0..1); SETTING_NONE if missing/ambiguous
        ("count", "<i4"),        # fluorescence photons in the detection window
        ("output", "i1"),        # 1 = atom present ('up'): count >= threshold; 0 = 'down'
        ("flags", "<u4"),        # FLAG_* bit mask
    ]
)


def empty_rounds(n: int = 0) -> np.ndarray:
    return np.zeros(n, dtype=ROUND_DTYPE)


def empty_heralds(n: int = 0) -> np.ndarray:
    return np.zeros(n, dtype=HERALD_DTYPE)


def flag_names(flags: int) -> list[str]:
    return [name for bit, name in FLAG_NAMES.items() if flags & bit]
