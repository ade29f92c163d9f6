"""One quiet-gap partition of a dump stream through a fresh chain, its results kept in memory.

The worker of ``process --threads``: the chain of :func:`timetag.distributed.worker.process_partition` (the
partition's own records counted, every record, lookahead included, through ``LabEngine -> KeepOwned``, and a
second fresh engine on the lookahead alone whose counts are subtracted), the owned rounds and heralds, the
summary, histograms and channel counts kept in a :class:`PartitionResult` the main thread reads.

Records are read as :func:`timetag.formats.iter_stream` reads them (the same reader options, the same carrying of
a bad-record interval and of the time order across files), so that a partition whose start is equivalent to a
fresh stream (:mod:`timetag.stream.parallel` checks that) gives what the single-thread run gives there.
What the fresh readers leave behind for that check is recorded too: the last tag, whether a bad-record interval
is open at the end of the partition's own records, the readers' bad-record accounts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from ..chunk import LOST_DTYPE, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk
from ..distributed.partition import Partition, is_dump
from ..errors import DataValidationError
from ..formats import open_tags
from ..formats.dump import DumpReader
from ..provenance import jsonable
from .channels import CountChannels
from .driver import StreamBroke, run_stream
from .engine import LabEngine
from .events import RoundsEvent
from .lookahead import LookaheadBegins, LookaheadGate, SummaryAtLookahead, engine_histograms, own_counts
from .ownership import KeepOwned
from .prefetch import prefetched
from .processor import Stage, Tee

__all__ = ["PartitionCancelled", "PartitionResult", "run_partition"]


class PartitionCancelled(Exception):
    """The run no longer wants this partition (stopped, or merged into its neighbour)."""


@dataclass
class PartitionResult:
    """What one partition made, and where it stopped.  Written by one worker thread; read by the main thread
    once ``done`` (``records`` while it runs, for the progress bar)."""

    part: Partition
    rounds: list = field(default_factory=list)       # owned rounds, partition-local indices from 0, in pieces
    heralds: list = field(default_factory=list)      # owned heralds, one piece per rounds piece
    pieces_before_lookahead: int | None = None   # set when the lookahead begins
    summary: dict | None = None
    histograms: dict | None = None
    channel_counts: dict = field(default_factory=dict)
    records: int = 0                  # own records handled (tags and lost-data events)
    last_tag_ps: int | None = None    # the latest (= last, they are in order) tag of its own records
    interval_open: bool = False       # its own records end inside a bad-record interval
    last_overflow_mark: int | None = None   # kind of its own last overflow begin/end event (None: none)
    readers: list = field(default_factory=list)       # the readers of its own segments, in order
    error: BaseException | None = None
    error_in_lookahead: bool = False
    done: bool = False
    cancelled: bool = False

    @property
    def n_rounds(self) -> int:
        return sum(len(r) for r in self.rounds)

    @property
    def overflow_open(self) -> bool:
        """Its own lost-data events end inside an overflow (a BEGIN without its END)."""
        return self.last_overflow_mark == OVERFLOW_BEGIN


class _OwnRecords(Stage):
    """Counts the partition's own records and keeps its last tag and whether an overflow is open at its end (a
    sink behind the own-records gate)."""

    def __init__(self, result: PartitionResult):
        super().__init__(None)
        self.result = result

    def handle(self, event) -> None:
        if isinstance(event, TagChunk):
            self.result.records += len(event) + event.lost.size
            if len(event):
                self.result.last_tag_ps = int(event.time[-1])
            if event.lost.size:
                marks = event.lost["kind"][np.isin(event.lost["kind"], (OVERFLOW_BEGIN, OVERFLOW_END))]
                if marks.size:
                    self.result.last_overflow_mark = int(marks[-1])


class _KeepRounds(Stage):
    """The owned rounds and heralds, piece by piece, into the result (the sink behind ``KeepOwned``)."""

    def __init__(self, result: PartitionResult):
        super().__init__(None)
        self.result = result

    def handle(self, event) -> None:
        if isinstance(event, RoundsEvent) and (len(event.rounds) or len(event.heralds)):
            self.result.rounds.append(event.rounds)
            self.result.heralds.append(event.heralds)


class _AtLookahead(SummaryAtLookahead):
    """When the lookahead begins: the engine's summary then, and how many pieces were kept before it."""

    def __init__(self, result: PartitionResult, engine: LabEngine):
        super().__init__(engine)
        self.result = result

    def handle(self, event) -> None:
        if isinstance(event, LookaheadBegins):
            self.result.pieces_before_lookahead = len(self.result.rounds)
        super().handle(event)


def segment_chunks(segments, chunk_size: int, opts: dict, readers: list | None = None,
                   stop: Callable[[], bool] | None = None, state: dict | None = None,
                   feeder_for: Callable | None = None) -> Iterator[TagChunk]:
    """The chunks of record ranges of dump files (other formats: whole files, a segment of one is the file), read
    as :func:`timetag.formats.iter_stream` reads whole files:
    a segment that starts a file after another file must not start before it ended, and a bad-record interval
    open at the end of a file is closed at the next file's first tag or event.  ``state['interval_open']``: at
    the end, whether the records end inside such an interval.  ``feeder_for(path)``: a checksum feeder for the
    reader of a segment of ``path``, or None (:meth:`timetag.provenance.InputChecksums.feeder_for`)."""
    last = None
    carry = False
    for seg in segments:
        dump = is_dump(seg.path)
        reader = DumpReader(seg.path, chunk_size=chunk_size, **opts) if dump else \
            open_tags(seg.path, chunk_size=chunk_size, **opts)
        if readers is not None:
            readers.append(reader)
        feeder = feeder_for(seg.path) if feeder_for is not None and dump else None
        if feeder is not None:
            reader.hash_while_reading(feeder)
        first_in_file = seg.start == 0 and last is not None
        for chunk in (reader.iter_chunks(seg.start, seg.stop) if dump else reader.iter_chunks()):
            if stop is not None and stop():
                raise PartitionCancelled()
            if first_in_file and len(chunk):
                if chunk.time[0] < last:
                    raise DataValidationError(
                        f"file starts at {int(chunk.time[0])} ps, before the previous file ended ({last} ps): "
                        "files out of order or from different runs", path=seg.path, index=0)
                first_in_file = False
            if carry and (len(chunk) or chunk.lost.size):
                chunk.lost = np.concatenate([_interval_end(chunk), chunk.lost])
                carry = False
            if len(chunk):
                last = int(chunk.time[-1])
            yield chunk
        carry = carry or getattr(reader, "lost_interval_open", False)
    if state is not None:
        state["interval_open"] = carry


def _interval_end(chunk: TagChunk) -> np.ndarray:
    ev = np.zeros(1, LOST_DTYPE)
    ev["kind"] = OVERFLOW_END
    ev["time"] = min(int(x[0]) for x in (chunk.time, chunk.lost["time"]) if x.size)
    return ev


def run_partition(result: PartitionResult, lab, *, chunk_size: int, opts: dict,
                  stop: Callable[[], bool] | None = None, pipeline_factory: Callable | None = None,
                  feeder_for: Callable | None = None, prefetch: bool = False) -> None:
    """Process ``result.part`` into ``result`` (never raises: the error is kept in ``result.error``); its own
    records (not the lookahead) are fed to ``feeder_for(path)``'s checksum feeders.  ``prefetch``: read and
    decode the next chunks on a second thread (worth it where a core is to spare)."""
    part = result.part
    make = pipeline_factory or (lambda _lab: None)
    engine = LabEngine(lab, KeepOwned(part.owns, _KeepRounds(result)), pipeline=make(lab))
    counter = CountChannels(_OwnRecords(result))
    own = LookaheadGate(False, counter)
    at_lookahead = _AtLookahead(result, engine)
    alone = LabEngine(lab, pipeline=make(lab)) if part.lookahead else None
    state: dict = {}

    def events():
        yield from segment_chunks(part.segments, chunk_size, opts, result.readers, stop, state, feeder_for)
        result.interval_open = bool(state.get("interval_open"))
        if part.lookahead:
            yield LookaheadBegins()
            yield from segment_chunks(part.lookahead, chunk_size, opts, None, stop)

    lookahead_gate = LookaheadGate(True, alone) if alone is not None else None
    try:
        run_stream(prefetched(events()) if prefetch else events(), Tee(own, at_lookahead, engine, lookahead_gate))
        result.summary, result.histograms = own_counts(lab, engine, alone, at_lookahead.summary, make)
    except StreamBroke as broke:   # a bad record: the chain was flushed; what it made stands
        result.error = broke
        result.summary, result.histograms = jsonable(engine.summary), engine_histograms(engine)
    except BaseException as exc:   # noqa: BLE001 - handed to the main thread, which decides
        result.error = exc
        result.cancelled = result.cancelled or isinstance(exc, PartitionCancelled)
    finally:
        result.error_in_lookahead = result.error is not None and own.in_lookahead
        result.channel_counts = counter.counts
        result.done = True
