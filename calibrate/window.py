"""The post-excitation-pulse acceptance window and its figure of merit.

Figure of merit (stated; all parameters named in :class:`FomParams`): the
expected asymptotic key rate per unit time, up to a constant factor,

    FOM(s, e) = sum over heralding pairs (i, j) of  R_ij(s, e) * r(V_ij(s, e))

for a window [s, e) on delay-corrected ``click - sync`` times, where for the
detectors i, j of a heralding pair (Psi+: same arm)

* eta_d = fraction of detector d's photons that arrive in the window (fitted
  pulse model); the true herald rate is proportional to eta_i * eta_j;
* beta_d = fraction of detector d's clicks in the window that are background
  (flat dark-count level of the fit); each click of a herald is background with
  probability beta_d, independently (accidental coincidences), so the purity is
  (1 - beta_i)(1 - beta_j) and the herald rate R_ij = eta_i eta_j / purity;
* c_d = kappa * mean over the accepted photons of the excitation pulse still to
  come after the photon (the chance the atom is re-excited and emits a second
  photon, which destroys the atom-photon entanglement);
* V_ij = V0 * purity * (1 - c_i)(1 - c_j) the visibility of the heralded state,
  S = 2 sqrt2 V, Q = (1 - V)/2, and r = 1 - h((1 + sqrt((S/2)^2 - 1))/2) - h(Q)
  the Devetak-Winter rate per round (Pironio et al. 2009 bound), 0 below S = 2.

The window is chosen on the histogram's bin grid (start and stop on bin edges)
as the maximum of the FOM; where the pulse ends (1 % of it left) is reported.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from timetag.errors import CalibrationError

from .pulse import emg_cdf, emg_pdf, pulse_end, pulse_remaining


@dataclass(frozen=True)
class FomParams:
    v0: float = 0.97        # placeholder: visibility without accidentals and re-excitation
    kappa: float = 0.5      # placeholder: re-excitation probability with the whole pulse still to come
    subsamples: int = 8     # integration points per bin for the contamination integral


@dataclass(frozen=True)
class DetectorProfile:
    """Arrival model of one detector on corrected times: EMG(mu, sigma, tau) photons + flat background."""

    mu: float
    sigma: float
    tau: float
    signal: float           # photons (any normalisation common with background)
    background: float       # counts per ps


@dataclass(frozen=True)
class WindowResult:
    start: int
    stop: int
    fom: float
    fom_relative: float     # FOM(chosen) / FOM(current window) (nan when the current one gives 0)
    pulse_end: float
    starts: np.ndarray      # grid of starts considered
    stops: np.ndarray
    curve_stop: np.ndarray  # FOM vs stop at the chosen start
    curve_start: np.ndarray # FOM vs start at the chosen stop
    fom_grid: np.ndarray    # FOM(start, stop)


def binary_entropy(p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-15, 1 - 1e-15)
    return -p * np.log2(p) - (1 - p) * np.log2(1 - p)


def key_rate_per_round(v):
    """Devetak-Winter rate per round for visibility V (S = 2 sqrt2 V, Q = (1-V)/2)."""
    v = np.asarray(v, dtype=np.float64)
    arg = np.clip(2 * v * v - 1, 0.0, None)            # (S/2)^2 - 1
    r = 1 - binary_entropy((1 + np.sqrt(arg)) / 2) - binary_entropy((1 - v) / 2)
    return np.where(2 * np.sqrt(2) * v > 2, np.clip(r, 0.0, None), 0.0)


def _bin_integrals(edges, prof: DetectorProfile, sub: int):
    """Per bin: photon fraction and photon fraction weighted by the pulse still to come."""
    edges = np.asarray(edges, dtype=np.float64)
    frac = np.diff(emg_cdf(edges, prof.mu, prof.sigma, prof.tau))
    w = np.diff(edges)
    x = edges[:-1, None] + (np.arange(sub)[None, :] + 0.5) / sub * w[:, None]
    cont = (emg_pdf(x, prof.mu, prof.sigma, prof.tau) * pulse_remaining(x, prof.mu, prof.sigma)).mean(axis=1) * w
    return frac, cont


def fom_grid(edges, profiles: dict[int, DetectorProfile], pairs, params: FomParams = FomParams()):
    """FOM for every window [edges[i], edges[j]) with i < j (others -inf). Returns (grid, starts, stops)."""
    edges = np.asarray(edges, dtype=np.float64)
    cum = {}
    for c, p in profiles.items():
        frac, cont = _bin_integrals(edges, p, params.subsamples)
        cum[c] = (np.concatenate([[0.0], np.cumsum(frac)]), np.concatenate([[0.0], np.cumsum(cont)]))
    L = edges[None, :] - edges[:, None]                   # [start index, stop index]
    valid = L > 0
    Ls = np.where(valid, L, 1.0)
    eta, beta, c2 = {}, {}, {}
    for c, p in profiles.items():
        F, C = cum[c]
        e = np.where(valid, F[None, :] - F[:, None], 0.0)
        cc = np.where(valid, C[None, :] - C[:, None], 0.0)
        sig = p.signal * e
        bg = p.background * Ls
        eta[c] = e
        beta[c] = np.where(valid, bg / np.maximum(sig + bg, 1e-300), 1.0)
        c2[c] = params.kappa * np.where(e > 0, cc / np.maximum(e, 1e-300), 1.0)
    total = np.zeros_like(L)
    for i, j in pairs:
        purity = (1 - beta[i]) * (1 - beta[j])
        v = params.v0 * purity * (1 - c2[i]) * (1 - c2[j])
        rate = eta[i] * eta[j] / np.maximum(purity, 1e-12)
        total += rate * key_rate_per_round(v)
    total = np.where(valid, total, -np.inf)
    return total, edges, edges


def choose_window(edges, profiles: dict[int, DetectorProfile], pairs, *, reference: str = "previous",
                  params: FomParams = FomParams(), current: tuple[int, int] | None = None) -> WindowResult:
    """The window on the bin grid of ``edges`` that maximises the FOM (respecting the sync_reference sign)."""
    if not pairs:
        raise CalibrationError("window: no heralding detector pairs (Psi+ needs two detectors in one arm)")
    grid, starts, stops = fom_grid(edges, profiles, pairs, params)
    if reference == "previous":
        grid = np.where(starts[:, None] >= 0, grid, -np.inf)
    else:
        grid = np.where(stops[None, :] <= 0, grid, -np.inf)
    i, j = np.unravel_index(int(np.argmax(grid)), grid.shape)
    best = float(grid[i, j])
    if not np.isfinite(best) or best <= 0:
        raise CalibrationError("window: no window gives a positive key rate with the fitted arrival model "
                               f"(v0={params.v0}, kappa={params.kappa}): check the histograms and FomParams")
    rel = float("nan")
    if current is not None:
        cur = fom_value(current, profiles, pairs, params)
        rel = best / cur if cur > 0 else float("nan")
    mus = [p.mu for p in profiles.values()]
    sig = max(p.sigma for p in profiles.values())
    return WindowResult(int(starts[i]), int(stops[j]), best, rel, float(pulse_end(np.mean(mus), sig)),
                        starts, stops, grid[i, :].copy(), grid[:, j].copy(), grid)


def fom_value(window, profiles, pairs, params: FomParams = FomParams()) -> float:
    g, _, _ = fom_grid(np.array(window, dtype=np.float64), profiles, pairs, params)
    return float(g[0, 1])


def psi_plus_pairs(bsm) -> list[tuple[int, int]]:
    """Detector pairs that herald Psi+ (same arm, orthogonal polarisation)."""
    out = []
    for arm in ("a", "b"):
        h = [d.channel for d in bsm if d.arm == arm and d.pol == "H"]
        v = [d.channel for d in bsm if d.arm == arm and d.pol == "V"]
        out += [(a, b) for a in h for b in v]
    return out


def psi_minus_pairs(bsm) -> list[tuple[int, int]]:
    out = []
    for d1 in bsm:
        for d2 in bsm:
            if d1.arm == "a" and d2.arm == "b" and d1.pol != d2.pol:
                out.append((d1.channel, d2.channel))
    return out
