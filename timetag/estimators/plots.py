"""Figures like the paper's Fig. 4 (correlation probabilities) and Fig. 5 (finite-key rate vs block length).

matplotlib is optional and imported only when a figure is drawn.  The figures are plain
:class:`matplotlib.figure.Figure` objects, never pyplot's: drawing one needs no display and leaves the caller's
backend and pyplot state alone (a notebook keeps its inline backend), and the ``*_figure`` functions return the
figure for the caller to show or save.

Drawing into the caller's axes (a notebook's ``fig, ax = plt.subplots()``): a function that draws one panel
takes ``ax=`` (one :class:`~matplotlib.axes.Axes`), a function that draws several takes ``axes=`` (a sequence
with exactly one Axes per panel, all of one figure); either way it returns the figure the axes belong to.  On
the caller's axes only the axes are drawn on: the figure's title and layout stay the caller's.

Figures are saved through custody (:func:`save_figure`, :func:`save_figures`): drawn to ``<target>.partial`` with
the format given explicitly (the partial name's extension says nothing), renamed over the target when complete,
never over an input, and an existing figure is replaced only with ``force``.  The same helpers serve
``calibrate`` and ``scan`` (whose figure, :func:`scan_figure`, is drawn here too).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..custody import AtomicOutputs
from ..errors import TimetagError
from .chsh import ALPHA_DEG, BETA_DEG
from .finitekey import FK_DEFAULTS, finite_key_length, min_block_length

__all__ = ["PLOT_NAMES", "SCAN_METRICS", "SCAN_LABELS", "have_matplotlib", "require_matplotlib", "new_figure",
           "target_axes", "figure_format", "savefig_into", "save_figures", "save_figure", "correlations_figure",
           "finite_key_figure", "plot_targets", "write_plots", "scan_figure"]

PLOT_NAMES = ("correlations.png", "finite_key.png")
# the panels of scan.png: fields of a scan's rows (timetag.distributed.scan.estimate_task)
SCAN_METRICS = ("herald_rate_hz", "S", "Q", "key_rate_per_event")
#: the y-axis label of each panel of scan.png (a metric not listed is labelled by its name)
SCAN_LABELS = {"herald_rate_hz": "herald rate (1/s)", "S": "S (CHSH)", "Q": "Q (QBER)",
               "key_rate_per_event": "key rate\n(bits/event)"}


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def require_matplotlib(what: str = "--plots") -> None:
    """One clear line (a :class:`TimetagError`) instead of an ImportError traceback when plots cannot be drawn."""
    if not have_matplotlib():
        raise TimetagError(f"{what} needs matplotlib, which is not installed (pip install 'timetag[plot]' or "
                           "pip install matplotlib)")


def new_figure(**kw):
    """A :class:`matplotlib.figure.Figure` outside pyplot (``kw`` as for ``Figure``): no backend is chosen or
    changed; it is saved through its own canvas and freed when no longer referenced."""
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(**kw)


def target_axes(given, panels: int, *, name: str, **figure_kw):
    """``(figure, [Axes] * panels, own)``: the caller's axes (``given``: one Axes for a one-panel plot, else a
    sequence of ``panels`` Axes of one figure) or, when ``given`` is None, a new figure (``figure_kw``) with
    ``panels`` stacked as :meth:`Figure.subplots` lays them out (``nrows``/``ncols`` in ``figure_kw``).  ``own``
    says whether the figure is ours to title and lay out.  ``name``: the plot function, for the error message."""
    if given is None:
        layout = {k: figure_kw.pop(k) for k in ("nrows", "ncols", "sharex", "sharey") if k in figure_kw}
        fig = new_figure(**figure_kw)
        axes = fig.subplots(**layout, squeeze=False).ravel() if panels > 1 else [fig.subplots()]
        return fig, list(axes), True
    from matplotlib.axes import Axes

    axes = [given] if isinstance(given, Axes) else list(np.ravel(np.asarray(given, dtype=object)))
    if len(axes) != panels or not all(isinstance(a, Axes) for a in axes):
        got = ", ".join(sorted({type(a).__name__ for a in axes})) or "nothing"
        raise ValueError(f"{name} draws {panels} panel(s) and takes one matplotlib Axes per panel; got "
                         f"{len(axes)} object(s) ({got})")
    # the root figure (an Axes of a subfigure belongs to it too): the one to show or save
    figs = {id(a.get_figure(root=True)): a.get_figure(root=True) for a in axes}
    if len(figs) != 1:
        raise ValueError(f"{name}: the axes must belong to one figure, got {len(figs)} figures")
    return next(iter(figs.values())), axes, False


def _release(figs) -> None:
    # figures drawn through pyplot by other callers stay registered there until closed; ours never are.  pyplot
    # is only consulted if the caller imported it (importing it here would pick a backend)
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        for fig in figs:
            plt.close(fig)


def figure_format(target) -> str:
    """The image format a figure file's name asks for (``png`` when it has no extension)."""
    return Path(target).suffix.lstrip(".").lower() or "png"


def savefig_into(fig, out, **kw) -> Path:
    """Save ``fig`` into an open :class:`~timetag.custody.AtomicOutput`: at its partial path, in the target's format."""
    fig.savefig(out.partial, format=figure_format(out.target), **kw)
    return out.target


def save_figures(figs: Sequence, targets: Sequence, *, inputs: Iterable = (), force: bool = False,
                 dpi: int = 120) -> list[Path]:
    """Save figures to their targets together (all or none), each through its partial file; closes figures that
    were drawn through pyplot."""
    try:
        with AtomicOutputs(list(targets), inputs=list(inputs), force=force) as outs:
            for i, fig in enumerate(figs):
                savefig_into(fig, outs[i], dpi=dpi)
    finally:
        _release(figs)
    return [Path(t) for t in targets]


def save_figure(fig, target, *, inputs: Iterable = (), force: bool = False, dpi: int = 120) -> Path:
    """Save one figure through custody (see the module docstring)."""
    return save_figures([fig], [target], inputs=inputs, force=force, dpi=dpi)[0]


def _as_json(res) -> dict:
    """The estimate's JSON object (an :class:`~.result.Estimate` or that object already)."""
    return res.to_json() if hasattr(res, "to_json") else res


def correlations_figure(res, *, axes=None):
    """P(A = B) and P(A != B) for the 8 input pairs with the fitted sinusoids of the fidelity estimate; one panel
    per Bob setting Y, bars at Alice's settings X ordered by the analyser angle sum α + β (on the x axis, in
    degrees), error bars of one standard deviation, each panel with its own legend (bars and fit).
    ``axes``: two Axes to draw the panels Y = 0, 1 on (default: a new figure); returns the figure."""
    res = _as_json(res)
    fig, axes, own = target_axes(axes, 2, name="correlations_figure", figsize=(9, 3.6), nrows=1, ncols=2,
                                 sharey=True)
    vis = res["fidelity"]["V"]
    for y, ax in enumerate(axes):
        order = [2, 0, 3, 1]  # the paper's order: increasing alpha + beta for y = 0
        th = ALPHA_DEG[order] + BETA_DEG[y]
        ps = np.array([np.nan if res["P_same"][f"{x},{y}"] is None else res["P_same"][f"{x},{y}"] for x in order])
        N = np.array([res["N"][f"{x},{y}"] for x in order], float)
        with np.errstate(invalid="ignore", divide="ignore"):
            err = np.sqrt(ps * (1 - ps) / N)
        lab = [f"X={x}" for x in order]
        pos = np.arange(4)
        ax.bar(pos - 0.2, ps, 0.4, yerr=err, label="P(A = B) ± 1σ", color="tab:blue")
        ax.bar(pos + 0.2, 1 - ps, 0.4, yerr=err, label="P(A ≠ B) ± 1σ", color="tab:orange")
        if vis[y] is not None:
            # the four angles are 22.5 deg apart: bar position is linear in alpha + beta
            tt = np.linspace(th[0] - 9, th[-1] + 9, 200)
            fit = (1 - vis[y] * np.cos(np.deg2rad(2 * tt))) / 2
            ax.plot((tt - th[0]) / 22.5 - 0.2, fit, "k--", lw=1, label=f"fit V = {vis[y]:.3f}")
        # the bars are Alice's settings in order of the analyser angle sum alpha + beta, which the fit is a
        # function of: both on the tick labels, and the axis says so
        ax.set_xticks(pos, [f"{t}\n{a:+.1f}°" for t, a in zip(lab, th)])
        ax.set_xlabel("Alice's setting X / analyser angle sum α + β (deg)")
        ax.set_title(f"Y = {y} (β = {BETA_DEG[y]:+.1f}°)")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="best", framealpha=0.9)
    axes[0].set_ylabel("probability")
    if own:
        fig.suptitle(f"Correlation probabilities, {res['rounds']} rounds, S = {res['S']:.3f}"
                     if res["S"] is not None else "Correlation probabilities")
        fig.tight_layout()
    return fig


def finite_key_figure(res, *, ax=None):
    """Key rate per event l(N)/N versus block length N, with the asymptotic rate and N_min marked.
    ``ax``: the Axes to draw on (default: a new figure); returns the figure."""
    res = _as_json(res)
    fk = dict(FK_DEFAULTS, **res.get("finite_key", {}))
    S, Q0, Q1 = res["S"], res["Q0"], res["Q1"]
    fig, (ax,), own = target_axes(ax, 1, name="finite_key_figure", figsize=(5.5, 3.8))
    if None not in (S, Q0, Q1):
        N = np.logspace(3, 10, 300)
        r = finite_key_length(N, S, Q0, Q1, **fk) / N
        ax.semilogx(N, np.where(r > 0, r, np.nan), label=f"S = {S:.3f}, Q = {res['Q']:.3f}")
        asym = res["key_rate_per_event"][fk["protocol"]] if fk["protocol"] in res["key_rate_per_event"] else None
        if asym is not None:
            ax.axhline(asym, color="grey", ls=":", label=f"asymptotic {asym:.3f} (ideal error correction)")
        # the finite-key curve tends to the asymptotic rate with the same error-correction cost f_EC
        limit = float(finite_key_length(1e300, S, Q0, Q1, **fk) / 1e300)
        ax.axhline(limit, color="grey", ls="--", lw=0.8, label=f"N -> inf with f_EC = {fk['f_ec']:g}: {limit:.3f}")
        nmin = min_block_length(S, Q0, Q1, **fk)
        if np.isfinite(nmin):
            ax.axvline(nmin, color="tab:red", ls="--", label=f"N_min = {nmin:.3g}")
    ax.set_xlabel("block length N (rounds)")
    ax.set_ylabel("key rate per event")
    ax.set_title(f"Finite key (collective attacks, ε = {fk['eps']:g}, f_EC = {fk['f_ec']:g})")
    ax.legend(fontsize=8)
    if own:
        fig.tight_layout()
    return fig


def plot_targets(directory) -> list[Path]:
    """The files :func:`write_plots` writes into ``directory``."""
    return [Path(directory) / n for n in PLOT_NAMES]


def write_plots(res, directory, *, force: bool = False, inputs: Iterable = ()) -> list[Path]:
    """Draw correlations.png and finite_key.png from an estimate (:class:`~.result.Estimate` or its JSON object)
    and save them in ``directory`` (created) together through custody: an existing figure is replaced only with
    ``force`` and stays whole until the new ones are complete."""
    res = _as_json(res)
    figs = [correlations_figure(res), finite_key_figure(res)]
    return save_figures(figs, plot_targets(directory), inputs=inputs, force=force)


def scan_figure(rows: Sequence[dict], keys: Sequence[str], metrics: Sequence[str] = SCAN_METRICS,
                units: dict | None = None, *, axes=None):
    """scan.png of a parameter scan (:func:`timetag.distributed.scan.run_scan`'s rows; ``keys``: the varied keys,
    as given to ``--vary``; ``units``: the unit of a key's values, for the x label): one panel per metric against
    the first varied key, one line per combination of the other keys, with error bars of one standard deviation
    where the rows give one (field ``<metric>_err``); a missing value (None) is a gap.  An x axis whose values are
    all integers (a threshold) gets integer ticks only.  ``axes``: one Axes per metric to draw on (default: a new
    figure, panels stacked); returns the figure."""
    require_matplotlib("scan.png")
    from matplotlib.ticker import MaxNLocator

    x_key, others = keys[0], list(keys[1:])
    units = units or {}
    fig, axes, own = target_axes(axes, len(metrics), name="scan_figure", figsize=(6.5, 2.2 * len(metrics)),
                                 nrows=len(metrics), ncols=1, sharex=True)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in others), []).append(r)
    with_err = False
    for ax, metric in zip(axes, metrics):
        for g, rs in groups.items():
            rs = sorted(rs, key=lambda r: r[x_key])
            xs = [r[x_key] for r in rs]
            ys = [float("nan") if r.get(metric) is None else r[metric] for r in rs]
            es = [r.get(f"{metric}_err") for r in rs]
            label = ", ".join(f"{k}={v}" + (f" {units[k]}" if units.get(k) else "") for k, v in zip(others, g)) or None
            if any(e is not None for e in es):
                with_err = True
                ax.errorbar(xs, ys, yerr=[float("nan") if e is None else e for e in es], marker="o", capsize=3,
                            label=label)
            else:
                ax.plot(xs, ys, marker="o", label=label)
        ax.set_ylabel(SCAN_LABELS.get(metric, metric))
        ax.grid(alpha=0.3)
    xs_all = [r[x_key] for r in rows]
    if xs_all and all(isinstance(x, int) or (isinstance(x, float) and x.is_integer()) for x in xs_all):
        for ax in axes:  # the caller's axes need not share x
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if others:
        axes[0].legend(fontsize="small")
    unit = units.get(x_key, "")
    axes[-1].set_xlabel(f"{x_key} ({unit})" if unit else x_key)
    if with_err:
        # on the caller's figure the note goes to the top panel: its suptitle is the caller's
        (fig.suptitle if own else axes[0].set_title)("error bars: one standard deviation", fontsize="small")
    if own:
        fig.tight_layout()
    return fig
