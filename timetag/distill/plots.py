"""Plots of a distillation run: the final key length a block of N rounds would give, at the run's S and QBER.

Two finite-key curves (:func:`timetag.estimators.finitekey.finite_key_length`, the run's key/test fractions and
eps_sec): one with the error-correction efficiency this run measured, one with the paper's assumed f = 1.15; the
paper's minimum block (1.75e5 rounds, at the paper's S = 2.578 and Q = 0.078: a lower S needs more) and the run's
own final key are marked.  Functions take an optional ``ax``
and return the figure; saving goes through :func:`timetag.estimators.plots.save_figure` (custody).
"""
from __future__ import annotations

from dataclasses import asdict, is_dataclass

import numpy as np

from ..estimators.finitekey import finite_key_length, min_block_length
from ..estimators.plots import save_figure, target_axes

__all__ = ["key_length_figure", "key_length_curves", "write_key_length_plot", "PAPER_MIN_ROUNDS", "PAPER_F",
           "PLOT_NAME"]

PAPER_MIN_ROUNDS = 1.75e5   # the paper's minimum block length (its S = 2.578, Q = 0.078, eps = 1e-5, f = 1.15)
PAPER_F = 1.15
PLOT_NAME = "key_length.png"


def _report(rep) -> dict:
    return asdict(rep) if is_dataclass(rep) else dict(rep)


def key_length_curves(rep, n_rounds: np.ndarray | None = None) -> dict:
    """{'N', 'measured', 'assumed', 'f_measured', 'Q', 'p_key', 'p_test', 'n_min_measured', 'n_min_assumed'}:
    final key length l(N) (bits; nan where no key) for N rounds at the run's S, QBER, fractions and eps_sec."""
    rep = _report(rep)
    used = max(int(rep["used"]), 1)
    p_key, p_test = rep["key_rounds"] / used, rep["test_rounds"] / used
    Q = rep.get("qber_corrected") or rep.get("qber_sample") or (rep.get("code") or {}).get("design_qber")
    if Q is None:
        raise ValueError("the report has no QBER (no sample, no corrected frames, no design QBER)")
    f_meas = rep.get("f_measured") or (rep.get("code") or {}).get("f_design")
    N = np.logspace(4, 9, 241) if n_rounds is None else np.asarray(n_rounds, float)
    kw = {"eps": rep["eps_sec"], "p_key": p_key, "p_test": p_test}
    out = {"N": N, "f_measured": f_meas, "Q": float(Q), "p_key": p_key, "p_test": p_test}
    for name, f in (("measured", f_meas), ("assumed", PAPER_F)):
        if f is None:
            out[name], out[f"n_min_{name}"] = np.full(len(N), np.nan), float("nan")
            continue
        l = np.asarray(finite_key_length(N, rep["S"], float(Q), f_ec=float(f), **kw), float)
        out[name] = np.where(l > 0, l, np.nan)
        out[f"n_min_{name}"] = min_block_length(rep["S"], float(Q), f_ec=float(f), **kw)
    return out


def key_length_figure(rep, *, ax=None):
    """Final key length vs number of rounds (log-log): the measured-f curve, the f = 1.15 curve, the paper's
    minimum block and the run's final key.  ``rep``: a :class:`DistillReport` or its JSON object."""
    r = _report(rep)
    c = key_length_curves(r)
    fig, (ax,), own = target_axes(ax, 1, name="key_length_figure", figsize=(6, 4))
    fm = c["f_measured"]
    ax.loglog(c["N"], c["measured"], color="tab:blue",
              label=f"this run's f = {fm:.3f}" if fm is not None else "measured f: none (no decoded frame)")
    ax.loglog(c["N"], c["assumed"], color="tab:orange", ls="--", label=f"f = {PAPER_F} (the paper's assumption)")
    ax.axvline(PAPER_MIN_ROUNDS, color="tab:red", ls=":",
               label=f"paper's minimum {PAPER_MIN_ROUNDS:.3g} rounds (its S = 2.578, Q = 0.078)")
    if r.get("final_length", 0) > 0:
        ax.plot([r["used"]], [r["final_length"]], "k*", ms=10,
                label=f"this run: {r['final_length']} bits from {r['used']:.3g} rounds")
    ax.set_xlabel("rounds N (joined, used)")
    ax.set_ylabel("final key length (bits)")
    ax.set_title(f"Finite key at S = {r['S']:.3f}, QBER {c['Q']:.3f}, eps_sec = {r['eps_sec']:g}", fontsize=10)
    ax.legend(fontsize=8)
    if own:
        fig.tight_layout()
    return fig


def write_key_length_plot(rep, directory, *, force: bool = False, inputs=()) -> object:
    """Draw :func:`key_length_figure` into ``directory``/key_length.png through custody; returns the path."""
    from pathlib import Path
    return save_figure(key_length_figure(rep), Path(directory) / PLOT_NAME, inputs=inputs, force=force)
