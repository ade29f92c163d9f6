"""LabEngine: the engine of one lab as a processor (raw tags in, rounds and heralds out).

Handles :class:`~timetag.chunk.TagChunk`: runs the herald and round stages (:class:`~timetag.engine.LabPipeline`)
and emits one :class:`RoundsEvent` per chunk (possibly empty: downstream processors see every chunk's outcome),
then forwards the chunk itself, so that processors after the engine can count tags too.  ``flush()``: decides
every round still open (windows cut by the data end are flagged truncated), emits a final ``RoundsEvent``, then
flushes downstream.  Other events pass through.  ``summary`` and ``histograms`` are current after every call.
"""
from __future__ import annotations

from ..chunk import TagChunk
from ..engine import LabPipeline
from ..records import empty_heralds, empty_rounds
from .events import RoundsEvent
from .processor import Processor, Stage

__all__ = ["LabEngine"]


class LabEngine(Stage):
    def __init__(self, lab, downstream: Processor | None = None, *, pipeline=None):
        """``pipeline``: anything with LabPipeline's ``process(chunk) -> (rounds, heralds)`` and ``flush()``
        (a custom stage chain); default the engine's :class:`~timetag.engine.LabPipeline` for ``lab``."""
        super().__init__(downstream)
        self.lab = lab
        self.pipeline = pipeline if pipeline is not None else LabPipeline(lab)
        self.finished = False

    def handle(self, event) -> None:
        if isinstance(event, TagChunk):
            rounds, heralds = self.pipeline.process(event)
            self.emit(RoundsEvent(_or_empty(rounds, empty_rounds), _or_empty(heralds, empty_heralds)))
        self.emit(event)

    def flush(self) -> None:
        if not self.finished:  # a second flush (a driver's rescue after the first failed) has nothing to add
            self.finished = True
            out = self.pipeline.flush()
            rounds, heralds = out if out is not None else (None, None)
            self.emit(RoundsEvent(_or_empty(rounds, empty_rounds), _or_empty(heralds, empty_heralds), final=True))
        super().flush()

    @property
    def summary(self):
        """The pipeline's :class:`~timetag.engine.summary.RunSummary` (a custom pipeline's dict)."""
        return getattr(self.pipeline, "summary", None) or {}

    @property
    def histograms(self) -> dict:
        return getattr(self.pipeline, "histograms", None) or {}


def _or_empty(records, empty):
    """A custom pipeline may say "nothing" with None."""
    return empty() if records is None else records
