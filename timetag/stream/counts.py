"""CountHistogram: the fluorescence-count histogram of the rounds that pass.

Handles :class:`RoundsEvent`: ``histogram[c]`` += rounds with ``count == c``, counts above ``max_count`` in the
last bin (the binning is the parameter); every event is forwarded.  Calibration's threshold fit reads it from a
run whose rounds are triggered by the 'ready' tags, so it measures with the engine's own read-out windows.
"""
from __future__ import annotations

import numpy as np

from .events import RoundsEvent
from .processor import Processor, Stage

__all__ = ["CountHistogram"]


class CountHistogram(Stage):
    def __init__(self, max_count: int, downstream: Processor | None = None):
        if int(max_count) < 0:
            raise ValueError(f"max_count must be >= 0 (got {max_count})")
        super().__init__(downstream)
        self.histogram = np.zeros(int(max_count) + 1, np.int64)

    def handle(self, event) -> None:
        if isinstance(event, RoundsEvent) and len(event.rounds):
            counts = np.minimum(event.rounds["count"], self.histogram.size - 1)
            self.histogram += np.bincount(counts, minlength=self.histogram.size)
        self.emit(event)
