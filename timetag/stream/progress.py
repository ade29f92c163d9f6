"""ReportProgress: records and rounds done so far, told to a callback after every chunk.

Handles :class:`~timetag.chunk.TagChunk` (its tags and lost-data events count as records done) and
:class:`RoundsEvent` (rounds made); every event is forwarded.  After each chunk ``callback(records_done,
rounds_done)`` is called.  Presentation (a rich bar, a log line) is the caller's: this processor only counts.
"""
from __future__ import annotations

from typing import Callable

from ..chunk import TagChunk
from .events import RoundsEvent
from .processor import Processor, Stage

__all__ = ["ReportProgress"]


class ReportProgress(Stage):
    def __init__(self, callback: Callable[[int, int], None] | None, downstream: Processor | None = None):
        super().__init__(downstream)
        self.callback = callback
        self.records = 0
        self.rounds = 0

    def handle(self, event) -> None:
        if isinstance(event, RoundsEvent):
            self.rounds += len(event.rounds)
        self.emit(event)
        if isinstance(event, TagChunk):
            self.records += len(event) + len(event.lost)
            if self.callback is not None:
                self.callback(self.records, self.rounds)
