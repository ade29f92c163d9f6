"""Arrival-time model of the heralding photons relative to the sync.

An atom is excited by a Gaussian pulse (literature: 21 ns FWHM) and decays with
the 5P3/2 lifetime (26.2 ns); the detector adds a Gaussian jitter.  The photon
arrival time is therefore a Gaussian (pulse and jitter in quadrature) plus an
exponential delay: an exponentially modified Gaussian (EMG) with centre ``mu``
(pulse centre, delay-corrected, relative to the sync), width ``sigma`` and
decay time ``tau``.  Background (dark counts, stray light) is flat.
"""
from __future__ import annotations

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


def expected_counts(edges, mu, sigma, tau, signal, background_per_ps, cut=None, floor_per_ps=0.0):
    """Expected counts per bin: ``signal`` photons with the EMG shape plus a flat background.

    ``cut`` (conditional-sync recording, see :mod:`calibrate.delays`): nothing — photons nor
    background — arrives before ``cut``; ``floor_per_ps`` is a flat level that is not cut (clicks
    referred to a distant sync, e.g. in the gaps between bursts).
    """
    edges = np.asarray(edges, dtype=np.float64)
    ce = edges if cut is None else np.maximum(edges, cut)
    return signal * np.diff(emg_cdf(ce, mu, sigma, tau)) + background_per_ps * np.diff(ce) \
        + floor_per_ps * np.diff(edges)
