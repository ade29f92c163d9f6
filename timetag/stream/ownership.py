"""KeepOwned: only the rounds and heralds a stream partition owns, renumbered from 0.

A Dask partition reads past its end (its lookahead) so that every round it owns is complete; rounds and heralds
are owned by time (``owns(times) -> bool array``, :meth:`timetag.distributed.partition.Partition.owns`: the
trigger time of a round, the time of a herald).  Handles :class:`RoundsEvent` (filtered and renumbered, then
forwarded when not empty; the final one always is); every other event is forwarded.  ``kept``: rounds kept.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .events import RoundsEvent
from .processor import Processor, Stage

__all__ = ["KeepOwned"]


class KeepOwned(Stage):
    def __init__(self, owns: Callable[[np.ndarray], np.ndarray], downstream: Processor | None = None):
        super().__init__(downstream)
        self.owns = owns
        self.kept = 0

    def handle(self, event) -> None:
        if isinstance(event, RoundsEvent):
            rounds = np.asarray(event.rounds)
            r = rounds[self.owns(rounds["trigger_time"])] if rounds.size else rounds
            h = event.heralds
            if h is not None and len(h):
                h = np.asarray(h)
                h = h[self.owns(h["time"])]
            if r.size:
                r = r.copy()
                r["index"] = np.arange(self.kept, self.kept + r.size)
                self.kept += r.size
            event = RoundsEvent(r, h, event.final)
        self.emit(event)
