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
from ..chunk import DEFAULT_CHUNK_SIZE
from ..errors import TimetagError
from ..records import empty_heralds, empty_rounds
from ..roundsfile import RoundsWriter
from ..setupfile import LabSetup
from ..stream import StreamBroke
from ..stream.partition_run import PartitionResult, run_partition
from .merge import PartitionOutput
from .partition import Partition, is_dump

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

    The chain is the one the threads of ``process --threads`` run (:func:`timetag.stream.partition_run.run_partition`):
    the partition's own records counted, every record, lookahead included, through ``LabEngine -> KeepOwned``,
    and a second, fresh engine on the lookahead alone whose counts are subtracted from the summary and
    histograms (the lookahead follows a quiet gap, so it acts on a running pipeline exactly as on a fresh one).

    A :class:`TimetagError` (bad data) is returned as ``{'error': ...}`` rather than raised, so Dask does not
    retry a deterministic failure; anything else propagates and is retried.
    """
    unseen = [seg.path for seg in (*part.segments, *part.lookahead) if not Path(seg.path).is_file()]
    if unseen or (scratch is not None and not Path(scratch).is_dir()):
        where = f"{socket.gethostname()}:{os.getcwd()}"
        what = f"input {unseen[0]}" if unseen else f"scratch folder {scratch}"
        return {"name": part.name, "error": f"the worker ({where}) cannot see the {what}: Dask workers need the "
                                            f"{'inputs' if unseen else 'scratch folder'} on a shared file system, "
                                            "at the same path as on the client"}
    try:
        with streaming_malloc():
            return _process(part, lab, scratch, pipeline_factory, chunk_size, setup_hash, hash_blocks, prefetch)
    except StreamBroke as exc:
        cause = exc.__cause__
        return {"name": part.name, "error": f"{type(cause).__name__}: {cause}"}
    except TimetagError as exc:
        return {"name": part.name, "error": f"{type(exc).__name__}: {exc}"}


def _process(part, lab, scratch, make, chunk_size, setup_hash, hash_blocks, prefetch) -> dict:
    digests = {str(seg.path): BlockDigest(Path(seg.path).stat().st_size)
               for seg in part.segments if is_dump(seg.path)} if hash_blocks else None
    result = PartitionResult(part)
    run_partition(result, lab, chunk_size=chunk_size, opts={}, pipeline_factory=make, prefetch=prefetch,
                  feeder_for=(lambda path: digests[str(path)].feeder()) if digests is not None else None)
    if result.error is not None:
        # bad data: raised again here (and reported, not retried, by the caller); anything else is retried
        raise result.error
    rounds = np.concatenate(result.rounds) if result.rounds else empty_rounds()
    heralds = np.concatenate(result.heralds) if result.heralds else empty_heralds()
    report = {"name": part.name, "rounds": len(rounds), "channel_counts": result.channel_counts,
              "last_overflow_mark": result.last_overflow_mark,
              **({"block_digests": {p: d.leaves for p, d in digests.items()}} if digests is not None else {})}
    if scratch is None:
        report["output"] = PartitionOutput(rounds, heralds, result.summary, result.histograms)
        return report
    out = Path(scratch) / f"part{part.index:04d}.h5"
    with _ScratchFile(out) as partial, \
            RoundsWriter(partial, lab=lab.name, role=lab.role, setup_hash=setup_hash) as w:
        w.append(rounds, heralds)
        w.close(summary=result.summary, histograms=result.histograms)
    report["path"] = str(out)
    return report


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
