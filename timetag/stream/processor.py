"""The processor protocol, the forwarding base class, and two plumbing processors (:class:`Tee`, :class:`Collect`).

Contract shared by every processor:

* ``handle(event)`` is called once per event, in stream order; whatever the processor does not consume it
  passes on unchanged (``emit``), so a processor placed anywhere in a chain never hides events from the rest;
* ``flush()`` is called once, at the end of the stream, after the last ``handle``; the processor emits what it
  held back, then flushes its downstream.  Neither is called after ``flush()``.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Collect", "Processor", "Stage", "Tee"]


@runtime_checkable
class Processor(Protocol):
    def handle(self, event) -> None: ...

    def flush(self) -> None: ...


class Stage:
    """A processor with one downstream: by default it forwards every event and the end of the stream."""

    def __init__(self, downstream: Processor | None = None):
        self.downstream = downstream

    def emit(self, event) -> None:
        if self.downstream is not None:
            self.downstream.handle(event)

    def handle(self, event) -> None:
        self.emit(event)

    def flush(self) -> None:
        if self.downstream is not None:
            self.downstream.flush()


class Tee:
    """Every event, and the end of the stream, to each of several processors in turn (in the order given)."""

    def __init__(self, *downstreams: Processor):
        self.downstreams = [d for d in downstreams if d is not None]

    def handle(self, event) -> None:
        for d in self.downstreams:
            d.handle(event)

    def flush(self) -> None:
        for d in self.downstreams:
            d.flush()


class Collect:
    """A sink that keeps every event it is given (tests, small in-memory runs); ``flushed`` after the end."""

    def __init__(self):
        self.events: list = []
        self.flushed = False

    def handle(self, event) -> None:
        if self.flushed:
            raise RuntimeError("collect: an event after flush()")
        self.events.append(event)

    def flush(self) -> None:
        if self.flushed:
            raise RuntimeError("collect: flush() called twice")
        self.flushed = True

    def of_type(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]
