"""Per-detector delays from the arrival-time histograms.

Each detector's histogram (delay-corrected with the *current* delays) is fitted
with the pulse model of :mod:`calibrate.pulse` (binned Poisson likelihood; free
centre, width, decay time, signal and flat background).  The fitted centre
``mu_d`` says where that detector's photons arrive; the new delay moves it onto
the target position::

    new_delay[d] = old_delay[d] + (mu_d - target)

``target`` is the reference detector's centre (default: relative delays, the
reference keeps its delay) or an absolute expected pulse position.  Since all
detectors see the same emission profile, a model that is not exactly the true
pulse shape biases every centre alike and the relative delays stay right.

Conditional-sync recording (``sync_reference = 'next'``, ``cut=True``): the
hardware records only the first sync tick after a click, so a click that comes
*before* its attempt's own sync tick is referred to that tick, not to the next
one.  Measured from the next sync, each detector's histogram therefore lacks
everything earlier than its attempt's sync: a sharp edge, at the same true time
(the sync tick) for every detector.  The decision is taken on the detector's
electrical pulse, i.e. after the jitter, so the edge is not even jitter-broadened.
Its position in delay-corrected time moves one-to-one with the delay error, and
a sharp edge is located to ~1 / (N f) with N photons and f the pulse density at
the edge — far better than the ~sigma/sqrt(N) of the 9 ns wide pulse (a few 100
ps with 2e4 photons; the edge gives tens of ps).  The model then is the EMG cut at
``cut_d = mu_d - P`` with one offset ``P`` (pulse centre after the sync tick)
common to all detectors, so both the edge and the pulse shape inform ``mu_d``.
This measures the delays that make the conditional-sync logic's decision
instant coincide across detectors — the cable delays, as long as that logic sees
the detector pulses with the same relative delays as the tagger (true in the
simulator; in a lab, check the logic's input cabling or pass ``cut=False``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from timetag.errors import CalibrationError

from .fitting import poisson_fit
from .pulse import FWHM_TO_SIGMA, LIFETIME_PS, PULSE_FWHM_PS, expected_counts

MIN_SIGNAL = 200   # photons above background for a delay fit
_NS = 1000.0


@dataclass(frozen=True)
class PulseFit:
    channel: int
    mu: float           # ps, pulse centre (in the histogram's corrected coordinates)
    sigma: float        # ps, pulse width and jitter in quadrature
    tau: float          # ps, decay time
    signal: float       # photons in the pulse
    background: float   # counts per ps (flat)
    err: dict           # 1-sigma of the above
    deviance: float
    dof: int
    cut: float | None = None   # ps, conditional-sync edge (nothing earlier), None: no edge in the model
    floor: float = 0.0         # counts per ps not subject to the cut

    def model(self, edges):
        return expected_counts(edges, self.mu, self.sigma, self.tau, self.signal, self.background,
                               self.cut, self.floor)


@dataclass(frozen=True)
class DelayResult:
    fits: tuple[PulseFit, ...]
    target: float             # ps, corrected position every detector is moved onto
    target_err: float
    old: dict[int, int]
    new: dict[int, int]
    err: dict[int, float]     # ps, 1-sigma of each new delay (relative to the target)
    reference: int | None     # channel of the reference detector (None: absolute target)


def fit_pulse(counts, edges, *, channel: int = -1, fix_tau: float | None = None,
              what: str = "arrival histogram") -> PulseFit:
    """Fit one detector's arrival histogram (``counts`` per bin, ``edges`` in ps)."""
    n = np.asarray(counts, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    width = np.diff(edges)
    bg0 = max(float(np.median(n / width)), 1e-12)
    excess = n - bg0 * width
    total = float(excess.sum())
    if total < MIN_SIGNAL or n.sum() < MIN_SIGNAL:
        raise CalibrationError(f"{what} (channel {channel}): only {max(total, 0):.0f} photons above background, "
                               f"at least {MIN_SIGNAL} are needed to fit a delay")
    centers = 0.5 * (edges[1:] + edges[:-1])
    # smoothed peak -> start of the centre: the EMG peaks about one sigma after its centre
    k = max(1, int(round(4000.0 / np.median(width))))
    smooth = np.convolve(excess, np.ones(k) / k, mode="same")
    peak = float(centers[int(np.argmax(smooth))])
    sigma0 = PULSE_FWHM_PS * FWHM_TO_SIGMA
    tau0 = LIFETIME_PS if fix_tau is None else fix_tau

    def unpack(th):
        mu, ls, lt, la, lb = (th[0] * _NS, th[1], th[2] if fix_tau is None else np.log(fix_tau / _NS), th[3], th[4])
        return mu, np.exp(ls) * _NS, np.exp(lt) * _NS, np.exp(la), np.exp(lb)

    def model(th):
        mu, s, t, a, b = unpack(th)
        return expected_counts(edges, mu, s, t, a, b)

    best = None
    for shift in (0.0, 0.5, 1.0, 1.5):
        th0 = np.array([(peak - shift * sigma0) / _NS, np.log(sigma0 / _NS), np.log(tau0 / _NS),
                        np.log(total), np.log(bg0)])
        res = poisson_fit(model, th0, n, what=f"{what} (channel {channel})")
        if best is None or res.nll < best.nll:
            best = res
    mu, s, t, a, b = unpack(best.theta)
    e = best.err
    err = dict(mu=e[0] * _NS, sigma=e[1] * s, tau=(e[2] * t if fix_tau is None else 0.0), signal=e[3] * a,
               background=e[4] * b)
    if not (edges[0] - 5 * s < mu < edges[-1]) or a < MIN_SIGNAL / 2:
        raise CalibrationError(f"{what} (channel {channel}): no pulse found in the histogram range "
                               f"[{edges[0]:.0f}, {edges[-1]:.0f}) ps (fitted centre {mu:.0f} ps, {a:.0f} photons)")
    return PulseFit(channel, mu, s, t, a, b, err, best.deviance, best.dof)


def calibrate_delays(counts, edges, channels, old_delays: dict[int, int], *, reference: int | None = None,
                     pulse_position_ps: float | None = None, fix_tau: float | None = None,
                     shared_shape: bool = True, cut: bool = False) -> DelayResult:
    """New delays of ``channels`` from their histograms ``counts[k]`` (corrected with ``old_delays``).

    ``shared_shape``: after the per-detector fits, one joint fit with a common width and decay time
    (same pulse, same atom; jitter differences of a few 100 ps are negligible against the 9 ns pulse
    width), which takes the shape's correlation with the centre out of each detector's delay.

    ``pulse_position_ps`` given: every detector's pulse centre goes there (absolute).  Otherwise the
    ``reference`` channel (default: the first) keeps its delay and the others are aligned to it.

    ``cut``: the histograms come from conditional-sync recording ('next' rule) and end sharply at the
    attempt's sync tick (module docstring); the joint fit then includes that edge.
    """
    channels = [int(c) for c in channels]
    fits = tuple(fit_pulse(counts[k], edges, channel=c, fix_tau=fix_tau) for k, c in enumerate(channels))
    if cut:
        fits = _joint_cut_fit(np.asarray(counts), edges, fits, fix_tau)
    elif shared_shape and len(fits) > 1:
        fits = _joint_fit(np.asarray(counts), edges, fits, fix_tau)
    if pulse_position_ps is not None:
        target, target_err, ref = float(pulse_position_ps), 0.0, None
    else:
        ref = channels[0] if reference is None else int(reference)
        if ref not in channels:
            raise CalibrationError(f"reference detector {ref} is not one of the BSM channels {channels}")
        f = fits[channels.index(ref)]
        target, target_err = f.mu, f.err["mu"]
    new, err = {}, {}
    for c, f in zip(channels, fits):
        old = int(old_delays.get(c, 0))
        new[c] = old + int(round(f.mu - target))
        err[c] = 0.0 if c == ref else float(np.hypot(f.err["mu"], target_err))
    return DelayResult(fits, target, target_err, {c: int(old_delays.get(c, 0)) for c in channels}, new, err, ref)


def _joint_fit(counts, edges, fits, fix_tau):
    """Common sigma and tau, per-detector centre, signal and background."""
    nd = len(fits)
    sig0 = float(np.mean([f.sigma for f in fits]))
    tau0 = float(np.mean([f.tau for f in fits])) if fix_tau is None else fix_tau
    th0 = [np.log(sig0 / _NS), np.log(tau0 / _NS)]
    for f in fits:
        th0 += [f.mu / _NS, np.log(f.signal), np.log(max(f.background, 1e-12))]
    edges = np.asarray(edges, dtype=np.float64)

    def unpack(th):
        s = np.exp(th[0]) * _NS
        t = np.exp(th[1]) * _NS if fix_tau is None else fix_tau
        per = np.asarray(th[2:]).reshape(nd, 3)
        return s, t, per[:, 0] * _NS, np.exp(per[:, 1]), np.exp(per[:, 2])

    def model(th):
        s, t, mu, a, b = unpack(th)
        return np.concatenate([expected_counts(edges, mu[k], s, t, a[k], b[k]) for k in range(nd)])

    th0 = np.array(th0)
    if fix_tau is not None:
        # tau is not a parameter: keep the slot but hold it (zero Jacobian column -> pinv ignores it)
        pass
    res = poisson_fit(model, th0, counts.ravel(), what="arrival histograms (joint fit)")
    s, t, mu, a, b = unpack(res.theta)
    e = res.err
    out = []
    for k, f in enumerate(fits):
        err = dict(mu=e[2 + 3 * k] * _NS, sigma=e[0] * s, tau=(e[1] * t if fix_tau is None else 0.0),
                   signal=e[3 + 3 * k] * a[k], background=e[4 + 3 * k] * b[k])
        out.append(PulseFit(f.channel, float(mu[k]), s, t, float(a[k]), float(b[k]), err, res.deviance, res.dof))
    return tuple(out)


def _edge_start(n, edges, frac: float = 2e-3) -> float:
    """Where the histogram's counts begin (a starting value for the conditional-sync edge)."""
    c = np.cumsum(n)
    i = int(np.searchsorted(c, max(frac * c[-1], 1.0), "left"))
    return float(edges[min(i, len(edges) - 2)])


def _joint_cut_fit(counts, edges, fits, fix_tau):
    """Common sigma, tau and edge offset P; per detector centre (edge at mu - P), signal, background."""
    edges = np.asarray(edges, dtype=np.float64)
    width = np.diff(edges)
    nd = len(fits)
    cut0 = np.array([_edge_start(counts[k], edges) for k in range(nd)])
    floors = []
    for k in range(nd):
        left = edges[1:] < cut0[k] - 2_000
        wl = float(width[left].sum())
        # a flat level that is not cut (clicks referred to a distant sync): at least "one count" over the
        # empty side, so a stray click there cannot pin the edge
        floors.append(max(float(counts[k][left].sum()), 1.0) / max(wl, float(edges[-1] - edges[0])))
    floors = np.array(floors)
    m0 = float(fits[0].mu)
    sig0 = float(np.mean([f.sigma for f in fits]))
    tau0 = float(np.mean([f.tau for f in fits])) if fix_tau is None else fix_tau
    p0 = float(np.mean([f.mu for f in fits]) - cut0.mean())
    th0 = [np.log(sig0 / _NS), np.log(tau0 / _NS), p0 / _NS]
    for k, f in enumerate(fits):
        # start the centre from the edge (sharp, reliable) rather than the uncut fit (biased by the edge)
        th0 += [(cut0[k] + p0 - m0) / _NS, np.log(f.signal), np.log(max(f.background, 1e-12))]

    def unpack(th):
        s = np.exp(th[0]) * _NS
        t = np.exp(th[1]) * _NS if fix_tau is None else fix_tau
        P = th[2] * _NS
        per = np.asarray(th[3:]).reshape(nd, 3)
        return s, t, P, m0 + per[:, 0] * _NS, np.exp(per[:, 1]), np.exp(per[:, 2])

    def model(th):
        s, t, P, mu, a, b = unpack(th)
        return np.concatenate([expected_counts(edges, mu[k], s, t, a[k], b[k], mu[k] - P, floors[k])
                               for k in range(nd)])

    res = poisson_fit(model, np.array(th0), counts.ravel(), what="arrival histograms (joint fit with the "
                                                                 "conditional-sync edge)")
    s, t, P, mu, a, b = unpack(res.theta)
    e = res.err
    out = []
    for k, f in enumerate(fits):
        err = dict(mu=e[3 + 3 * k] * _NS, sigma=e[0] * s, tau=(e[1] * t if fix_tau is None else 0.0),
                   signal=e[4 + 3 * k] * a[k], background=e[5 + 3 * k] * b[k], offset=e[2] * _NS)
        out.append(PulseFit(f.channel, float(mu[k]), s, t, float(a[k]), float(b[k]), err, res.deviance, res.dof,
                            cut=float(mu[k] - P), floor=float(floors[k])))
    return tuple(out)
