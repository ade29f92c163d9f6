"""Figures like the paper's Fig. 4 (correlation probabilities) and Fig. 5 (finite-key rate vs block length).

matplotlib is imported lazily with the Agg backend so that the estimators never need a display.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .chsh import ALPHA_DEG, BETA_DEG
from .finitekey import FK_DEFAULTS, finite_key_length, min_block_length


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_correlations(res: dict, path) -> Path:
    """P(A = B) and P(A != B) for the 8 input pairs with the fitted sinusoids of the fidelity estimate."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
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
        ax.bar(pos - 0.2, ps, 0.4, yerr=err, label="P(A = B)", color="tab:blue")
        ax.bar(pos + 0.2, 1 - ps, 0.4, yerr=err, label="P(A ≠ B)", color="tab:orange")
        if vis[y] is not None:
            # the four angles are 22.5 deg apart: bar position is linear in alpha + beta
            tt = np.linspace(th[0] - 9, th[-1] + 9, 200)
            fit = (1 - vis[y] * np.cos(np.deg2rad(2 * tt))) / 2
            ax.plot((tt - th[0]) / 22.5 - 0.2, fit, "k--", lw=1, label=f"fit V = {vis[y]:.3f}")
        ax.set_xticks(pos, lab)
        ax.set_title(f"Y = {y} (β = {BETA_DEG[y]:+.1f}°)")
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("probability")
    axes[0].legend(fontsize=7, loc="best", framealpha=0.9)
    fig.suptitle(f"Correlation probabilities, {res['rounds']} rounds, S = {res['S']:.3f}" if res["S"] is not None
                 else "Correlation probabilities")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_finite_key(res: dict, path) -> Path:
    """Key rate per event l(N)/N versus block length N, with the asymptotic rate and N_min marked."""
    plt = _plt()
    fk = dict(FK_DEFAULTS, **res.get("finite_key", {}))
    S, Q0, Q1 = res["S"], res["Q0"], res["Q1"]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
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
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_plots(res: dict, directory) -> list[Path]:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    return [plot_correlations(res, d / "correlations.png"), plot_finite_key(res, d / "finite_key.png")]
