"""Calibration from recorded data: delays, time-filter window, fluorescence thresholds, dark counts, clock offset.

``calibrate_run(alice_paths, bob_paths, setup) -> (new_setup, report)`` does it all in one pass over each lab's
tags; the pieces (histograms, fits, figure of merit) are usable on their own.
"""
from __future__ import annotations

import timetag  # noqa: F401  (first: it points numba's cache at the user's cache folder)

from .api import STEPS, calibrate_lab, calibrate_run, collect
from .report import CalibrationReport, Change
from .window import FomParams

__all__ = ["STEPS", "calibrate_run", "calibrate_lab", "collect", "CalibrationReport", "Change", "FomParams"]
