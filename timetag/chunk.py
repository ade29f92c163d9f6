"""The tag stream model: chunks of tags plus lost-data events.

A stream is an iterable of :class:`TagChunk`.  Tags are a structure of arrays
(``time`` int64 picoseconds, ``channel`` int32), sorted by time within and
across chunks.  Lost data travels *in* the stream as point events
(``lost`` structured array, :data:`LOST_DTYPE`), each placed in the chunk in
which it occurred, sorted by time:

* ``OVERFLOW_BEGIN`` / ``OVERFLOW_END`` bracket an interval in which the device
  dropped tags (the interval may span chunks: stages keep the open state);
* ``MISSED`` says ``count`` tags of ``channel`` were lost around ``time``;
* ``ERROR`` marks a device error: the data around ``time`` are untrustworthy.

Stages treat a window as touched by lost data when an overflow is open at any
instant of it or a ``MISSED``/``ERROR`` event lies inside it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from .constants import DEFAULT_CHUNK_SIZE, LostKind

OVERFLOW_BEGIN = LostKind.OVERFLOW_BEGIN
OVERFLOW_END = LostKind.OVERFLOW_END
MISSED = LostKind.MISSED
ERROR = LostKind.ERROR
LOST_KIND_NAMES = {OVERFLOW_BEGIN: "overflow_begin", OVERFLOW_END: "overflow_end", MISSED: "missed", ERROR: "error"}

LOST_DTYPE = np.dtype([("time", "<i8"), ("kind", "u1"), ("channel", "<i4"), ("count", "<i8")])



def empty_lost() -> np.ndarray:
    return np.zeros(0, dtype=LOST_DTYPE)


@dataclass
class TagChunk:
    """A contiguous piece of a tag stream.

    ``time`` and ``channel`` have equal length.  ``offset`` is the index of the
    first tag in the whole stream (so that messages can name record numbers).
    """

    time: np.ndarray
    channel: np.ndarray
    lost: np.ndarray = field(default_factory=empty_lost)
    offset: int = 0

    def __post_init__(self):
        self.time = np.ascontiguousarray(self.time, dtype=np.int64)
        self.channel = np.ascontiguousarray(self.channel, dtype=np.int32)
        if self.lost is None:
            self.lost = empty_lost()
        elif self.lost.dtype != LOST_DTYPE:
            self.lost = np.asarray(self.lost).astype(LOST_DTYPE)
        if self.time.shape != self.channel.shape or self.time.ndim != 1:
            raise ValueError(f"time {self.time.shape} and channel {self.channel.shape} must be 1-D of equal length")

    def __len__(self) -> int:
        return int(self.time.size)

    @property
    def first_time(self) -> int | None:
        return int(self.time[0]) if self.time.size else None

    @property
    def last_time(self) -> int | None:
        return int(self.time[-1]) if self.time.size else None


def concat(chunks: Iterable[TagChunk]) -> TagChunk:
    """Join chunks into one (for tests and small files)."""
    chunks = list(chunks)
    if not chunks:
        return TagChunk(np.zeros(0, np.int64), np.zeros(0, np.int32))
    return TagChunk(
        np.concatenate([c.time for c in chunks]),
        np.concatenate([c.channel for c in chunks]),
        np.concatenate([c.lost for c in chunks]),
        chunks[0].offset,
    )


def split(chunk: TagChunk, cuts: Iterable[int]) -> Iterator[TagChunk]:
    """Cut one chunk at the given tag indices (sorted, within range)."""
    prev = 0
    bounds = list(cuts) + [len(chunk)]
    for i, c in enumerate(bounds):
        c = int(min(max(c, prev), len(chunk)))
        yield _piece(chunk, prev, c, last=(i == len(bounds) - 1))
        prev = c


def _piece(chunk: TagChunk, start: int, stop: int, last: bool) -> TagChunk:
    """Tags [start, stop); lost events with time <= last tag time of the piece (all remaining if last)."""
    t, lt = chunk.time, chunk.lost["time"]
    lo = 0 if start == 0 else int(np.searchsorted(lt, t[start - 1], side="right"))
    if last:
        hi = lt.size
    elif stop == 0:
        hi = 0
    else:
        hi = int(np.searchsorted(lt, t[stop - 1], side="right"))
    hi = max(hi, lo)
    return TagChunk(t[start:stop], chunk.channel[start:stop], chunk.lost[lo:hi], chunk.offset + start)


def rechunk(chunks: Iterable[TagChunk], size: int) -> Iterator[TagChunk]:
    """Re-cut a stream into chunks of ``size`` tags (the last may be shorter)."""
    whole = concat(chunks)
    cuts = range(size, len(whole), size)
    yield from split(whole, cuts)
