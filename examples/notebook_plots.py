"""Every plot function of timetag and calibrate, used as in a notebook, on a small simulated run.

Run it as ``python examples/notebook_plots.py [OUT_DIR]``.  It simulates both labs, calibrates, processes and
estimates in this process through the public Python API, then calls every public plot function the way a
notebook cell does: once on the notebook's own axes (``fig, ax = plt.subplots()``; ``ax=`` for one panel,
``axes=`` for several) and once without, getting a new figure back.  After each call it checks what a notebook
user would notice: the backend is still the one the notebook chose, pyplot still draws, and the figure renders.

With ``matplotlib-inline`` installed the inline backend of Jupyter is selected (as ``%matplotlib inline`` does);
without it pyplot's default, non-interactive backend is kept, and the number of open pyplot figures shows that
pyplot keeps working.  Every figure is also saved as PNG into OUT_DIR/figures.  Prints one ``ok`` line per plot
function and exits non-zero on the first check that fails.
"""
from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import matplotlib

INLINE = "module://matplotlib_inline.backend_inline"
if importlib.util.find_spec("matplotlib_inline") is not None:
    matplotlib.use(INLINE)  # what `%matplotlib inline` selects in a Jupyter kernel

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen, as in a notebook)

import timetag  # noqa: E402
from calibrate import plots as cal_plots  # noqa: E402
from timetag.estimators import plots as est_plots  # noqa: E402
from timetag.simulator import load_preset  # noqa: E402

# the run: as small as still gives every figure something to show (a few seconds once numba's cache is warm)
ROUNDS, SEED, SPEEDUP = 600, 7, 2e4


def simulate_and_estimate(out: Path):
    """Simulated tags -> calibrated setup -> rounds -> estimate, all in this process (the demo's chain)."""
    params = load_preset("lmu2022").with_overrides(speedup=SPEEDUP)
    sim = timetag.simulate(params, n_rounds=ROUNDS, seed=SEED, out_dir=out / "raw", force=True)
    start = timetag.load_setup(sim.setup)
    setup, report = timetag.calibrate([sim.alice], [sim.bob], start)
    rounds = {}
    for lab, tags in (("alice", sim.alice), ("bob", sim.bob)):
        rounds[lab] = out / f"{lab}_rounds.h5"
        timetag.process_files([tags], setup, lab, rounds[lab], progress=False, force=True)
    est = timetag.estimate(rounds["alice"], rounds["bob"], samples=0)
    return start, setup, report, est


def plot_calls(start, setup, report, est):
    """name -> (panels, draw(target)): one call of every public plot function; ``target`` is None (a new figure)
    or the caller's Axes (one panel) / list of Axes (several)."""
    alice = report.results["alice"]
    scan_rows = [{"threshold": th, "herald_rate_hz": 40.0 + th, "S": 2.4 - 0.05 * th, "S_err": 0.1,
                  "Q": 0.04 + 0.01 * th, "Q_err": 0.01, "key_rate_per_event": 0.1 - 0.01 * th,
                  "key_rate_per_event_err": 0.03} for th in (3, 4, 5, 6)]
    one = lambda target: {"ax": target}  # noqa: E731
    many = lambda target: {"axes": target}  # noqa: E731
    return {
        "correlations_figure": (2, lambda t: est_plots.correlations_figure(est, **many(t))),
        "finite_key_figure": (1, lambda t: est_plots.finite_key_figure(est, **one(t))),
        "scan_figure": (len(est_plots.SCAN_METRICS),
                        lambda t: est_plots.scan_figure(scan_rows, ["threshold"], units={"threshold": "counts"},
                                                        **many(t))),
        "arrival_figure": (1, lambda t: cal_plots.arrival_figure("alice", alice, start.lab("alice"),
                                                                 setup.lab("alice"), **one(t))),
        "fom_figure": (2, lambda t: cal_plots.fom_figure("alice", alice.window, **many(t))),
        "counts_figure": (1, lambda t: cal_plots.counts_figure("alice", alice.threshold, alice.data.counts.counts,
                                                               **one(t))),
        "clock_figure": (1, lambda t: cal_plots.clock_figure(report.results["clock"], **one(t))),
    }


def check(condition: bool, what: str) -> None:
    if not condition:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)


def main(out: Path) -> None:
    backend = matplotlib.get_backend()
    print(f"backend: {backend}" + ("" if backend == INLINE else " (matplotlib-inline not installed: pyplot's "
                                                                "default backend, figures counted)"))
    start, setup, report, est = simulate_and_estimate(out)
    print(f"simulated and estimated: {est['rounds']} rounds, S = {est['S']:.3f}")
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for name, (panels, draw) in plot_calls(start, setup, report, est).items():
        # a notebook cell: `fig, ax = plt.subplots(); plot(..., ax=ax)`
        before = len(plt.get_fignums())
        fig, axes = plt.subplots(1, panels, squeeze=False, figsize=(4 * panels, 3.5), layout="constrained")
        given = axes[0, 0] if panels == 1 else list(axes[0])
        returned = draw(given)
        check(returned is fig, f"{name}: returns the figure of the axes it was given")
        check(all(ax.has_data() for ax in axes[0]), f"{name}: drew on every axes it was given")
        check(matplotlib.get_backend() == backend, f"{name}: left the backend {backend}")
        check(len(plt.get_fignums()) == before + 1, f"{name}: pyplot still holds the notebook's figure")
        fig.savefig(figures / f"{name}-on-ax.png")
        # the other way: no axes, a figure of its own back, outside pyplot (shown with display(fig))
        own = draw(None)
        check(own is not fig and own.axes and all(ax.has_data() for ax in own.axes), f"{name}: a figure of its own")
        check(len(plt.get_fignums()) == before + 1, f"{name}: its own figure stays out of pyplot")
        own.savefig(figures / f"{name}.png")
        plt.close(fig)
        print(f"ok {name}: drew on {panels} notebook axes and on a figure of its own; backend still {backend}",
              flush=True)
    # the cell after the last plot: pyplot's own plotting still works with the same backend
    line = plt.plot([0, 1], [1, 0])
    check(len(line) == 1 and len(plt.get_fignums()) == 1, "plt.plot after every plot function")
    plt.gcf().savefig(figures / "after.png")
    plt.close("all")
    check(matplotlib.get_backend() == backend, "the backend at the end")
    print(f"pyplot still plots after every call; backend unchanged: {backend}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="timetag-notebook-")))
