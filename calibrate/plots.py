"""PNG figures of a calibration (matplotlib, imported only when plots are asked for).

Figures are plain :class:`matplotlib.figure.Figure` objects outside pyplot (see :mod:`timetag.estimators.plots`):
drawing them needs no display and never changes the caller's backend.  :func:`figures` returns them; saving is
the caller's, or :func:`write_plots`': all drawn first, then saved together through custody (see
:func:`timetag.estimators.plots.save_figures`): each as ``<name>.partial``, renamed when all are complete; existing
figures are replaced only with ``force``.

One function per figure, for a notebook: :func:`arrival_figure`, :func:`fom_figure`, :func:`counts_figure`,
:func:`clock_figure`.  Each draws on the caller's axes when given (``ax=`` for one panel, ``axes=`` for the two
of :func:`fom_figure`; the convention of :mod:`timetag.estimators.plots`) and returns the figure.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from timetag.errors import CalibrationError
from timetag.estimators.plots import have_matplotlib, save_figures, target_axes

__all__ = ["require_matplotlib", "plot_names", "figures", "write_plots", "arrival_figure", "fom_figure",
           "counts_figure", "clock_figure"]


def require_matplotlib() -> None:
    if not have_matplotlib():  # matplotlib is an optional dependency
        raise CalibrationError("--plots needs matplotlib, which is not installed (pip install 'timetag[plot]' or "
                               "pip install matplotlib)")


def plot_names(lab_names: Iterable[str]) -> list[str]:
    """Every file name :func:`write_plots` may write for these labs (for checks before a calibration runs)."""
    names = []
    for lab in lab_names:
        names += [f"{lab}_arrival.png", f"{lab}_fom.png", f"{lab}_counts.png"]
    return names + ["clock_residuals.png"]


def figures(new_setup, old_setup, report) -> list[tuple[str, object]]:
    """(file name, figure) of every plot the calibration supports: arrival histograms with the window, FOM curve,
    count histograms with fit and threshold, clock residuals."""
    require_matplotlib()
    figs = []
    for name, cal in report.results.items():
        if name == "clock":
            figs.append(_laid_out("clock_residuals.png", clock_figure(cal)))
            continue
        d = cal.data
        if d is not None and d.arrival is not None and cal.delays is not None:
            figs.append(_laid_out(f"{name}_arrival.png",
                                  arrival_figure(name, cal, old_setup.lab(name), new_setup.lab(name))))
        if cal.window is not None:
            figs.append(_laid_out(f"{name}_fom.png", fom_figure(name, cal.window)))
        if cal.threshold is not None and d is not None and d.counts is not None:
            figs.append(_laid_out(f"{name}_counts.png", counts_figure(name, cal.threshold, d.counts.counts)))
    return figs


def write_plots(out_dir, new_setup, old_setup, report, *, force: bool = False, inputs: Iterable = ()) -> list[Path]:
    """Draw and save every figure into ``out_dir`` (created), all together through custody."""
    figs = figures(new_setup, old_setup, report)
    out = Path(out_dir)
    return save_figures([f for _, f in figs], [out / n for n, _ in figs], inputs=inputs, force=force, dpi=100)


def arrival_figure(name, cal, old_lab, new_lab, *, ax=None):
    """Arrival-time histogram of each BSM channel of lab ``name`` with its fitted model, shifted by the new delays,
    and the old and new herald windows (``cal``: the lab's calibration result; ``old_lab``, ``new_lab``: the lab
    of the setup before and after).  ``ax``: the Axes to draw on (default: a new figure); returns the figure."""
    h = cal.data.arrival
    edges = h.edges.astype(float)
    x = 0.5 * (edges[1:] + edges[:-1]) / 1000
    fig, (ax,), _ = target_axes(ax, 1, name="arrival_figure", figsize=(8, 4.5))
    for k, f in enumerate(cal.delays.fits):
        shift = cal.delays.new[f.channel] - cal.delays.old[f.channel]
        ax.step(x - shift / 1000, h.counts[k], where="mid", lw=0.8, label=f"ch {f.channel} (new delays)")
        ax.plot(x - shift / 1000, f.model(edges), lw=1.2, color="k", alpha=0.5,
                label="fitted model (each channel)" if k == len(cal.delays.fits) - 1 else None)
    for lab, style, which in ((old_lab, ":", "old"), (new_lab, "--", "new")):
        for i, v in enumerate((lab.herald.window_start_ps, lab.herald.window_stop_ps)):
            ax.axvline(v / 1000, ls=style, color="r" if lab is new_lab else "grey",
                       label=f"{which} window (start, stop)" if i == 0 else None)
    if cal.window is not None:
        ax.axvline(cal.window.pulse_end / 1000, color="orange", lw=0.8, label="pulse end (1 %)")
    ax.set_xlabel(f"click - {h.reference} sync (ns, delay-corrected)")
    ax.set_ylabel(f"clicks / {h.bin_ps} ps")
    ax.set_title(f"{name}: arrival times and the herald window, old -> new")
    ax.legend(fontsize=7)
    return fig


def fom_figure(name, w, *, axes=None):
    """The window's figure of merit against its stop (first panel) and its start (second), the chosen values
    marked (``w``: the lab's window calibration).  ``axes``: two Axes to draw on (default: a new figure); returns
    the figure."""
    fig, (a1, a2), _ = target_axes(axes, 2, name="fom_figure", figsize=(10, 4), nrows=1, ncols=2)
    for ax, xs, ys, lbl, chosen in ((a1, w.stops, w.curve_stop, "window stop", w.stop),
                                    (a2, w.starts, w.curve_start, "window start", w.start)):
        ok = np.isfinite(ys)
        ax.plot(xs[ok] / 1000, ys[ok] / w.fom, lw=1)
        ax.axvline(chosen / 1000, color="r", ls="--")
        ax.set_xlabel(f"{lbl} (ns)")
        ax.set_ylabel("FOM / max (relative key rate per time)")
    a1.set_title(f"{name}: FOM vs stop (start {w.start / 1000:.1f} ns)")
    a2.set_title(f"FOM vs start (stop {w.stop / 1000:.1f} ns)")
    return fig


def counts_figure(name, t, counts, *, ax=None):
    """Histogram of the read-out counts ``counts`` of lab ``name`` with the fitted mixture, its two parts and the
    threshold (``t``: the lab's threshold calibration).  ``ax``: the Axes to draw on (default: a new figure);
    returns the figure."""
    fit = t.fit
    top = int(max(counts.max() if counts.size else 0, fit.mean_bright * 2)) + 1
    k = np.arange(top + 1)
    hist = np.bincount(np.minimum(counts, top), minlength=top + 1)
    fig, (ax,), _ = target_axes(ax, 1, name="counts_figure", figsize=(7, 4))
    ax.bar(k, hist, width=1.0, color="0.75", label=f"{fit.n} rounds")
    ax.plot(k, fit.n * fit.pmf(k), "k-", label=f"{fit.model} mixture")
    ax.plot(k, fit.n * (1 - fit.w_bright) * fit.pmf(k, "dark"), "b--", lw=0.8, label="atom absent")
    ax.plot(k, fit.n * fit.w_bright * fit.pmf(k, "bright"), "g--", lw=0.8, label="atom present")
    ax.axvline(t.threshold - 0.5, color="r", label=f"threshold {t.threshold} (fidelity {t.fidelity:.3f})")
    ax.set_xlabel("fluorescence counts in the read-out window")
    ax.set_ylabel("rounds")
    ax.set_yscale("symlog", linthresh=1)
    ax.set_title(f"{name}: read-out counts")
    ax.legend(fontsize=7)
    return fig


def clock_figure(clk, *, ax=None):
    """Residuals of the clock model between the labs against Alice's time (``clk``: the calibration's
    :class:`~calibrate.clock.ClockResult`, ``report.results["clock"]``).  ``ax``: the Axes to draw on (default: a
    new figure); returns the figure."""
    fig, (ax,), _ = target_axes(ax, 1, name="clock_figure", figsize=(7, 4))
    ax.plot(clk.t_alice / 1e12, clk.residuals_ps / 1000, ".", ms=3)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("Alice time (s)")
    ax.set_ylabel("mapped Alice - Bob (ns)")
    ax.set_title(f"clock: offset {clk.offset_ps / 1e3:.3f} ns, drift {clk.drift * 1e6:.5f} ppm, {clk.n_pairs} pairs")
    return fig


def _laid_out(name, fig):
    # figures() draws its own figures: laid out here, where they are known to be ours
    fig.tight_layout()
    return name, fig
