"""The post-excitation-pulse acceptance window and its figure of merit.

Figure of merit (stated; all parameters named in :class:`FomParams`): the
expected asymptotic key rate per unit time, up to a constant factor,

    FOM(s, e) = sum over heralding pairs (i, j) of  N_i N_j * r(V_ij)

for a window [s, e) on delay-corrected ``click - sync`` times.  Per detector d
(fitted arrival model of :mod:`calibrate.delays`: EMG centre mu, width sigma =
pulse and jitter, decay tau, ``signal`` photons, flat ``background``) the clicks
in the window are of three kinds:

* good photons  G_d = signal_d * P_EMG(s <= t < e): an atom's (last) photon,
  entangled with the atom;
* contaminated photons  C_d = p_double * signal_d * P_pulse(s <= t < e): the
  *first* photon of a two-photon emission.  An atom that decays while the
  excitation pulse is still on is re-excited and emits again, so that first
  photon no longer carries the atom's state (paper, Methods: these multi-photon
  events are why only photons after the end of the pulse are accepted; the
  filter costs a factor ~4 in rate and greatly raises the fidelity).  Such
  photons are emitted *during* the pulse, so their arrival density follows the
  pulse envelope (Gaussian, same centre and width as the fit: pulse and jitter),
  not the EMG: it dies off within a few sigma after the centre, where the
  EMG's exponential tail still has most of its photons.  ``p_double`` is their
  number per good photon;
* accidental clicks  B_d = background_d * (e - s) (dark counts, stray light).

Two clicks from different sources herald in proportion to N_i N_j with
N = G + C + B; in addition one atom alone heralds when both photons of its
double emission land in the window (the first during the pulse, the second an
exponential decay later).  That needs no photon from the other atom, so
relative to the good heralds (which need both atoms' photons in the window,
acceptance a^2) it weighs ~1/a more than the cross terms.  A herald carries the
entangled state only if both clicks are good photons of different atoms, so its
visibility is V_ij = V0 * (good heralds / all heralds) (a wrong click leaves the
atoms uncorrelated); see :func:`fom_grid` for the terms.  V0 is the visibility of a clean herald including the
read-out: ``v0`` if given, else ``v_state`` x ``ionisation_efficiency``^2 (an
atom that should be ionised but stays reads bright whatever its counts) x the
read-out contrasts the count histograms show (1 - e0 - e1 per lab, from the
threshold fits).  The defaults (0.94, 0.98) are placeholders near the paper's
values (atom-photon fidelities ~0.95/0.94, ionisation > 98 %); on the lmu2022
simulation they give V0 = 0.898 against its true 0.891.  The key rate
per round is r = 1 - h((1 + sqrt((S/2)^2 - 1))/2) - h(Q) with S = 2 sqrt2 V,
Q = (1 - V)/2 (Devetak-Winter with the Pironio et al. 2009 bound), 0 below
S = 2.  Since r falls steeply as V approaches the S = 2 limit, the window start
is pushed to where the pulse has ended: each ns earlier gains rate but adds
contaminated photons at the pulse-envelope density.

The window is chosen on the histogram's bin grid (start and stop on bin edges)
as the maximum of the FOM; where the pulse ends (1 % of it left) is reported.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr

from timetag.errors import CalibrationError

from .pulse import emg_cdf, pulse_end, pulse_remaining


@dataclass(frozen=True)
class FomParams:
    v0: float | None = None          # clean-herald visibility incl. read-out; None: v_state * readout_contrast
    v_state: float = 0.94            # placeholder: atom-atom state visibility of a clean herald (paper-like)
    ionisation_efficiency: float = 0.98   # per lab (literature > 98 %): read-out errors the counts cannot show
    readout_contrast: float = 1.0    # product of the labs' 1 - e0 - e1 from the count histograms
    p_double: float = 0.07           # placeholder: first photons of two-photon emissions per good photon

    @property
    def visibility(self) -> float:
        if self.v0 is not None:
            return float(self.v0)
        return self.v_state * self.ionisation_efficiency ** 2 * self.readout_contrast

    def describe(self) -> str:
        v = f"v0={self.v0}" if self.v0 is not None else (
            f"v0={self.visibility:.4f} (v_state={self.v_state} x ionisation {self.ionisation_efficiency}^2 x "
            f"count read-out contrast {self.readout_contrast:.4f})")
        return f"{v}, p_double={self.p_double}"


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


def _pulse_terms(edges, p: DetectorProfile):
    """At each edge x: pulse-envelope CDF P(x) and Q(x) = int_{-inf}^x pulse_pdf(t) exp((t - mu)/tau) dt."""
    z = (edges - p.mu) / p.sigma
    r = p.sigma / p.tau
    P = 1.0 - pulse_remaining(edges, p.mu, p.sigma)
    logQ = 0.5 * r * r + log_ndtr(z - r)
    return P, logQ


def fom_grid(edges, profiles: dict[int, DetectorProfile], pairs, params: FomParams = FomParams()):
    """FOM for every window [edges[i], edges[j]) with i < j (others -inf). Returns (grid, starts, stops).

    Per pair, in units of the product of the two detectors' photon numbers (module docstring):
    herald rate = (a_i + pd c_i + b_i)(a_j + pd c_j + b_j) + 2 pd g_ij, good part a_i a_j, where a is the
    EMG acceptance, c the pulse-envelope acceptance (first photons of double emissions), b the background
    relative to the photon number, and g the chance that a double emission puts both its photons — the
    first during the pulse, the second an exponential decay later — into the window (one atom making a
    two-click pattern: it needs no photon from the other atom, so it weighs ~1/a more than the cross terms).
    """
    edges = np.asarray(edges, dtype=np.float64)
    L = edges[None, :] - edges[:, None]                   # [start index, stop index]
    valid = L > 0
    Ls = np.where(valid, L, 0.0)
    pd = params.p_double
    acc, tot1, same = {}, {}, {}
    for c, p in profiles.items():
        F = emg_cdf(edges, p.mu, p.sigma, p.tau)
        P, logQ = _pulse_terms(edges, p)
        a = np.where(valid, F[None, :] - F[:, None], 0.0)
        cc = np.where(valid, P[None, :] - P[:, None], 0.0)
        # g = int_s^e pdf(t) (1 - exp(-(e - t)/tau)) dt = c - exp(-(e - mu)/tau) (Q(e) - Q(s)), in logs
        with np.errstate(over="ignore", invalid="ignore"):
            sub = np.exp(logQ[None, :] - (edges[None, :] - p.mu) / p.tau) \
                - np.exp(logQ[:, None] - (edges[None, :] - p.mu) / p.tau)
        g = np.where(valid, np.clip(cc - np.nan_to_num(sub, nan=0.0, posinf=0.0), 0.0, None), 0.0)
        b = p.background * Ls / max(p.signal, 1e-300)
        acc[c], tot1[c], same[c] = a, a + pd * cc + b, g
    v0 = params.visibility
    total = np.zeros_like(L)
    for i, j in pairs:
        si, sj = profiles[i].signal, profiles[j].signal
        rate = tot1[i] * tot1[j] + pd * (same[i] + same[j])
        good = np.where(valid & (rate > 0), acc[i] * acc[j] / np.maximum(rate, 1e-300), 0.0)
        total += si * sj * rate * key_rate_per_round(v0 * good)
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
                               f"({params.describe()}): check the histograms and FomParams")
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
