"""CountChannels: tags per channel of every chunk that passes (:class:`~timetag.channels.ChannelTally`).

Handles :class:`~timetag.chunk.TagChunk` (counted, forwarded); every event is forwarded.  ``counts``: channel ->
tags so far.  Place it where the stream is the one to be reported (a partition counts its own records, before
its lookahead is appended).  :func:`tallied` counts the same on an iterator of events instead, e.g. inside
:func:`~timetag.stream.prefetch.prefetched`, so the counting runs on the reading thread, off the engine's core.
"""
from __future__ import annotations

from typing import Iterable, Iterator

from ..channels import ChannelTally
from ..chunk import TagChunk
from .processor import Processor, Stage

__all__ = ["CountChannels", "tallied"]


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


def tallied(events: Iterable, tally: ChannelTally) -> Iterator:
    """``events`` unchanged, the tags of their chunks counted into ``tally`` as they pass."""
    for event in events:
        if isinstance(event, TagChunk):
            tally.process(event)
        yield event
