"""calibrate_run: one pass over each lab's tags, fits, and the updated setup.

The pass is one chain of stream processors (:func:`collect`): the engine itself measures the arrival histograms
and the read-out counts that the fits turn into new delays, window and thresholds (see
:mod:`calibrate.histograms`), beside the dark-count counter and the conditional-sync edge histogram.
"""
from __future__ import annotations

import contextlib
import gc
import importlib
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from timetag.chunk import DEFAULT_CHUNK_SIZE
from timetag.custody import AtomicOutputs, check_distinct, check_target
from timetag.errors import CalibrationError
from timetag.formats import iter_stream, total_records
from timetag.setupfile import LabSetup, Setup, edit_setup_text
from timetag.stream import (CountChannels, CountHistogram, LabEngine, ReportProgress, StreamBroke, Tee,
                            run_stream)

from .darkcounts import DarkCounter, DarkCountResult
from .histograms import (ArrivalHistogram, GuardedArrivalHistogram, ReadoutCounts, SyncPeriod, measurement_lab,
                         trimmed)
from .report import CalibrationReport

if TYPE_CHECKING:
    from .delays import DelayResult
    from .thresholds import ThresholdResult
    from .window import FomParams, WindowResult

# The fits' modules (scipy, the simulator's threshold rule) and the figures' (matplotlib) are imported when they are
# needed, not with this module: :func:`calibrate_run` imports the fits' in a thread while the tags are read
# (:func:`prefetch_fits`), where the kernels leave a core idle part of the time, instead of before the pass.
FIT_MODULES = ("delays", "window", "thresholds", "clock")

STEPS = ("delays", "window", "thresholds", "darkcounts", "clock")
_MARGIN_PS = 1_000_000
AFTERPULSE_GUARD_PS = 3_000_000   # skip this long after each pulse region (its afterpulses): dark and afterpulse counts
EDGE_BIN_PS = 10                   # conditional-sync edge histogram: the edge is located to ~1/(density)
EDGE_GUARD_PS = 10_000             # ... leaving out clicks this close after a recorded sync (> delay errors)


@dataclass
class LabData:
    """What one pass over a lab's tags measured."""

    lab: LabSetup
    arrival: ArrivalHistogram | None = None
    edge: GuardedArrivalHistogram | None = None   # fine, guarded histogram for the conditional-sync edge
    counts: ReadoutCounts | None = None           # read-outs of whole windows, one per 'ready' tag
    count_hist: np.ndarray | None = None          # their histogram (counts 0 .. the largest)
    dark: DarkCounter | None = None
    ready_times: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    n_tags: int = 0
    channel_counts: dict = field(default_factory=dict)   # tags per channel
    threshold_fits: dict = field(default_factory=dict, repr=False)   # count model -> fit (see _threshold_fit)

    def missing(self, role: str, channels) -> str | None:
        """Why a fit needing ``channels`` (their ``role``) cannot succeed: none of their tags in the data."""
        chans = [c for c in channels if c is not None]
        if not chans or any(self.channel_counts.get(c, 0) for c in chans):
            return None
        return (f"no {role} tags (channel{'s' if len(chans) > 1 else ''} {', '.join(map(str, chans))}) in the "
                f"{self.n_tags} tags read")

    @property
    def dead_time_ps(self) -> float | None:
        """The BSM detectors' dead time: the shortest same-detector gap the dark counter saw (None: not
        measured).  The pulse fits model the clicks it loses (:func:`calibrate.delays._blocked`)."""
        if self.dark is None:
            return None
        gaps = self.dark.min_gap
        seen = gaps[gaps < np.iinfo(np.int64).max]
        return float(seen.min()) if seen.size else None


@dataclass
class LabCalibration:
    lab: str
    delays: DelayResult | None = None
    window: WindowResult | None = None
    threshold: ThresholdResult | None = None
    dark: DarkCountResult | None = None
    data: LabData | None = None
    skipped: dict = field(default_factory=dict)   # step -> reason


def arrival_range(lab: LabSetup) -> tuple[int, int]:
    """Histogram range: the setup's, unless it misses the current window (then a span around the window)."""
    lo, hi = lab.histograms.arrival_range_ps
    s, e = lab.herald.window_start_ps, lab.herald.window_stop_ps
    if lo <= s - 50_000 and e + 50_000 <= hi:
        return int(lo), int(hi)
    lo, hi = s - 150_000, e + 200_000
    if lab.herald.sync_reference == "previous":
        lo = max(lo, 0)
    else:
        hi = min(hi, 0)
    return int(lo), int(hi)


def collect(paths, lab: LabSetup, *, steps=STEPS, chunk_size: int = DEFAULT_CHUNK_SIZE,
            bin_ps: int | None = None, edge: bool = True, delays: dict[int, int] | None = None,
            progress=None) -> LabData:
    """One streaming pass over a lab's tag files (:func:`measure` over them).  ``progress(done, total)``:
    records read so far and in all the files (None when a format cannot say), after every chunk."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    total = total_records(paths, chunk_size) if progress is not None else None
    data = measure(iter_stream(paths, chunk_size=chunk_size), lab, steps=steps, bin_ps=bin_ps, edge=edge,
                   delays=delays, progress=None if progress is None else (lambda done: progress(done, total)))
    if data.n_tags == 0:
        raise CalibrationError(f"lab {lab.name!r}: no tags in {', '.join(map(str, paths))}")
    return data


def measure(source, lab: LabSetup, *, steps=STEPS, bin_ps: int | None = None, edge: bool = True, progress=None,
            delays: dict[int, int] | None = None) -> LabData:
    """Everything ``steps`` need from one lab's stream ``source`` (TagChunks), in one :func:`run_stream` pass.

    The chain: the tags are counted, then go to each measurement in turn (:class:`~timetag.stream.Tee`):

    * the engine (:class:`~timetag.stream.LabEngine`) over :func:`~calibrate.histograms.measurement_lab`:
      its arrival histogram (range :func:`arrival_range`, ``bin_ps``), and rounds triggered by every 'ready'
      tag, whose read-out counts :class:`~calibrate.histograms.ReadoutCounts` keeps (a
      :class:`~timetag.stream.CountHistogram` bins them);
    * the attempt period (:class:`~calibrate.histograms.SyncPeriod`), which bounds the histogram's fitted bins;
    * with ``edge`` and ``sync_reference = 'next'`` (conditional-sync recording): the finely binned, guarded
      histogram in which :func:`calibrate.delays.locate_edge` finds each detector's conditional-sync edge (it
      measures the attempt period too, in place of the SyncPeriod);
    * the dark-count and afterpulse counter (:class:`~calibrate.darkcounts.DarkCounter`).

    ``delays``: every channel's delay to measure with (default: the lab's).  A source error ends the pass with
    that error (nothing of a broken pass is used).
    """
    steps = set(steps)
    data = LabData(lab)
    has_bsm = lab.sync_channel is not None and len(lab.bsm) >= 2
    rng = arrival_range(lab) if has_bsm else None
    want_arrival = has_bsm and bool({"delays", "window"} & steps)
    want_readout = lab.ready_channel is not None and bool({"thresholds", "clock"} & steps)
    branches = []
    engine = period = readouts = hist = None
    if want_arrival or want_readout:
        if want_readout:
            hist = CountHistogram(lab.histograms.max_count)
            readouts = ReadoutCounts(hist)
        engine = LabEngine(measurement_lab(lab, arrival_range_ps=rng if want_arrival else None,
                                           arrival_bin_ps=bin_ps if want_arrival else None, delays=delays,
                                           ready_trigger=want_readout), readouts)
        branches.append(engine)
    if want_arrival:
        if edge and "delays" in steps and lab.herald.sync_reference == "next":
            # it measures the attempt period too (one kernel over the tags instead of two)
            data.edge = period = GuardedArrivalHistogram(lab, bin_ps=EDGE_BIN_PS, range_ps=rng, delays=delays,
                                                         guard_ps=EDGE_GUARD_PS)
        else:
            period = SyncPeriod(lab.sync_channel)
        branches.append(period)
    if "darkcounts" in steps:
        data.dark = _dark_counter(lab, rng)
        branches.append(data.dark)
    # the branches that count in the background first: their kernels then run on chunk k while the engine does
    # (the engine runs in this thread), instead of starting after it
    branches.sort(key=lambda b: b is engine)
    tags = CountChannels(Tee(*branches))
    head = tags if progress is None else ReportProgress(lambda records, _rounds: progress(records), tags)
    try:
        with _collector_paused():
            run_stream(source, head)
    except StreamBroke as exc:
        raise exc.__cause__ from None
    data.n_tags = tags.tally.tags
    data.channel_counts = dict(tags.counts)
    if want_arrival:
        data.arrival = ArrivalHistogram.of_engine(engine, period.period_ps)
    if want_readout:
        data.counts = readouts
        data.count_hist = trimmed(hist.histogram)
        data.ready_times = readouts.ready_times
    return data


@contextlib.contextmanager
def _collector_paused():
    """Python's cycle collector off for the pass (as it was before, after).  The fit modules are imported on a
    thread during the pass (:func:`prefetch_fits`): scipy's objects then fill the heap, and the collector's full
    passes over them, triggered by the pass's per-chunk objects, cost ~5 % of the pass's wall time (measured
    interleaved on the full-scale file; ``process``, which imports nothing meanwhile, gains nothing).  The pass
    makes no reference cycles worth collecting early."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _dark_counter(lab: LabSetup, rng) -> DarkCounter:
    exclude: dict[int, list[tuple[int, int]]] = {}
    if lab.ready_channel is not None:
        f0, f1 = lab.round.fluorescence_window_ps
        exclude[lab.ready_channel] = [(min(f0, 0) - _MARGIN_PS, f1 + _MARGIN_PS)]
    ap_exclude: dict[int, list[tuple[int, int]]] = {}
    if rng is not None:
        # the pulse region, and the sync itself: a pulse that straddles the sync tag puts part of its
        # photons next to the sync whichever sync_reference the histograms use
        pulse = (rng[0] - _MARGIN_PS // 10, rng[1] + _MARGIN_PS // 10)
        near = (-_MARGIN_PS // 5, _MARGIN_PS // 5)
        exclude[lab.sync_channel] = [(a, b + AFTERPULSE_GUARD_PS) for a, b in (pulse, near)]
        # the pulse photons' own afterpulses (a quarter of the clicks in the microseconds after the pulse at
        # --speedup 100) cannot afterpulse: as counted clicks they diluted the afterpulse rate by ~8 %
        # (docs/validation.md), so the clicks after the pulse are skipped here as for the dark counts
        ap_exclude[lab.sync_channel] = [(pulse[0], pulse[1] + AFTERPULSE_GUARD_PS), near]
    dets = sorted({d.channel for d in lab.bsm} | set(lab.fluorescence_channels))
    # conditional sync recording: a sync exists because of a click, so the excluded regions go on the
    # whole attempt grid (recorded or not) instead of the recorded syncs (see calibrate.darkcounts)
    grid = lab.sync_channel if rng is not None and lab.herald.sync_reference == "next" else None
    return DarkCounter(dets, exclude, afterpulse_exclude=ap_exclude, grid_channel=grid)


class _Literature:
    """The default ``pulse_fwhm_ps``: :data:`calibrate.pulse.PULSE_FWHM_PS` (read when the fit runs)."""

    def __repr__(self) -> str:
        return "PULSE_FWHM_PS"


LITERATURE_FWHM = _Literature()


def prefetch_fits(plots: bool = False) -> threading.Thread:
    """Import the fits' modules (and with ``plots`` the figures') in a thread; returns it (started).  An import
    that fails there fails again, with its message, where the module is used.  (The pass's own kernels are
    compiled ahead of time: nothing of them to load here.)"""

    def run():
        for name in FIT_MODULES + (("plots",) if plots else ()):
            try:
                importlib.import_module(f".{name}", __package__)
            except Exception:   # noqa: BLE001  (raised again by the import that needs it)
                return

    t = threading.Thread(target=run, name="calibrate-imports", daemon=True)
    t.start()
    return t


def _fom(fom) -> FomParams:
    """``fom`` as :class:`~calibrate.window.FomParams` (None: the defaults; a dict: its fields)."""
    from .window import FomParams
    if fom is None:
        return FomParams()
    return FomParams(**fom) if isinstance(fom, dict) else fom


def calibrate_lab(data: LabData, *, steps=STEPS, reference: int | None = None,
                  pulse_position_ps: float | None = None, fom: FomParams | dict | None = None,
                  count_model: str = "auto", report: CalibrationReport | None = None, strict: bool = True,
                  pulse_fwhm_ps: float | None = LITERATURE_FWHM) -> tuple[LabSetup, LabCalibration]:
    """Fit what ``data`` supports; returns the updated lab setup and the results.

    ``pulse_fwhm_ps``: the excitation pulse's FWHM (set by the experiment; default the literature's 21 ns,
    :data:`calibrate.pulse.PULSE_FWHM_PS`), which the joint pulse fit holds (see ``fix_sigma`` in
    :func:`calibrate.delays.calibrate_delays`); None: free.  ``fom``: the window's figure of merit
    (:class:`~calibrate.window.FomParams`, or a dict of its fields; None: the defaults).

    ``strict``: a step the data cannot support raises :class:`CalibrationError`; otherwise the step is
    skipped with the reason in the report (its setup values stay as they were).
    """
    from .delays import calibrate_delays
    from .pulse import FWHM_TO_SIGMA, JITTER_PS, PULSE_FWHM_PS
    from .window import DetectorProfile, choose_window, psi_minus_pairs, psi_plus_pairs

    fom = _fom(fom)
    if pulse_fwhm_ps is LITERATURE_FWHM:
        pulse_fwhm_ps = PULSE_FWHM_PS
    lab = data.lab
    rep = report if report is not None else CalibrationReport()
    fix_sigma = None if pulse_fwhm_ps is None else float(np.hypot(float(pulse_fwhm_ps) * FWHM_TO_SIGMA, JITTER_PS))
    cal = LabCalibration(lab.name, data=data)
    new = lab

    def skip(step, exc):
        if strict:
            raise exc
        cal.skipped[step] = str(exc)
        rep.warnings.append(f"{lab.name}: {step} not calibrated: {exc}")

    if data.arrival is not None and ({"delays", "window"} & set(steps)):
        why = data.missing("sync", [lab.sync_channel]) or data.missing("BSM detector", [d.channel for d in lab.bsm])
        if why is not None:
            for step in ("delays", "window"):
                if step in steps:
                    skip(step, CalibrationError(f"lab {lab.name!r} {step}: {why}: no arrival histogram to fit"))
            data = replace(data, arrival=None)
    if data.arrival is not None and "delays" in steps:
        h = data.arrival
        vb = h.valid_bins()
        eh = None if data.edge is None else (data.edge.counts, data.edge.edges)
        try:
            res = calibrate_delays(h.counts[:, vb], h.edges[vb.start:vb.stop + 1], h.channels,
                                   dict(lab.delays_ps), reference=reference, pulse_position_ps=pulse_position_ps,
                                   edge_hist=eh, fix_sigma=fix_sigma, dead_time_ps=data.dead_time_ps)
        except CalibrationError as exc:
            skip("delays", CalibrationError(f"lab {lab.name!r} delays: {exc}"))
        else:
            cal.delays = res
            delays = dict(lab.delays_ps)
            delays.update(res.new)
            new = replace(new, delays_ps=delays)
            for c in h.channels:
                note = "reference" if c == res.reference else ""
                rep.add(lab.name, f"delays_ps.{c}", res.old[c], res.new[c], res.err[c], "ps", note)
            f0 = res.fits[0]
            rep.measure(f"{lab.name}.pulse", f"centre {res.target:.0f} ps (corrected, rel. sync), width sigma "
                        f"{f0.sigma:.0f} ps, decay {f0.tau:.0f} +- {f0.err['tau']:.0f} ps")
            if res.note:
                rep.warnings.append(f"{lab.name}: {res.note}")
            if f0.cut is not None:
                rep.measure(f"{lab.name}.edge", "delays from the conditional-sync edge (attempt sync tick); "
                            f"pulse centre {f0.mu - f0.cut:.0f} +- {f0.err['mu']:.0f} ps after it, "
                            f"{f0.double:.3f} of the clicks from double emissions")
            if res.reference is not None:
                common = ""
                if f0.cut is not None and h.period_ps is not None:
                    # the edge is the attempt's own sync tick: -period on the 'next' rule with the right delays
                    off = float(np.mean([f.cut for f in res.fits])) + h.period_ps
                    common = (f"; the edges lie {off:+.0f} ps (mean) from the sync tick, i.e. the BSM delays are "
                              f"{off:+.0f} ps off the sync's in common")
                rep.measure(f"{lab.name}.delays", f"relative to detector {res.reference} (its delay kept){common}: "
                            "a common shift of all BSM delays is not corrected here, it is left to the window")
    if data.arrival is not None and "window" in steps:
        h = data.arrival
        vb = h.valid_bins()
        edges = h.edges[vb.start:vb.stop + 1]
        try:
            fits = cal.delays.fits if cal.delays is not None else calibrate_delays(
                h.counts[:, vb], edges, h.channels, dict(lab.delays_ps), fix_sigma=fix_sigma).fits
            shift = {c: (cal.delays.new[c] - cal.delays.old[c]) if cal.delays is not None else 0 for c in h.channels}
            profiles = {f.channel: DetectorProfile(f.mu - shift[f.channel], f.sigma, f.tau, f.signal, f.background)
                        for f in fits}
            pairs = []
            if "psi+" in lab.herald.patterns:
                pairs += psi_plus_pairs(lab.bsm)
            if "psi-" in lab.herald.patterns:
                pairs += psi_minus_pairs(lab.bsm)
            cur = (lab.herald.window_start_ps, lab.herald.window_stop_ps)
            w = choose_window(edges, profiles, pairs, reference=lab.herald.sync_reference, params=fom,
                              current=cur)
        except CalibrationError as exc:
            skip("window", CalibrationError(f"lab {lab.name!r} window: {exc}"))
        else:
            cal.window = w
            new = replace(new, herald=replace(new.herald, window_start_ps=w.start, window_stop_ps=w.stop))
            bin_ps = int(h.bin_ps)
            rep.add(lab.name, "herald.window_start_ps", lab.herald.window_start_ps, w.start, float(bin_ps), "ps",
                    "FOM grid step as uncertainty")
            rep.add(lab.name, "herald.window_stop_ps", lab.herald.window_stop_ps, w.stop, float(bin_ps), "ps")
            rep.measure(f"{lab.name}.pulse_end", f"{w.pulse_end:.0f} ps (1 % of the pulse left)")
            rep.measure(f"{lab.name}.window_fom", f"expected key rate x{w.fom_relative:.3f} relative to the "
                        f"old window (FOM: {fom.describe()})")
    if "thresholds" in steps:
        try:
            t = _threshold_fit(data, count_model)
        except CalibrationError as exc:
            skip("thresholds", exc)
        else:
            cal.threshold = t
            new = replace(new, round=replace(new.round, threshold=t.threshold))
            lo, hi = t.threshold_range
            rep.add(lab.name, "round.threshold", lab.round.threshold, t.threshold,
                    float(max(t.threshold - lo, hi - t.threshold)), "counts",
                    f"16-84 % range {lo}..{hi}")
            f = t.fit
            if data.counts.n_lost:
                rep.warnings.append(f"{lab.name}: {data.counts.n_lost} read-out windows touch lost data: left out "
                                    "of the count histogram")
            rep.measure(f"{lab.name}.readout", f"fidelity {t.fidelity:.4f} (dark {t.fidelity_dark:.4f}, bright "
                        f"{t.fidelity_bright:.4f}); {f.model} mixture: bright fraction {f.w_bright:.3f}, means "
                        f"{f.mean_dark:.2f} +- {f.err['mean_dark']:.2f} / {f.mean_bright:.2f} +- "
                        f"{f.err['mean_bright']:.2f} counts, {f.n} rounds")
    if data.dark is not None and "darkcounts" in steps:
        why = data.missing("sync", [lab.sync_channel]) if data.dark.exclude.get(lab.sync_channel) else None
        why = why or data.missing("detector", list(data.dark.channels))
        if why is None and data.dark.quiet_ps <= 0:
            why = "no quiet stretches (everything lies in a pulse or read-out region)"
        if why is not None:
            skip("darkcounts", CalibrationError(
                f"lab {lab.name!r} dark counts: {why}" + (": the pulse photons cannot be told from dark counts"
                                                         if "sync" in why else "")))
    if data.dark is not None and "darkcounts" in steps and "darkcounts" not in cal.skipped:
        d = data.dark.result()
        cal.dark = d
        for k, c in enumerate(d.channels):
            rep.measure(f"{lab.name}.detector {c}", f"dark {d.dark_rate_hz[k]:.4g} +- {d.dark_rate_err_hz[k]:.2g} Hz "
                        f"(quiet clicks {d.rate_hz[k]:.4g} Hz incl. their afterpulses), afterpulsing "
                        f"{d.afterpulse_prob[k]:.2e} +- {d.afterpulse_err[k]:.1e} per click ({d.afterpulse_primary[k]:.2e} per "
                        "non-afterpulse click)")
        if d.period_ps is not None:
            rep.measure(f"{lab.name}.attempt_grid", f"dark-count exclusions on every attempt tick (conditional "
                        f"sync recording), period {d.period_ps:.1f} ps from the recorded syncs")
    return new, cal


def _count_hist(data: LabData) -> np.ndarray:
    lab = data.lab
    if data.counts is None:
        raise CalibrationError(f"lab {lab.name!r}: fluorescence counts need a ready channel")
    if data.counts.counts.size == 0:
        raise CalibrationError(f"lab {lab.name!r}: no complete read-out windows (no 'ready' tags with a "
                               "full fluorescence window): too few counts for a threshold")
    return data.count_hist


def _threshold_fit(data: LabData, count_model: str):
    """The threshold fit of ``data``'s count histogram (raises :class:`CalibrationError` when it has none), made
    once: the window's FOM needs it before the thresholds step."""
    if count_model not in data.threshold_fits:
        from .thresholds import choose_threshold
        try:
            data.threshold_fits[count_model] = choose_threshold(
                _count_hist(data), count_model, what=f"lab {data.lab.name!r} fluorescence counts")
        except CalibrationError as exc:
            data.threshold_fits[count_model] = exc
    fit = data.threshold_fits[count_model]
    if isinstance(fit, CalibrationError):
        raise fit
    return fit


def _with_readout_contrast(fom: FomParams, datas: dict, count_model: str, rep: CalibrationReport) -> FomParams:
    """The FOM's clean-herald visibility needs both labs' read-out contrast (1 - e0 - e1): from the
    count histograms when they support a threshold fit, else 1 (with a warning)."""
    contrast, missing = 1.0, []
    for name, data in datas.items():
        try:
            t = _threshold_fit(data, count_model)
        except CalibrationError:
            missing.append(name)
            continue
        contrast *= t.fidelity_dark + t.fidelity_bright - 1.0
    if missing or len(datas) < 2:
        rep.warnings.append("window FOM: read-out contrast of " + (", ".join(missing) or "the other lab") +
                            " unknown, taken as 1 (pass --fom-v0 to state the clean-herald visibility)")
    return replace(fom, readout_contrast=float(contrast))


def calibrate_run(alice_paths, bob_paths, setup: Setup, *, alice_lab: str = "alice", bob_lab: str = "bob",
                  steps=STEPS, chunk_size: int = DEFAULT_CHUNK_SIZE, reference: int | None = None,
                  pulse_position_ps: float | None = None, fom: FomParams | dict | None = None,
                  count_model: str = "auto", strict: bool = False, plots_dir=None,
                  pulse_fwhm_ps: float | None = LITERATURE_FWHM, force: bool = False,
                  progress=None) -> tuple[Setup, CalibrationReport]:
    """Calibrate from the tags of both labs (either may be None for a one-lab calibration).

    Returns the updated setup and the report.  The clock offset/drift (both labs given) goes to the
    setup's ``[clock]`` table: ``t_bob = t_alice + offset_ps + drift * t_alice`` on corrected 'ready' times.
    ``plots_dir``: the figures are written there (through custody; existing ones replaced only with ``force``);
    :func:`save_calibration` writes the setup and the figures together instead.
    ``progress(lab, done, total)``: records of that lab read so far (and in its files), after every chunk.
    ``fom`` and ``pulse_fwhm_ps``: as :func:`calibrate_lab`.
    """
    steps = tuple(steps)
    for s in steps:
        if s not in STEPS:
            raise CalibrationError(f"unknown calibration step {s!r} (steps: {', '.join(STEPS)})")
    rep = CalibrationReport()
    new_setup = setup
    datas = {}
    imports = prefetch_fits(plots=plots_dir is not None)
    for name, paths in ((alice_lab, alice_paths), (bob_lab, bob_paths)):
        if paths is None:
            continue
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        on_chunk = None if progress is None else (lambda done, total, lab=name: progress(lab, done, total))
        datas[name] = collect(paths, setup.lab(name), steps=steps, chunk_size=chunk_size, progress=on_chunk)
    imports.join()
    fom = _fom(fom)
    if "window" in steps and fom.v0 is None:
        fom = _with_readout_contrast(fom, datas, count_model, rep)
    for name, data in datas.items():
        new_lab, cal = calibrate_lab(data, steps=steps, reference=reference if name == alice_lab else None,
                                     pulse_position_ps=pulse_position_ps, fom=fom, count_model=count_model,
                                     report=rep, strict=strict, pulse_fwhm_ps=pulse_fwhm_ps)
        new_setup = new_setup.with_lab(name, **{f: getattr(new_lab, f) for f in ("delays_ps", "herald", "round")})
        rep.results[name] = cal
    if "clock" in steps and alice_lab in datas and bob_lab in datas:
        from .clock import calibrate_clock
        try:
            clk = calibrate_clock(datas[alice_lab].ready_times, datas[bob_lab].ready_times)
        except CalibrationError as exc:
            if strict:
                raise
            rep.warnings.append(f"clock not calibrated: {exc}")
        else:
            rep.results["clock"] = clk
            old = dict(setup.extra.get("clock", {}))
            model = clk.model
            rep.add("clock", "offset_ps", old.get("offset_ps"), model.offset_ps, clk.offset_err_ps, "ps")
            rep.add("clock", "drift", old.get("drift"), model.drift, clk.drift_err, "",
                    f"{clk.drift * 1e6:.4f} +- {clk.drift_err * 1e6:.4f} ppm; {clk.n_pairs} of "
                    f"{clk.n_alice}/{clk.n_bob} triggers paired")
            extra = dict(new_setup.extra)
            extra["clock"] = model.to_json()
            new_setup = replace(new_setup, extra=extra)
    done = sum(1 for c in rep.results.values() if isinstance(c, LabCalibration)
               for x in (c.delays, c.window, c.threshold, c.dark) if x is not None) + ("clock" in rep.results)
    if done == 0:
        reasons = [w.split(" not calibrated: ", 1)[-1] for w in rep.warnings if " not calibrated: " in w]
        raise CalibrationError("nothing calibrated (nothing written): " + ("; ".join(reasons) or
                                                                          "no step applies to these labs"))
    if plots_dir is not None:
        inputs = [p for ps in (alice_paths, bob_paths) if ps is not None
                  for p in ([ps] if isinstance(ps, (str, Path)) else ps)]
        from .plots import write_plots
        write_plots(plots_dir, new_setup, setup, rep, force=force, inputs=inputs)
    return new_setup, rep


def calibration_targets(out, plots_dir=None, labs=()) -> list[Path]:
    """The files :func:`save_calibration` may write: the setup, then every figure the labs may get."""
    targets = [Path(out)]
    if plots_dir is not None:
        from .plots import plot_names
        targets += [Path(plots_dir) / n for n in plot_names(labs)]
    return targets


def check_calibration_targets(out, plots_dir=None, labs=(), *, inputs=(), force: bool = False) -> None:
    """Refuse the outputs before the calibration runs: the setup or a figure that is an input, a folder, or
    exists (unless ``force``); figures asked for without matplotlib."""
    if plots_dir is not None:
        from .plots import require_matplotlib
        require_matplotlib()
    targets = calibration_targets(out, plots_dir, labs)
    check_distinct(targets)
    for t in targets:
        check_target(t, inputs=inputs, force=force)


def save_calibration(out, new_setup: Setup, old_setup: Setup, report: CalibrationReport, *, plots_dir=None,
                     inputs=(), force: bool = False, old_text: str | None = None) -> list[Path]:
    """Write the calibrated setup to ``out`` and (with ``plots_dir``) the figures, all together through custody:
    each as ``<name>.partial``, renamed when every one is complete; none of them is ever an input (the setup the
    calibration started from, the tag files); existing files are replaced only with ``force``.

    The figures are drawn outside pyplot (:mod:`calibrate.plots`): nothing to close, they go with their last
    reference.  ``old_text``: the setup file as the user wrote it; the new one is written as an edit of it
    (comments and layout kept, :func:`timetag.setupfile.edit_setup_text`)."""
    if plots_dir is not None:
        from .plots import figures
    figs = figures(new_setup, old_setup, report) if plots_dir is not None else []
    targets = [Path(out)] + [Path(plots_dir) / name for name, _ in figs]
    with AtomicOutputs(targets, inputs=list(inputs), force=force) as outs:
        text = new_setup.dumps() if old_text is None else edit_setup_text(old_text, new_setup)
        outs[0].partial.write_text(text)
        for i, (_, fig) in enumerate(figs, start=1):
            savefig_into(fig, outs[i], dpi=100)
    return targets


def savefig_into(fig, out, **kw) -> None:
    """:func:`timetag.estimators.plots.savefig_into` (imported with the first figure: matplotlib is not needed
    without figures)."""
    from timetag.estimators.plots import savefig_into as save
    save(fig, out, **kw)
