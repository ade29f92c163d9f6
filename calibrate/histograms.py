"""What calibration measures, as stream processors: the engine's own histograms and counts.

Calibration's results go back into the engine (delays, window, thresholds), so it measures with the engine's
rules rather than with a copy of them that could drift apart:

* arrival histograms: the herald stage's (:class:`~timetag.stream.LabEngine`, ``pipeline.herald.arrival``):
  per BSM detector, delay-corrected click - sync with the lab's ``sync_reference`` rule, every click that has a
  sync in the histogram's range (accepted by the window or not).  The engine runs over
  :func:`measurement_lab`: the lab with the calibration's range and binning, and the delays to measure with.
* read-out counts: the round stage's ``count`` (fluorescence clicks in the read-out window) of rounds triggered
  by the 'ready' tags, whatever the lab's own trigger; :class:`ReadoutCounts` keeps each round's count and
  trigger time (the threshold fit, its figure, the clock between the labs).
* the attempt period (:class:`SyncPeriod`): the smallest spacing of recorded syncs, which bounds the bins where
  every click lands on its own attempt's sync (:meth:`ArrivalHistogram.valid_bins`).
* the conditional-sync edge (:class:`GuardedArrivalHistogram`): a finely binned arrival histogram without the
  clicks that closely follow a recorded sync.  The engine's histogram has no such guard yet (see that class):
  this one measurement is still made here.

Every processor gives the same result for any way the stream is cut into chunks.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from timetag._cext import calib_edge as _kernel
from timetag.chunk import TagChunk
from timetag.errors import CalibrationError
from timetag.records import FLAG_LOST_DATA, FLAG_TRUNCATED
from timetag.setupfile import LabSetup
from timetag.stream import CountHistogram, LabEngine, RoundsEvent, Stage, run_stream

_NOT_WHOLE = FLAG_TRUNCATED | FLAG_LOST_DATA   # a read-out window cut by the data end or by lost data
_E64 = np.zeros(0, np.int64)


def measurement_lab(lab: LabSetup, *, arrival_range_ps: tuple[int, int] | None = None,
                    arrival_bin_ps: int | None = None, delays: dict[int, int] | None = None,
                    ready_trigger: bool = False) -> LabSetup:
    """``lab`` as calibration runs the engine over it.

    ``arrival_range_ps`` / ``arrival_bin_ps`` (default: the lab's): the arrival histogram's range, cut to the
    side of the sync where clicks land ('previous': >= 0, 'next': <= 0) and to whole bins.  ``delays``: every
    channel's delay to measure with (default: the lab's).  ``ready_trigger``: one round per 'ready' tag, so
    that every read-out is counted, heralded by the software or not.
    """
    changes = {}
    if arrival_range_ps is not None or arrival_bin_ps is not None:
        bin_ps = int(arrival_bin_ps or lab.histograms.arrival_bin_ps)
        lo, hi = (int(x) for x in (arrival_range_ps or lab.histograms.arrival_range_ps))
        if lab.herald.sync_reference == "previous":
            lo = max(lo, 0)
        else:
            hi = min(hi, 0)
        nb = max(1, (hi - lo) // bin_ps)
        changes["histograms"] = replace(lab.histograms, arrival_bin_ps=bin_ps, arrival_range_ps=(lo, lo + nb * bin_ps))
    if delays is not None:
        changes["delays_ps"] = {int(c): int(d) for c, d in delays.items()}
    if ready_trigger:
        if lab.ready_channel is None:
            raise CalibrationError(f"lab {lab.name!r}: read-out counts need a ready channel")
        changes["round"] = replace(lab.round, trigger="ready")
    return replace(lab, **changes)


@dataclass
class ArrivalHistogram:
    """Arrival histograms of a lab's BSM detectors (``counts[k]`` for ``channels[k]``, bins ``edges`` in ps)."""

    channels: tuple[int, ...]
    reference: str                  # the lab's sync_reference
    edges: np.ndarray               # int64 [nbins + 1]
    counts: np.ndarray              # int64 [detectors, nbins]
    period_ps: int | None = None    # attempt period (None: fewer than two syncs)

    @classmethod
    def of_engine(cls, engine: LabEngine, period_ps: int | None = None) -> "ArrivalHistogram":
        p = engine.pipeline
        return cls(tuple(int(c) for c in p.params.det_chan), p.lab.herald.sync_reference,
                   p.params.arrival_edges.copy(), p.herald.arrival.copy(), period_ps)

    @property
    def bin_ps(self) -> int:
        return int(self.edges[1] - self.edges[0])

    def valid_bins(self) -> slice:
        """Bins where every click of the attempt lands on this attempt's sync.

        With 'next', a click at or before its own attempt's sync belongs to that sync (click - sync
        near 0), so nothing reaches below -period; with 'previous', nothing reaches beyond +period.
        The pulse of a sync tag that sits inside the pulse is therefore cut there: the fits use only
        these bins (a truncated fit) so the cut does not bias them.
        """
        if self.period_ps is None:
            return slice(0, self.counts.shape[1])
        e = self.edges
        if self.reference == "next":
            i0 = int(np.searchsorted(e, -self.period_ps, "left"))
            return slice(min(i0, e.size - 2), e.size - 1)
        i1 = int(np.searchsorted(e, self.period_ps, "right")) - 1
        return slice(0, max(i1, 1))


# --- in the background: the compiled kernels release the GIL, so they run beside the engine ---------------

class Background:
    """Runs ``work(chunk)`` of a stage in a worker thread, one chunk at a time, in stream order.

    The engine and the readers release the GIL too, so a calibration pass keeps two cores busy: the stage's
    kernel over chunk k runs while the rest of the chain handles chunk k (and reads chunk k + 1).  At most one
    chunk is in flight (memory stays flat); :meth:`wait` returns once it is done and raises what it raised.
    ``threaded=False``: in the caller's thread (None: as the module's ``THREADED`` says).
    """

    def __init__(self, work, threaded: bool | None = None):
        self.work = work
        self.threaded = THREADED if threaded is None else bool(threaded)
        self._pool = None
        self._job = None

    def submit(self, *args) -> None:
        self.wait()
        if not self.threaded:
            self.work(*args)
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="calibrate")
        self._job = self._pool.submit(self.work, *args)

    def wait(self) -> None:
        job, self._job = self._job, None
        if job is not None:
            job.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


THREADED = True     # calibration processors run their kernels beside the engine (False: all in one thread)


class SyncPeriod(Stage):
    """The smallest spacing of consecutive sync tags (raw), i.e. the attempt period also when only some
    syncs are recorded.  Handles :class:`~timetag.chunk.TagChunk`; every event is forwarded."""

    def __init__(self, sync_channel: int, downstream=None, *, threaded: bool | None = None):
        super().__init__(downstream)
        self.sync_channel = int(sync_channel)
        self._k = _kernel.PeriodKernel(self.sync_channel)
        self._bg = Background(self._k.feed, threaded)   # a TagChunk's arrays are contiguous int64 / int32

    def handle(self, event) -> None:
        if isinstance(event, TagChunk) and len(event):
            self._bg.submit(event.time, event.channel)
        self.emit(event)

    def flush(self) -> None:
        self._bg.close()
        super().flush()

    @property
    def n_syncs(self) -> int:
        self._bg.wait()
        return int(self._k.n_syncs)

    @property
    def period_ps(self) -> int | None:
        self._bg.wait()
        p = self._k.period_ps
        return None if p is None else int(p)



class ReadoutCounts(Stage):
    """The read-outs of the engine's rounds: handles :class:`~timetag.stream.RoundsEvent`.

    ``counts`` and ``trigger_times``: the rounds whose read-out window is whole -- not cut by the end of the data
    (``n_truncated``) nor touching lost data (``n_lost``), both of which lose clicks -- and only those go on
    downstream (a :class:`~timetag.stream.CountHistogram` there bins them).  ``ready_times``: every round's
    trigger time (with trigger 'ready': every delay-corrected 'ready' tag), whole or not.
    """

    def __init__(self, downstream=None):
        super().__init__(downstream)
        self.n_truncated = 0
        self.n_lost = 0
        self._counts: list[np.ndarray] = []
        self._times: list[np.ndarray] = []
        self._ready: list[np.ndarray] = []

    def handle(self, event) -> None:
        if isinstance(event, RoundsEvent) and len(event.rounds):
            r = event.rounds
            self._ready.append(r["trigger_time"].astype(np.int64))
            flags = r["flags"]
            whole = (flags & _NOT_WHOLE) == 0
            self.n_truncated += int(np.count_nonzero(flags & FLAG_TRUNCATED))
            self.n_lost += int(np.count_nonzero(flags & FLAG_LOST_DATA))
            if not whole.all():
                r = r[whole]
                event = RoundsEvent(r, event.heralds, event.final)
            self._counts.append(r["count"].astype(np.int64))
            self._times.append(r["trigger_time"].astype(np.int64))
        self.emit(event)

    @property
    def counts(self) -> np.ndarray:
        return np.concatenate(self._counts) if self._counts else _E64

    @property
    def trigger_times(self) -> np.ndarray:
        return np.concatenate(self._times) if self._times else _E64

    @property
    def ready_times(self) -> np.ndarray:
        return np.concatenate(self._ready) if self._ready else _E64


def trimmed(histogram: np.ndarray) -> np.ndarray:
    """A count histogram up to its largest count: the fits read the top bin as 'this many or more'."""
    nz = np.flatnonzero(histogram)
    return histogram[: int(nz[-1]) + 1 if nz.size else 1]


def arrival_histogram(chunks, lab: LabSetup, *, range_ps: tuple[int, int] | None = None, bin_ps: int | None = None,
                      delays: dict[int, int] | None = None) -> ArrivalHistogram:
    """The engine's arrival histograms of ``lab`` over the stream ``chunks`` (see :func:`measurement_lab`)."""
    if lab.sync_channel is None or not lab.bsm:
        raise CalibrationError(f"lab {lab.name!r}: arrival histograms need a sync channel and BSM detectors")
    engine = LabEngine(measurement_lab(lab, arrival_range_ps=range_ps or lab.histograms.arrival_range_ps,
                                       arrival_bin_ps=bin_ps, delays=delays))
    period = SyncPeriod(lab.sync_channel, engine)
    run_stream(chunks, period)
    return ArrivalHistogram.of_engine(engine, period.period_ps)


def readout_counts(chunks, lab: LabSetup, *, delays: dict[int, int] | None = None,
                   max_count: int | None = None) -> tuple[ReadoutCounts, CountHistogram]:
    """The engine's read-out counts per 'ready' tag of ``lab`` over ``chunks``, and their histogram."""
    hist = CountHistogram(lab.histograms.max_count if max_count is None else max_count)
    counts = ReadoutCounts(hist)
    run_stream(chunks, LabEngine(measurement_lab(lab, delays=delays, ready_trigger=True), counts))
    return counts, hist


# --- the conditional-sync edge: the one histogram the engine cannot make yet ---------------------------------

_bin_of = _kernel.bin_of     # x // bin_ps as the histogram bins it (by a multiplication)


class GuardedArrivalHistogram(Stage):
    """Arrival histograms ('next' rule) without the clicks that follow a recorded sync by less than ``guard_ps``.

    Conditional sync recording: the hardware refers a click before its attempt's sync tick to that tick; with
    delay errors the software may see such a click just *after* the tick and refer it to the next one (when that
    one happens to be recorded), filling the gap before the conditional-sync edge.  Those clicks always follow
    the tick closely, so the guard removes them; clicks of other attempts lose the same fraction at every
    detector (the chance that the tick was recorded anyway), which keeps the edge sharp and common.  Without the
    guard the edge is not found, or found where the stray clicks begin: with delay errors of ~1 ns (lmu2022
    simulation) the delays came out hundreds of ps off (measured for issue #17).

    Made here, not by the engine, because the engine's arrival histogram has no guard: it needs an
    ``arrival_guard_ps`` histogram parameter that leaves out of the histogram (not of the heralds) a click whose
    previous recorded sync lies less than the guard before it.  Otherwise the same rule and binning as
    :func:`measurement_lab` gives the engine.  Handles :class:`~timetag.chunk.TagChunk`; every event is forwarded.
    It measures the attempt period as :class:`SyncPeriod` does (:attr:`period_ps`), in the same pass.
    One compiled streaming pass per chunk (in the background, see :class:`Background`); between chunks it keeps
    the clicks still waiting for their sync and the few syncs a later click can still need.
    """

    _CAP = 64       # the kernel's rings (waiting clicks, syncs) at first: they grow when full

    def __init__(self, lab: LabSetup, *, bin_ps: int | None = None, range_ps: tuple[int, int] | None = None,
                 delays: dict[int, int] | None = None, guard_ps: int = 0, downstream=None,
                 threaded: bool | None = None):
        super().__init__(downstream)
        if lab.sync_channel is None or not lab.bsm:
            raise CalibrationError(f"lab {lab.name!r}: arrival histograms need a sync channel and BSM detectors")
        if lab.herald.sync_reference != "next":
            raise CalibrationError(f"lab {lab.name!r}: the conditional-sync edge needs sync_reference 'next'")
        m = measurement_lab(lab, arrival_range_ps=range_ps or lab.histograms.arrival_range_ps, arrival_bin_ps=bin_ps)
        self.guard_ps = int(guard_ps)
        self.bin_ps = int(m.histograms.arrival_bin_ps)
        self.lo, self.hi = (int(x) for x in m.histograms.arrival_range_ps)
        self.edges = self.lo + self.bin_ps * np.arange((self.hi - self.lo) // self.bin_ps + 1, dtype=np.int64)
        self.channels = tuple(d.channel for d in lab.bsm)
        dl = lab.delays_ps if delays is None else delays
        self.delays = np.array([int(dl.get(c, 0)) for c in self.channels], dtype=np.int64)
        self.sync_channel = int(lab.sync_channel)
        self.sync_delay = int(dl.get(lab.sync_channel, 0))
        self.lut = np.full(max(self.channels) + 1, -1, dtype=np.int64)
        for k, c in enumerate(self.channels):
            self.lut[c] = k
        self._counts = np.zeros((len(self.channels), self.edges.size - 1), dtype=np.int64)
        config = dict(sync_channel=self.sync_channel, sync_delay=self.sync_delay, lo=self.lo, hi=self.hi,
                      bin_ps=self.bin_ps, guard=self.guard_ps, dmax=int(self.delays.max()),
                      hopeless=self.lo - 1 - int(np.abs(self.delays).max()) - abs(self.sync_delay))
        self._k = _kernel.EdgeKernel(config, self.lut, self.delays, self._counts, self._CAP)
        self._bg = Background(self._k.feed, threaded)   # a TagChunk's arrays are contiguous int64 / int32

    @property
    def counts(self) -> np.ndarray:
        self._bg.wait()
        return self._counts

    @property
    def n_syncs(self) -> int:
        self._bg.wait()
        return int(self._k.n_syncs)

    @property
    def period_ps(self) -> int | None:
        """As :attr:`SyncPeriod.period_ps` (measured in the same pass)."""
        self._bg.wait()
        p = self._k.period_ps
        return None if p is None else int(p)

    def handle(self, event) -> None:
        if isinstance(event, TagChunk) and len(event):
            self._bg.submit(event.time, event.channel)
        self.emit(event)

    def flush(self) -> None:
        # clicks still waiting have no sync after them: like the engine's, they are in no histogram
        self._bg.close()
        self._k.drop_pending()
        super().flush()
