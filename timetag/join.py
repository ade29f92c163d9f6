"""Moved to :mod:`timetag.estimators.join`.

shim: remove when timetag/live/runner.py (its running_estimate, replaced by timetag.estimators.running) and
tests/test_live_runner.py no longer import timetag.join (the join belongs to the estimators: it is their first step).
"""
from __future__ import annotations

from .estimators.join import (  # noqa: F401
    DEFAULT_JITTER_PS,
    DEFAULT_MAX_DRIFT,
    MIN_FIT_TOLERANCE_PS,
    MIN_TOLERANCE_PS,
    JoinResult,
    SiftResult,
    estimate_clock,
    join_rounds,
    map_alice_to_bob,
    sift,
)
