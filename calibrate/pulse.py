"""Arrival-time model of the heralding photons relative to the sync.

An atom is excited by a Gaussian pulse (literature: 21 ns FWHM) and decays with
the 5P3/2 lifetime (26.2 ns); the detector adds a Gaussian jitter.  The photon
arrival time is therefore a Gaussian (pulse and jitter in quadrature) plus an
exponential delay: an exponentially modified Gaussian (EMG) with centre ``mu``
(pulse centre, delay-corrected, relative to the sync), width ``sigma`` and
decay time ``tau``.  Background (dark counts, stray light) is flat.

Double emissions (``double``, the fraction of the signal clicks that come from them): an atom that
emits while the pulse is still on is re-excited and emits again.  Its first photon leaves at ``t1``,
uniform between the excitation and the end of the pulse (centre + FWHM/2; an excitation after that
emits at once), its last photon an exponential decay after ``t1``.  Both are detected alike, so half of
the double-emission clicks follow the density of ``t1`` (inside the pulse) and half that of ``t1 +
Exp(tau)`` (later than a single emission by a few ns).  Left out of the model, they pull a free decay
time ~4 % short and the width ~15 % narrow, and the fit misses the peak (issue 21: decay 25.2 ns for
the simulator's 26.2 ns); with them the decay time is recovered to its statistical error.

Afterpulses (:func:`afterpulse_counts`): each click may be followed, the dead time plus an exponential delay
later, by an afterpulse on the same detector.  Those of the pulse's own clicks rise a dead time after the pulse
and fall over hundreds of ns: a flat background cannot take them, and the decay time absorbs them.
"""
from __future__ import annotations

import functools

import numpy as np
from scipy.special import log_ndtr, ndtr, ndtri

PULSE_FWHM_PS = 21_000.0       # literature
LIFETIME_PS = 26_200.0         # literature, 5P3/2
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def emg_cdf(t, mu, sigma, tau):
    """P(arrival < t) for the EMG(mu, sigma, tau)."""
    t = np.asarray(t, dtype=np.float64)
    u = (t - mu) / sigma
    r = sigma / tau
    # exp(-(t-mu)/tau + r^2/2) * Phi(u - r), evaluated in logs so the tails neither overflow nor cancel
    second = np.exp(-(t - mu) / tau + 0.5 * r * r + log_ndtr(u - r))
    return np.clip(ndtr(u) - second, 0.0, 1.0)


def emg_pdf(t, mu, sigma, tau):
    t = np.asarray(t, dtype=np.float64)
    u = (t - mu) / sigma
    r = sigma / tau
    return np.exp(-(t - mu) / tau + 0.5 * r * r + log_ndtr(u - r)) / tau


def pulse_remaining(t, mu, sigma):
    """Fraction of the excitation pulse still to come at time t (Gaussian envelope)."""
    return ndtr(-(np.asarray(t, dtype=np.float64) - mu) / sigma)


def pulse_end(mu, sigma, fraction: float = 0.01):
    """Time after which less than ``fraction`` of the pulse energy remains."""
    return mu - sigma * ndtri(fraction)


_DBL_STEP_PS = 25.0
JITTER_PS = 350.0              # typical detector jitter (Gaussian sigma), smooths the double-emission densities
_dbl_cache: dict = {}


def _t1_density(sigma, step=_DBL_STEP_PS):
    """Density of a double emission's first photon ``t1`` relative to the pulse centre, on a grid (cached per
    ``sigma``): excitation ``t ~ N(0, sigma)``, ``t1 ~ U(t, E)`` for ``t < E = FWHM/2``, else ``t1 = t``."""
    key = (round(float(sigma), 3), step)
    hit = _dbl_cache.get(key)
    if hit is not None:
        return hit
    E = sigma * np.sqrt(2.0 * np.log(2.0))
    u = np.arange(-9.0 * sigma, E + 9.0 * sigma, step)
    mid = u + 0.5 * step
    phi = np.exp(-0.5 * (mid / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    before = mid < E
    dens = np.where(before, np.cumsum(np.where(before, phi / np.maximum(E - mid, 0.5 * step), 0.0)) * step, phi)
    # the detector's jitter smooths the density's log spike at the pulse end (and the fits' likelihood, which
    # would otherwise jump each time the spike crosses a bin edge)
    kx = np.arange(-4.0 * JITTER_PS, 4.0 * JITTER_PS + step, step)
    kern = np.exp(-0.5 * (kx / JITTER_PS) ** 2)
    dens = np.convolve(dens, kern / kern.sum(), mode="same")
    dens /= dens.sum() * step
    _dbl_cache.clear() if len(_dbl_cache) > 16 else None
    _dbl_cache[key] = (u, dens)
    return u, dens


def double_cdfs(x, sigma, tau, span_ps: float | None = None):
    """CDFs at ``x`` (relative to the pulse centre) of a double emission's first photon and of its last photon
    (first + Exp(tau))."""
    x = np.asarray(x, dtype=np.float64)
    hi = float(np.max(x)) if x.size else 0.0
    edges, first_cdf, last_cdf = _double_splines(float(sigma), float(tau), _extension(sigma, hi))
    xc = np.clip(x, edges[0], edges[-1])
    first, last = first_cdf(xc), last_cdf(xc)
    return np.where(x < edges[0], 0.0, np.clip(first, 0.0, 1.0)), np.where(x < edges[0], 0.0, np.clip(last, 0.0, 1.0))


def _extension(sigma, hi: float) -> int:
    """Grid steps past the first photon's density to reach ``hi``, rounded up to 64: a fit moving only the centre
    or the amplitudes then reuses the splines of its last (sigma, tau)."""
    u, _ = _t1_density(sigma)
    step = u[1] - u[0]
    n = int(np.ceil((max(hi, u[-1]) + step - u[-1]) / step)) + 1
    return -(-n // 64) * 64


def exponential_smooth(d: np.ndarray, a: float) -> np.ndarray:
    """y[n] = a y[n-1] + (1 - a) d[n] from y[-1] = 0, for d >= 0 and 0 <= a < 1: the late photon's density.

    In closed form per block, y[s + j] = a^(j+1) y[s-1] + (1 - a) a^j sum_i<=j a^-i d[s+i], with blocks short
    enough that a^-i stays finite; all terms are non-negative, so nothing cancels.  (scipy.signal.lfilter gives the
    same, but importing scipy.signal costs the calibration most of a second: it pulls in scipy.stats.)"""
    d = np.asarray(d, dtype=np.float64)
    out = np.empty_like(d)
    if d.size == 0:
        return out
    if a <= 0.0:
        out[:] = d
        return out
    rate = -np.log(a)
    block = int(max(1, min(d.size, 300.0 / rate)))
    j = np.arange(block, dtype=np.float64)
    grow, shrink = np.exp(rate * j), np.exp(-rate * j)
    carry = 0.0
    for s in range(0, d.size, block):
        n = min(block, d.size - s)
        out[s:s + n] = (1.0 - a) * shrink[:n] * np.cumsum(d[s:s + n] * grow[:n]) + a * shrink[:n] * carry
        carry = out[s + n - 1]
    return out


@functools.lru_cache(maxsize=32)
def _double_splines(sigma: float, tau: float, n_ext: int):
    u, dens = _t1_density(sigma)
    step = u[1] - u[0]
    grid = np.concatenate([u, u[-1] + step * np.arange(1, n_ext + 1)])
    d = np.concatenate([dens, np.zeros(n_ext)])
    a = np.exp(-step / tau)
    late = exponential_smooth(d, a)
    edges = np.concatenate([[grid[0]], grid + step])
    c_first = np.concatenate([[0.0], np.cumsum(d) * step])
    c_late = np.concatenate([[0.0], np.cumsum(late) * step])
    return edges, _CdfCurve(edges, c_first, d), _CdfCurve(edges, c_late, late)


class _CdfCurve:
    """A CDF given at ``edges`` with the density of each cell between them, as a piecewise cubic Hermite curve:
    the values at the edges, and there the slope of the two neighbouring cells' mean density.

    Cubic, not linear: with linear pieces every bin edge crosses a node at the same shift of the centre, and the
    fits' likelihood gets kinks every grid step that stall them; this curve's slope is continuous.  (Until
    2026-12-07 a scipy ``CubicSpline``: importing scipy.interpolate pulls in scipy.optimize and scipy.sparse, a
    third of a second of CPU competing with the calibration pass for the cores.)"""

    def __init__(self, edges: np.ndarray, cdf: np.ndarray, density: np.ndarray):
        self.x = edges
        self.y = cdf
        self.m = np.concatenate([density[:1], 0.5 * (density[:-1] + density[1:]), density[-1:]])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        i = np.clip(np.searchsorted(self.x, x, side="right") - 1, 0, self.x.size - 2)
        x0, h = self.x[i], self.x[i + 1] - self.x[i]
        t = (x - x0) / h
        t2 = t * t
        t3 = t2 * t
        return ((2 * t3 - 3 * t2 + 1) * self.y[i] + (t3 - 2 * t2 + t) * h * self.m[i]
                + (3 * t2 - 2 * t3) * self.y[i + 1] + (t3 - t2) * h * self.m[i + 1])


def signal_cdf(t, mu, sigma, tau, double=0.0):
    """P(arrival < t) of a signal click: single emissions (EMG) and, with ``double`` > 0, double emissions."""
    base = emg_cdf(t, mu, sigma, tau)
    if double <= 0:
        return base
    first, last = double_cdfs(np.asarray(t, dtype=np.float64) - mu, sigma, tau)
    return (1.0 - double) * base + 0.5 * double * (first + last)


@functools.lru_cache(maxsize=64)
def _increments(x: bytes, mu: float, sigma: float, tau: float, double: float) -> np.ndarray:
    """np.diff(signal_cdf(x, ...)) for the float64 bin edges ``x`` (as bytes: a cache key).  A fit's finite-difference
    Jacobian moves one parameter at a time, and most of them (amplitudes, backgrounds, the afterpulse number) leave
    the shape where it was: those model evaluations reuse it.  Read-only: shared between calls."""
    inc = np.diff(signal_cdf(np.frombuffer(x, dtype=np.float64), mu, sigma, tau, double))
    inc.flags.writeable = False
    return inc


def _cdf_increments(x: np.ndarray, mu, sigma, tau, double) -> np.ndarray:
    return _increments(np.ascontiguousarray(x, dtype=np.float64).tobytes(), float(mu), float(sigma), float(tau),
                       float(double))


def expected_counts(edges, mu, sigma, tau, signal, background_per_ps, cut=None, floor_per_ps=0.0, double=0.0):
    """Expected counts per bin: ``signal`` photons with the EMG shape plus a flat background.

    ``cut`` (conditional-sync recording, see :mod:`calibrate.delays`): nothing — photons nor
    background — arrives before ``cut``; ``floor_per_ps`` is a flat level that is not cut (clicks
    referred to a distant sync, e.g. in the gaps between bursts).
    """
    edges = np.asarray(edges, dtype=np.float64)
    ce = edges if cut is None else np.maximum(edges, cut)
    return signal * _cdf_increments(ce, mu, sigma, tau, double) + background_per_ps * np.diff(ce) \
        + floor_per_ps * np.diff(edges)


def afterpulse_counts(edges, mu, sigma, tau, signal, dead_ps, ap_tau_ps, cut=None, double=0.0):
    """Expected afterpulses per bin of a detector whose ``signal`` pulse clicks each give one afterpulse (scale
    by the probability per click): each lands the dead time plus an exponential delay (``ap_tau_ps``) after its
    click.  The clicks before ``cut`` are counted as parents too (they are not in the histogram, but their
    afterpulses are); afterpulses before ``cut`` are not.  On the simulator the afterpulses of the pulse's own
    clicks rise ~the dead time after the pulse and fall over hundreds of ns: left to a flat background they
    lengthen the fitted decay (issue 21: +36 ps of 26200 at ``--speedup`` 100, 1500 rounds)."""
    edges = np.asarray(edges, dtype=np.float64)
    w = float(edges[1] - edges[0])
    # the parents from where the pulse begins (the same bin grid, so one discrete convolution serves)
    n_pre = max(0, int(np.ceil((edges[0] - (mu - 8.0 * sigma)) / w)))
    ext = np.concatenate([edges[0] - w * np.arange(n_pre, 0, -1), edges])
    parents = signal * _cdf_increments(ext, mu, sigma, tau, double)
    # a parent at its bin's centre: the afterpulse's delay d = dead + Exp(ap_tau) lands in bin lag m when
    # d in [(m - 1/2) w, (m + 1/2) w)
    m = np.arange(ext.size)
    lo = np.maximum((m - 0.5) * w - dead_ps, 0.0)
    hi = np.maximum((m + 0.5) * w - dead_ps, 0.0)
    kern = np.exp(-lo / ap_tau_ps) - np.exp(-hi / ap_tau_ps)
    ap = np.convolve(parents, kern)[n_pre:ext.size - 1]
    if cut is not None:
        ap = ap * np.clip((edges[1:] - cut) / w, 0.0, 1.0)
    return ap
