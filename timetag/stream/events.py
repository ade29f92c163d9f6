"""The events that travel between processors besides :class:`~timetag.chunk.TagChunk`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..records import empty_heralds, empty_rounds

__all__ = ["Checkpoint", "RoundsEvent"]


@dataclass
class RoundsEvent:
    """What the engine decided after one chunk (or at the end): rounds whose windows are closed, in index order,
    and the herald records (every pattern) that became final.  Either may be empty."""

    rounds: np.ndarray
    heralds: np.ndarray
    final: bool = False

    @classmethod
    def empty(cls) -> "RoundsEvent":
        return cls(empty_rounds(), empty_heralds())


@dataclass
class Checkpoint:
    """Make everything handled so far durable (flush files to disk); ``now``: the wall clock (monotonic s)."""

    now: float = 0.0
