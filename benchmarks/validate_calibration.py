"""Calibration against the simulator's truth: bias and pull distributions per quantity and scale (issue 21).

For each scale (``--speedup`` with a number of rounds) and each seed: simulate both labs (lmu2022), perturb
Alice's BSM delays by a seeded random amount (up to +-2.5 ns, so that the delay step has work to do), run
:func:`calibrate.calibrate_run` on both labs, and compare each calibrated quantity with the simulator's truth:

=============  ===========================================================================================
delays         relative delays (detector - reference) vs the simulator's cable delays
pulse_centre   pulse centre after the attempt's sync tick vs ``pulse_center_ps``
decay          fitted decay time vs ``lifetime_ps``
dead_time      the BSM detectors' dead time the pulse fits use (shortest same-detector gap) vs ``dead_time_ps``
double         fraction of signal clicks from double emissions (no error-bar pull: reported for reference)
thr_mean_dark  mixture fit's atom-absent mean count vs background + dark counts (x (1 + afterpulsing))
thr_mean_bright  atom-present mean vs that + ``alice_fluo_mean`` (and Bob's)
threshold      chosen threshold vs the simulator's (minimum misclassification on the true means); bias only
window_start/stop  chosen window vs the FOM's optimum on the true pulse model (same FOM); bias only
dark           dark-count rate per detector vs ``dark_rate_hz_*``
afterpulse     afterpulses per primary click vs ``afterpulse_prob``
clock_offset   clock offset vs ``bob_clock_offset_ps + link_delay_ps - ready_latency_ps``
clock_drift    drift vs ``bob_clock_drift_ppm``
=============  ===========================================================================================

Prints one row per (quantity, scale): n, bias (mean of estimate - truth), mean reported error, pull mean and
pull spread ((estimate - truth) / error; the goal: mean within 0 +- 0.3, spread within 0.7-1.5), and the rows
outside the goal marked '!'.  Takes minutes (not a unit test)::

    python benchmarks/validate_calibration.py --seeds 20 --jobs 2 [--json out.json]
    python benchmarks/validate_calibration.py --table-from out.json   # the table of a saved run
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

from pathlib import Path

import numpy as np

SCALES = {"1": (1.0, 120), "100": (100.0, 300), "20000": (20000.0, 500)}
PULL_GOAL = (-0.3, 0.3, 0.7, 1.5)


def _simulate(out: Path, speedup: float, rounds: int, seed: int) -> None:
    cmd = [sys.executable, "-m", "timetag", "simulate", "--preset", "lmu2022", "--rounds", str(rounds),
           "--speedup", str(speedup), "--seed", str(seed), "--out", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def one_run(args) -> list[tuple]:
    """Rows (quantity, scale, estimate, truth, error) of one simulated run."""
    scale, seed = args
    from calibrate.api import calibrate_run
    from calibrate.delays import DelayResult
    from calibrate.window import DetectorProfile, FomParams, choose_window, psi_plus_pairs
    from timetag.setupfile import load_setup
    from timetag.simulator.analytic import min_error_threshold
    from timetag.simulator.params import ALICE_BSM, load_preset
    from calibrate.thresholds import _sf

    speedup, rounds = SCALES[scale]
    rows = []
    with tempfile.TemporaryDirectory(prefix="valcal") as tmp:
        run = Path(tmp) / "run"
        _simulate(run, speedup, rounds, seed)
        setup = load_setup(run / "setup.toml")
        p = load_preset("lmu2022").with_overrides(speedup=speedup)
        true_delay = {c: int(d) for c, d in zip(range(1, 11), p.delays_alice)}
        rng = np.random.default_rng(1000 + seed)
        alice = setup.lab("alice")
        pert = dict(alice.delays_ps)
        for c in ALICE_BSM:
            pert[c] = int(pert[c] + rng.integers(-2500, 2501))
        setup = setup.with_lab("alice", delays_ps=pert)
        try:
            new, rep = calibrate_run(run / "alice.dump", run / "bob.dump", setup, strict=False)
        except Exception as exc:  # a refusal is a result too
            return [("refused", scale, float("nan"), float("nan"), float("nan"), f"{type(exc).__name__}: {exc}")]
        for w in rep.warnings:
            rows.append(("warning", scale, float("nan"), float("nan"), float("nan"), w))
        cal = rep.results.get("alice")
        d: DelayResult | None = cal.delays if cal is not None else None
        if d is not None:
            ref = d.reference
            for c in ALICE_BSM:
                if c == ref:
                    continue
                est = d.new[c] - d.new[ref]
                rows.append(("delays", scale, est, true_delay[c] - true_delay[ref], d.err[c], d.method))
            f = d.fits[0]
            if f.cut is not None:
                rows.append(("pulse_centre", scale, f.mu - f.cut, p.pulse_center_ps, f.err["mu"], ""))
            rows.append(("decay", scale, f.tau, p.lifetime_ps, f.err["tau"], ""))
            # the pulse fits' dead-time and afterpulse terms take the dead time as measured by the dark counter
            if cal.data is not None and cal.data.dead_time_ps is not None:
                rows.append(("dead_time", scale, cal.data.dead_time_ps, p.dead_time_ps, float("nan"), ""))
            rows.append(("double", scale, f.double, float("nan"), f.err.get("double", float("nan")), ""))
            if cal.window is not None and f.cut is not None:
                # the FOM's optimum on the true pulse model (centre on the fitted sync tick + true offset)
                sig = math.hypot(p.pulse_fwhm_ps / 2.3548200450309493, p.jitter_ps)
                prof = {g.channel: DetectorProfile(g.cut - (d.new[g.channel] - d.old[g.channel]) + p.pulse_center_ps,
                                                   sig, p.lifetime_ps, g.signal, g.background) for g in d.fits}
                h = cal.data.arrival
                vb = h.valid_bins()
                edges = h.edges[vb.start:vb.stop + 1]
                fom = FomParams(readout_contrast=1.0)
                try:
                    w_true = choose_window(edges, prof, psi_plus_pairs(alice.bsm), reference="next", params=fom)
                    rows.append(("window_start", scale, cal.window.start, w_true.start, float("nan"), ""))
                    rows.append(("window_stop", scale, cal.window.stop, w_true.stop, float("nan"), ""))
                except Exception:
                    pass
        for lab in ("alice", "bob"):
            c = rep.results.get(lab)
            if c is None:
                continue
            ap = p.afterpulse_prob
            if c.threshold is not None:
                fit = c.threshold.fit
                window_s = (p.fluorescence_window_ps[1] - p.fluorescence_window_ps[0]) * 1e-12
                dark = sum(p.dark_rate_hz_alice) if lab == "alice" else p.dark_rate_hz_bob
                bg = p.alice_fluo_background if lab == "alice" else p.bob_fluo_background
                mean = p.alice_fluo_mean if lab == "alice" else p.bob_fluo_mean
                m0 = (bg + dark * window_s) * (1 + ap)
                m1 = m0 + mean * (1 + ap)
                rows.append((f"{lab}.thr_mean_dark", scale, fit.mean_dark, m0, fit.err["mean_dark"], ""))
                rows.append((f"{lab}.thr_mean_bright", scale, fit.mean_bright, m1, fit.err["mean_bright"], ""))
                t = np.arange(1, 200)
                true_t = min_error_threshold(t, _sf(t, m0, 0.0), 1 - _sf(t, m1, 0.0), w_dark=1 - fit.w_bright,
                                             w_bright=fit.w_bright)
                rows.append((f"{lab}.threshold", scale, c.threshold.threshold, true_t, float("nan"), ""))
            if c.dark is not None:
                r = c.dark
                truth = p.dark_rate_hz_alice if lab == "alice" else [p.dark_rate_hz_bob]
                for k in range(len(r.channels)):
                    rows.append((f"{lab}.dark", scale, r.dark_rate_hz[k], truth[k], r.dark_rate_err_hz[k], ""))
                    rows.append((f"{lab}.afterpulse", scale, r.afterpulse_primary[k], ap,
                                 r.afterpulse_primary_err[k], ""))
        clk = rep.results.get("clock")
        if clk is not None:
            rows.append(("clock_offset", scale, clk.offset_ps,
                         p.bob_clock_offset_ps + p.link_delay_ps - p.ready_latency_ps, clk.offset_err_ps, ""))
            rows.append(("clock_drift", scale, clk.drift, p.bob_clock_drift_ppm * 1e-6, clk.drift_err, ""))
    return rows


def table(rows) -> str:
    groups: dict[tuple, list] = {}
    for q, scale, est, truth, err, _ in rows:
        if q in ("warning", "refused"):
            continue
        groups.setdefault((q, scale), []).append((est, truth, err))
    lines = [f"{'quantity':<22} {'speedup':>7} {'n':>4} {'bias':>12} {'mean error':>12} {'pull mean':>10} "
             f"{'+- se':>6} {'pull sd':>8}  goal"]
    for (q, scale), v in sorted(groups.items(), key=lambda kv: (kv[0][0], float(kv[0][1]))):
        a = np.array(v, dtype=np.float64)
        diff = a[:, 0] - a[:, 1]
        ok = np.isfinite(diff)
        bias = float(np.mean(diff[ok])) if ok.any() else float("nan")
        merr = float(np.nanmean(a[:, 2])) if np.isfinite(a[:, 2]).any() else float("nan")
        pulls = diff / a[:, 2]
        pulls = pulls[np.isfinite(pulls)]
        if pulls.size >= 3:
            pm, ps = float(pulls.mean()), float(pulls.std(ddof=1))
            good = PULL_GOAL[0] <= pm <= PULL_GOAL[1] and PULL_GOAL[2] <= ps <= PULL_GOAL[3]
            mark = "ok" if good else "!"
            # the pull mean's own standard error: with 20 seeds (se ~0.22) the goal's +-0.3 is only 1.3 se wide
            se = ps / math.sqrt(pulls.size)
            if abs(pm) > 2 * se:
                mark += f" (mean {abs(pm) / se:.1f} se from 0)"
            lines.append(f"{q:<22} {scale:>7} {len(v):>4} {bias:>12.4g} {merr:>12.4g} {pm:>10.2f} {se:>6.2f} "
                         f"{ps:>8.2f}  {mark}")
        else:
            lines.append(f"{q:<22} {scale:>7} {len(v):>4} {bias:>12.4g} {merr:>12.4g} {'-':>10} {'-':>6} {'-':>8}  "
                         "(bias only)")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--scales", default=",".join(SCALES), help="comma-separated: " + ", ".join(SCALES))
    ap.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2)))
    ap.add_argument("--json", type=Path, help="write every row here")
    ap.add_argument("--table-from", type=Path, metavar="JSON", help="print the table of a --json file and stop")
    a = ap.parse_args(argv)
    if a.table_from:
        rows = [tuple(float("nan") if x is None else x for x in r) for r in json.loads(a.table_from.read_text())]
        print(table(rows))
        return 0
    tasks = [(s, seed) for s in a.scales.split(",") for seed in range(a.first_seed, a.first_seed + a.seeds)]
    t0 = time.time()
    rows = []
    with ProcessPoolExecutor(a.jobs) as ex:
        for i, r in enumerate(ex.map(one_run, tasks), 1):
            rows += r
            print(f"\r{i}/{len(tasks)} runs, {time.time() - t0:.0f} s", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print(table(rows))
    notes = {}
    for q, scale, *_, note in rows:
        if q in ("warning", "refused"):
            notes.setdefault((q, scale, note), 0)
            notes[(q, scale, note)] += 1
    for (q, scale, note), n in sorted(notes.items()):
        print(f"{q} (speedup {scale}, {n} runs): {note}")
    if a.json:
        a.json.write_text(json.dumps([list(map(lambda x: x if not isinstance(x, float) or math.isfinite(x)
                                                else None, r)) for r in rows], default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
