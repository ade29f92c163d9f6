"""Cutting one lab's run (one or more tag files in time order) into partitions that can be processed apart.

A partition is safe to process with a *fresh* pipeline when it starts and ends in a quiet gap: a stretch of
the stream with no record at all (no tag, no lost-data event), outside any overflow interval, longer than
every dependency a round can have (:func:`safe_gap_ps`).  Then no round, herald or histogram entry can
involve tags on both sides of the gap, and a pipeline that has just started has the same (empty) state as
one that has run through the whole stream up to the gap.

Cuts asked for by the caller (record positions, e.g. evenly spaced, or at file boundaries) are moved to the
nearest safe gap.  Only the time stamps and record types around each requested cut are read (by position,
never mapped), so planning costs O(partitions), not O(data) -- except when it must learn whether an overflow
interval is open at a gap (one pass over the record types of the run), which a caller that checks the cuts
afterwards skips (``overflow_check=False``).

Each partition owns the time interval between the midpoints of its two bounding gaps: rounds and heralds
are assigned by their time, which tolerates the engine's delay-corrected times drifting a little from
raw times (the gap is required to be longer than twice every span, delays included).

Intra-file cuts need record-addressable files without carried decoder state: the Swabian dump format.
Other formats (PTU carries overflow state in its records) are processed whole, one partition per run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import SetupError
from ..formats import dump as _dump
from ..setupfile import LabSetup

# How many records around a requested cut are read first when looking for a gap (grows x4 on failure).
_SEARCH_RECORDS = 1 << 14
#: the most records read at once while searching for a cut (64 MiB of records)
_SEARCH_STEP_RECORDS = 1 << 22
#: how far a planned cut (not one asked for by position) may move to a quiet gap: 16 MiB of records each way,
#: hundreds of rounds of a real run; a stream quiet nowhere near gets fewer partitions
_CUT_RADIUS_RECORDS = 1 << 20


def safe_gap_ps(lab: LabSetup) -> int:
    """Shortest quiet gap (ps) that no round, herald or histogram entry of ``lab`` can straddle.

    The sum of every span on the path sync -> click -> herald -> trigger -> setting/fluorescence window,
    plus twice the largest cable delay (corrected times move by up to that much), times two so that the
    midpoint of the gap is also safe for ownership: deliberately generous, since quiet gaps are plentiful
    (heralds are seconds apart; only the read-out windows are busy).
    """
    h, r, hist = lab.herald, lab.round, lab.histograms
    herald_span = (h.coincidence_ps + max(abs(h.window_start_ps), abs(h.window_stop_ps))
                   + max(abs(hist.arrival_range_ps[0]), abs(hist.arrival_range_ps[1])))
    trigger_span = r.ready_delay_ps + r.ready_tolerance_ps
    lo = min(0, r.setting_window_ps[0], r.fluorescence_window_ps[0])
    hi = max(0, r.setting_window_ps[1], r.fluorescence_window_ps[1])
    max_delay = max((abs(int(d)) for d in lab.delays_ps.values()), default=0)
    return 2 * (herald_span + trigger_span + (hi - lo) + 2 * max_delay) + 1


@dataclass(frozen=True)
class Segment:
    """Records ``[start, stop)`` of one file (``stop=None``: to the end; for non-dump files: whole file)."""

    path: str
    start: int = 0
    stop: int | None = None

    def describe(self) -> str:
        stop = "" if self.stop is None else self.stop
        return f"{Path(self.path).name}[{self.start}:{stop}]"


@dataclass(frozen=True)
class Partition:
    """A piece of one lab's stream: what to read and which rounds/heralds it owns (by time, half-open)."""

    index: int
    segments: tuple[Segment, ...]
    own_start_ps: int | None = None  # None: from the beginning of time
    own_stop_ps: int | None = None   # None: to the end of time
    # Records just after the end, up to the first tag: they move the pipeline's data horizon past the gap
    # (so rounds near the end are not flagged truncated); what they produce themselves is not kept.
    lookahead: tuple[Segment, ...] = ()

    @property
    def name(self) -> str:
        return f"part{self.index:04d} ({', '.join(s.describe() for s in self.segments)})"

    def owns(self, times: np.ndarray) -> np.ndarray:
        keep = np.ones(times.shape, bool)
        if self.own_start_ps is not None:
            keep &= times >= self.own_start_ps
        if self.own_stop_ps is not None:
            keep &= times < self.own_stop_ps
        return keep


class _Stream:
    """The dump files of one run seen as one record sequence (global record positions).

    Records are read by position (a few kB around each cut), never mapped: the planner's memory and page-cache
    footprint is that of the records it looks at, whatever the size of the run.
    """

    def __init__(self, paths: Sequence[Path]):
        self.paths = [Path(p) for p in paths]
        self.sizes = np.array([p.stat().st_size // _dump.RECORD_SIZE for p in self.paths], np.int64)
        self.starts = np.concatenate(([0], np.cumsum(self.sizes)))
        self.total = int(self.starts[-1])
        self._marks = None
        self.bytes_read = 0  # records read while planning (bytes): the planner's I/O, for the benchmarks

    def records(self, lo: int, hi: int) -> np.ndarray:
        """Global records ``[lo, hi)``, read by position."""
        parts = []
        for i, path in enumerate(self.paths):
            a, b = max(lo, int(self.starts[i])), min(hi, int(self.starts[i + 1]))
            if a < b:
                parts.append(np.fromfile(path, dtype=_dump.RECORD_DTYPE, count=b - a,
                                         offset=(a - int(self.starts[i])) * _dump.RECORD_SIZE))
                self.bytes_read += parts[-1].nbytes
        return np.concatenate(parts) if len(parts) != 1 else parts[0] if parts else \
            np.zeros(0, _dump.RECORD_DTYPE)

    def read(self, lo: int, hi: int, field: str) -> np.ndarray:
        return self.records(lo, hi)[field]

    def overflow_open_before(self, g: int) -> bool:
        """Is an overflow interval open just before global record ``g``?

        The positions of all overflow begin/end records are collected once, on first need (one pass over
        the record types: overflows are rare, and this is still far cheaper than processing the run).
        """
        if self._marks is None:
            pos, kind = [], []
            block = 1 << 21
            for path, start in zip(self.paths, self.starts[:-1].tolist()):
                # read in blocks, not through the map: a mapped pass would hold the whole file in this process
                with open(path, "rb") as fh:
                    lo = start
                    while True:
                        t = np.fromfile(fh, dtype=_dump.RECORD_DTYPE, count=block)["type"]
                        if not t.size:
                            break
                        self.bytes_read += t.size * _dump.RECORD_SIZE
                        idx = np.flatnonzero((t == _dump.TYPE_OVERFLOW_BEGIN) | (t == _dump.TYPE_OVERFLOW_END))
                        pos.append(lo + idx)
                        kind.append(t[idx])
                        lo += t.size
            self._marks = (np.concatenate(pos) if pos else np.zeros(0, np.int64),
                           np.concatenate(kind) if kind else np.zeros(0, np.uint8))
        pos, kind = self._marks
        i = int(np.searchsorted(pos, g, side="left")) - 1
        return bool(i >= 0 and kind[i] == _dump.TYPE_OVERFLOW_BEGIN)

    def safe_cuts_in(self, lo: int, hi: int, gap_ps: int) -> np.ndarray:
        """Global positions g in (lo, hi) with a safe gap between records g-1 and g."""
        rec = self.records(lo, hi)
        times, types = rec["time"], rec["type"]
        if times.size < 2:
            return np.zeros(0, np.int64)
        quiet = np.diff(times) > gap_ps  # quiet[k]: gap between lo+k and lo+k+1
        # overflow open after each record = the kind of the last begin/end record up to it
        is_mark = (types == _dump.TYPE_OVERFLOW_BEGIN) | (types == _dump.TYPE_OVERFLOW_END)
        last_mark = np.where(is_mark, np.arange(types.size), -1)
        np.maximum.accumulate(last_mark, out=last_mark)
        need = bool(np.any(quiet & (last_mark[:-1] < 0)))
        open0 = self.overflow_open_before(lo) if (need and lo > 0) else False
        state = np.where(last_mark >= 0, types[np.maximum(last_mark, 0)] == _dump.TYPE_OVERFLOW_BEGIN, open0)
        ok = quiet & ~state[:-1]
        return lo + 1 + np.flatnonzero(ok)

    def time_at(self, g: int) -> int:
        return int(self.read(g, g + 1, "time")[0])


def find_safe_cut(stream: _Stream, g: int, gap_ps: int, radius: int | None = None) -> int | None:
    """The safe cut position nearest to ``g``, at most ``radius`` records away (None: anywhere), or None.

    The records around ``g`` are read in shells of growing width (at most :data:`_SEARCH_STEP_RECORDS` each, so
    the memory is bounded), each record once: a stream without quiet gaps costs one read of the searched range.
    """
    limit = stream.total if radius is None else max(int(radius), 1)
    w, done = _SEARCH_RECORDS, 0      # records [g - done, g + done) searched
    while done < limit:
        step = min(w, _SEARCH_STEP_RECORDS, limit - done)
        found = []
        for a, b in ((g - done - step, g - done + 1), (g + done - 1, g + done + step)):
            a, b = max(a, 0), min(b, stream.total)
            if b - a >= 2:
                found.append(stream.safe_cuts_in(a, b, gap_ps))
        cuts = np.concatenate(found) if found else np.zeros(0, np.int64)
        cuts = cuts[np.abs(cuts - g) <= limit]
        if cuts.size:
            return int(cuts[np.argmin(np.abs(cuts - g))])
        done += step
        if g - done <= 0 and g + done >= stream.total:
            return None
        w *= 4
    return None


def _segments(stream: _Stream, lo: int, hi: int) -> tuple[Segment, ...]:
    segs = []
    for i, p in enumerate(stream.paths):
        a, b = max(lo, int(stream.starts[i])), min(hi, int(stream.starts[i + 1]))
        if a < b:
            segs.append(Segment(str(p), int(a - stream.starts[i]), int(b - stream.starts[i])))
    return tuple(segs)


def is_dump(path) -> bool:
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(4096)
        return _dump.sniff(p, head)
    except OSError:
        return False


def plan_partitions(paths: Sequence, lab: LabSetup, *, n_partitions: int | None = None,
                    cuts: Sequence[int] | None = None, gap_ps: int | None = None,
                    overflow_check: bool = True, by_file: bool = False, stats: dict | None = None) -> list[Partition]:
    """Split the run ``paths`` (one lab, files in time order) into partitions.

    ``cuts``: requested global record positions (over the files concatenated); each moves to the nearest
    safe gap.  Without ``cuts``, ``n_partitions`` evenly spaced cuts are requested (default: one per file);
    with ``by_file``, the cuts are requested at the file boundaries first and the rest evenly inside the files
    (each file gets a share of the partitions in proportion to its records).
    Non-dump inputs give one partition holding every file.

    ``overflow_check=False`` skips the one pass over every record type that a quiet gap with no overflow record
    near it needs (is an overflow interval open across it?): gaps are then taken as outside overflows, and the
    caller must check each cut when the partition before it has been read
    (:func:`timetag.distributed.run.process_files_dask` does, and joins the two partitions when it fails).
    ``stats``, when given, receives ``bytes_read`` (the records the planner read) and ``records``.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise SetupError("no input files to process")
    if not all(is_dump(p) for p in paths):
        return [Partition(0, tuple(Segment(str(p)) for p in paths))]
    gap = safe_gap_ps(lab) if gap_ps is None else int(gap_ps)
    stream = _Stream(paths) if overflow_check else _StreamNoOverflowPass(paths)
    if cuts is None:
        if n_partitions is None:
            wanted = [int(s) for s in stream.starts[1:-1]]
        elif by_file:
            wanted = _cuts_by_file(stream, max(1, int(n_partitions)))
        else:
            n = max(1, int(n_partitions))
            wanted = [round(stream.total * k / n) for k in range(1, n)]
        # a cut stays in its own share of the stream, near where it was asked for: a stream without quiet gaps
        # there gets fewer partitions rather than a search through the whole file for every cut
        radius = min(stream.total // (2 * (len(wanted) + 1)), _CUT_RADIUS_RECORDS) if wanted else None
    else:
        wanted = [int(c) for c in cuts]
        radius = None
    moved = sorted({c for c in (find_safe_cut(stream, w, gap, radius) for w in wanted if 0 < w < stream.total)
                    if c is not None})
    bounds = [0, *moved, stream.total]
    parts = []
    for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        own_start = None if lo == 0 else _midpoint(stream, lo)
        own_stop = None if hi == stream.total else _midpoint(stream, hi)
        lookahead = () if hi == stream.total else _segments(stream, hi, _first_tag_after(stream, hi) + 1)
        parts.append(Partition(k, _segments(stream, lo, hi), own_start, own_stop, lookahead))
    if stats is not None:
        stats.update(bytes_read=stream.bytes_read, records=stream.total)
    return parts


class _StreamNoOverflowPass(_Stream):
    def overflow_open_before(self, g: int) -> bool:
        return False


def _cuts_by_file(stream: _Stream, n: int) -> list[int]:
    """Requested cuts: every file boundary, and inside each file evenly spaced ones, the file's share of ``n``
    partitions in proportion to its records (at least one partition per file)."""
    wanted = []
    total = max(stream.total, 1)
    for i in range(len(stream.paths)):
        a, b = int(stream.starts[i]), int(stream.starts[i + 1])
        if i:
            wanted.append(a)
        k = max(1, round(n * (b - a) / total))
        wanted.extend(a + round((b - a) * j / k) for j in range(1, k))
    return wanted


def join_partitions(a: Partition, b: Partition) -> Partition:
    """One partition holding ``a`` then ``b`` (adjacent); the records of one file stay one segment."""
    segs = list(a.segments)
    for seg in b.segments:
        last = segs[-1]
        if last.path == seg.path and last.stop == seg.start:
            segs[-1] = Segment(last.path, last.start, seg.stop)
        else:
            segs.append(seg)
    return Partition(a.index, tuple(segs), a.own_start_ps, b.own_stop_ps, b.lookahead)


def _first_tag_after(stream: _Stream, g: int) -> int:
    """Position of the first tag record at or after ``g`` (the last record when there is none)."""
    w = 64
    while True:
        hi = min(stream.total, g + w)
        idx = np.flatnonzero(stream.read(g, hi, "type") == _dump.TYPE_TAG)
        if idx.size:
            return g + int(idx[0])
        if hi == stream.total:
            return stream.total - 1
        w *= 4


def _midpoint(stream: _Stream, g: int) -> int:
    a, b = stream.time_at(g - 1), stream.time_at(g)
    return a + (b - a) // 2
