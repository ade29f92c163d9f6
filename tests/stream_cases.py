"""Small streams for the processors' contract tests."""
from __future__ import annotations

import numpy as np

from timetag.chunk import LOST_DTYPE, TagChunk


def chunk(times, channels, offset: int = 0, lost=None) -> TagChunk:
    return TagChunk(np.asarray(times, np.int64), np.asarray(channels, np.int32),
                    np.zeros(0, LOST_DTYPE) if lost is None else lost, offset)


def rounds_of(collect) -> np.ndarray:
    from timetag.stream import RoundsEvent

    parts = [e.rounds for e in collect.of_type(RoundsEvent)]
    return np.concatenate(parts) if parts else np.zeros(0)
