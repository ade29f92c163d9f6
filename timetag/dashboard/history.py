"""A bounded history of numbers over a run of any length: evenly thinned as it grows.

A week-long campaign must fit in memory and in one page load, yet its first hour must still be on the plot: when
``maxlen`` rows are held, every other one is dropped and from then on only every ``stride``-th new row is kept
(plus the newest, the ``tail``, so the plot always ends now).  The kept rows stay evenly spaced over the whole run.

A page that has the rows up to some version asks only for the rows after it (:meth:`History.rows_after`) while the
``generation`` (the number of thinnings) is the one it has; sending the whole history every second would cost the
server's thread more than the run's status does (JSON of thousands of floats).
"""
from __future__ import annotations

import math

__all__ = ["History", "columns"]


class History:
    def __init__(self, maxlen: int = 2000):
        if maxlen < 4:
            raise ValueError(f"maxlen must be >= 4 (got {maxlen})")
        self.maxlen = int(maxlen)
        self._rows: list[dict] = []
        self._tail: dict | None = None  # the newest row when the stride skipped it
        self._stride = 1
        self._count = 0
        self.generation = 0

    def __len__(self) -> int:
        return len(self._rows) + (self._tail is not None)

    @property
    def last(self) -> dict | None:
        return self._tail if self._tail is not None else (self._rows[-1] if self._rows else None)

    def append(self, row: dict) -> None:
        if self._count % self._stride == 0:
            self._rows.append(row)
            self._tail = None
        else:
            self._tail = row
        self._count += 1
        if len(self._rows) >= self.maxlen:
            newest = self._rows[-1]
            self._rows = self._rows[::2]
            if self._rows[-1] is not newest:  # thinned away: still the newest, so still drawn
                self._tail = newest
            self._stride *= 2
            self.generation += 1

    def rows(self) -> list[dict]:
        """A copy of the kept rows in order (cheap: references only)."""
        return self._rows + ([self._tail] if self._tail is not None else [])

    def kept(self) -> list[dict]:
        return list(self._rows)

    def tail(self) -> list[dict]:
        return [] if self._tail is None else [self._tail]

    def rows_after(self, version: int, key: str = "v") -> list[dict]:
        """The kept rows whose ``row[key]`` is above ``version`` (rows are appended in version order)."""
        i = len(self._rows)
        while i > 0 and self._rows[i - 1].get(key, 0) > version:
            i -= 1
        return self._rows[i:]

    def columns(self, keys=None) -> dict[str, list]:
        return columns(self.rows(), keys)


def columns(rows: list[dict], keys=None) -> dict[str, list]:
    """``{key: [value per row]}`` (None where a row lacks the key or holds a non-finite number: JSON has no NaN,
    and a gap in a line is what a missing value should look like)."""
    if keys is None:
        keys = list(dict.fromkeys(k for r in rows for k in r))
    return {k: [_finite(r.get(k)) for r in rows] for k in keys}


def _finite(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
