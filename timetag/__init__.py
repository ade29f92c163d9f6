"""timetag: a time-tag processing engine for event-ready entanglement experiments.

Raw detector time stamps (dump files or a live tagger) go in; per-round records
(input setting, fluorescence count, output bit, flags) come out; estimators turn
two labs' rounds into CHSH S, QBERs and secret key rates.
"""
from ._numba_cache import use_user_cache_dir

use_user_cache_dir()

from ._version import __version__  # noqa: E402
from .chunk import TagChunk
from .errors import CalibrationError, DataValidationError, EstimationError, FormatError, SetupError, TimetagError
from .setupfile import Setup, load_setup

__all__ = [
    "__version__", "TagChunk", "Setup", "load_setup",
    "TimetagError", "FormatError", "DataValidationError", "SetupError", "CalibrationError", "EstimationError",
]
