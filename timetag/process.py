"""Process tag files (or any stream of chunks) of one lab into a rounds file.

``process_files(paths, setup, lab, out)`` reads the files as one continuous stream
(:func:`timetag.formats.iter_stream`, its tags counted per channel on the reading thread) through the chain
``ReportProgress -> LabEngine -> WriteRounds`` (:mod:`timetag.stream`),
appends rounds and heralds to ``out`` as they are made (a run killed midway leaves
every round up to the last chunk), then writes histograms, summary and provenance.
``process_chunks`` is the same on any iterable of :class:`~timetag.chunk.TagChunk`
(live and distributed modes).  ``threads=N`` (or ``'auto'``) cuts dump inputs at quiet gaps and processes the
pieces on N threads of this process (:mod:`timetag.stream.parallel`), writing the same rounds file.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Callable, Iterable

from .channels import channel_report
from .chunk import DEFAULT_CHUNK_SIZE, TagChunk
from .custody import Completion
from .engine import LabPipeline
from .engine.summary import RunSummary
from .distributed.merge import merge_histograms, run_summary, sync_reference_of
from .errors import RunStopped, SetupError, StorageError, Terminated, TimetagError, TimetagWarning, for_cli
from .formats import iter_stream, sniff, total_records
from .stream.parallel import OrderedPartitions, plan_threads
from .stream.prefetch import prefetched
from .formats._common import EXAMPLES_KEPT, check_readable
from .constants import BLOCK_CHECKSUM
from .provenance import DEFAULT_CHECKSUM, InputChecksums, jsonable
from .provenance import provenance as make_provenance
from .roundsoutput import RoundsOutput
from .setupfile import LabSetup, Setup, load_setup
from .channels import ChannelTally
from .stream import LabEngine, ReportProgress, StreamBroke, WriteRounds, run_stream
from .stream.channels import tallied

#: formats whose readers feed the checksum the bytes they map (``hash_while_reading``)
HASHED_WHILE_READ = ("dump", "ptu", "ht3", "qutag")

#: ``progress(records_done, records_total or None, rounds_done)``, called after every chunk
ProgressCallback = Callable[[int, "int | None", int], None]


def resolve_lab(setup, lab) -> tuple[Setup | None, LabSetup]:
    """(Setup, LabSetup) from a setup object or path and a lab name (or a LabSetup)."""
    if isinstance(lab, LabSetup):
        return (setup if isinstance(setup, Setup) else (load_setup(setup) if setup is not None else None)), lab
    if setup is None:
        raise SetupError("a setup is needed to look up the lab by name", key="labs")
    s = setup if isinstance(setup, Setup) else load_setup(setup)
    return s, s.lab(str(lab))


def setup_paths(setup) -> list[Path]:
    """The setup file among a run's inputs (never to be overwritten by its output), when given as a path."""
    return [Path(setup)] if isinstance(setup, (str, Path)) else []


def process_chunks(chunks: Iterable[TagChunk], lab: LabSetup, writer=None,
                   pipeline: LabPipeline | None = None) -> LabPipeline:
    """The engine over any stream, rounds and heralds appended to ``writer`` (anything with ``append(rounds,
    heralds)`` and ``flush()``) as they are made; returns the pipeline (``.summary``, ``.histograms``).

    The chain ``LabEngine -> WriteRounds`` under :func:`~timetag.stream.run_stream`: when the stream raises (a
    bad record) the open rounds are decided and written, then the stream's own error is raised.
    """
    engine = LabEngine(lab, WriteRounds(writer) if writer is not None else None, pipeline=pipeline)
    try:
        run_stream(chunks, engine)
    except StreamBroke as broke:
        raise broke.__cause__ from None
    return engine.pipeline


def process_files(paths, setup, lab, out, chunk_size: int = DEFAULT_CHUNK_SIZE,
                  progress: ProgressCallback | bool | None = None,
                  format: str | None = None, checksum: bool | str = True, force: bool = False,
                  on_bad_record: str = "fail", max_jump_ps: int | None = None, threads: int | str = 1,
                  partitions: int | None = None) -> RunSummary:
    """Process the files of one run (in order) for one lab into the rounds file ``out``; returns the run summary.

    ``setup``: a :class:`Setup` or a path to the setup TOML; ``lab``: its lab name (or a
    :class:`LabSetup`).  ``progress``: called after every chunk with (records done, records in all the inputs or
    None when a format cannot tell, rounds made); the CLI draws its bar from it.

    Custody (:mod:`timetag.roundsoutput`): ``out`` is written as ``out.partial`` and renamed when complete; an
    existing ``out`` is refused unless ``force``, and an input never is an output.  A run stopped by a bad record
    (``on_bad_record="fail"``), an OS error or Ctrl-C raises :class:`RunStopped` after keeping the rounds made so
    far in a file marked failed / interrupted (``on_bad_record="lost"``: the bad record becomes lost data and the
    run goes on; ``max_jump_ps``: a tag that far after the previous one is a bad record).

    ``threads``: worker threads (``'auto'``: :func:`auto_threads`).  Above 1, dump inputs are cut at quiet gaps
    into ``partitions`` pieces (default: :func:`default_partitions`) processed on that many threads; the rounds
    file equals the one-thread run's (rounds, heralds, histograms, summary counts; timing and provenance aside).
    Inputs that cannot be cut inside (PTU and the other formats with carried state) run on one thread, said in
    a warning when threads were asked for.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    for p in paths:  # a missing input is a user mistake (exit 2), not an OS error met on the way
        check_readable(p)
    setup_obj, lab_setup = resolve_lab(setup, lab)
    if int(chunk_size) < 1:
        raise SetupError(f"chunk size must be >= 1 (got {chunk_size})", key="chunk_size")
    reader_opts = {k: v for k, v in (("on_bad_record", on_bad_record), ("max_jump_ps", max_jump_ps))
                   if v not in ("fail", None)}
    t_plan = time.perf_counter()
    n_threads, parts, note = plan_threads(paths, lab_setup, threads, format=format, partitions=partitions)
    if note:
        warnings.warn(note, TimetagWarning, stacklevel=2)
    t_plan = time.perf_counter() - t_plan
    extra_prov = {"threads": {"threads": n_threads, "partitions": len(parts)}} if n_threads > 1 else {}
    prov = make_provenance(inputs=paths if checksum else (), setup=setup_obj, checksum=False, lab=lab_setup.name,
                           role=lab_setup.role, chunk_size=int(chunk_size),
                           **({} if checksum else {"inputs_listed": [str(p) for p in paths]}), **extra_prov)
    for entry in prov["inputs"]:
        entry["checksum"] = "pending"  # until the end: computed alongside the run
    out_file = RoundsOutput(out, lab=lab_setup.name, role=lab_setup.role, provenance=prov,
                            setup_hash=setup_obj.hash if setup_obj is not None else "",
                            inputs=[*paths, *setup_paths(setup)], force=force)
    total = total_records(paths, chunk_size, format)
    out_file.open()  # every check (output exists, is an input, has a writer) before any work
    if n_threads > 1:
        # chunks of chunk_size / threads: as many records in memory at once as on one thread
        return _process_partitions(paths, lab_setup, out_file, prov, parts, threads=n_threads,
                                  chunk_size=max(1, int(chunk_size) // n_threads), opts=reader_opts, checksum=checksum,
                                  progress=progress, total=total, out=out, setup_s=t_plan)

    def on_progress(done: int, _rounds: int) -> None:
        if callable(progress):  # False/None: no report (the library draws no bar: the CLI does)
            # the rounds written so far: ReportProgress sits before the engine and never sees its rounds
            progress(done, total, out_file.n_rounds)

    engine = LabEngine(lab_setup, WriteRounds(out_file))
    counter = ReportProgress(on_progress, engine)
    tally = ChannelTally()
    # dump, PTU/HT3 and quTAG inputs are hashed on the bytes the reader reads anyway (on the read-ahead thread),
    # others on a thread of their own while the engine runs
    sums = InputChecksums(paths, DEFAULT_CHECKSUM if checksum is True else checksum,
                          in_stream=lambda p: (format or sniff(p)) in HASHED_WHILE_READ) \
        if checksum else None
    t0 = time.perf_counter()
    readers: list = []
    try:
        # the next chunks are read (and their channels counted) on another thread while the engine works on this one
        chunks = iter_stream(paths, chunk_size=chunk_size, format=format, readers=readers,
                             on_open=None if sums is None else sums.attach, **reader_opts)
        run_stream(prefetched(tallied(chunks, tally)), counter)
        summary = _with_timing(engine.summary, time.perf_counter() - t0, paths, out)
        accounts = [(getattr(r, "path", ""), getattr(r, "meta", {})) for r in readers]
        _complete_summary(summary, tally.counts, lab_setup, _bad_records(accounts), sums, prov, stacklevel=2)
    except BaseException as exc:
        if sums is not None:
            sums.cancel()
        _stop_incomplete(out_file, lambda: _json_summary(engine), exc, counter.records, total)
    where = out_file.finish(Completion.COMPLETE, "", summary=summary.to_json(), histograms=engine.histograms,
                            provenance=prov)
    if out_file.failure is not None:
        _raise_storage(out_file, where)
    return summary


def _process_partitions(paths, lab_setup: LabSetup, out_file: RoundsOutput, prov: dict, parts, *, threads: int,
                        chunk_size: int, opts: dict, checksum, progress, total, out, setup_s: float) -> RunSummary:
    """The rest of :func:`process_files` with partitions on threads: results written in partition order as they
    come (round indices continued), summaries and histograms merged as the partitions' files would be."""
    # the workers map the records out of order: the block checksum takes them so; a whole-file one (asked for by
    # name) reads each file once more, in order, on a thread of its own
    algo = DEFAULT_CHECKSUM if checksum is True else checksum
    sums = InputChecksums(paths, algo, in_stream=lambda _p: algo == BLOCK_CHECKSUM) if checksum else None
    written: list = []
    partial = None

    def tick(done: int) -> None:
        if callable(progress):
            progress(done, total, out_file.n_rounds)

    t0 = time.perf_counter() - setup_s
    runner = OrderedPartitions(parts, lab_setup, threads=threads, chunk_size=chunk_size, opts=opts, tick=tick,
                               feeder_for=sums.feeder_for if sums is not None else None)
    try:
        with runner:
            for result in runner:
                _append_result(out_file, result, len(result.rounds))
                written.append(result)
                tick(runner.records_done())
                if result.error is not None:
                    raise result.error
        summary = _with_timing(_merged_summary(written, lab_setup), time.perf_counter() - t0, paths, out)
        counts: dict[int, int] = {}
        for r in written:
            for c, n in r.channel_counts.items():
                counts[c] = counts.get(c, 0) + n
        _complete_summary(summary, dict(sorted(counts.items())), lab_setup, _bad_records(_file_accounts(written)),
                          sums, prov, stacklevel=3)
        histograms = merge_histograms([r.histograms or {} for r in written])
        prov["threads"]["joined"] = runner.joined   # cuts found unsafe once read (bad records, overflows)
    except BaseException as exc:
        if sums is not None:
            sums.cancel()
        partial = runner.waiting_on
        if partial is not None and (not written or written[-1].error is None):
            # a stop while waiting: the rounds the next partition made before it (never those of its lookahead,
            # whose boundary was not checked) are the ones the single-thread run would have written by then
            keep = len(partial.rounds) if partial.pieces_before_lookahead is None else partial.pieces_before_lookahead
            try:
                _append_result(out_file, partial, keep)
            except BaseException:  # noqa: BLE001 - the rounds already written are kept all the same
                pass
        done = sum(r.records for r in written) + (partial.records if partial is not None else 0)
        _stop_incomplete(out_file, lambda: _merged_json(written, lab_setup), exc, done, total)
    where = out_file.finish(Completion.COMPLETE, "", summary=summary.to_json(), histograms=histograms,
                            provenance=prov)
    if out_file.failure is not None:
        _raise_storage(out_file, where)
    return summary


def _append_result(out_file: RoundsOutput, result, pieces: int) -> None:
    offset = out_file.n_rounds
    for rounds, heralds in zip(result.rounds[:pieces], result.heralds[:pieces]):
        if len(rounds):
            rounds["index"] += offset
        out_file.append(rounds, heralds)
    del result.rounds[:pieces], result.heralds[:pieces]   # written: not held twice
    out_file.flush()


def _merged_json(results, lab_setup: LabSetup) -> dict:
    return run_summary([r.summary or {} for r in results], sync_reference_of(lab_setup))


def _merged_summary(results, lab_setup: LabSetup) -> RunSummary:
    summary = RunSummary.from_json(_merged_json(results, lab_setup))
    summary.singles = {int(k): v for k, v in summary.singles.items()}   # JSON made the channel keys strings
    return summary


def _file_accounts(results) -> list[tuple[str, dict]]:
    """(path, bad-record account) per input file, as its single reader would have kept it (the partitions' readers
    of one file joined in order, examples cut to what one reader keeps)."""
    by_file: dict[str, dict] = {}
    for r in results:
        for reader in r.readers:
            meta = reader.meta
            acc = by_file.setdefault(str(reader.path), {"bad_records": 0, "bad_record_examples": []})
            acc["bad_records"] += int(meta.get("bad_records", 0) or 0)
            acc["bad_record_examples"] = (acc["bad_record_examples"] + list(meta.get("bad_record_examples") or []))[
                :EXAMPLES_KEPT]
    return list(by_file.items())


def _complete_summary(summary: RunSummary, counts: dict, lab_setup: LabSetup, bad: dict, sums, prov: dict,
                      stacklevel: int) -> None:
    """The channel report (its warnings issued), the bad records turned into lost data (only in 'lost' mode: 'fail'
    stops at the first) and the inputs' checksums, once the stream has been read to its end."""
    report = channel_report(counts, lab_setup)
    summary.channels = report.as_dict()
    if bad["count"]:
        summary.bad_records = bad
    for line in report.warnings:
        warnings.warn(line, TimetagWarning, stacklevel=stacklevel + 1)
    if sums is not None:
        for entry, value in zip(prov["inputs"], sums.result()):
            entry["checksum"] = value


def _with_timing(summary: RunSummary, elapsed: float, paths, out) -> RunSummary:
    summary.elapsed_s = elapsed
    summary.tags_per_s = summary.tags / elapsed if elapsed > 0 else None
    summary.inputs = [str(p) for p in paths]
    summary.out = str(out)
    return summary


def _stop_incomplete(out_file: RoundsOutput, summary_so_far: Callable[[], dict | None], exc: BaseException,
                     done: int, total) -> None:
    """Keep what the run made, marked with how it ended, and raise :class:`RunStopped` saying so."""
    at = f"after {done:,} of {total:,} records" if total else f"after {done:,} records"
    if isinstance(exc, StreamBroke):  # the driver has decided and written the rounds still open
        cause = exc.__cause__
        state, reason, code = Completion.FAILED, f"{cause} ({at})", 2
    elif isinstance(exc, KeyboardInterrupt):
        how = str(exc) if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
        cause, state, reason, code = how, Completion.INTERRUPTED, f"{how} {at}", getattr(exc, "exit_code", 130)
    elif isinstance(exc, StorageError):
        out_file.finish(Completion.FAILED, f"{exc} ({at})", summary=summary_so_far())
        _raise_storage(out_file, out_file.where)
    elif isinstance(exc, (TimetagError, OSError)):
        cause, state, reason, code = exc, Completion.FAILED, f"{exc} ({at})", 2 if isinstance(exc, TimetagError) else 1
    else:  # a bug: keep the rounds, say so, and let the traceback through
        out_file.finish(Completion.FAILED, f"internal error {type(exc).__name__}: {exc} ({at})",
                        summary=summary_so_far())
        raise exc
    where = out_file.finish(state, reason, summary=summary_so_far())
    heads = (str(cause), for_cli(cause)) if cause is not None else ("interrupted", "interrupted")
    if where is None:
        tail = "; nothing could be kept"
        raise RunStopped(heads[0] + tail, kept=None, rounds=0, exit_code=code, cli_message=heads[1] + tail) from None
    tail = f"; kept {out_file.n_rounds:,} rounds made before it in {where} (marked {state})"
    raise RunStopped(heads[0] + tail, kept=where, rounds=out_file.n_rounds, exit_code=code,
                     cli_message=heads[1] + tail) from None


def _raise_storage(out_file: RoundsOutput, where) -> None:
    failure = out_file.failure
    if where is None:
        raise RunStopped(f"{failure}; the output could not be completed and was removed", exit_code=1) from None
    raise RunStopped(f"{failure}; kept the {out_file.n_rounds:,} rounds written before it in {where} (marked failed)",
                     kept=where, rounds=out_file.n_rounds, exit_code=1) from None


def _bad_records(accounts) -> dict:
    """Bad records the readers turned into lost data ('lost' mode): how many, and the first few, per file, from
    (path, reader meta) pairs."""
    out = {"count": 0, "examples": []}
    for path, meta in accounts:
        meta = meta or {}
        out["count"] += int(meta.get("bad_records", 0) or 0)
        out["examples"] += [{"file": str(path), **e}
                            for e in (meta.get("bad_record_examples") or [])][:10 - len(out["examples"])]
    return out


def _json_summary(engine: LabEngine) -> dict | None:
    try:
        return jsonable(engine.summary)
    except Exception:  # the summary of a broken pipeline is not worth failing the rescue of its rounds
        return None
