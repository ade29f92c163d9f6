"""``simulate()``: run the generator to files (raw tags of both labs, setup.toml, truth.h5)."""
from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import interrupts
from ..custody import AtomicOutputs
from ..errors import OutputError, SetupError
from ..formats import writer_for
from ..provenance import provenance
from ..setupfile import BsmDetector, HeraldConfig, HistogramConfig, LabSetup, RoundConfig, Setup
from .analytic import expected_stats
from .dumpout import DumpOut as _DumpOut
from .generate import LinkSimulator
from .params import (ALICE_BSM, ALICE_READY, ALICE_SETTINGS, ALICE_SYNC, BOB_READY, BOB_SETTINGS, BOB_SPD,
                     SimParams)
from .truth import TRUTH_DTYPE, write_truth

EXT = {"dump": ".dump", "ptu": ".ptu", "h5": ".h5", "text": ".txt"}


@dataclass
class SimResult:
    out_dir: Path
    alice: Path
    bob: Path
    setup: Path
    truth: Path
    stats: dict = field(default_factory=dict)


def build_setup(p: SimParams, thresholds: tuple[int, int] | None = None) -> Setup:
    """The setup file a user would write for these files: channel map, delays, windows, thresholds."""
    if thresholds is None:
        e = expected_stats(p)
        thresholds = (e["threshold_alice"], e["threshold_bob"])
    thr_a, thr_b = thresholds
    ws, we = (int(x) for x in p.acceptance_window_ps)
    T = int(p.attempt_period_ps)
    if p.sync_mode == "every":
        herald = HeraldConfig("previous", ws, we, we - ws, tuple(p.herald_patterns))
        arrival = (0, _ceil(we + 100_000, 500))
    else:
        herald = HeraldConfig("next", ws - T, we - T, we - ws, tuple(p.herald_patterns))
        arrival = (_floor(ws - T - 100_000, 500), _ceil(we - T + 100_000, 500))
    # the ready tag jitters around its latency; the tolerance covers 6 sigma plus the tagger's ps rounding
    tol = int(max(6 * p.ready_jitter_ps, 1000) + 1000)
    s0 = int(p.setting_delay_ps - 8 * p.setting_jitter_ps)
    s1 = int(p.setting_delay_ps + p.setting_double_gap_ps + 8 * p.setting_jitter_ps) + 1
    fw = tuple(int(x) for x in p.fluorescence_window_ps)
    alice = LabSetup(
        name="alice", role="alice", ready_channel=ALICE_READY, sync_channel=ALICE_SYNC,
        setting_channels=ALICE_SETTINGS, fluorescence_channels=ALICE_BSM,
        bsm=tuple(BsmDetector(c, a, pol) for c, a, pol in zip(ALICE_BSM, "aabb", "HVHV")),
        delays_ps={c: int(p.delays_alice[c - 1]) for c in range(1, 11)},
        herald=herald,
        round=RoundConfig("both", int(p.ready_latency_ps), tol, (max(s0, 0), s1), fw, int(thr_a)),
        histograms=HistogramConfig(500, arrival, 256),
    )
    bob = LabSetup(
        name="bob", role="bob", ready_channel=BOB_READY, sync_channel=None, setting_channels=BOB_SETTINGS,
        fluorescence_channels=(BOB_SPD,), delays_ps={c: int(p.delays_bob[c - 1]) for c in range(1, 5)},
        round=RoundConfig("ready", int(p.link_delay_ps), tol, (max(s0, 0), s1), fw, int(thr_b)),
    )
    extra = {"simulation": {"preset": p.name, "sync_mode": p.sync_mode, "speedup": float(p.speedup),
                            "note": "written by timetag simulate; [labs.*] is what processing needs"}}
    return Setup(labs={"alice": alice, "bob": bob}, name=f"{p.name} simulation", extra=extra)


def _ceil(x, m):
    return -(-int(x) // m) * m


def _floor(x, m):
    return int(x) // m * m


def output_names(fmt: str = "dump") -> tuple[str, str, str, str]:
    """The files ``simulate`` writes into its folder: Alice's and Bob's raw tags, the setup, the truth."""
    if fmt not in EXT:
        raise SetupError(f"unknown output format {fmt!r} (simulate writes: {', '.join(EXT)})", key="format")
    return f"alice{EXT[fmt]}", f"bob{EXT[fmt]}", "setup.toml", "truth.h5"


def check_outputs(out_dir, fmt: str = "dump", *, force: bool = False) -> list[Path]:
    """The four targets in ``out_dir``, refused up front (one line naming every file that exists, unless
    ``force``; ``out_dir`` a file) before any simulation is run."""
    return check_targets(out_dir, output_names(fmt), force=force)


def check_targets(out_dir, names, *, force: bool = False) -> list[Path]:
    """``out_dir / name`` for each of ``names``, checked as :func:`check_outputs` does (also for
    ``simulate --rounds-only``)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file, not a folder; --out takes the folder to write the simulation into")
    targets = [out / n for n in names]
    for t in targets:
        if t.is_dir():
            raise OutputError(f"{t}: is a folder; simulate writes a file of that name into {out}")
    existing = [t.name for t in targets if t.exists()]
    if existing and not force:
        raise OutputError(f"{out}: {', '.join(existing)} {'exists' if len(existing) == 1 else 'exist'} already; "
                          "pass --force to replace (the old files stay until the new ones are complete), or "
                          "choose another --out")
    return targets


def simulate(params: SimParams, n_rounds: int, seed: int, out_dir, fmt: str = "dump", speedup: float | None = None,
             progress=None, *, force: bool = False) -> SimResult:
    """Simulate ``n_rounds`` heralded rounds and write both labs' raw files, ``setup.toml`` and ``truth.h5``.

    ``speedup`` (if given) replaces ``params.speedup``.  ``progress(rounds_done, n_rounds)`` is called
    after every generation block.

    The four files are written together through custody (:class:`~timetag.custody.AtomicOutputs`): each as
    ``<name>.partial``, all renamed when the simulation is complete; any failure (or Ctrl-C) removes them all.
    Existing files are refused (naming them) unless ``force``, and stay untouched until the new ones are complete.
    """
    if n_rounds < 1:
        raise SetupError(f"--rounds must be >= 1 (got {n_rounds})", key="rounds")
    output_names(fmt)  # an unknown format is refused here
    if speedup is not None:
        params = params.with_overrides(speedup=float(speedup))
    out = Path(out_dir)
    targets = check_outputs(out, fmt, force=force)
    exp = expected_stats(params)
    # the dump path writes each chunk at once, so the generator may hand out views of its reused buffers
    sim = LinkSimulator(params, seed, n_rounds=n_rounds, reuse_buffers=fmt == "dump")
    # the run's name travels with its setup (and through calibrate): rounds processed with a recalibrated
    # setup still pair with the other lab's
    setup = replace(build_setup(params, sim.thresholds),
                    run=f"simulate {params.name} seed {seed} rounds {n_rounds} speedup {params.speedup:g}")
    pa, pb, setup_path, truth_path = targets

    def meta(lab):
        if fmt == "h5":
            return {"lab": lab}
        if fmt == "ptu":  # PTU has no lost-data records: overflow intervals survive only as gaps (and in truth.h5)
            return {"drop_lost": True, "comment": f"timetag simulate: {params.name}, lab {lab}, seed {seed}"}
        return {}

    with AtomicOutputs(targets, force=force) as outs:
        out_a, out_b, out_setup, out_truth = (outs[i].partial for i in range(4))
        out_setup.write_text(setup.dumps())
        t_start = time.perf_counter()
        rows = []
        n_a = n_b = 0
        # the partial files' extension is '.partial': the writers get the format explicitly
        if fmt == "dump":
            wa, wb = _DumpOut(out_a), _DumpOut(out_b)
        else:
            wa = writer_for(out_a, fmt, **meta("alice"))
            wb = writer_for(out_b, fmt, **meta("bob"))
        try:
            # dump: the blocks are recorded and written on an output thread while the next one is generated
            blocks = sim.stream_into(wa.write, wb.write) if fmt == "dump" else _written(sim.stream(), wa, wb)
            with closing(blocks):  # (closed before the writers: no block is still being written into them)
                for k_a, k_b, r in blocks:
                    interrupts.check()  # a Ctrl-C swallowed while numba compiled still stops the run here
                    n_a += k_a
                    n_b += k_b
                    rows.extend(r)
                    if progress is not None:
                        progress(min(sim.rounds, n_rounds), n_rounds)
        finally:
            try:
                wa.close()
            finally:
                wb.close()  # (also after a failed close of Alice's file: its writes must end before the cleanup)
        elapsed = time.perf_counter() - t_start
        truth = np.array(rows, dtype=TRUTH_DTYPE) if rows else np.zeros(0, TRUTH_DTYPE)
        stats = {
            "rounds": int(truth.size), "alice_tags": n_a, "bob_tags": n_b, "seconds": elapsed,
            "tags_per_second": (n_a + n_b) / elapsed if elapsed > 0 else float("inf"),
            "simulated_seconds": (sim.t_block - sim.t0) * 1e-12, "expected": _plain(exp),
            "alice_sources": sim.outA.sources.tolist(), "bob_sources": sim.outB.sources.tolist(),
            "overflow_intervals_alice": len(sim.outA.intervals), "overflow_intervals_bob": len(sim.outB.intervals),
        }
        attrs = {
            "params": params.to_dict(), "seed": int(seed), "expected_S": exp["expected_S"],
            "expected_Q": exp["expected_Q"],
            "expected": _plain(exp), "bob_clock_offset_ps": int(params.bob_clock_offset_ps),
            "bob_clock_drift_ppm": float(params.bob_clock_drift_ppm), "sync_mode": params.sync_mode,
            "thresholds": list(sim.thresholds), "format": fmt,
            "provenance": provenance(setup=setup, command="simulate", preset=params.name, seed=int(seed),
                                     n_rounds=int(n_rounds)),
            "overflow_intervals_alice_raw": [list(iv) for iv in sim.outA.intervals],
            "overflow_intervals_bob_raw": [list(iv) for iv in sim.outB.intervals],
            "stats": {k: v for k, v in stats.items() if k != "expected"},
        }
        write_truth(out_truth, truth, sim.heralds_all_array(), attrs)
    return SimResult(out, pa, pb, setup_path, truth_path, stats)


def _written(blocks, wa, wb):
    for ca, cb, rows in blocks:
        wa.write(ca)
        wb.write(cb)
        yield len(ca), len(cb), rows


def _plain(d):
    if isinstance(d, dict):
        return {k: _plain(v) for k, v in d.items()}
    if isinstance(d, (tuple, list)):
        return [_plain(v) for v in d]
    if isinstance(d, (np.floating, np.integer)):
        return d.item()
    return d
