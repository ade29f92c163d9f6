"""RecordRawTags: every chunk written to a raw-tag sink before anything downstream sees it.

Handles :class:`~timetag.chunk.TagChunk` (``sink.write(chunk)`` first, so the raw files hold every tag a round
was made of, then forwarded) and :class:`Checkpoint` (``sink.flush()``); every event is forwarded.  ``flush()``
flushes the sink; closing it (and naming the files) is the driver's, however the run ends.
"""
from __future__ import annotations

from ..chunk import TagChunk
from .events import Checkpoint
from .processor import Processor, Stage

__all__ = ["RecordRawTags"]


class RecordRawTags(Stage):
    def __init__(self, sink, downstream: Processor | None = None):
        super().__init__(downstream)
        self.sink = sink

    def handle(self, event) -> None:
        if isinstance(event, TagChunk):
            self.sink.write(event)
        elif isinstance(event, Checkpoint):
            self.sink.flush()
        self.emit(event)

    def flush(self) -> None:
        self.sink.flush()
        super().flush()
