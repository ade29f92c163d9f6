"""Helpers shared by the format modules: path checks, time-order policing, the writer base."""
from __future__ import annotations

import abc
import os
from pathlib import Path

import numpy as np

from ..chunk import TagChunk
from ..errors import DataValidationError, FormatError


def check_readable(path) -> Path:
    """A clear FormatError for a missing path, a directory, an unreadable or an empty file."""
    p = Path(path)
    if not p.exists():
        raise FormatError("no such file", path=p)
    if p.is_dir():
        raise FormatError("is a directory, not a time-tag file", path=p)
    if not os.access(p, os.R_OK):
        raise FormatError("file is not readable (permission denied)", path=p)
    if p.stat().st_size == 0:
        raise FormatError("file is empty", path=p)
    return p


def read_head(path, n: int = 4096) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


class OrderGuard:
    """Polices time order across the chunks of one stream.

    * ``tolerance_ps == 0`` and ``check=True``: the first backward step raises
      :class:`DataValidationError` naming the record index (``index_of`` maps a
      tag index of the stream to a record index of the file).
    * ``check=False``: tags pass unchanged; ``backward_steps`` and
      ``max_backward_ps`` count what was seen (``timetag info`` reports them).
    * ``tolerance_ps > 0``: tags are reordered (stable sort by time) as long as
      no tag is earlier than an earlier-read tag by more than the tolerance; a
      larger step raises.  The output is the stable sort of the whole stream,
      whatever the chunking, because a tag is only released once no later tag
      can sort before it.
    """

    def __init__(self, path, check: bool = True, tolerance_ps: int = 0, index_of=None):
        self.path = path
        self.check = check
        self.tolerance = int(tolerance_ps)
        if self.tolerance < 0:
            raise ValueError(f"tolerance_ps must be >= 0, got {tolerance_ps}")
        self.index_of = index_of or (lambda i: i)
        self.last = np.iinfo(np.int64).min    # running maximum of times read
        self.backward_steps = 0
        self.max_backward_ps = 0
        self._carry_t = np.zeros(0, np.int64)
        self._carry_c = np.zeros(0, np.int32)
        self._prev = None
        self._seen = 0   # tags read so far (stream index of next input tag)
        self._out = 0    # tags emitted so far

    def _count(self, t: np.ndarray) -> None:
        # steps between consecutive tags as read (what a user sees scrolling through the file)
        if t.size == 0:
            return
        if self._prev is not None:
            t = np.concatenate(([self._prev], t))
        self._prev = int(t[-1])
        drop = t[:-1] - t[1:]
        back = drop > 0
        if back.any():
            self.backward_steps += int(np.count_nonzero(back))
            self.max_backward_ps = max(self.max_backward_ps, int(drop.max()))

    def _raise_if_backward(self, t: np.ndarray) -> None:
        from .._cext.streamcheck import first_backward_step

        i = first_backward_step(t, self.tolerance, self.last) if self._seen else first_backward_step(t, self.tolerance)
        if i >= 0:
            prev = int(np.max(t[:i])) if i > 0 else int(self.last)
            prev = max(prev, int(self.last))
            hint = ("" if self.tolerance else
                    "; to reorder small steps use tolerance_ps=N (CLI: --tolerance-ps N)")
            raise DataValidationError(
                f"time goes backwards: {int(t[i])} ps after {prev} ps (step {prev - int(t[i])} ps"
                f"{', tolerance ' + str(self.tolerance) + ' ps' if self.tolerance else ''}){hint}",
                path=self.path, index=int(self.index_of(self._seen + i)))

    def process(self, chunk: TagChunk) -> TagChunk:
        t = chunk.time
        if not self.check and not self.tolerance:
            self._count(t)
            if t.size:
                self.last = max(self.last, int(t.max()))
            self._seen += t.size
            return chunk
        if t.size:
            self._raise_if_backward(t)
            self._count(t)
            self.last = max(self.last, int(t.max()))
        self._seen += t.size
        if not self.tolerance:
            return chunk
        allt = np.concatenate((self._carry_t, t))
        allc = np.concatenate((self._carry_c, chunk.channel))
        order = np.argsort(allt, kind="stable")
        allt, allc = allt[order], allc[order]
        # any later tag has time >= last - tolerance, so tags strictly below that are final
        n = int(np.searchsorted(allt, self.last - self.tolerance, side="left")) if allt.size else 0
        self._carry_t, self._carry_c = allt[n:], allc[n:]
        out = TagChunk(allt[:n], allc[:n], chunk.lost, self._out)
        self._out += n
        return out

    def flush(self) -> TagChunk | None:
        if not self.tolerance or self._carry_t.size == 0:
            return None
        out = TagChunk(self._carry_t, self._carry_c, None, self._out)
        self._out += self._carry_t.size
        self._carry_t = np.zeros(0, np.int64)
        self._carry_c = np.zeros(0, np.int32)
        return out

    @property
    def meta(self) -> dict:
        return {"backward_steps": self.backward_steps, "max_backward_ps": self.max_backward_ps}


class TagWriter(abc.ABC):
    """Base of the streaming writers: ``write(chunk)`` appends, ``close()`` finishes; a context manager."""

    @abc.abstractmethod
    def write(self, chunk) -> None:
        """Append the tags and lost-data events of one chunk."""

    @abc.abstractmethod
    def close(self) -> None:
        """Finish the file (idempotent)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
