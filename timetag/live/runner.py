"""The live loop: source -> per-lab pipelines -> rounds files (flushed at least every second) -> status.

``LiveRunner(source, setup, out_dir).run()`` processes batches as they arrive.  Rounds are appended to
``<out>/<lab>_rounds.h5.partial`` (:class:`~timetag.roundsoutput.RoundsOutput`: locked, SWMR) as the pipelines
emit them, and the files are flushed whenever ``flush_interval`` of wall time has passed (sources send empty
heartbeat batches while idle) — so a process killed at any instant (even SIGKILL) leaves a partial file holding
every round up to the last flush, which ``timetag recover`` saves.  At the end (source exhausted, ``duration``
reached, ``stop()``, Ctrl-C, or an error) the pipelines are flushed and the files closed with the run summary,
histograms and their completion state (complete / interrupted / failed, with the reason), then renamed to
``<lab>_rounds.h5``.  An existing output is never overwritten: a run on an ``--out`` that holds rounds files
(or the partial file of a killed run) is refused.

Raw tags: unless turned off, every chunk a lab's pipeline processes is first appended to ``<out>/raw/<lab>.dump``
(:class:`~timetag.live.rawtags.RawTagSink`: rotated into ``<lab>.1.dump``, ...), so that ``timetag process`` on
those files re-derives the run's rounds byte for byte.  Default: on, except for a replayed file (it is the raw
record already).  The raw files are opened with the rounds files (all or none), flushed with them, and closed
and renamed to their final names however the run ends; their names go into each rounds file's provenance
(``raw_tags``).  A source that records its raw tags itself says so with ``writes_own_raw_tags = True``: the
runner then sets its ``raw_path`` to ``<out>/raw/<lab>.ttbin`` (and ``raw_max_file_size``, when the source has
that attribute unset, to the rotation size) before starting it, and writes no dump.

Falling behind is measured, not hidden: ``lag_s`` is how far the processed device time trails the wall clock
(paced sources), ``load`` the fraction of wall time spent processing, and the source's own counters (device
overflows, full stream buffers) and the lost-data events in the stream are reported in every status snapshot.
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..custody import Completion
from ..engine import LabPipeline
from ..errors import RunStopped, StorageError, TimetagError, for_cli
from ..estimators.running import running_estimate
from ..provenance import jsonable, provenance
from ..roundsoutput import RoundsOutput
from ..setupfile import LabSetup, Setup
from .rawtags import DEFAULT_ROTATE_BYTES, RAW_FOLDER, RawTagSink, VendorRawFiles
from ..stream import Checkpoint, LabEngine, RecordRawTags, RoundsEvent, Stage, WriteRounds, run_stream
from ..chunk import TagChunk
from .replay import ReplaySource
from .sources import Batch, Source
from .status import LabStats, alarms

StatusCallback = Callable[[dict], None]
_EST_DTYPE = np.dtype([("index", "<i8"), ("setting", "i1"), ("output", "i1"), ("pattern", "i1"), ("flags", "<u4"),
                       ("trigger_time", "<i8")])


def default_pipeline_factory(lab_setup: LabSetup):
    return LabPipeline(lab_setup)


class _Router:
    """The live chain's head: each :class:`Batch` split into its labs' chunks, each lab's chunk to that lab's
    chain (``RecordRawTags -> LabEngine -> WriteRounds -> _LabWatch``); the end of the stream to every chain."""

    def __init__(self, runner: "LiveRunner"):
        self.runner = runner
        self.flushed = False

    def handle(self, batch: Batch) -> None:
        self.runner._process(batch)

    def flush(self) -> None:
        self.flushed = True
        for chain in self.runner.chains.values():
            chain.flush()


class _LabWatch(Stage):
    """The end of a lab's live chain: the status counters, the running estimate's rounds and the latency log
    (:class:`RoundsEvent`), the tag counters (:class:`~timetag.chunk.TagChunk`)."""

    def __init__(self, runner: "LiveRunner", lab: str):
        super().__init__(None)
        self.runner, self.lab = runner, lab

    def handle(self, event) -> None:
        if isinstance(event, RoundsEvent):
            self.runner._take(self.lab, event.rounds, event.heralds)
        elif isinstance(event, TagChunk):
            self.runner.stats[self.lab].add_chunk(event, self.runner._device_time)


@dataclass
class LiveResult:
    rounds: dict[str, int]
    paths: dict[str, Path]
    wall_s: float
    tags: int
    interrupted: bool
    final_status: dict
    latencies_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    flushes: int = 0
    state: Completion = Completion.COMPLETE
    reason: str = ""
    #: each lab's raw tag files, in stream order (empty when none were kept: see ``raw_note``)
    raw_files: dict[str, list[Path]] = field(default_factory=dict)
    raw_note: str = ""

    def summary_lines(self) -> list[str]:
        how = {Completion.COMPLETE: "finished", Completion.INTERRUPTED: "interrupted"}.get(self.state, str(self.state))
        lines = [f"live run {how} after {self.wall_s:.1f} s{': ' + self.reason if self.reason else ''}; "
                 f"{self.tags} tags processed"]
        for lab, n in self.rounds.items():
            where = self.paths.get(lab)
            lines.append(f"  {lab}: {n} rounds kept -> {where if where is not None else 'nothing could be kept'}"
                         + ("" if self.state is Completion.COMPLETE else f" (marked {self.state})"))
            if lab in self.raw_files:
                lines.append(f"  {lab}: raw tags -> {describe_raw_files(self.raw_files[lab])}")
        if self.raw_note:
            lines.append(f"  raw tags not kept: {self.raw_note}")
        st = self.final_status
        if st.get("lag_s_max") is not None:
            lines.append(f"  max lag behind the device: {st['lag_s_max']:.2f} s; processing load {st.get('load', 0):.0%}")
        if self.latencies_s.size:
            lines.append(f"  tag -> round on disk latency: median {np.median(self.latencies_s):.3f} s, "
                         f"p99 {np.quantile(self.latencies_s, 0.99):.3f} s")
        for a in st.get("alarms", []):
            lines.append(f"  ! {a}")
        return lines


def describe_raw_files(files: list[Path]) -> str:
    """``out/raw/alice.dump`` or ``out/raw/alice.dump .. alice.3.dump (4 files)``: the stream in order."""
    if not files:
        return "none (no tags)"
    if len(files) == 1:
        return str(files[0])
    return f"{files[0]} .. {files[-1].name} ({len(files)} files, in this order)"


def raw_tags_by_default(source: Source) -> tuple[bool, str]:
    """(keep raw tags?, why not) for a source when the caller does not say.

    A replayed file is the raw record already (keeping it would copy it); every other source -- a device, the
    simulated device, a followed file (which may be rotated away or rewritten after the run) -- is kept.
    """
    if isinstance(source, ReplaySource):
        return False, "the replayed file is the raw record (--raw keeps a copy)"
    return True, ""


class _ArrivalLog:
    """Wall-clock arrival of the data of one lab, to time each round from its trigger's arrival to the disk."""

    def __init__(self):
        self.times: list[int] = []
        self.arrivals: list[float] = []

    def add(self, end_time: int | None, arrival: float) -> None:
        if end_time is not None:
            self.times.append(end_time)
            self.arrivals.append(arrival)

    def arrival_of(self, t: np.ndarray) -> np.ndarray:
        if not self.times:
            return np.full(t.size, np.nan)
        i = np.searchsorted(np.asarray(self.times), t, side="left")
        i = np.minimum(i, len(self.times) - 1)
        return np.asarray(self.arrivals)[i]

    def prune(self, before: int) -> None:
        """Forget batches wholly before a round time already handled (rounds come in trigger order)."""
        k = int(np.searchsorted(np.asarray(self.times), before, side="left"))
        if k > 1000:
            del self.times[: k - 1], self.arrivals[: k - 1]


class LiveRunner:
    def __init__(self, source: Source, setup: Setup, out_dir, *, labs: tuple[str, ...] | None = None,
                 duration: float | None = None, flush_interval: float = 0.5, status_interval: float = 1.0,
                 on_status: StatusCallback | list[StatusCallback] | None = None,
                 pipeline_factory: Callable[[LabSetup], object] = default_pipeline_factory,
                 with_heralds: bool = True, estimate: bool = True, max_latency_samples: int = 200_000,
                 raw_tags: bool | None = None, raw_format: str = "dump",
                 raw_rotate_bytes: int = DEFAULT_ROTATE_BYTES):
        """``raw_tags``: keep the raw tag stream in ``<out>/raw/`` (None: :func:`raw_tags_by_default`);
        ``raw_format``: 'dump' or 'h5'; ``raw_rotate_bytes``: a new file after this many bytes of records."""
        if not flush_interval > 0:
            raise ValueError(f"flush_interval must be > 0 (got {flush_interval})")
        self.source = source
        self.setup = setup
        self.out_dir = Path(out_dir)
        self.labs = tuple(labs) if labs else tuple(source.labs)
        for lab in self.labs:
            setup.lab(lab)  # a SetupError naming the labs when missing
        self.duration = duration
        self.flush_interval = float(flush_interval)
        self.status_interval = float(status_interval)
        self.callbacks = [] if on_status is None else ([on_status] if callable(on_status) else list(on_status))
        self.pipeline_factory = pipeline_factory
        self.with_heralds = with_heralds
        self.estimate = estimate
        self.paths = {lab: self.out_dir / f"{lab}_rounds.h5" for lab in self.labs}
        self.raw_dir = self.out_dir / RAW_FOLDER
        if raw_tags is None:
            self.keep_raw, self.raw_note = raw_tags_by_default(source)
        else:
            self.keep_raw = bool(raw_tags)
            self.raw_note = "" if self.keep_raw else "--no-raw: the rounds cannot be re-derived from this run's tags"
        self.raw_format, self.raw_rotate_bytes = raw_format, raw_rotate_bytes
        self.vendor_raw = self.keep_raw and bool(getattr(source, "writes_own_raw_tags", False))
        if self.vendor_raw and len(self.labs) != 1:
            raise TimetagError(f"{source.description}: a source that writes its own raw tags feeds one lab "
                               f"(got {', '.join(self.labs)})")
        if self.keep_raw:
            self._raw_sinks((), None)  # a bad format or rotation size is refused before anything starts
        self.raw: dict[str, RawTagSink | VendorRawFiles] = {}  # opened with the rounds files
        self.raw_files: dict[str, list[Path]] = {}
        self.latencies: collections.deque = collections.deque(maxlen=max_latency_samples)
        self._stop_requested = False
        self.stop_reason = ""
        self.flushes = 0

    def stop(self, reason: str = "stopped on request") -> None:
        """Stop soon and finish cleanly, marking the files interrupted (thread- and signal-safe)."""
        self.stop_reason = self.stop_reason or reason
        self._stop_requested = True
        self.source.stop()

    def _raw_sinks(self, inputs, prov: dict | None) -> dict[str, RawTagSink | VendorRawFiles]:
        if self.vendor_raw:
            return {lab: VendorRawFiles(self.raw_dir, lab, inputs=inputs) for lab in self.labs}
        return {lab: RawTagSink(self.raw_dir, lab, format=self.raw_format, rotate_bytes=self.raw_rotate_bytes,
                                inputs=inputs, provenance=prov) for lab in self.labs}

    def _lab_provenance(self, lab: str, raw_files: list[Path] | None = None) -> dict:
        """The run's provenance for one lab's rounds file, naming its raw tag files (relative to the rounds file;
        while the run goes on: the first file, which the numbered ones continue)."""
        if lab not in self.raw:
            return dict(self._prov, raw_tags=[])
        files = raw_files if raw_files is not None else [self.raw[lab].first]
        return dict(self._prov, raw_tags=[_relative(p, self.out_dir) for p in files],
                    raw_tags_format="ttbin" if self.vendor_raw else self.raw_format)

    def _open_outputs(self, prov: dict) -> dict[str, RoundsOutput]:
        """Every lab's outputs (rounds file, raw tags) opened -- checked, locked -- before the source starts; all
        or none: a refused run leaves no file behind."""
        inputs = [p for p in (getattr(self.source, "path", None),) if p is not None]
        self._prov = prov
        self.raw = self._raw_sinks(inputs, prov) if self.keep_raw else {}
        outputs = {lab: RoundsOutput(
            self.paths[lab], lab=lab, role=self.setup.lab(lab).role, provenance=self._lab_provenance(lab),
            setup_hash=self.setup.hash, with_heralds=self.with_heralds, inputs=inputs, keep_partial=True,
            flag="choose another --out (a live run never replaces rounds files)") for lab in self.labs}
        for out in outputs.values():  # every check before the first file is made
            out.slot.check()
        for sink in self.raw.values():
            sink.check()
        opened: list = []
        try:
            for out in outputs.values():
                opened.append(out.open())
            for sink in self.raw.values():
                opened.append(sink.open())
        except BaseException:
            for item in opened:
                _abandon(item)
            raise
        if self.vendor_raw:
            (sink,) = self.raw.values()
            self.source.raw_path = sink.target
            if getattr(self.source, "raw_max_file_size", None) is None and hasattr(self.source, "raw_max_file_size"):
                self.source.raw_max_file_size = self.raw_rotate_bytes  # the vendor's files rotate alike
        return outputs

    # ------------------------------------------------------------------
    def run(self) -> LiveResult:
        setup = self.setup
        self.stats = {lab: LabStats(lab, setup.lab(lab).channels, setup.lab(lab).histograms.max_count,
                                    setup.lab(lab).round.threshold, detectors=_detectors(setup.lab(lab)))
                      for lab in self.labs}
        self._arrivals = {lab: _ArrivalLog() for lab in self.labs}
        self._pending: dict[str, list[np.ndarray]] = {lab: [] for lab in self.labs}  # round triggers not yet flushed
        self._est_rounds: dict[str, list[np.ndarray]] = {lab: [] for lab in self.labs}
        # a device source adds what it was set up with and its own configuration record (before any output exists)
        device = self.source.provenance() if hasattr(self.source, "provenance") else {}
        prov = provenance(setup=setup, mode="live", source=self.source.description, **device)
        self.writers = self._open_outputs(prov)
        self.engines = {lab: LabEngine(setup.lab(lab), WriteRounds(self.writers[lab], _LabWatch(self, lab),
                                                                   with_heralds=self.with_heralds,
                                                                   durable="checkpoint"),
                                       pipeline=self.pipeline_factory(setup.lab(lab)))
                        for lab in self.labs}
        self.pipelines = {lab: engine.pipeline for lab, engine in self.engines.items()}
        self.chains = {lab: RecordRawTags(self.raw[lab], engine) if lab in self.raw else engine
                       for lab, engine in self.engines.items()}
        self._device_time: int | None = None
        self._chains_flushed = False
        self.t_start = time.monotonic()
        self._busy = 0.0
        self._busy_interval = 0.0
        self._last_flush = self._last_status = self._last_data = self.t_start
        self._anchor: tuple[float, int] | None = None
        self._lag = 0.0
        self._lag_max = 0.0
        self._ignored_labs: set[str] = set()
        self._flushed = {lab: 0 for lab in self.labs}
        state, reason, error = Completion.COMPLETE, "", None
        status: dict = {}
        try:
            state, reason = self._loop()
        except KeyboardInterrupt:
            state, reason = Completion.INTERRUPTED, self.stop_reason or "interrupted (Ctrl-C)"
        except (TimetagError, OSError) as exc:
            state, reason, error = Completion.FAILED, str(exc), exc
        finally:
            try:
                self.source.close()
            finally:
                status, paths = self._finish(state, reason)
        failures = [w.failure for w in [*self.writers.values(), *self.raw.values()] if w.failure is not None]
        if failures and error is None:
            state, reason, error = Completion.FAILED, str(failures[0]), failures[0]
        result = LiveResult(rounds=dict(self._flushed), paths=paths,
                            wall_s=time.monotonic() - self.t_start, tags=sum(s.tags for s in self.stats.values()),
                            interrupted=state is Completion.INTERRUPTED, final_status=status,
                            latencies_s=np.asarray(self.latencies), flushes=self.flushes, state=state, reason=reason,
                            raw_files=dict(self.raw_files), raw_note=self.raw_note)
        if error is not None:
            kept = ", ".join(f"{n} rounds of {lab} in {paths[lab]}" for lab, n in result.rounds.items()
                             if paths.get(lab) is not None) or "nothing"
            raw = "".join(f"; raw tags of {lab} in {describe_raw_files(files)}"
                          for lab, files in self.raw_files.items() if files)
            code = 2 if isinstance(error, TimetagError) and not isinstance(error, StorageError) else 1
            tail = f"; kept {kept} (marked failed){raw}"
            raise RunStopped(f"{error}{tail}", kept=paths, exit_code=code, cli_message=for_cli(error) + tail) from None
        return result

    def _loop(self) -> tuple[Completion, str]:
        """Batches until the source ends or a stop; how the run ended."""
        head = _Router(self)
        try:
            exhausted = run_stream(self.source, head, until=self._should_stop)
        finally:
            self._chains_flushed = head.flushed
        if not exhausted and self._duration_reached() is not None:
            return Completion.COMPLETE, f"ran for the requested {self.duration:g} s"
        if self._stop_requested or not exhausted:
            # a stop request ends the source's iteration too: either way the run was cut short
            return Completion.INTERRUPTED, self.stop_reason or "stopped on request"
        return Completion.COMPLETE, getattr(self.source, "end_reason", None) or "the source ended"

    def _duration_reached(self) -> float | None:
        now = time.monotonic()
        return now if self.duration is not None and now - self.t_start >= self.duration else None

    def _should_stop(self) -> bool:
        """After every batch: the periodic flush and status, then whether the run is over."""
        now = time.monotonic()
        if now - self._last_flush >= self.flush_interval:
            self._flush(now)
        if now - self._last_status >= self.status_interval:
            self._emit_status(now)
        return self._stop_requested or self._duration_reached() is not None

    def _process(self, batch: Batch) -> None:
        t0 = time.perf_counter()
        if any(len(c) or c.lost.size for c in batch.chunks.values()):
            self._last_data = time.monotonic()
        self._device_time = batch.device_time_ps
        for lab, chunk in batch.chunks.items():
            chain = self.chains.get(lab)
            if chain is None:
                self._ignored_labs.add(lab)
                continue
            self._arrivals[lab].add(_end_time(chunk, batch.device_time_ps), batch.arrival)
            chain.handle(chunk)
        dt = time.perf_counter() - t0
        self._busy += dt
        self._busy_interval += dt
        if batch.device_time_ps is not None and self.source.speed:
            now = time.monotonic()
            if self._anchor is None:
                self._anchor = (batch.arrival, batch.device_time_ps)
            w0, d0 = self._anchor
            self._lag = max(0.0, (now - w0) - (batch.device_time_ps - d0) * 1e-12 / self.source.speed)
            self._lag_max = max(self._lag_max, self._lag)

    def _take(self, lab: str, rounds, heralds) -> None:
        """What the live view and the latency log keep of a lab's rounds (the writer has them already)."""
        if len(rounds):
            self._pending[lab].append(np.asarray(rounds["trigger_time"]))
            self.stats[lab].add_rounds(rounds)
            if self.estimate:
                self._est_rounds[lab].append(
                    np.asarray(rounds[list(_EST_DTYPE.names)]).astype(_EST_DTYPE))
        self.stats[lab].add_heralds(heralds)

    def _flush(self, now: float) -> None:
        for lab, chain in self.chains.items():
            if self.writers[lab].failure is None:
                chain.handle(Checkpoint(now))
            elif lab in self.raw:
                self.raw[lab].flush()
        done = time.monotonic()
        self.flushes += 1
        self._last_flush = now
        self._flushed = {lab: w.n_rounds for lab, w in self.writers.items()}
        for lab, pend in self._pending.items():
            if not pend:
                continue
            trig = np.concatenate(pend)
            arr = self._arrivals[lab].arrival_of(trig)
            self.latencies.extend((done - arr[np.isfinite(arr)]).tolist())
            self._arrivals[lab].prune(int(trig[-1]))
            pend.clear()

    def _emit_status(self, now: float) -> dict:
        wall = now - self.t_start
        interval = now - self._last_status
        labs = {lab: s.snapshot() for lab, s in self.stats.items()}
        al = [a for snap in labs.values() for a in alarms(snap)]
        status = {
            "wall_s": wall,
            "source": self.source.description,
            "source_stats": self.source.stats(),
            "labs": labs,
            "rounds_on_disk": dict(self._flushed),  # as of the last flush: what a reader is guaranteed to see
            "idle_s": now - self._last_data,  # wall time since the source last delivered data
            "rounds_made": {lab: w.n_rounds for lab, w in self.writers.items()},
            "flushes": self.flushes,
            "lag_s": self._lag if self.source.speed else None,
            "lag_s_max": self._lag_max if self.source.speed else None,
            "load": self._busy_interval / interval if interval > 0 else None,
            "busy_s": self._busy,
            "latency_s": _latency_summary(self.latencies),
            "estimate": self._estimate() if self.estimate else None,
            "raw_tags": {lab: sink.status() for lab, sink in self.raw.items()},
            "alarms": al,
        }
        if self._lag > max(2.0, 2 * self.flush_interval):
            status["alarms"].append(f"falling behind the device: {self._lag:.1f} s of backlog")
        if self._ignored_labs:
            status["alarms"].append(f"data of lab(s) {sorted(self._ignored_labs)} ignored (not in --lab)")
        full = (status["source_stats"] or {}).get("full_stream_buffers")
        if full:
            status["alarms"].append(f"the device's stream buffer filled {full} time(s): tags were lost there (the "
                                    "rounds they touch are flagged lost_data); read faster or raise --stream-buffer")
        self._busy_interval = 0.0
        self._last_status = now
        self.last_status = status
        for cb in self.callbacks:
            cb(status)
        return status

    def _estimate(self) -> dict | None:
        """Running S, Q0, Q1 and key rate once both an Alice and a Bob lab are in this process."""
        roles = {self.setup.lab(lab).role: lab for lab in self.labs}
        if "alice" not in roles or "bob" not in roles:
            return None
        # The join and estimators grow with the run: recompute at most every 10x their last cost, so that
        # a week-long run keeps >= 90% of the loop for the data.
        now = time.monotonic()
        last = getattr(self, "_est_last", None)
        if last is not None and now - last[0] < 10 * last[1] and not getattr(self, "_finishing", False):
            return last[2]
        for lab in (roles["alice"], roles["bob"]):  # keep one array per lab instead of a list of pieces
            if len(self._est_rounds[lab]) > 1:
                self._est_rounds[lab] = [_cat(self._est_rounds[lab])]
        est = running_estimate(_cat(self._est_rounds[roles["alice"]]), _cat(self._est_rounds[roles["bob"]]))
        self._est_last = (now, time.monotonic() - now, est)
        return est

    def _finish(self, state: Completion, reason: str) -> tuple[dict, dict[str, Path | None]]:
        """Flush the pipelines (when their state is whole) and close every file with how the run ended."""
        self._finishing = True
        if any(sink.failure is not None for sink in self.raw.values()):
            # the disk is full (or failing) under the raw tags: the rounds files' reserve is what lets them close
            for w in self.writers.values():
                w.slot.release_reserve()
        try:
            if not self._chains_flushed and (state is not Completion.FAILED
                                             or all(w.failure is None for w in self.writers.values())):
                self._chains_flushed = True
                for chain in self.chains.values():
                    chain.flush()
            self._flush(time.monotonic())
        except StorageError as exc:
            state, reason = Completion.FAILED, reason or str(exc)
        finally:
            self.raw_files = self._close_raw()
        failed_raw = next((s.failure for s in self.raw.values() if s.failure is not None), None)
        if failed_raw is not None and state is not Completion.FAILED:
            state, reason = Completion.FAILED, str(failed_raw)
        now = time.monotonic()
        status = self._emit_status(now)
        status["interrupted"] = state is Completion.INTERRUPTED
        status["completion"] = {"state": str(state), "reason": reason}
        paths: dict[str, Path | None] = {}
        for lab, w in self.writers.items():
            pipe = self.pipelines[lab]
            summary = dict(_json_status(getattr(pipe, "summary", {}) or {}))
            summary["live"] = {"wall_s": now - self.t_start, "completion": str(state), "reason": reason,
                               "interrupted": state is Completion.INTERRUPTED, "lag_s_max": self._lag_max,
                               "busy_s": self._busy, "flushes": self.flushes, "source": self.source.description,
                               "source_stats": self.source.stats(), "latency_s": _latency_summary(self.latencies)}
            hist = getattr(pipe, "histograms", None) or {}
            if w.failure is not None:
                state_lab, reason_lab = Completion.FAILED, str(w.failure)
            else:
                state_lab, reason_lab = state, reason
            paths[lab] = w.finish(state_lab, reason_lab, summary=summary,
                                  histograms={k: np.asarray(v) for k, v in dict(hist).items()},
                                  provenance=self._lab_provenance(lab, self.raw_files.get(lab, [])))
            self._flushed[lab] = w.n_rounds
        return status, paths

    def _close_raw(self) -> dict[str, list[Path]]:
        """Every raw file closed and renamed, whatever else fails: they are the irreplaceable part of the run."""
        files: dict[str, list[Path]] = {}
        for lab, sink in self.raw.items():
            try:
                files[lab] = sink.close()
            except (TimetagError, OSError) as exc:
                sink.failure = sink.failure or StorageError(f"{exc}")
                files[lab] = list(sink.files)
        return files


def _abandon(output) -> None:
    """Undo the opening of an output of a run refused before it started (no file, lock or reserve left)."""
    if isinstance(output, RoundsOutput):
        output.writer.close(state=Completion.FAILED, reason="another output of the run was refused")
        output.slot.discard()
        output.partial.unlink(missing_ok=True)
    else:
        output.discard()


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(Path(path).relative_to(folder))
    except ValueError:
        return str(path)


def _detectors(lab: LabSetup) -> tuple[int, ...]:
    chans = set(lab.fluorescence_channels) | {d.channel for d in lab.bsm}
    if lab.sync_channel is not None:
        chans.add(lab.sync_channel)
    return tuple(sorted(chans))


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        return np.zeros(0, _EST_DTYPE)
    return np.concatenate(parts)


def _end_time(chunk, device_time_ps) -> int | None:
    ends = [t for t in (chunk.last_time, int(chunk.lost["time"][-1]) if chunk.lost.size else None) if t is not None]
    return max(ends) if ends else device_time_ps


def _latency_summary(lat) -> dict | None:
    if not lat:
        return None
    a = np.asarray(lat)
    return {"n": int(a.size), "median": float(np.median(a)), "p99": float(np.quantile(a, 0.99)), "max": float(a.max())}




def _json_status(obj):
    return jsonable(obj, max_array=64)
