"""Helpers shared by the format modules: path checks, the bad-record policy, time-order policing, the writer base."""
from __future__ import annotations

import abc
import numbers
import os
import warnings
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .._cext.streamcheck import first_backward_step
from ..chunk import LOST_DTYPE, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk, empty_lost
from ..custody import AtomicOutput
from ..errors import DataValidationError, FormatError, SetupError, TimetagWarning


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


# ------------------------------------------------------------------------------------------------- bad records
INT64_MIN = int(np.iinfo(np.int64).min)
BAD_RECORD_MODES = ("fail", "lost")
EXAMPLES_KEPT = 10     # bad records listed in a reader's meta with their reason (all are counted)


def read_records_into(fd: int, buf: np.ndarray, start: int, lo: int, path) -> np.ndarray:
    """``buf`` filled with the file's bytes from byte ``start`` (its records from record ``lo``), short reads
    retried; a file that ends first shrank while it was read: a :class:`FormatError` says so."""
    view = memoryview(buf).cast("B")
    got = 0
    while got < view.nbytes:
        n = os.preadv(fd, [view[got:]], start + got)
        if not n:
            raise FormatError(f"file shrank while reading: expected {len(buf)} records from record {lo}",
                              path=path, offset=start + got)
        got += n
    return buf


def read_bytes_at(fd: int, at: int, n: int, path) -> bytes:
    """The file's ``n`` bytes from byte ``at`` (a header, trailing bytes); a file that ends first shrank while it
    was read: a :class:`FormatError` says so."""
    data = os.pread(fd, n, at)
    if len(data) < n:
        raise FormatError(f"file shrank while reading: expected {n} bytes at byte {at}, got {len(data)}", path=path,
                          offset=at + len(data))
    return data


def check_bad_record_options(on_bad_record="fail", max_jump_ps=None) -> tuple[str, int | None]:
    """``(on_bad_record, max_jump_ps)`` as the readers use them; :class:`SetupError` naming the option otherwise."""
    if not isinstance(on_bad_record, str) or on_bad_record not in BAD_RECORD_MODES:
        raise SetupError(f"must be 'fail' (stop at the first bad record) or 'lost' (turn bad records into lost "
                         f"data and read on), got {on_bad_record!r}", key="on_bad_record")
    if max_jump_ps is None:
        return on_bad_record, None
    whole = (isinstance(max_jump_ps, numbers.Real) and not isinstance(max_jump_ps, bool)
             and float(max_jump_ps).is_integer())
    if not whole or max_jump_ps <= 0:
        raise SetupError(f"must be a positive whole number of picoseconds, or None for no limit (got "
                         f"{max_jump_ps!r})", key="max_jump_ps")
    return on_bad_record, int(max_jump_ps)


def time_fault(t: int, last: int, tolerance: int = 0, max_jump_ps: int | None = None) -> str | None:
    """Why a tag at ``t`` ps is bad after good tags whose latest time is ``last`` (INT64_MIN before the first
    good tag), or None when it is good."""
    if t < 0:
        return f"negative time {t} ps"
    if last == INT64_MIN:
        return None
    if last - t > tolerance:
        tol = f", tolerance {tolerance} ps" if tolerance else ""
        return f"time goes backwards: {t} ps after {last} ps (step {last - t} ps{tol})"
    if max_jump_ps is not None and t - last > max_jump_ps:
        return f"time jumps forward: {t} ps after {last} ps (step {t - last} ps > max_jump_ps {max_jump_ps})"
    return None


def times_ok(t: np.ndarray, last: int, tolerance: int = 0, max_jump_ps: int | None = None) -> np.ndarray:
    """Which tags of ``t`` are good after ``last``, each judged alone (``last`` stays fixed: the search for the
    end of a run of bad tags)."""
    ok = t >= 0
    if last != INT64_MIN:      # good tags are never negative, so ``last`` >= 0 here and nothing overflows
        ok &= t >= last - tolerance
        if max_jump_ps is not None:
            ok &= t - last <= max_jump_ps
    return ok


def first_time_fault(t: np.ndarray, last: int, tolerance: int = 0, max_jump_ps: int | None = None,
                     ordered: bool = False) -> tuple[int, int]:
    """(index of the first bad tag of ``t`` or -1, latest time of the good tags before it, starting from ``last``).

    Each tag is judged against the latest good time before it (:func:`time_fault`).  ``ordered``: the caller has
    already found that no tag goes backwards (the dump kernel checks that as it splits).
    """
    n = t.size
    end = n
    if not ordered and n:
        i = first_backward_step(t, tolerance, last)
        end = n if i < 0 else i
    if end:
        end = min(end, _first_negative(t[:end], last, tolerance))
    if end and max_jump_ps is not None:
        end = min(end, _first_jump(t[:end], last, tolerance, max_jump_ps))
    if end:
        good = t[:end]
        last = max(last, int(good[-1]) if ordered or not tolerance else int(good.max()))
    return (end if end < n else -1), last


def _first_negative(t: np.ndarray, last: int, tolerance: int) -> int:
    """Index of the first negative tag of ``t`` (no backward step beyond ``tolerance`` in it), else its size."""
    # each tag after the first is >= max(last, t[0]) - tolerance: when that is >= 0 only t[0] can be negative
    t0 = int(t[0])
    if t0 >= 0 and max(last, t0) >= tolerance:
        return t.size
    neg = np.flatnonzero(t < 0)
    return int(neg[0]) if neg.size else t.size


def _first_jump(t: np.ndarray, last: int, tolerance: int, max_jump_ps: int) -> int:
    """Index of the first tag of ``t`` later than the latest time before it by more than ``max_jump_ps``."""
    if last != INT64_MIN and int(t[0]) - last > max_jump_ps:
        return 0
    if t.size < 2:
        return t.size
    # without a backward step the latest time before tag k is tag k-1; with a tolerance, the running maximum
    before = t[:-1] if not tolerance else np.maximum.accumulate(t[:-1])
    if tolerance and last != INT64_MIN:
        before = np.maximum(before, last)
    jumps = np.flatnonzero(t[1:] - before > max_jump_ps)
    return int(jumps[0]) + 1 if jumps.size else t.size


def growing_blocks(start: int, stop: int, first: int = 1 << 12) -> Iterator[tuple[int, int]]:
    """``[lo, hi)`` blocks from ``start`` to ``stop``, each twice as long as the one before: a search that stops
    early costs about as much as the distance it went, however many searches one chunk needs."""
    size = max(int(first), 1)
    lo = start
    while lo < stop:
        hi = min(lo + size, stop)
        yield lo, hi
        lo = hi
        size *= 2


def write_new(target, write, *, force: bool = False) -> Path:
    """Write ``target`` through custody: ``write(partial_path)`` fills a new file, renamed over ``target`` when it
    returns (an existing ``target`` only with ``force``, and untouched until then)."""
    with AtomicOutput(target, force=force) as out:
        write(out.partial)
    return Path(target)


def overflow_event(kind: int, time: int) -> np.ndarray:
    ev = np.zeros(1, LOST_DTYPE)
    ev["kind"] = kind
    ev["time"] = time
    return ev


class BadRecords:
    """The bad records of one stream under an ``on_bad_record`` policy, and the lost-data intervals they make.

    * ``'fail'``: the reader passes on the tags and events before a bad record, then raises :meth:`error`.
    * ``'lost'``: the reader drops bad records (:meth:`note_run` counts them; the first few are kept with their
      index, byte offset and reason in ``meta``) and brackets each run of them with an ``OVERFLOW_BEGIN`` at the
      latest good time before it (:meth:`open`) and an ``OVERFLOW_END`` at the next good tag (:meth:`close`), so
      that the engine flags every round whose windows touch the gap.  A run before any good tag gets both at the
      first good tag.  The engine knows one open overflow at a time, so :meth:`union` merges these intervals
      with the device's own overflows where they overlap: one BEGIN/END pair then spans both.
    """

    def __init__(self, path, on_bad_record: str = "fail", max_jump_ps: int | None = None):
        self.path = path
        self.mode, self.max_jump_ps = check_bad_record_options(on_bad_record, max_jump_ps)
        self.count = 0
        self.examples: list[dict] = []
        self.is_open = False             # a run of bad records waits for its next good tag
        self._begin = INT64_MIN          # where its interval begins (INT64_MIN: no good tag before it)
        self._ours_open = False          # what the events passed on so far left open: ours, the device's
        self._device_open = False

    @property
    def lost(self) -> bool:
        return self.mode == "lost"

    @property
    def interval_open(self) -> bool:
        """True when the events passed on end inside an interval of bad records that only its END closes."""
        return self._ours_open and not self._device_open

    @property
    def meta(self) -> dict:
        return {"bad_records": self.count, "bad_record_examples": [dict(e) for e in self.examples]}

    def error(self, index: int, reason: str, offset: int | None = None, cls=DataValidationError,
              cli_reason: str | None = None) -> Exception:
        """The exception for a bad record ('fail' mode): a FormatError's ``reason`` names the record itself.
        ``cli_reason``: the reason as the command line says it (see :class:`~timetag.errors.TimetagError`)."""
        if cls is FormatError:
            return FormatError(reason, path=self.path, offset=offset, cli_message=cli_reason)
        where = f" (byte {offset})" if offset is not None else ""
        return DataValidationError(reason + where, path=self.path, index=index,
                                   cli_message=None if cli_reason is None else cli_reason + where)

    def note_run(self, n: int, describe: Callable[[int], tuple[int, str, int | None]]) -> None:
        """Count a run of ``n`` dropped records; ``describe(k)`` gives (index, reason, byte offset or None) of the
        k-th, asked only while examples are still kept."""
        for k in range(min(n, EXAMPLES_KEPT - len(self.examples))):
            index, reason, offset = describe(k)
            self.examples.append({"index": int(index), "offset": offset, "reason": reason})
            if self.count == 0 and k == 0:
                said = f"{self.path}: record {index}: {reason}: dropped, a lost-data interval instead ({{}})"
                warnings.warn(TimetagWarning(
                    said.format("on_bad_record='lost'; later ones are counted in meta['bad_records']"),
                    cli_message=said.format("--on-bad-record lost; later ones are counted in the summary")),
                    stacklevel=2)
        self.count += n

    def open(self, last_good: int) -> np.ndarray:
        """The events that open the interval of a run of bad records after good tags up to ``last_good``."""
        if self.is_open:
            return empty_lost()
        self.is_open = True
        self._begin = last_good
        return empty_lost() if last_good == INT64_MIN else overflow_event(OVERFLOW_BEGIN, last_good)

    def close(self, next_good: int) -> np.ndarray:
        """The events that close the open interval (if any) at the next good tag, ``next_good``."""
        if not self.is_open:
            return empty_lost()
        self.is_open = False
        end = max(next_good, self._begin)      # a tolerance may let the next good tag be a little earlier
        close = overflow_event(OVERFLOW_END, end)
        if self._begin == INT64_MIN:
            return np.concatenate([overflow_event(OVERFLOW_BEGIN, end), close])
        return close

    def union(self, events: np.ndarray, ours: np.ndarray) -> np.ndarray:
        """``events`` in stream order (``ours``: made by :meth:`open`/:meth:`close`) with the overflows of bad
        runs and of the device kept from nesting: an overflow event of one side passes only while the other side
        has no overflow open (the device's own events pass as they are otherwise).  Every event of the stream
        goes through here, in order."""
        if not self.lost or not events.size:
            return events
        kinds = events["kind"]
        overflow = np.flatnonzero((kinds == OVERFLOW_BEGIN) | (kinds == OVERFLOW_END))
        if not self._ours_open and not ours.any():
            if overflow.size:    # only the device's: remember whether it left an overflow open
                self._device_open = bool(kinds[overflow[-1]] == OVERFLOW_BEGIN)
            return events
        keep = np.ones(events.size, bool)
        for i in overflow.tolist():
            begin = bool(kinds[i] == OVERFLOW_BEGIN)
            if ours[i]:
                keep[i] = not self._device_open
                self._ours_open = begin
            else:
                keep[i] = not self._ours_open
                self._device_open = begin
        return events[keep]


# ---------------------------------------------------------------------------------------------------- time order
class OrderGuard:
    """Polices the time order of one stream's tags, chunk after chunk, under an ``on_bad_record`` policy.

    A tag is bad when its time is negative, earlier than the latest good tag by more than ``tolerance_ps`` (time
    going backwards) or, with ``max_jump_ps``, later than it by more than that (a far-future jump: one corrupted
    time would otherwise make every later tag go backwards).  Bad tags are judged against the latest *good*
    tag, so a clock that really restarts or jumps further than ``max_jump_ps`` makes the rest of the stream
    bad: set ``max_jump_ps`` above the longest pause of the acquisition.

    * ``on_bad_record='fail'`` (default): :meth:`checked` yields the tags before the first bad one, then raises
      :class:`DataValidationError` naming the record (``index_of`` maps a tag index of the stream to a record
      index of the file, ``offset_of`` a record index to its byte offset, or None), the time and the step.
    * ``on_bad_record='lost'``: bad tags are dropped, each run of them becomes a lost-data interval
      (:class:`BadRecords`) and reading goes on; ``meta`` counts them.
    * ``check=False`` (and no tolerance): tags pass unchanged, without time checks; ``backward_steps`` and
      ``max_backward_ps`` count what was seen (``timetag info`` reports them).
    * ``tolerance_ps > 0``: tags are reordered (stable sort by time) as long as no tag is earlier than an
      earlier-read tag by more than the tolerance.  The output is the stable sort of the whole stream, whatever
      the chunking, because a tag is only released once no later tag can sort before it.  ``reorders``: the
      reader offers that option (quTAG), so a backward step's message suggests it.
    """

    def __init__(self, path, check: bool = True, tolerance_ps: int = 0, index_of=None,
                 on_bad_record: str = "fail", max_jump_ps: int | None = None, offset_of=None,
                 reorders: bool = False):
        self.path = path
        self.reorders = reorders
        self.check = check
        self.tolerance = int(tolerance_ps)
        if self.tolerance < 0:
            raise ValueError(f"tolerance_ps must be >= 0, got {tolerance_ps}")
        self.index_of = index_of or (lambda i: i)
        self.offset_of = offset_of or (lambda i: None)
        self.bad = BadRecords(path, on_bad_record, max_jump_ps)
        self.last = INT64_MIN    # latest time of the good tags read
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

    def checked(self, chunk: TagChunk) -> Iterator[TagChunk]:
        """The chunk's good tags (reordered within the tolerance) and lost events; in 'fail' mode, after the
        tags before a bad one, its error."""
        if not self.check and not self.tolerance:
            self._count(chunk.time)
            if chunk.time.size:
                self.last = max(self.last, int(chunk.time.max()))
            self._seen += chunk.time.size
            yield chunk
            return
        good_t, good_c, lost, error = self._screen(chunk)
        self._count(good_t)
        out = self._release(good_t, good_c, lost, everything=error is not None)
        if len(out) or out.lost.size or (not self.tolerance and error is None):
            yield out
        if error is not None:
            raise error

    def _screen(self, chunk: TagChunk):
        """(good times, good channels, lost events, error or None) of one chunk."""
        t, c = chunk.time, chunk.channel
        n = t.size
        spans, marks = [], []    # [lo, hi) of good tags; events opening and closing intervals of bad ones
        error = None
        pos, block = 0, n        # a chunk's first search in one block: bad tags are rare
        while pos < n:
            i = self._first_fault(t, pos, block)
            stop = n if i < 0 else i
            if stop > pos:
                marks.append(self.bad.close(int(t[pos])))
                spans.append((pos, stop))
            if i < 0:
                break
            if not self.bad.lost:
                error = self._error(t, i)
                break
            j = self._first_good(t, i + 1)
            self.bad.note_run(j - i, lambda k: self._describe(t, i + k))
            marks.append(self.bad.open(self.last))
            pos, block = j, 1 << 12
        self._seen += n
        lost = chunk.lost
        if self.bad.lost:
            lost = self._merge(lost, marks)
        elif error is not None:
            lost = lost[lost["time"] <= self.last]    # the events of the good part
        return _take(t, spans, n), _take(c, spans, n), lost, error

    def _first_fault(self, t: np.ndarray, start: int, first_block: int) -> int:
        for lo, hi in growing_blocks(start, t.size, first_block):
            i, self.last = first_time_fault(t[lo:hi], self.last, self.tolerance, self.bad.max_jump_ps)
            if i >= 0:
                return lo + i
        return -1

    def _first_good(self, t: np.ndarray, start: int) -> int:
        for lo, hi in growing_blocks(start, t.size):
            ok = np.flatnonzero(times_ok(t[lo:hi], self.last, self.tolerance, self.bad.max_jump_ps))
            if ok.size:
                return lo + int(ok[0])
        return t.size

    def _describe(self, t: np.ndarray, i: int) -> tuple[int, str, int | None]:
        index = int(self.index_of(self._seen + i))
        return index, time_fault(int(t[i]), self.last, self.tolerance, self.bad.max_jump_ps), self.offset_of(index)

    def _error(self, t: np.ndarray, i: int) -> Exception:
        index, reason, offset = self._describe(t, i)
        if not self.tolerance and self.reorders and "backwards" in reason:  # only where the option exists
            hint = "; to reorder small steps use {}"
            return self.bad.error(index, reason + hint.format("tolerance_ps=N"), offset,
                                  cli_reason=reason + hint.format("timetag convert --tolerance-ps N"))
        return self.bad.error(index, reason, offset)

    def _merge(self, lost: np.ndarray, marks: list[np.ndarray]) -> np.ndarray:
        """The device's events and those of bad runs, in time order, through the policy's union."""
        marks = [m for m in marks if m.size]
        if not marks:
            return self.bad.union(lost, np.zeros(lost.size, bool))
        events = np.concatenate([lost] + marks)
        ours = np.concatenate([np.zeros(lost.size, bool)] + [np.ones(m.size, bool) for m in marks])
        order = np.argsort(events["time"], kind="stable")
        return self.bad.union(events[order], ours[order])

    def _release(self, t: np.ndarray, c: np.ndarray, lost: np.ndarray, everything: bool) -> TagChunk:
        """The tags that no later tag can sort before (all of them without a tolerance or when ``everything``)."""
        if not self.tolerance:
            out = TagChunk(t, c, lost, self._out)
            self._out += len(out)
            return out
        allt = np.concatenate((self._carry_t, t))
        allc = np.concatenate((self._carry_c, c))
        order = np.argsort(allt, kind="stable")
        allt, allc = allt[order], allc[order]
        if everything:
            n = allt.size
        elif self.last == INT64_MIN:
            n = 0
        else:   # any later tag has time >= last - tolerance, so tags strictly below that are final
            n = int(np.searchsorted(allt, self.last - self.tolerance, side="left"))
        self._carry_t, self._carry_c = allt[n:], allc[n:]
        out = TagChunk(allt[:n], allc[:n], lost, self._out)
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
        return {"backward_steps": self.backward_steps, "max_backward_ps": self.max_backward_ps, **self.bad.meta}


def _take(a: np.ndarray, spans: list[tuple[int, int]], n: int) -> np.ndarray:
    """The elements of ``a`` in the spans (``a`` itself when one span covers it)."""
    if spans == [(0, n)]:
        return a
    if not spans:
        return a[:0]
    return np.concatenate([a[lo:hi] for lo, hi in spans])


class GuardedReader:
    """Readers whose tags pass an :class:`OrderGuard` (``_guard``, set when reading starts): its counts for
    ``meta`` and whether a lost-data interval of bad records is still open at the end (see ``iter_stream``)."""

    _guard = None

    def guard_meta(self) -> dict:
        return dict(self._guard.meta) if self._guard is not None else {}

    @property
    def lost_interval_open(self) -> bool:
        return self._guard is not None and self._guard.bad.interval_open


class TagWriter(abc.ABC):
    """Base of the streaming writers: ``write(chunk)`` appends, ``close()`` finishes; a context manager.

    A writer only ever creates a new file (exclusive create: an existing file is an error, never truncated);
    outputs under their final names go through :class:`~timetag.custody.AtomicOutput`, as :func:`write_new` does.
    """

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
