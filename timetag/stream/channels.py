"""CountChannels: tags per channel of every chunk that passes (:class:`~timetag.channels.ChannelTally`).

Handles :class:`~timetag.chunk.TagChunk` (counted, forwarded); every event is forwarded.  ``counts``: channel ->
tags so far.  Place it where the stream is the one to be reported (a partition counts its own records, before
its lookahead is appended).
"""
from __future__ import annotations

from ..channels import ChannelTally
from ..chunk import TagChunk
from .processor import Processor, Stage

__all__ = ["CountChannels"]


class CountChannels(Stage):
    def __init__(self, downstream: Processor | None = None):
        super().__init__(downstream)
        self.tally = ChannelTally()

    def handle(self, event) -> None:
        if isinstance(event, TagChunk):
            self.tally.process(event)
        self.emit(event)

    @property
    def counts(self) -> dict[int, int]:
        return self.tally.counts
