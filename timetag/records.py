"""Record layouts shared by the engine, the rounds file, the estimators and live mode.

Kept in one place so that every producer and consumer agrees on field names,
codes and flag bits.
"""
from __future__ import annotations

import numpy as np

# --- herald patterns -------------------------------------------------------
PATTERN_NONE = 0      # round triggered without a BSM herald (Bob, or 'ready' with no herald)
PATTERN_PSI_PLUS = 1  # two detectors of the same arm, orthogonal polarisations
PATTERN_PSI_MINUS = 2 # detectors in different arms, orthogonal polarisations
PATTERN_OTHER = 3     # any other click pattern in one attempt (equal polarisation, 3+ clicks, ...)
PATTERN_NAMES = {PATTERN_NONE: "none", PATTERN_PSI_PLUS: "psi+", PATTERN_PSI_MINUS: "psi-", PATTERN_OTHER: "other"}
PATTERN_CODES = {v: k for k, v in PATTERN_NAMES.items()}

# --- round flags (bit mask) -------------------------------------------------
FLAG_LOST_DATA = 1 << 0            # a window of the round overlaps lost data (overflow, missed events, error)
FLAG_SETTING_MISSING = 1 << 1      # no setting tag in the setting window
FLAG_SETTING_AMBIGUOUS = 1 << 2    # more than one setting tag in the setting window
FLAG_HERALD_WITHOUT_READY = 1 << 3 # software herald but no hardware 'ready' tag (trigger = 'both')
FLAG_READY_WITHOUT_HERALD = 1 << 4 # 'ready' tag but no matching software herald (trigger = 'both')
FLAG_TRUNCATED = 1 << 5            # a window is cut by the end of the data
FLAG_NAMES = {
    FLAG_LOST_DATA: "lost_data",
    FLAG_SETTING_MISSING: "setting_missing",
    FLAG_SETTING_AMBIGUOUS: "setting_ambiguous",
    FLAG_HERALD_WITHOUT_READY: "herald_without_ready",
    FLAG_READY_WITHOUT_HERALD: "ready_without_herald",
    FLAG_TRUNCATED: "truncated",
}

SETTING_NONE = -1  # setting field value when missing or ambiguous

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
