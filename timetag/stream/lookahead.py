"""A partition's lookahead: records read past its end so that its last rounds are complete, counted apart.

A quiet-gap partition (:mod:`timetag.distributed.partition`) is processed by a fresh engine over its own records
and then its *lookahead* (the records after the gap, up to the first tag): they move the engine's data horizon
past the gap, so rounds near the end are not flagged truncated, but what they produce belongs to the next
partition.  The stream carries a :class:`LookaheadBegins` event between the two; :class:`LookaheadGate` lets tag
chunks through on one side of it only; :func:`own_counts` subtracts what a second, fresh engine made of the
lookahead alone (the lookahead follows a quiet gap, so it acts on a running engine exactly as on a fresh one).
Used by the threads of ``process`` (:mod:`timetag.stream.partition_run`) and by the Dask workers
(:mod:`timetag.distributed.run`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..chunk import TagChunk
from ..distributed.merge import subtract_histograms, subtract_summary
from ..provenance import jsonable
from .engine import LabEngine
from .processor import Processor, Stage

__all__ = ["LookaheadBegins", "LookaheadGate", "SummaryAtLookahead", "engine_histograms", "own_counts"]


class LookaheadBegins:
    """Event: the chunks after it are the partition's lookahead (read past its end to complete its rounds)."""


class LookaheadGate(Stage):
    """Forwards tag chunks only before (``lookahead=False``) or only after (``True``) :class:`LookaheadBegins`;
    every other event, and the end of the stream, always."""

    def __init__(self, lookahead: bool, downstream: Processor | None = None):
        super().__init__(downstream)
        self.lookahead = lookahead
        self.in_lookahead = False

    def handle(self, event) -> None:
        if isinstance(event, LookaheadBegins):
            self.in_lookahead = True
        elif isinstance(event, TagChunk) and self.in_lookahead != self.lookahead:
            return
        self.emit(event)


class SummaryAtLookahead(Stage):
    """Keeps ``engine.summary`` as it was when the lookahead began (a sink)."""

    def __init__(self, engine: LabEngine):
        super().__init__(None)
        self.engine = engine
        self.summary: dict | None = None

    def handle(self, event) -> None:
        if isinstance(event, LookaheadBegins):
            self.summary = jsonable(self.engine.summary)


def engine_histograms(engine: LabEngine) -> dict:
    """The engine's histograms as plain arrays, by name."""
    return {str(k): np.asarray(v) for k, v in (engine.histograms or {}).items()}


def own_counts(lab, engine: LabEngine, alone: LabEngine | None, at_lookahead: dict | None,
               make: Callable) -> tuple[dict, dict]:
    """(summary, histograms) of the partition's own records: ``engine`` ran over them and the lookahead, ``alone``
    (None without a lookahead) over the lookahead only; ``at_lookahead``: ``engine``'s summary when the lookahead
    began; ``make(lab)``: the pipeline both engines were given (None: the default)."""
    if alone is None:
        return jsonable(engine.summary), engine_histograms(engine)
    empty = jsonable(LabEngine(lab, pipeline=make(lab)).summary)
    summary = subtract_summary(jsonable(engine.summary), jsonable(alone.summary), empty)
    if lab.herald.sync_reference == "previous" and "clicks_without_sync" in (at_lookahead or {}):
        # a click after the gap has no sync in a fresh pipeline but a (distant) one in this pipeline: the
        # lookahead cannot change the count of the partition's own clicks
        summary["clicks_without_sync"] = at_lookahead["clicks_without_sync"]
    return summary, subtract_histograms(engine_histograms(engine), engine_histograms(alone))
