"""Processing one lab's run on a Dask cluster: partitions in parallel, one merged rounds file.

Only small descriptions travel through the scheduler: the lab setup, file paths and record ranges go to
the workers; each worker reads its records from the (shared) file system, runs a fresh pipeline, and writes
the rounds and heralds it owns to a scratch directory next to the output; the client merges those files.
A task that raises an unexpected error (a worker killed, a flaky file system) is retried by Dask; data
errors (:class:`~timetag.errors.TimetagError`) are deterministic and reported at once, by partition name.
The merged file appears only when every partition succeeded.

Custody: the output is checked and locked before any work starts (never an input; an existing file only with
``force``; one writer at a time, which also guards the scratch directory); partition files and the merged file
are written as ``.partial`` files and renamed when complete, so a failure leaves neither a half file nor a
changed old output.
"""
from __future__ import annotations

import os
import re
import socket
import shutil
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ..channels import channel_report
from ..chunk import DEFAULT_CHUNK_SIZE, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk
from ..custody import DEFAULT_RESERVE_BYTES, AtomicOutput
from ..engine import LabPipeline
from ..errors import SetupError, TimetagError, TimetagWarning
from ..checksums import BlockDigest
from ..constants import BLOCK_CHECKSUM
from ..provenance import DEFAULT_CHECKSUM, InputChecksums
from ..provenance import provenance as _provenance
from ..roundsfile import RoundsWriter
from ..setupfile import LabSetup, Setup, load_setup
from ..formats import open_tags
from ..formats.dump import DumpReader
from ..stream.lookahead import LookaheadBegins, LookaheadGate, SummaryAtLookahead, own_counts
from ..stream.prefetch import prefetched
from ..stream import CountChannels, KeepOwned, LabEngine, Stage, StreamBroke, Tee, WriteRounds, run_stream
from .merge import merge_into, sync_reference_of
from .partition import Partition, Segment, is_dump, join_partitions, plan_partitions


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


# --- the worker side ----------------------------------------------------------

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


def process_partition(part: Partition, lab: LabSetup, scratch: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                      setup_hash: str = "", pipeline_factory: Callable | None = None,
                      hash_blocks: bool = False) -> dict:
    """Run a fresh pipeline over one partition; write its own rounds to ``scratch``; return a small report
    (with ``hash_blocks``, also the block checksum's digests of the blocks its dump segments held whole:
    ``block_digests``, path -> {block: digest}, which the client joins instead of reading the inputs again).

    The chain: the partition's own records are counted (``CountChannels``); every record, lookahead included,
    goes through ``LabEngine -> KeepOwned -> WriteRounds``; with a lookahead, a second, fresh engine runs on
    the lookahead alone, and its counts are subtracted from the summary and histograms (the lookahead follows
    a quiet gap, so it acts on a running pipeline exactly as on a fresh one).

    A :class:`TimetagError` (bad data) is returned as ``{'error': ...}`` rather than raised, so Dask does not
    retry a deterministic failure; anything else propagates and is retried.
    """
    out = Path(scratch) / f"part{part.index:04d}.h5"
    make = pipeline_factory or default_pipeline
    unseen = [seg.path for seg in (*part.segments, *part.lookahead) if not Path(seg.path).is_file()]
    if unseen or not Path(scratch).is_dir():
        where = f"{socket.gethostname()}:{os.getcwd()}"
        what = f"input {unseen[0]}" if unseen else f"scratch folder {scratch}"
        return {"name": part.name, "error": f"the worker ({where}) cannot see the {what}: Dask workers need the "
                                            "inputs and the output's folder on a shared file system, at the "
                                            "same path as on the client"}
    try:
        with _ScratchFile(out) as partial, \
                RoundsWriter(partial, lab=lab.name, role=lab.role, setup_hash=setup_hash) as w:
            owned = KeepOwned(part.owns, WriteRounds(w, durable="end"))
            engine = LabEngine(lab, owned, pipeline=make(lab))
            own_records = CountChannels()
            marks = _LastOverflowMark()
            alone = LabEngine(lab, pipeline=make(lab)) if part.lookahead else None
            before = SummaryAtLookahead(engine)
            digests = {str(seg.path): BlockDigest(Path(seg.path).stat().st_size)
                       for seg in part.segments if is_dump(seg.path)} if hash_blocks else None
            # the next chunk is read and decoded on a thread while the engine works on this one (as in
            # timetag.process): a worker with a second core uses it
            run_stream(prefetched(_partition_events(part, chunk_size, digests)),
                       Tee(LookaheadGate(False, own_records), LookaheadGate(False, marks), before, engine,
                           LookaheadGate(True, alone) if alone else None))
            summary, hists = own_counts(lab, engine, alone, before.summary, make)
            w.close(summary=summary, histograms=hists)
    except StreamBroke as exc:
        cause = exc.__cause__
        return {"name": part.name, "error": f"{type(cause).__name__}: {cause}"}
    except TimetagError as exc:
        return {"name": part.name, "error": f"{type(exc).__name__}: {exc}"}
    return {"name": part.name, "path": str(out), "rounds": owned.kept, "channel_counts": own_records.counts,
            "last_overflow_mark": marks.kind,
            **({"block_digests": {p: d.leaves for p, d in digests.items()}} if digests is not None else {})}


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


# --- the client side ----------------------------------------------------------

def resolve_lab(setup, lab: str) -> tuple[Setup, LabSetup]:
    setup = setup if isinstance(setup, Setup) else load_setup(setup)
    return setup, setup.lab(lab)


def run_partitions(client, parts: Sequence[Partition], lab: LabSetup, scratch: Path, *, chunk_size: int,
                   setup_hash: str, retries: int = 2, pipeline_factory: Callable | None = None,
                   progress: Callable[[int, int], None] | None = None, key_suffix: str = "",
                   hash_blocks: bool = False) -> list[dict]:
    """Submit every partition, wait for all, and raise :class:`PartitionError` naming each failure.
    ``progress(done, total)``: partitions finished (or failed) so far, as each one ends."""
    from distributed import as_completed

    futures = [client.submit(process_partition, p, lab, str(scratch), chunk_size=chunk_size, setup_hash=setup_hash,
                             pipeline_factory=pipeline_factory, hash_blocks=hash_blocks, retries=retries, pure=False,
                             key=f"timetag-{lab.name}-{scratch.name}-{p.index:04d}{key_suffix}")
               for p in parts]
    if progress is not None:
        progress(0, len(futures))
    for done, _ in enumerate(as_completed(futures), 1):
        if progress is not None:
            progress(done, len(futures))
    reports, failures = [], []
    for p, f in zip(parts, futures):
        if f.status == "error":
            exc = f.exception()
            failures.append(f"{p.name}: {type(exc).__name__}: {exc}")
        else:
            rep = f.result()
            if "error" in rep:
                failures.append(f"{p.name}: {rep['error']}")
            reports.append(rep)
    for f in futures:
        f.release()
    if failures:
        raise PartitionError(f"{len(failures)} of {len(parts)} partitions failed (no merged output written):\n  "
                             + "\n  ".join(failures))
    return reports


def cuts_inside_overflow(reports: Sequence[dict]) -> list[int]:
    """Indices k of the cuts (between partition k and k + 1) that lie inside an overflow interval: the last
    overflow mark up to partition k (its own, else the one before it) is a BEGIN."""
    bad, open_ = [], False
    for k, rep in enumerate(reports[:-1]):
        mark = rep.get("last_overflow_mark")
        if mark is not None:
            open_ = mark == OVERFLOW_BEGIN
        if open_:
            bad.append(k)
    return bad


def run_checked(client, parts: Sequence[Partition], lab: LabSetup, scratch: Path, *, chunk_size: int,
                setup_hash: str, retries: int = 2, pipeline_factory: Callable | None = None,
                progress: Callable[[int, int], None] | None = None,
                hash_blocks: bool = False) -> tuple[list[Partition], list[dict]]:
    """:func:`run_partitions`, then the check the planner skipped (``overflow_check=False``): a cut inside an
    overflow interval would start the next partition's pipeline in the wrong state, so the two partitions
    around it are joined and the joined one is processed again (rare: device overflows are short and the
    cuts sit in quiet gaps).  Returns the final partitions and their reports, in order."""
    parts = list(parts)
    reports = run_partitions(client, parts, lab, scratch, chunk_size=chunk_size, setup_hash=setup_hash,
                             retries=retries, pipeline_factory=pipeline_factory, progress=progress,
                             hash_blocks=hash_blocks)
    for attempt in range(1, len(parts) + 1):  # each pass joins at least two partitions
        bad = cuts_inside_overflow(reports)
        if not bad:
            return parts, reports
        joined_parts, joined_reports, redo = [], [], []
        k = 0
        while k < len(parts):
            if k in bad:
                j = k
                part = parts[k]
                while j in bad:  # a run of bad cuts joins a run of partitions
                    part = join_partitions(part, parts[j + 1])
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
                               hash_blocks=hash_blocks)
        for i, rep in zip(redo, again):
            joined_reports[i] = rep
        parts, reports = joined_parts, joined_reports
    return parts, reports


def process_files_dask(paths: Sequence, setup, lab: str, out, dask="local:2", *,
                       chunk_size: int = DEFAULT_CHUNK_SIZE, n_partitions: int | None = None,
                       cuts: Sequence[int] | None = None, retries: int = 2, keep_scratch: bool = False,
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
                           n_partitions=n_partitions, cuts=cuts, retries=retries, keep_scratch=keep_scratch,
                           gap_ps=gap_ps, checksum=checksum, pipeline_factory=pipeline_factory, progress=progress)


def _run_locked(paths, setup, lab, lab_setup, out, slot, *, dask, chunk_size, n_partitions, cuts, retries,
                keep_scratch, gap_ps, checksum, pipeline_factory, progress=None) -> dict:
    scratch = out.with_name(out.name + ".parts")
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    t0 = time.perf_counter()
    algo = DEFAULT_CHECKSUM if checksum is True else checksum
    hash_blocks = bool(checksum) and algo == BLOCK_CHECKSUM and all(is_dump(p) for p in paths)
    # the block checksum from the workers' digests; a whole-file one is hashed on the client while the workers run
    # (one more read of every file)
    sums = InputChecksums(paths, algo, in_stream=lambda _p: hash_blocks) if checksum else None
    try:
        with dask_client(dask) as client:
            n = n_partitions if n_partitions is not None else 2 * n_workers(client)
            # no pass over the whole run on the client: the cuts are checked against overflow intervals once
            # the partitions have been read (run_checked)
            parts = plan_partitions(paths, lab_setup, n_partitions=n, cuts=cuts, gap_ps=gap_ps,
                                    overflow_check=False, by_file=cuts is None)
            parts, reports = run_checked(client, parts, lab_setup, scratch, chunk_size=chunk_size,
                                         setup_hash=setup.hash, retries=retries, pipeline_factory=pipeline_factory,
                                         progress=progress, hash_blocks=hash_blocks)
        prov = _provenance(paths if checksum else (), setup, checksum=False, lab=lab, role=lab_setup.role,
                           chunk_size=int(chunk_size),
                           **({} if checksum else {"inputs_listed": [str(p) for p in paths]}), distributed={
            "partitions": [p.name for p in parts], "dask": dask if isinstance(dask, str) else "client"})
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
            for c, n in r.get("channel_counts", {}).items():
                counts[int(c)] = counts.get(int(c), 0) + int(n)
        channels = channel_report(dict(sorted(counts.items())), lab_setup)
        for line in channels.warnings:
            warnings.warn(line, TimetagWarning, stacklevel=3)

        # the keys timetag.process.process_files adds to the single-process summary
        def extra(merged):
            return {"elapsed_s": elapsed, "tags_per_s": merged.get("tags", 0) / elapsed if elapsed > 0 else None,
                    "inputs": [str(p) for p in paths], "out": str(out), "channels": channels.as_dict()}
        summary = merge_into([r["path"] for r in reports], slot.partial, lab=lab, role=lab_setup.role,
                             setup_hash=setup.hash, provenance=prov, names=[p.name for p in parts],
                             sync_reference=sync_reference_of(lab_setup), extra_summary=extra,
                             on_storage_error=slot.release_reserve)
    except BaseException:
        if sums is not None:
            sums.cancel()
        if not keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    if not keep_scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    return summary
