"""Calibration from recorded data: delays, time-filter window, fluorescence thresholds, dark counts, clock offset.

``calibrate_run(alice_paths, bob_paths, setup) -> (new_setup, report)`` does it all in one pass over each lab's
tags; the pieces (histograms, fits, figure of merit) are usable on their own.

A plugin of timetag (which never imports it): ``timetag calibrate`` (:mod:`calibrate.cli`) and the demo's
calibrator (:func:`calibrate.api.calibrate_files`) are registered as entry points.
"""
from __future__ import annotations

import timetag  # noqa: F401  (first: it points numba's cache at the user's cache folder)
from timetag._lazy import lazy_names

__all__ = ["STEPS", "calibrate_run", "calibrate_lab", "collect", "CalibrationReport", "Change", "FomParams"]

# `timetag calibrate --help` imports calibrate.cli, which imports this package first: the names below load their
# modules (numpy, scipy, the compiled kernels) on first use instead
_LAZY = {"STEPS": "api", "calibrate_run": "api", "calibrate_lab": "api", "collect": "api",
         "CalibrationReport": "report", "Change": "report", "FomParams": "window"}


__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)
