"""The Dask worker's side of a run: one partition through a fresh pipeline, its output back in memory (or to a file).

:func:`process_partition` is the task the client (:mod:`timetag.distributed.run`) submits for each partition.

Memory: the Dask nanny starts workers with ``MALLOC_TRIM_THRESHOLD_`` set (distributed's
``nanny.pre-spawn-environ``), which fixes glibc's mmap threshold at 128 KiB: every chunk's arrays (MBs) are then
mapped fresh and unmapped when freed, and the kernel zeroes their pages again for each chunk -- on the
full-scale Alice dump, twice the page faults and ~0.3 s more system CPU per 2 GB than the same partitions in one
process.  A task therefore lets glibc keep its freed chunks while it runs (:func:`streaming_malloc`) and returns
the memory to the system at its end, as the nanny's setting intends.
"""
from __future__ import annotations

import ctypes
import os
import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..checksums import BlockDigest
from ..chunk import DEFAULT_CHUNK_SIZE, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk
from ..engine import LabPipeline
from ..errors import TimetagError
from ..formats import open_tags
from ..formats.dump import DumpReader
from ..records import empty_heralds, empty_rounds
from ..roundsfile import RoundsWriter
from ..setupfile import LabSetup
from ..stream import CountChannels, KeepOwned, LabEngine, Stage, StreamBroke, Tee, WriteRounds, run_stream
from ..stream.events import RoundsEvent
from ..stream.lookahead import LookaheadBegins, LookaheadGate, SummaryAtLookahead, own_counts
from ..stream.prefetch import prefetched
from .merge import PartitionOutput
from .partition import Partition, Segment, is_dump

#: while a task runs: glibc serves arrays up to 32 MiB (its largest mmap threshold) from its heaps, and keeps up to
#: 64 MiB of freed memory at their top (a chunk's arrays, reused by the next chunk)
_TASK_MMAP_THRESHOLD = 32 << 20
_TASK_TRIM_THRESHOLD = 64 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3     # mallopt parameters (malloc.h)
_GLIBC_MMAP_THRESHOLD = 128 << 10                 # glibc's default, fixed once a threshold is set by hand
_malloc_lock = threading.Lock()
_malloc_users = 0


def _libc():
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


@contextmanager
def streaming_malloc() -> Iterator[None]:
    """While the block runs, freed chunk arrays stay in this process for the next chunk (see the module's
    docstring); at its end (of the last such block running, in a worker with several task threads), the
    thresholds the environment asked for come back and the memory is returned to the system.  Does nothing
    where the environment sets no malloc threshold or the C library is not glibc."""
    global _malloc_users
    try:
        trim = int(os.environ["MALLOC_TRIM_THRESHOLD_"])
        mmap = int(os.environ.get("MALLOC_MMAP_THRESHOLD_", _GLIBC_MMAP_THRESHOLD))
    except (KeyError, ValueError):   # glibc's adaptive thresholds, or settings this does not know how to restore
        trim = None
    libc = _libc() if trim is not None else None
    if libc is None:
        yield
        return
    with _malloc_lock:
        _malloc_users += 1
        if _malloc_users == 1:
            libc.mallopt(_M_MMAP_THRESHOLD, _TASK_MMAP_THRESHOLD)
            libc.mallopt(_M_TRIM_THRESHOLD, _TASK_TRIM_THRESHOLD)
    try:
        yield
    finally:
        with _malloc_lock:
            _malloc_users -= 1
            if _malloc_users == 0:
                libc.mallopt(_M_TRIM_THRESHOLD, trim)
                libc.mallopt(_M_MMAP_THRESHOLD, mmap)
                libc.malloc_trim(0)


def default_pipeline(lab: LabSetup):
    return LabPipeline(lab)


def iter_segment(seg: Segment, chunk_size: int, feeder=None) -> Iterator[TagChunk]:
    """The chunks of one segment; a dump segment's bytes also go to ``feeder`` (:mod:`timetag.checksums`)."""
    if is_dump(seg.path):
        reader = DumpReader(seg.path, chunk_size=chunk_size)
        if feeder is not None:
            reader.hash_while_reading(feeder)
        yield from reader.iter_chunks(seg.start, seg.stop)
    else:
        yield from open_tags(seg.path, chunk_size=chunk_size).iter_chunks()


class _LastOverflowMark(Stage):
    """Keeps the kind of the last overflow begin/end event it sees (a sink behind the own-records gate): with the
    marks of the partitions before it, it tells whether the cut after this partition lies inside an overflow."""

    def __init__(self):
        super().__init__(None)
        self.kind: int | None = None

    def handle(self, event) -> None:
        if isinstance(event, TagChunk) and event.lost.size:
            kinds = event.lost["kind"]
            marks = kinds[(kinds == OVERFLOW_BEGIN) | (kinds == OVERFLOW_END)]
            if marks.size:
                self.kind = int(marks[-1])


def _partition_events(part: Partition, chunk_size: int, digests: dict | None = None) -> Iterator:
    for seg in part.segments:
        digest = digests.get(str(seg.path)) if digests is not None else None
        yield from iter_segment(seg, chunk_size, digest.feeder() if digest is not None else None)
    if part.lookahead:
        yield LookaheadBegins()
        for seg in part.lookahead:
            yield from iter_segment(seg, chunk_size)


def process_partition(part: Partition, lab: LabSetup, scratch: str | None = None, *,
                      chunk_size: int = DEFAULT_CHUNK_SIZE, setup_hash: str = "",
                      pipeline_factory: Callable | None = None, hash_blocks: bool = False,
                      prefetch: bool = True) -> dict:
    """Run a fresh pipeline over one partition; return a small report, with what it made: in memory
    (``scratch`` None: ``output``, a :class:`~timetag.distributed.merge.PartitionOutput`) or written to the
    folder ``scratch`` (``path``, a rounds file).  With ``hash_blocks``, also the block checksum's digests of the
    blocks its dump segments held whole: ``block_digests``, path -> {block: digest}, which the client joins
    instead of reading the inputs again.  ``prefetch``: read and decode the next chunks on a second thread (worth
    it only where the worker has a core to spare: :func:`timetag.distributed.run.spare_cores`).

    The chain: the partition's own records are counted (``CountChannels``); every record, lookahead included,
    goes through ``LabEngine -> KeepOwned -> (memory | WriteRounds)``; with a lookahead, a second, fresh engine
    runs on the lookahead alone, and its counts are subtracted from the summary and histograms (the lookahead
    follows a quiet gap, so it acts on a running pipeline exactly as on a fresh one).

    A :class:`TimetagError` (bad data) is returned as ``{'error': ...}`` rather than raised, so Dask does not
    retry a deterministic failure; anything else propagates and is retried.
    """
    make = pipeline_factory or default_pipeline
    unseen = [seg.path for seg in (*part.segments, *part.lookahead) if not Path(seg.path).is_file()]
    if unseen or (scratch is not None and not Path(scratch).is_dir()):
        where = f"{socket.gethostname()}:{os.getcwd()}"
        what = f"input {unseen[0]}" if unseen else f"scratch folder {scratch}"
        return {"name": part.name, "error": f"the worker ({where}) cannot see the {what}: Dask workers need the "
                                            f"{'inputs' if unseen else 'scratch folder'} on a shared file system, "
                                            "at the same path as on the client"}
    try:
        with streaming_malloc():
            return _process(part, lab, scratch, make, chunk_size, setup_hash, hash_blocks, prefetch)
    except StreamBroke as exc:
        cause = exc.__cause__
        return {"name": part.name, "error": f"{type(cause).__name__}: {cause}"}
    except TimetagError as exc:
        return {"name": part.name, "error": f"{type(exc).__name__}: {exc}"}


def _process(part, lab, scratch, make, chunk_size, setup_hash, hash_blocks, prefetch) -> dict:
    if scratch is None:
        kept = _KeepInMemory()
        report = _run_chain(part, lab, kept, make, chunk_size, hash_blocks, prefetch)
        report["output"] = kept.output(report.pop("summary"), report.pop("histograms"))
        return report
    out = Path(scratch) / f"part{part.index:04d}.h5"
    with _ScratchFile(out) as partial, \
            RoundsWriter(partial, lab=lab.name, role=lab.role, setup_hash=setup_hash) as w:
        report = _run_chain(part, lab, WriteRounds(w, durable="end"), make, chunk_size, hash_blocks,
                             prefetch)
        w.close(summary=report.pop("summary"), histograms=report.pop("histograms"))
    report["path"] = str(out)
    return report


def _run_chain(part: Partition, lab: LabSetup, sink: Stage, make: Callable, chunk_size: int,
               hash_blocks: bool, prefetch: bool) -> dict:
    owned = KeepOwned(part.owns, sink)
    engine = LabEngine(lab, owned, pipeline=make(lab))
    own_records = CountChannels()
    marks = _LastOverflowMark()
    alone = LabEngine(lab, pipeline=make(lab)) if part.lookahead else None
    before = SummaryAtLookahead(engine)
    digests = {str(seg.path): BlockDigest(Path(seg.path).stat().st_size)
               for seg in part.segments if is_dump(seg.path)} if hash_blocks else None
    events = _partition_events(part, chunk_size, digests)
    run_stream(prefetched(events) if prefetch else events,
               Tee(LookaheadGate(False, own_records), LookaheadGate(False, marks), before, engine,
                   LookaheadGate(True, alone) if alone else None))
    summary, hists = own_counts(lab, engine, alone, before.summary, make)
    return {"name": part.name, "rounds": owned.kept, "channel_counts": own_records.counts,
            "last_overflow_mark": marks.kind, "summary": summary, "histograms": hists,
            **({"block_digests": {p: d.leaves for p, d in digests.items()}} if digests is not None else {})}


class _KeepInMemory(Stage):
    """The owned rounds and heralds, piece by piece (the sink behind ``KeepOwned`` when the output goes back to
    the client through Dask: a partition's rounds are ~1e-4 of its records' bytes)."""

    def __init__(self):
        super().__init__(None)
        self.rounds: list[np.ndarray] = []
        self.heralds: list[np.ndarray] = []

    def handle(self, event) -> None:
        if isinstance(event, RoundsEvent):
            if len(event.rounds):
                self.rounds.append(np.asarray(event.rounds))
            if event.heralds is not None and len(event.heralds):
                self.heralds.append(np.asarray(event.heralds))

    def output(self, summary: dict, histograms: dict) -> PartitionOutput:
        rounds = np.concatenate(self.rounds) if self.rounds else empty_rounds()
        heralds = np.concatenate(self.heralds) if self.heralds else empty_heralds()
        return PartitionOutput(rounds, heralds, summary, histograms)


class _ScratchFile:
    """A partition file: written as ``<name>.partial`` and renamed when complete (the client never reads half a
    file), removed on failure; the partial file of an attempt that died (retried here) is replaced.

    Not synced to disk: the file lives only until the client has merged it (the merged output is synced), and
    a crash of the machine restarts the run anyway -- two ``fsync`` per task are most of the cost of a small
    task, more on a network file system.  The output's lock (taken by the client) guards the scratch folder.
    """

    def __init__(self, target: Path):
        self.target = Path(target)
        self.partial = self.target.with_name(self.target.name + ".partial")

    def __enter__(self) -> Path:
        self.partial.unlink(missing_ok=True)
        return self.partial

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            os.replace(self.partial, self.target)
        else:
            self.partial.unlink(missing_ok=True)
