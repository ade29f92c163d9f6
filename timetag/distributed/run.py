"""Processing one lab's run on a Dask cluster: partitions in parallel, one merged rounds file.

Only small descriptions go to the workers: the lab setup, file paths and record ranges; each worker reads its
records from the (shared) file system and runs a fresh pipeline.  What a partition makes (its rounds and heralds,
~1e-4 of its records' bytes, summary and histograms) comes back with its report, and the client appends it to the
merged file as soon as it and every partition before it are in, while later partitions still run (``scratch=True``:
through partition files in a folder next to the output instead).  A task that raises an unexpected error (a
worker killed, a flaky file system) is retried by Dask; data errors (:class:`~timetag.errors.TimetagError`) are
deterministic and reported at once, by partition name.  The merged file appears only when every partition
succeeded.

Custody: the output is checked and locked before any work starts (never an input; an existing file only with
``force``; one writer at a time, which also guards the scratch directory); partition files and the merged file
are written as ``.partial`` files and renamed when complete, so a failure leaves neither a half file nor a
changed old output.
"""
from __future__ import annotations

import os
import re
import shutil
import time
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ..channels import channel_report
from ..chunk import DEFAULT_CHUNK_SIZE, OVERFLOW_BEGIN
from ..constants import BLOCK_CHECKSUM
from ..custody import DEFAULT_RESERVE_BYTES, AtomicOutput
from ..errors import SetupError, TimetagError, TimetagWarning
from ..provenance import DEFAULT_CHECKSUM, InputChecksums
from ..provenance import provenance as _provenance
from ..roundsfile import read_rounds
from ..setupfile import LabSetup, Setup, load_setup
from .merge import MergeWriter, sync_reference_of
from .partition import Partition, is_dump, join_partitions, plan_partitions
from .worker import process_partition

__all__ = ["PartitionError", "dask_client", "parse_dask_spec", "process_files_dask", "process_partition",
           "run_checked", "run_partitions", "spare_cores"]


class PartitionError(TimetagError):
    """One or more partitions failed: the run is incomplete and no merged output was written."""


_LOCAL = re.compile(r"^local(?:\[?:?(\d+)\]?)?$")
_THREADS = re.compile(r"^threads(?::(\d+))?$")


def parse_dask_spec(spec: str) -> tuple[str, int | str]:
    """``local`` / ``local:N`` / ``local[N]`` -> ('local', N); ``threads`` / ``threads:N`` -> ('threads', N);
    ``tcp://host:port`` (any scheme) -> ('remote', spec)."""
    s = str(spec).strip()
    for kind, pattern, what in (("threads", _THREADS, "threads"), ("local", _LOCAL, "local workers")):
        m = pattern.match(s)
        if m:
            n = int(m.group(1)) if m.group(1) else max(1, os.cpu_count() or 1)
            if n < 1:
                raise SetupError(f"--dask {spec!r}: the number of {what} must be >= 1", key="dask")
            return kind, n
    if "://" in s:
        return "remote", s
    raise SetupError(f"--dask {spec!r}: expected 'local', 'local:N', 'threads:N' or a scheduler address like "
                     "'tcp://host:8786'", key="dask")


@contextmanager
def dask_client(spec="local:2") -> Iterator:
    """A ``distributed.Client`` for ``spec`` (an existing Client is used as is and not closed)."""
    from distributed import Client, LocalCluster

    if isinstance(spec, Client):
        yield spec
        return
    kind, arg = parse_dask_spec(spec)
    if kind == "local":
        # One single-threaded process per worker: the kernels hold the GIL in places, and processes keep
        # each partition's memory separate (as on a real cluster).
        with LocalCluster(n_workers=int(arg), threads_per_worker=1, processes=True, dashboard_address=None) \
                as cluster, Client(cluster) as client:
            yield client
    elif kind == "threads":
        # One worker in this process with N threads: the kernels release the GIL, no data crosses processes
        with LocalCluster(n_workers=1, threads_per_worker=int(arg), processes=False, dashboard_address=None,
                          worker_dashboard_address=None) \
                as cluster, Client(cluster) as client:
            yield client
    else:
        try:
            client = Client(arg, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise SetupError(f"cannot reach the Dask scheduler at {arg}: {exc}", key="dask") from None
        with client:
            yield client


def n_workers(client) -> int:
    return max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))


def spare_cores(client) -> bool:
    """Does every worker's machine have more cores than task threads (of all its workers)?  Only then does a
    task's read-ahead thread run beside the other tasks rather than take turns with them: on machines whose
    cores the workers fill (``local:N`` with N = cores, ``dask worker --nworkers`` one per core), it costs CPU
    (queue hand-offs, data decoded on one core and used on another) and gains nothing.  Each worker is asked
    for its cores once (a round trip), then remembered by address."""
    workers = client.scheduler_info()["workers"]
    new = [addr for addr in workers if addr not in _WORKER_CORES]
    if new:
        _WORKER_CORES.update(client.run(_cores, workers=new))
    threads: dict[str, int] = {}
    cores: dict[str, int] = {}
    for addr, w in workers.items():
        host = w.get("host", "")
        threads[host] = threads.get(host, 0) + int(w.get("nthreads", 1))
        cores[host] = _WORKER_CORES.get(addr, 0)
    return bool(threads) and all(cores[h] > n for h, n in threads.items())


#: the cores of each worker's machine, by worker address (an address's host part names one machine)
_WORKER_CORES: dict[str, int] = {}


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# --- the client side ----------------------------------------------------------

def resolve_lab(setup, lab: str) -> tuple[Setup, LabSetup]:
    setup = setup if isinstance(setup, Setup) else load_setup(setup)
    return setup, setup.lab(lab)


def run_partitions(client, parts: Sequence[Partition], lab: LabSetup, scratch: Path | None, *, chunk_size: int,
                   setup_hash: str, retries: int = 2, pipeline_factory: Callable | None = None,
                   progress: Callable[[int, int], None] | None = None, key_suffix: str = "",
                   hash_blocks: bool = False, on_report: Callable[[int, dict], None] | None = None,
                   prefetch: bool = True) -> list[dict]:
    """Submit every partition, wait for all, and raise :class:`PartitionError` naming each failure; returns the
    reports in partition order.  ``scratch``: the folder the workers write their outputs to (None: the outputs
    come back in the reports).  ``on_report(i, report)``: called for each successful partition as it ends (none
    after a failure).  ``progress(done, total)``: partitions finished (or failed) so far, as each one ends."""
    from distributed import as_completed

    run = uuid.uuid4().hex[:12]   # keys of this call only: never a result of another run on the cluster
    futures = [client.submit(process_partition, p, lab, None if scratch is None else str(scratch),
                             chunk_size=chunk_size, setup_hash=setup_hash, pipeline_factory=pipeline_factory,
                             hash_blocks=hash_blocks, prefetch=prefetch, retries=retries, pure=False,
                             key=f"timetag-{lab.name}-{run}-{p.index:04d}{key_suffix}")
               for p in parts]
    index = {f.key: i for i, f in enumerate(futures)}
    if progress is not None:
        progress(0, len(futures))
    reports: list = [None] * len(parts)
    failures: dict[int, str] = {}
    try:
        # results fetched in the background as tasks end: the client merges while later partitions run
        for done, (f, res) in enumerate(as_completed(futures, with_results=True, raise_errors=False), 1):
            i = index[f.key]
            f.release()   # the worker may drop its copy of the output
            if f.status == "error":
                exc = res[1]
                failures[i] = f"{parts[i].name}: {type(exc).__name__}: {exc}"
            elif "error" in res:
                failures[i] = f"{parts[i].name}: {res['error']}"
            else:
                reports[i] = res
                if on_report is not None and not failures:
                    on_report(i, res)
            if progress is not None:
                progress(done, len(futures))
    finally:
        for f in futures:
            f.release()
    if failures:
        raise PartitionError(f"{len(failures)} of {len(parts)} partitions failed (no merged output written):\n  "
                             + "\n  ".join(failures[i] for i in sorted(failures)))
    return reports


class _InOrder:
    """Hands partition reports to ``deliver(i, report)`` in partition order, each as soon as it and every one
    before it are in and the cut after it is known to lie outside an overflow (the marks up to it say so);
    a cut inside one stops the deliveries (:func:`run_checked` joins the partitions around it)."""

    def __init__(self, n: int, deliver: Callable[[int, dict], None]):
        self.n, self.deliver = n, deliver
        self.waiting: dict[int, dict] = {}
        self.next = 0
        self.open = False
        self.stopped = False

    def add(self, i: int, report: dict) -> None:
        self.waiting[i] = report
        while not self.stopped and self.next in self.waiting:
            open_ = _overflow_open_after(self.open, self.waiting[self.next])
            if open_ and self.next < self.n - 1:
                self.stopped = True
                return
            self.open = open_
            self.deliver(self.next, self.waiting.pop(self.next))
            self.next += 1


def cuts_inside_overflow(reports: Sequence[dict]) -> list[int]:
    """Indices k of the cuts (between partition k and k + 1) that lie inside an overflow interval: the last
    overflow mark up to partition k (its own, else the one before it) is a BEGIN."""
    bad, open_ = [], False
    for k, rep in enumerate(reports[:-1]):
        open_ = _overflow_open_after(open_, rep)
        if open_:
            bad.append(k)
    return bad


def _overflow_open_after(open_before: bool, report: dict) -> bool:
    """Whether an overflow is open at the end of a partition: its own last overflow mark says so, else it stays
    as it was before the partition."""
    mark = report.get("last_overflow_mark")
    return open_before if mark is None else mark == OVERFLOW_BEGIN


def run_checked(client, parts: Sequence[Partition], lab: LabSetup, scratch: Path | None, *, chunk_size: int,
                setup_hash: str, retries: int = 2, pipeline_factory: Callable | None = None,
                progress: Callable[[int, int], None] | None = None, hash_blocks: bool = False, prefetch: bool = True,
                on_final: Callable[[Partition, dict], None] | None = None) -> tuple[list[Partition], list[dict]]:
    """:func:`run_partitions`, then the check the planner skipped (``overflow_check=False``): a cut inside an
    overflow interval would start the next partition's pipeline in the wrong state, so the two partitions
    around it are joined and the joined one is processed again (rare: device overflows are short and the
    cuts sit in quiet gaps).  Returns the final partitions and their reports, in order.

    ``on_final(part, report)``: called once for each final partition, in order, as soon as it is known to be
    final (while later partitions still run; after a join, at the end)."""
    parts = list(parts)
    order = _InOrder(len(parts), (lambda i, rep: on_final(parts[i], rep)) if on_final else (lambda i, rep: None))
    reports = run_partitions(client, parts, lab, scratch, chunk_size=chunk_size, setup_hash=setup_hash,
                             retries=retries, pipeline_factory=pipeline_factory, progress=progress,
                             hash_blocks=hash_blocks, prefetch=prefetch, on_report=order.add)
    for attempt in range(1, len(parts) + 1):  # each pass joins at least two partitions
        bad = cuts_inside_overflow(reports)
        if not bad:
            # the partitions before the first cut inside an overflow were delivered as they came; never joined
            if on_final is not None:
                for part, rep in zip(parts[order.next:], reports[order.next:]):
                    on_final(part, rep)
            return parts, reports
        joined_parts, joined_reports, redo = [], [], []
        k = 0
        while k < len(parts):
            if k in bad:
                j = k
                part = parts[k]
                while j in bad:  # a run of bad cuts joins a run of partitions
                    part = join_partitions(part, parts[j + 1])
                    if "path" in reports[j + 1]:
                        Path(reports[j + 1]["path"]).unlink(missing_ok=True)
                    j += 1
                redo.append(len(joined_parts))
                joined_parts.append(part)
                joined_reports.append(None)
                k = j + 1
            else:
                joined_parts.append(parts[k])
                joined_reports.append(reports[k])
                k += 1
        again = run_partitions(client, [joined_parts[i] for i in redo], lab, scratch, chunk_size=chunk_size,
                               setup_hash=setup_hash, retries=retries, pipeline_factory=pipeline_factory,
                               key_suffix=f"-joined{attempt}",  # a key of its own: never an earlier result
                               hash_blocks=hash_blocks, prefetch=prefetch)
        for i, rep in zip(redo, again):
            joined_reports[i] = rep
        parts, reports = joined_parts, joined_reports
    return parts, reports


def process_files_dask(paths: Sequence, setup, lab: str, out, dask="local:2", *,
                       chunk_size: int = DEFAULT_CHUNK_SIZE, n_partitions: int | None = None,
                       cuts: Sequence[int] | None = None, retries: int = 2, scratch: bool = False,
                       gap_ps: int | None = None, checksum: bool | str = True,
                       pipeline_factory: Callable | None = None, force: bool = False,
                       progress: Callable[[int, int], None] | None = None) -> dict:
    """Process one lab's run (``paths`` in time order) on Dask; write the rounds file ``out``; return its summary.

    ``dask``: 'local', 'local:N', a scheduler address 'tcp://host:port', or a ``distributed.Client``.
    ``n_partitions`` (default: 2 per worker) or explicit ``cuts`` (global record positions) are moved to safe
    quiet gaps (:mod:`timetag.distributed.partition`).  Output equals the single-process run.
    ``checksum``: input checksums in the provenance (the block checksum from the blocks the workers read, the block
    around each cut read again on the client; a whole-file one read on the client while the workers run).
    ``gap_ps`` overrides the safe gap length (experts and tests only: too short breaks that equality);
    ``pipeline_factory(lab_setup)`` replaces the engine's ``LabPipeline`` (a custom stage chain).
    ``force``: replace an existing ``out`` (it stays whole until the merged file is complete).
    ``progress(done, total)``: partitions finished so far (the command line's bar).
    ``scratch``: the workers write their outputs to ``<out>.parts/`` (which they must see) instead of sending
    them back to the client (the default).
    """
    inputs = [Path(setup)] if isinstance(setup, (str, Path)) else []  # the setup file is an input: never the output
    setup, lab_setup = resolve_lab(setup, lab)
    # workers may run in other folders (or machines): every path they see is absolute
    paths = [Path(p).resolve() for p in paths]
    for p in paths:
        if not p.is_file():
            raise SetupError(f"input file not found: {p}", key="paths")
    out = Path(out).resolve()
    # checked and locked before the cluster starts; the lock also keeps a second run off the scratch directory
    with AtomicOutput(out, inputs=[*paths, *inputs], force=force, reserve_bytes=DEFAULT_RESERVE_BYTES) as slot:
        return _run_locked(paths, setup, lab, lab_setup, out, slot, dask=dask, chunk_size=chunk_size,
                           n_partitions=n_partitions, cuts=cuts, retries=retries, scratch=scratch,
                           gap_ps=gap_ps, checksum=checksum, pipeline_factory=pipeline_factory, progress=progress)


def _run_locked(paths, setup, lab, lab_setup, out, slot, *, dask, chunk_size, n_partitions, cuts, retries,
                scratch, gap_ps, checksum, pipeline_factory, progress=None) -> dict:
    folder = out.with_name(out.name + ".parts") if scratch else None
    if folder is not None:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    t0 = time.perf_counter()
    algo = DEFAULT_CHECKSUM if checksum is True else checksum
    hash_blocks = bool(checksum) and algo == BLOCK_CHECKSUM and all(is_dump(p) for p in paths)
    # the block checksum from the workers' digests; a whole-file one is hashed on the client while the workers run
    # (one more read of every file)
    sums = InputChecksums(paths, algo, in_stream=lambda _p: hash_blocks) if checksum else None

    def provenance(parts):
        return _provenance(paths if checksum else (), setup, checksum=False, lab=lab, role=lab_setup.role,
                           chunk_size=int(chunk_size),
                           **({} if checksum else {"inputs_listed": [str(p) for p in paths]}), distributed={
            "partitions": [p.name for p in parts], "dask": dask if isinstance(dask, str) else "client"})
    try:
        with dask_client(dask) as client:
            n = n_partitions if n_partitions is not None else 2 * n_workers(client)
            # no pass over the whole run on the client: the cuts are checked against overflow intervals once
            # the partitions have been read (run_checked)
            parts = plan_partitions(paths, lab_setup, n_partitions=n, cuts=cuts, gap_ps=gap_ps,
                                    overflow_check=False, by_file=cuts is None)
            with MergeWriter(slot.partial, lab=lab, role=lab_setup.role, setup_hash=setup.hash,
                             provenance=provenance(parts), on_storage_error=slot.release_reserve) as merged:
                def append(part, rep):
                    # written as soon as it is final, while later partitions run; its rounds are then dropped
                    data = rep.pop("output") if "output" in rep else read_rounds(rep["path"])
                    merged.append(data, part.name, path=rep.get("path"))

                parts, reports = run_checked(client, parts, lab_setup, folder, chunk_size=chunk_size,
                                             setup_hash=setup.hash, retries=retries,
                                             pipeline_factory=pipeline_factory, progress=progress,
                                             hash_blocks=hash_blocks, prefetch=spare_cores(client),
                                             on_final=append)
                prov = provenance(parts)
                if sums is not None:
                    for rep in reports:
                        for path, leaves in rep.get("block_digests", {}).items():
                            sums.join_blocks(path, leaves)
                    for entry, value in zip(prov["inputs"], sums.result()):
                        entry["checksum"] = value
                elapsed = time.perf_counter() - t0
                # tags per channel, as the single-process run reports them (timetag.channels)
                counts: dict[int, int] = {}
                for r in reports:
                    for c, k in r.get("channel_counts", {}).items():
                        counts[int(c)] = counts.get(int(c), 0) + int(k)
                channels = channel_report(dict(sorted(counts.items())), lab_setup)
                for line in channels.warnings:
                    warnings.warn(line, TimetagWarning, stacklevel=3)

                # the keys timetag.process.process_files adds to the single-process summary
                def extra(summary):
                    return {"elapsed_s": elapsed,
                            "tags_per_s": summary.get("tags", 0) / elapsed if elapsed > 0 else None,
                            "inputs": [str(p) for p in paths], "out": str(out), "channels": channels.as_dict()}
                summary = merged.close(sync_reference=sync_reference_of(lab_setup), extra_summary=extra,
                                       provenance=prov)
    except BaseException:
        if sums is not None:
            sums.cancel()
        raise
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    return summary
