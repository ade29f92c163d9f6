"""Process tag files (or any stream of chunks) of one lab into a rounds file.

``process_files(paths, setup, lab, out)`` reads the files as one continuous stream
(:func:`timetag.formats.iter_stream`), runs :class:`~timetag.engine.LabPipeline`,
appends rounds and heralds to ``out`` as they are made (a run killed midway leaves
every round up to the last chunk), then writes histograms, summary and provenance.
``process_chunks`` is the same on any iterable of :class:`~timetag.chunk.TagChunk`
(live and distributed modes).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable

from .chunk import DEFAULT_CHUNK_SIZE, TagChunk
from .engine import LabPipeline
from .errors import SetupError
from .provenance import BackgroundChecksums
from .provenance import provenance as make_provenance
from .roundsfile import RoundsWriter
from .setupfile import LabSetup, Setup, load_setup


def resolve_lab(setup, lab) -> tuple[Setup | None, LabSetup]:
    """(Setup, LabSetup) from a setup object or path and a lab name (or a LabSetup)."""
    if isinstance(lab, LabSetup):
        return (setup if isinstance(setup, Setup) else (load_setup(setup) if setup is not None else None)), lab
    if setup is None:
        raise SetupError("a setup is needed to look up the lab by name", key="labs")
    s = setup if isinstance(setup, Setup) else load_setup(setup)
    return s, s.lab(str(lab))


def process_chunks(chunks: Iterable[TagChunk], lab: LabSetup, writer: RoundsWriter | None = None,
                   on_chunk: Callable[[TagChunk, LabPipeline], None] | None = None) -> LabPipeline:
    """Run the pipeline over a stream; append each chunk's rounds/heralds to ``writer``.

    Returns the pipeline (``.summary``, ``.histograms``); the writer is flushed but not closed.
    """
    pl = LabPipeline(lab)
    for chunk in chunks:
        rounds, heralds = pl.process(chunk)
        if writer is not None and (rounds.size or heralds.size):
            writer.append(rounds, heralds)
            writer.flush()
        if on_chunk is not None:
            on_chunk(chunk, pl)
    rounds, heralds = pl.flush()
    if writer is not None:
        writer.append(rounds, heralds)
        writer.flush()
    return pl


def _total_records(paths, chunk_size, format) -> int | None:
    from .formats import open_tags

    total = 0
    for p in paths:
        n = getattr(open_tags(p, chunk_size=chunk_size, format=format), "records", None)
        if n is None:
            return None
        total += int(n)
    return total


def process_files(paths, setup, lab, out, chunk_size: int = DEFAULT_CHUNK_SIZE, progress=True,
                  format: str | None = None, checksum: bool = True) -> dict:
    """Process the files of one run (in order) for one lab; returns the run summary.

    ``setup``: a :class:`Setup` or a path to the setup TOML; ``lab``: its lab name (or a
    :class:`LabSetup`).  ``progress``: True for a rich progress bar on stderr, False for
    none, or a callable ``f(records_done, records_total)``.
    """
    from .formats import iter_stream

    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    setup_obj, lab_setup = resolve_lab(setup, lab)
    if int(chunk_size) < 1:
        raise SetupError(f"chunk size must be >= 1 (got {chunk_size})", key="chunk_size")
    total = _total_records(paths, chunk_size, format)
    # the checksums are computed on another core while the engine runs; the file gets them at
    # the end (until then its provenance says "pending")
    sums = BackgroundChecksums(paths) if checksum else None
    prov = make_provenance(inputs=paths if checksum else (), setup=setup_obj, checksum=False, lab=lab_setup.name,
                           role=lab_setup.role, chunk_size=int(chunk_size),
                           **({} if checksum else {"inputs_listed": [str(p) for p in paths]}))
    for entry in prov["inputs"]:
        entry["checksum"] = "pending"
    setup_hash = setup_obj.hash if setup_obj is not None else ""
    t0 = time.perf_counter()
    done = 0
    bar = None
    callback = progress if callable(progress) else None
    if progress is True:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("{task.fields[rounds]} rounds"), TimeRemainingColumn(),
                       console=Console(stderr=True), transient=False)
        task = bar.add_task(f"{lab_setup.name}", total=total, rounds=0)
        bar.start()

    def on_chunk(chunk, pl):
        nonlocal done
        done += len(chunk) + len(chunk.lost)
        if bar is not None:
            bar.update(task, completed=done, rounds=pl.summary["rounds"])
        if callback is not None:
            callback(done, total)

    writer = RoundsWriter(out, lab=lab_setup.name, role=lab_setup.role, provenance=prov, setup_hash=setup_hash)
    try:
        pl = process_chunks(iter_stream(paths, chunk_size=chunk_size, format=format), lab_setup, writer, on_chunk)
    except BaseException:
        if sums is not None:
            sums.cancel()
        writer.close()
        raise
    finally:
        if bar is not None:
            bar.stop()
    elapsed = time.perf_counter() - t0
    summary = pl.summary
    summary["elapsed_s"] = elapsed
    summary["tags_per_s"] = summary["tags"] / elapsed if elapsed > 0 else None
    summary["inputs"] = [str(p) for p in paths]
    summary["out"] = str(out)
    if sums is not None:
        for entry, value in zip(prov["inputs"], sums.result()):
            entry["checksum"] = value
    writer.close(summary=summary, histograms=pl.histograms, provenance=prov)
    return summary
