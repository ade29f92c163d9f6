"""Quiet-gap partitions of one lab's dump stream on a pool of threads, handed back in stream order.

The engine's kernels and the dump reader release the GIL, so threads in one process use every core without
copying data between processes or writing scratch files.  :class:`OrderedPartitions` runs
:func:`~timetag.stream.partition_run.run_partition` on ``threads`` worker threads, at most ``ahead`` partitions
started beyond the one the caller is waiting for (memory stays flat however long the run), and yields each
:class:`~timetag.stream.partition_run.PartitionResult` in partition order once it is final.

A partition started with fresh readers and a fresh engine equals the single-thread run only when the stream at
its start is in the state of a fresh one.  The quiet gap makes that so for the engine; the readers' state
(the latest good tag, an interval of bad records still open, a forward-jump limit) is checked when the partition
before it ends: its last tag, whether it ended inside a bad-record interval, and the records from the cut to the
first tag after it (the "head", read again: a record or two).  When the check fails (bad records near a cut,
files out of order, a jump), the two partitions are joined and the joined one is processed again, so the output
never depends on where the cuts fell.
"""
from __future__ import annotations

import math
import os
import threading
from collections import deque
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .. import interrupts
from ..distributed.partition import Partition, join_partitions, plan_partitions
from ..errors import SetupError
from ..formats import sniff
from ..formats.dump import RECORD_DTYPE, RECORD_SIZE, TYPE_MISSED, TYPE_TAG
from .partition_run import PartitionResult, run_partition

__all__ = ["OrderedPartitions", "PartitionPool", "auto_threads", "boundary_ok", "default_partitions", "plan_threads"]

#: ``threads='auto'`` uses threads only for inputs at least this large (below, start-up costs more than it saves)
AUTO_MIN_BYTES = 64 << 20
#: the most records' bytes in one partition: a thread that draws the last long partition leaves the others idle,
#: and each partition costs its fresh engine's first-touch pages (docs/performance.md)
PARTITION_BYTES = 256 << 20
#: partitions per thread at least (balance between threads)
PARTITIONS_PER_THREAD = 4


#: ``threads='auto'`` uses at most this many threads (more has not been measured)
AUTO_MAX_THREADS = 4
#: ``threads='auto'`` uses threads only with at least this many cores
AUTO_MIN_CORES = 3


def auto_threads(paths, format: str | None = None) -> int:
    """The cores this process may use, at most :data:`AUTO_MAX_THREADS`, when there are at least
    :data:`AUTO_MIN_CORES`, for dump inputs of at least :data:`AUTO_MIN_BYTES`; else 1.

    One thread keeps about 1.5 cores busy (the engine; reading, decoding and the checksum beside it), so two
    threads on two cores measured 0.87-1.18x of one thread (docs/performance.md): no reason for the extra
    machinery there.  The threads cost about the CPU of one thread in all (each hashes the blocks it reads, the
    partitions are few), so where there are more cores they are not slower on a busy machine either.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    paths = [Path(p) for p in paths]
    if cores < AUTO_MIN_CORES or not _all_dump(paths, format) \
            or sum(p.stat().st_size for p in paths) < AUTO_MIN_BYTES:
        return 1
    return min(AUTO_MAX_THREADS, cores)


def default_partitions(paths, threads: int) -> int:
    """At least :data:`PARTITIONS_PER_THREAD` per thread, and at most :data:`PARTITION_BYTES` of records each."""
    size = sum(Path(p).stat().st_size for p in paths)
    return max(PARTITIONS_PER_THREAD * threads, math.ceil(size / PARTITION_BYTES))


def plan_threads(paths, lab, threads, *, format: str | None = None,
                 partitions: int | None = None) -> tuple[int, list[Partition], str | None]:
    """(threads to use, partitions, a note when threads were asked for and cannot be used) for ``threads``
    (a number or ``'auto'``)."""
    asked = threads
    if isinstance(threads, str):
        if threads.strip().lower() != "auto":
            try:
                threads = int(threads)
            except ValueError:
                raise SetupError(f"threads must be a number >= 1 or 'auto' (got {asked!r})", key="threads") from None
        else:
            threads = auto_threads(paths, format)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise SetupError(f"threads must be a number >= 1 or 'auto' (got {asked!r})", key="threads")
    if threads == 1:
        return 1, [], None
    if not _all_dump(paths, format):
        return 1, [], (f"threads={threads}: only dump files can be cut at quiet gaps; these inputs are processed "
                       "on one thread")
    if any(Path(p).stat().st_size % RECORD_SIZE for p in paths):
        # a truncated last record: one reader per file says so once, as the one-thread run does
        return 1, [], f"threads={threads}: an input ends in a partial record; processed on one thread"
    parts = plan_cuts(paths, lab, partitions or default_partitions(paths, threads))
    if len(parts) < 2:
        quiet = isinstance(asked, str) and asked.strip().lower() == "auto"
        return 1, [], None if quiet else (f"threads={threads}: the input has no quiet gap near the planned cuts; "
                                          "processed on one thread")
    return threads, parts, None


def plan_cuts(paths, lab, n_partitions: int) -> list[Partition]:
    """:func:`~timetag.distributed.partition.plan_partitions` without its pass over every record type.

    That pass learns whether a device overflow is open at a quiet gap with no overflow record near it; here the
    workers see every overflow record anyway, and :func:`boundary_ok` joins the two partitions of a cut that fell
    inside one.
    """
    return plan_partitions(paths, lab, n_partitions=n_partitions, overflow_check=False)


def _all_dump(paths, format: str | None) -> bool:
    if format is not None:
        return format == "dump"
    try:
        return all(sniff(p) == "dump" for p in paths)
    except Exception:  # noqa: BLE001 - a file sniff cannot name is reported by the reader, on one thread
        return False


class PartitionPool:
    """Worker threads taking partitions from the front of a queue; results by partition."""

    def __init__(self, parts: Sequence[Partition], work: Callable[[PartitionResult, Callable[[], bool]], None],
                 threads: int, ahead: int):
        self._work = work
        self._ahead = max(int(ahead), 1)
        self._pending: deque[Partition] = deque(parts)
        self._results: dict[Partition, PartitionResult] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, name=f"timetag-partitions-{i}", daemon=True)
                         for i in range(max(int(threads), 1))]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop.is_set() and (not self._pending or len(self._results) >= self._ahead):
                    self._cond.wait()
                if self._stop.is_set():
                    return
                result = PartitionResult(self._pending.popleft())
                self._results[result.part] = result
            self._work(result, lambda r=result: self._stop.is_set() or r.cancelled)
            with self._cond:
                self._cond.notify_all()

    def wait(self, part: Partition, tick: Callable[[], None] | None = None,
             every: float = 0.2) -> PartitionResult:
        """The result of ``part`` once done (``tick()`` every ``every`` s meanwhile: the progress bar).  Ctrl-C is
        raised between the waits, never inside the condition's lock (:class:`timetag.interrupts.deferred`)."""
        while True:
            with interrupts.deferred():
                with self._cond:
                    result = self._results.get(part)
                    if result is not None and result.done:
                        return result
                    self._cond.wait(every)
            if tick is not None:
                tick()

    def running(self, part: Partition) -> PartitionResult | None:
        with self._cond:
            return self._results.get(part)

    def consume(self, part: Partition) -> None:
        """The caller is done with ``part``: room for one more partition to start."""
        with self._cond:
            self._results.pop(part, None)
            self._cond.notify_all()

    def replace(self, first: Partition, second: Partition, joined: Partition) -> None:
        """``first`` and ``second`` are dropped (stopped if running); ``joined`` is processed next."""
        with self._cond:
            for p in (first, second):
                r = self._results.pop(p, None)
                if r is not None:
                    r.cancelled = True
                try:
                    self._pending.remove(p)
                except ValueError:
                    pass
            self._pending.appendleft(joined)
            self._cond.notify_all()

    def records_in_flight(self) -> int:
        with self._cond:
            return sum(r.records for r in self._results.values())

    def close(self) -> None:
        """Stop every worker (each stops at its next chunk) and wait for them: nothing is left running."""
        self._stop.set()
        with interrupts.deferred(raise_on_exit=False):
            with self._cond:
                self._cond.notify_all()
            for t in self._threads:
                while t.is_alive():
                    t.join(0.05)


class OrderedPartitions:
    """Every partition's final result, in stream order (iterate); the one that failed (``error``) is the last.

    ``tick(records_done)`` is called while waiting (records of the partitions handed out and in flight).
    :meth:`close` (always: use ``with``) stops and joins the workers.  ``waiting_on``: the result of the partition
    being waited for when the iteration was left by an exception (Ctrl-C), as far as it got, else None.
    ``feeder_for(path)``: checksum feeders for the workers' readers (:meth:`InputChecksums.feeder_for`).
    """

    def __init__(self, parts: Sequence[Partition], lab, *, threads: int, chunk_size: int, opts: dict,
                 ahead: int | None = None, tick: Callable[[int], None] | None = None,
                 pipeline_factory: Callable | None = None, feeder_for: Callable | None = None):
        self.plan = list(parts)
        self.opts = opts
        self.tick = tick
        self.waiting_on: PartitionResult | None = None
        self.joined = 0          # boundaries that failed their check (partitions processed again, joined)
        self._pool = PartitionPool(
            self.plan, lambda r, stop: run_partition(r, lab, chunk_size=chunk_size, opts=opts, stop=stop,
                                                     pipeline_factory=pipeline_factory, feeder_for=feeder_for),
            threads, ahead if ahead is not None else threads + 2)
        self._done_records = 0
        self._reported = 0

    def __enter__(self) -> "OrderedPartitions":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._pool.close()

    def _on_tick(self) -> None:
        if self.tick is not None:
            self.tick(self.records_done())

    def records_done(self) -> int:
        """Records of the partitions handed out and of those in flight (never less than an earlier answer)."""
        self._reported = max(self._reported, self._done_records + self._pool.records_in_flight())
        return self._reported

    def __iter__(self) -> Iterator[PartitionResult]:
        plan, last_tag, i = self.plan, None, 0
        while i < len(plan):
            part = plan[i]
            try:
                result = self._pool.wait(part, self._on_tick)
            except BaseException:
                self.close()
                self.waiting_on = self._pool.running(part)
                raise
            own_complete = result.error is None or result.error_in_lookahead
            if own_complete and i + 1 < len(plan) and not boundary_ok(result, last_tag, self.opts):
                joined = join_partitions(part, plan[i + 1])
                self._pool.replace(part, plan[i + 1], joined)
                plan[i:i + 2] = [joined]
                self.joined += 1
                continue
            self._pool.consume(part)
            self._done_records += result.records
            yield result
            if result.error is not None:
                return
            if result.last_tag_ps is not None:
                last_tag = result.last_tag_ps
            i += 1


def boundary_ok(result: PartitionResult, last_tag: int | None, opts: dict) -> bool:
    """Does the partition after ``result.part`` start as the single-thread run would reach it?

    ``last_tag``: the last tag before ``result.part`` (None: none).  The next partition's fresh readers and
    engine see what the single-thread ones see when: this partition read its lookahead without error and did not
    end inside an interval of bad records or of a device overflow; the records from the cut to the next tag (the
    lookahead) are all good; and that tag is neither negative, nor earlier than the last tag before it, nor
    (``max_jump_ps``, within one file) further from it than the jump limit.
    """
    part = result.part
    if result.error is not None or result.interval_open or result.overflow_open or not part.lookahead:
        return False
    head = np.concatenate([_records(s.path, s.start, s.stop) for s in part.lookahead])
    if not head.size or int(head["type"][-1]) != TYPE_TAG:
        return False
    if np.any(head["type"] > TYPE_MISSED) or np.any(head["reserved"] != 0) \
            or np.any(head["type"][:-1] == TYPE_TAG):
        return False
    t = int(head["time"][-1])
    before = result.last_tag_ps if result.last_tag_ps is not None else last_tag
    if t < 0 or (before is not None and t < before):
        return False
    jump = opts.get("max_jump_ps")
    same_file = part.lookahead[0].start != 0
    return not (jump is not None and before is not None and same_file and t - before > jump)


def _records(path, start: int, stop: int | None) -> np.ndarray:
    count = -1 if stop is None else max(int(stop) - int(start), 0)
    return np.fromfile(path, dtype=RECORD_DTYPE, count=count, offset=int(start) * RECORD_SIZE)
