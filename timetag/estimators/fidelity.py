"""Fidelity lower bound from the visibilities of sinusoidal fits (the paper's F >= 0.892(23) route).

For each Bob input y the correlator is fitted against the sum of analysis angles theta = alpha_x + beta_y
with the Psi+ model E(theta) = -V cos(2 theta) (``free_phase=True``: E = a cos 2theta + b sin 2theta,
V = sqrt(a^2 + b^2)); linear least squares, unweighted, errors propagated from the binomial sigmas.
The two visibilities are averaged; the fidelity to the maximally entangled state is bounded as for a
d x d isotropic state, F >= (1 + (d^2 - 1) V) / d^2.  d = 3 accounts for the third ground-state level
(5S1/2 F=1, mF=0) that can be populated (the paper's reference 35); d = 2 is the familiar (1 + 3V)/4.
With the paper's correlators this reproduces V = 0.869 / 0.888 and F = 0.892.
"""
from __future__ import annotations

import numpy as np

from .chsh import ALPHA_DEG, BETA_DEG


def fit_visibilities(E, E_err=None, *, free_phase: bool = False) -> dict:
    """Per Bob input y: {"V": [V_y0, V_y1], "V_err": [...], "phase_deg": [...]} from a (4, 2) E array."""
    E = np.asarray(E, dtype=float)
    err = np.full_like(E, np.nan) if E_err is None else np.asarray(E_err, dtype=float)
    V, V_err, phase = [], [], []
    for y in range(E.shape[1]):
        th = np.deg2rad(ALPHA_DEG + BETA_DEG[y])
        ok = np.isfinite(E[:, y])
        c, s, e, sg = np.cos(2 * th[ok]), np.sin(2 * th[ok]), E[ok, y], err[ok, y]
        if free_phase:
            M = np.column_stack([-c, -s])
            if ok.sum() < 2:
                V.append(np.nan); V_err.append(np.nan); phase.append(np.nan)
                continue
            pinv = np.linalg.pinv(M)
            ab = pinv @ e
            v = float(np.hypot(*ab))
            # d V / d E_i = (a pinv[0,i] + b pinv[1,i]) / V
            g = (ab[0] * pinv[0] + ab[1] * pinv[1]) / v if v > 0 else np.zeros(len(e))
            V.append(v)
            V_err.append(float(np.sqrt(np.nansum(g**2 * sg**2))) if np.all(np.isfinite(sg[g != 0])) else np.nan)
            phase.append(float(np.rad2deg(np.arctan2(ab[1], ab[0])) / 2))
        else:
            den = float(np.sum(c**2))
            informative = np.abs(np.cos(2 * th)) > 1e-9
            if den == 0 or not np.all(ok[informative]):  # a fit with missing points would be biased
                V.append(np.nan); V_err.append(np.nan); phase.append(0.0)
                continue
            V.append(float(-np.sum(c * e) / den))
            w = c != 0  # points at a node of the cosine carry no information on V
            V_err.append(float(np.sqrt(np.sum(c[w] ** 2 * sg[w] ** 2)) / den))
            phase.append(0.0)
    return {"V": V, "V_err": V_err, "phase_deg": phase, "free_phase": free_phase}


def fidelity_bound(V, V_err=None, *, d: int = 3) -> dict:
    """F >= (1 + (d^2 - 1) V_mean) / d^2 from a list of visibilities (averaged, errors in quadrature)."""
    V = np.asarray(V, dtype=float)
    vm = float(np.mean(V))
    ve = float("nan") if V_err is None else float(np.sqrt(np.sum(np.asarray(V_err, float) ** 2)) / len(V))
    k = (d * d - 1) / (d * d)
    return {"F": 1.0 / (d * d) + k * vm, "F_err": k * ve, "V_mean": vm, "V_mean_err": ve, "d": d}
