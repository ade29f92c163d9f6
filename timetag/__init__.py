"""timetag: a time-tag processing engine for event-ready entanglement experiments.

Raw detector time stamps (dump files or a live tagger) go in; per-round records
(input setting, fluorescence count, output bit, flags) come out; estimators turn
two labs' rounds into CHSH S, QBERs and secret key rates.

The public API is importable from here; each name is loaded on first use, so ``import timetag`` stays cheap
(no numba, h5py, scipy or matplotlib until a function that needs them is touched)::

    import timetag
    setup = timetag.load_setup("run/setup.toml")
    for chunk in timetag.read_tags("run/alice.dump"): ...          # TagChunk per chunk
    timetag.process_files(["run/alice.dump"], setup, "alice", "alice_rounds.h5")
    est = timetag.estimate("alice_rounds.h5", "bob_rounds.h5")      # an Estimate; est.S, est.to_json()

``timetag.calibrate`` is the calibration of the separate ``calibrate`` package, found through the entry point
group ``timetag.calibrators`` (:mod:`timetag.plugins`; timetag itself never imports that package).
"""
from __future__ import annotations

import importlib

from ._numba_cache import use_user_cache_dir

use_user_cache_dir()  # before anything imports numba: it reads the cache folder once

from ._version import __version__  # noqa: E402

# public name -> (module, attribute); resolved by __getattr__ on first use
_LAZY = {
    "TagChunk": ("timetag.chunk", "TagChunk"),
    "read_tags": ("timetag.formats", "open_tags"),
    "read_all": ("timetag.formats", "read_all"),
    "write_tags": ("timetag.formats", "write_tags"),
    "Setup": ("timetag.setupfile", "Setup"),
    "load_setup": ("timetag.setupfile", "load_setup"),
    # not "process": that is the submodule timetag.process, which every import of it binds here again
    "process_files": ("timetag.process", "process_files"),
    "read_rounds": ("timetag.roundsfile", "read_rounds"),
    "RoundsData": ("timetag.roundsfile", "RoundsData"),
    "estimate": ("timetag.estimators.pipeline", "estimate"),
    "Estimate": ("timetag.estimators.result", "Estimate"),
    "simulate": ("timetag.simulator", "simulate"),
    "TimetagError": ("timetag.errors", "TimetagError"),
    "FormatError": ("timetag.errors", "FormatError"),
    "DataValidationError": ("timetag.errors", "DataValidationError"),
    "SetupError": ("timetag.errors", "SetupError"),
    "CalibrationError": ("timetag.errors", "CalibrationError"),
    "EstimationError": ("timetag.errors", "EstimationError"),
}

__all__ = ["__version__", *_LAZY, "calibrate"]


def _calibrator(name: str):
    # the calibrate package builds on timetag: found through its entry point (timetag.plugins), never imported
    from .plugins import PluginMissing, calibrator

    try:
        return calibrator(name)
    except PluginMissing as exc:
        raise AttributeError(f"timetag.{name}: {exc}") from None


def __getattr__(name: str):
    if name == "calibrate":
        value = _calibrator(name)
    elif name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
    else:
        raise AttributeError(f"module 'timetag' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
