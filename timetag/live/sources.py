"""The small interface every live source implements.

A source is an iterable of :class:`Batch` (one :class:`~timetag.chunk.TagChunk` per lab it feeds, plus the
wall-clock time the data arrived) with ``start()`` / ``stop()``.  Lost data (device overflows, missed events,
errors) travel inside the chunks as lost-data events, exactly as in file streams.

Live sources also yield *empty* batches when nothing arrived within their poll interval, so that the live loop
keeps flushing and refreshing its status while the device is quiet.  Iteration ends when the source is exhausted
(end of a replayed file) or after :meth:`Source.stop`.
"""
from __future__ import annotations

import abc
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from ..chunk import TagChunk, empty_lost


def empty_chunk(offset: int = 0) -> TagChunk:
    return TagChunk(np.zeros(0, np.int64), np.zeros(0, np.int32), empty_lost(), offset)


@dataclass
class Batch:
    """Data of all labs of a source that arrived together."""

    chunks: dict[str, TagChunk]
    arrival: float = field(default_factory=time.monotonic)  # time.monotonic() when the data became available
    device_time_ps: int | None = None  # device clock reached by this batch (may exceed the last tag time)

    @property
    def n_tags(self) -> int:
        return sum(len(c) for c in self.chunks.values())

    @property
    def n_lost_events(self) -> int:
        return sum(int(c.lost.size) for c in self.chunks.values())


class Source(abc.ABC):
    """Base class: subclasses implement :meth:`_batches`; ``labs`` names the labs whose data they yield."""

    labs: tuple[str, ...] = ()
    #: device seconds per wall-clock second when paced (None = as fast as possible)
    speed: float | None = 1.0
    description: str = "source"

    def __init__(self):
        self._stop = threading.Event()
        self._started = False

    def start(self) -> None:
        self._started = True

    def stop(self) -> None:
        """Ask the source to end its iteration soon (safe from another thread or a signal handler)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        """Release the device/file; called once by the runner after the iteration ends."""

    def stats(self) -> dict:
        """Source-side counters for the status (device overflows, buffer fill, bytes read, ...)."""
        return {}

    def __iter__(self) -> Iterator[Batch]:
        if not self._started:
            self.start()
        for b in self._batches():
            yield b
            if self._stop.is_set():
                break

    @abc.abstractmethod
    def _batches(self) -> Iterator[Batch]:
        """The source's batches, in time order (each subclass defines it)."""

    def _sleep_until(self, deadline: float) -> bool:
        """Wait until ``time.monotonic() >= deadline``; False if stopped meanwhile."""
        delay = deadline - time.monotonic()
        if delay > 0:
            return not self._stop.wait(delay)
        return not self._stop.is_set()


class ChunkSource(Source):
    """An in-memory stream of chunks (one lab) or of ``{lab: chunk}`` dicts, optionally paced to wall-clock.

    Pacing: a chunk is released when the wall clock reaches the device time of its last tag divided by ``speed``
    (relative to the first tag).  ``speed=None`` releases everything as fast as the consumer takes it.
    """

    def __init__(self, chunks: Iterable, lab: str | tuple[str, ...] = "alice", speed: float | None = None):
        super().__init__()
        self._chunks = chunks
        self.labs = (lab,) if isinstance(lab, str) else tuple(lab)
        self.speed = speed
        self.description = f"chunks ({', '.join(self.labs)})"

    def _batches(self) -> Iterator[Batch]:
        pacer = Pacer(self.speed)
        for item in self._chunks:
            chunks = item if isinstance(item, dict) else {self.labs[0]: item}
            t_dev = _last_time(chunks)
            if t_dev is not None and not self._sleep_until(pacer.due(t_dev)):
                return
            yield Batch(chunks, device_time_ps=t_dev)


class Pacer:
    """Maps device time (ps) to the wall-clock moment it is due, anchored at the first device time seen."""

    def __init__(self, speed: float | None, t0_wall: float | None = None):
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be > 0 (got {speed!r})")
        self.speed = speed
        self.t0_wall = t0_wall
        self.t0_dev: int | None = None

    def due(self, t_dev_ps: int) -> float:
        if self.speed is None:
            return 0.0
        if self.t0_dev is None:
            self.t0_dev = int(t_dev_ps)
            if self.t0_wall is None:
                self.t0_wall = time.monotonic()
        return self.t0_wall + (int(t_dev_ps) - self.t0_dev) * 1e-12 / self.speed


def _last_time(chunks: dict[str, TagChunk]) -> int | None:
    ts = [c.last_time for c in chunks.values() if len(c)]
    ls = [int(c.lost["time"][-1]) for c in chunks.values() if c.lost.size]
    both = ts + ls
    return max(both) if both else None
