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
    method: str = "pulse"     # 'edge': relative delays from the conditional-sync edge; 'pulse': pulse fit only
    note: str = ""            # why the edge was not used (when it was asked for)


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
                     shared_shape: bool = True, edge_hist: tuple | None = None,
                     fix_sigma: float | None = None) -> DelayResult:
    """New delays of ``channels`` from their histograms ``counts[k]`` (corrected with ``old_delays``).

    ``shared_shape``: after the per-detector fits, one joint fit with a common width and decay time
    (same pulse, same atom; jitter differences of a few 100 ps are negligible against the 9 ns pulse
    width), which takes the shape's correlation with the centre out of each detector's delay.

    ``pulse_position_ps`` given: every detector's pulse centre goes there (absolute).  Otherwise the
    ``reference`` channel (default: the first) keeps its delay and the others are aligned to it.

    ``edge_hist = (counts, edges)``: conditional-sync recording ('next' rule), whose histograms end
    sharply at the attempt's sync tick (module docstring); a finely binned histogram of the same clicks
    (best :class:`calibrate.histograms.GuardedArrivalHistogram`) in which each detector's edge is located.
    The relative delays then come from the edges, the pulse model from a fit with the edges fixed.

    ``fix_sigma``: hold the joint fits' Gaussian width (pulse and jitter in quadrature) at this value.
    The pulse's own width is set by the experiment (pulse shaper), while a free width absorbs the
    distortions the EMG does not model — two-photon emissions put their photons inside the pulse and
    their second photons later than a single emission's — and comes out ~15 % narrow on the simulator;
    the window's contamination term needs the true pulse envelope.
    """
    channels = [int(c) for c in channels]
    counts = np.asarray(counts)
    edges = np.asarray(edges)
    fits = tuple(fit_pulse(counts[k], edges, channel=c, fix_tau=fix_tau) for k, c in enumerate(channels))
    edge_err = None
    note = ""
    if edge_hist is not None:
        fine_counts, fine_edges = np.asarray(edge_hist[0]), np.asarray(edge_hist[1])
        try:
            located = [locate_edge(fine_counts[k], fine_edges) for k in range(len(channels))]
        except CalibrationError as exc:
            note = f"{exc}; delays from the pulse fit"
        else:
            cuts = np.array([c for c, _ in located])
            edge_err = {c: e for c, (_, e) in zip(channels, located)}
            fits = _joint_cut_fit(counts, edges, fits, fix_tau, cuts, fix_sigma)
    if edge_err is None and shared_shape and len(fits) > 1:
        fits = _joint_fit(counts, edges, fits, fix_tau, fix_sigma)
    if pulse_position_ps is not None:
        target, target_err, ref = float(pulse_position_ps), 0.0, None
    else:
        ref = channels[0] if reference is None else int(reference)
        if ref not in channels:
            raise CalibrationError(f"reference detector {ref} is not one of the BSM channels {channels}")
        f = fits[channels.index(ref)]
        target, target_err = f.mu, (f.err["mu"] if edge_err is None else edge_err[ref])
    new, err = {}, {}
    for c, f in zip(channels, fits):
        old = int(old_delays.get(c, 0))
        new[c] = old + int(round(f.mu - target))
        own = f.err["mu"] if edge_err is None or ref is None else edge_err[c]
        err[c] = 0.0 if c == ref else float(np.hypot(own, target_err))
    return DelayResult(fits, target, target_err, {c: int(old_delays.get(c, 0)) for c in channels}, new, err, ref,
                       "edge" if edge_err is not None else "pulse", note)


def _joint_fit(counts, edges, fits, fix_tau, fix_sigma=None):
    """Common sigma and tau, per-detector centre, signal and background."""
    nd = len(fits)
    sig0 = float(np.mean([f.sigma for f in fits]))
    tau0 = float(np.mean([f.tau for f in fits])) if fix_tau is None else fix_tau
    th0 = [np.log(sig0 / _NS), np.log(tau0 / _NS)]
    for f in fits:
        th0 += [f.mu / _NS, np.log(f.signal), np.log(max(f.background, 1e-12))]
    edges = np.asarray(edges, dtype=np.float64)

    def unpack(th):
        s = np.exp(th[0]) * _NS if fix_sigma is None else fix_sigma
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
        err = dict(mu=e[2 + 3 * k] * _NS, sigma=(e[0] * s if fix_sigma is None else 0.0),
                   tau=(e[1] * t if fix_tau is None else 0.0),
                   signal=e[3 + 3 * k] * a[k], background=e[4 + 3 * k] * b[k])
        out.append(PulseFit(f.channel, float(mu[k]), s, t, float(a[k]), float(b[k]), err, res.deviance, res.dof))
    return tuple(out)


def _edge_start(n, edges, span_ps: float = 2_000.0, min_counts: int = 3) -> float:
    """Where the histogram's counts begin: the first occupied bin followed by >= ``min_counts`` within
    ``span_ps`` (a lone stray click before the edge does not count).  Starting value for the edge."""
    n = np.asarray(n)
    c = np.concatenate([[0], np.cumsum(n)])
    k = max(1, int(round(span_ps / float(edges[1] - edges[0]))))
    for i in np.flatnonzero(n):
        if c[min(i + k, n.size)] - c[i] >= min_counts:
            return float(edges[i])
    return float(edges[0])


def locate_edge(n, edges, *, span_ps: float = 2_000.0, step_ps: float = 1.0):
    """Position of the conditional-sync edge in one detector's histogram, and its 1-sigma.

    Local change-point model over ``[c0 - span, c0 + span]`` around the first occupied stretch ``c0``:
    a constant density before the edge ``c`` (stray clicks, ~0) and another after it, both at their MLE
    given ``c``.  The profile likelihood is scanned on a ``step_ps`` grid — a sharp edge makes the
    likelihood kinked at bin edges, which gradient fits handle badly.  The error is half the width of
    the ``Delta(-log L) <= 1/2`` interval, at least 1/density (the first click's scatter behind a sharp
    edge; the estimate is corrected for its mean).  The pulse density's slope over the span biases ``c`` alike
    for every detector (same pulse), so relative delays keep no bias from it.
    """
    n = np.asarray(n, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    c0 = _edge_start(n, edges, span_ps)
    lo_i = max(int(np.searchsorted(edges, c0 - span_ps, "right")) - 1, 0)
    hi_i = min(int(np.searchsorted(edges, c0 + span_ps, "left")), n.size)
    e = edges[lo_i:hi_i + 1]
    k = n[lo_i:hi_i]
    w = np.diff(e)
    start, end = float(e[0]), float(e[-1])
    # the edge lies before the first occupied bin's end, and not far before it: the density right after an
    # accepted edge is >= 20 clicks / span, so a gap of many 1/rho before c0 would be a step of its own
    grid = np.arange(max(start, c0 - span_ps / 2) + step_ps, min(end - step_ps, c0 + 2 * float(w.max())), step_ps)
    after = np.clip(e[1:][None, :] - np.maximum(e[:-1][None, :], grid[:, None]), 0.0, w[None, :])  # [c, bin]
    before = w[None, :] - after
    rho_b = (k[None, :] * before / w).sum(axis=1) / (grid - start)
    rho_a = (k[None, :] * after / w).sum(axis=1) / (end - grid)
    m = rho_b[:, None] * before + rho_a[:, None] * after
    with np.errstate(divide="ignore", invalid="ignore"):
        nll = np.sum(m - np.where(k > 0, k * np.log(np.where(m > 0, m, 1e-300)), 0.0), axis=1)
    nll = np.where(rho_a > rho_b, nll, np.inf)        # the edge is where the counts begin
    j = int(np.argmin(nll))
    if not np.isfinite(nll[j]):
        raise CalibrationError("no conditional-sync edge: the counts do not begin with a step")
    # a sharp edge, not the smooth rise of the pulse: next to nothing before it, and right after it a
    # good fraction of the peak density.  Where a smooth rise first shows a few clicks, the density is a
    # tiny fraction of the peak however many photons there are; an edge's density grows with them.
    n_after = rho_a[j] * (end - grid[j])
    cs = np.concatenate([[0.0], np.cumsum(n)])
    kk = max(1, int(round((end - grid[j]) / float(np.median(w)))))
    peak = float(np.max(cs[kk:] - cs[:-kk])) if n.size > kk else float(cs[-1])
    if not (rho_b[j] < 0.2 * rho_a[j] and n_after >= 20 and n_after >= 0.05 * peak):
        raise CalibrationError(f"no conditional-sync edge near {c0:.0f} ps ({n_after:.0f} clicks in the "
                               f"{end - grid[j]:.0f} ps after it, {n_after / max(peak, 1):.3f} of the peak; density "
                               f"before/after {rho_b[j] / max(rho_a[j], 1e-300):.2f})")
    inside = grid[nll <= nll[j] + 0.5]
    # the first click after a sharp edge lies Exp(1/rho) behind it: that, not the (one-sided) likelihood
    # interval, is the scatter of the estimate
    err = max(0.5 * float(inside.max() - inside.min()), 1.0 / rho_a[j], float(np.median(w)) / np.sqrt(12))
    # the maximum sits at the first click, on average 1/rho behind the edge (less half a bin, where the
    # binned likelihood puts it inside the first occupied bin): remove that, or detectors with different
    # densities get different biases
    bias = max(1.0 / rho_a[j] - 0.5 * float(np.median(w)), 0.0)
    return float(grid[j]) - bias, err


def _joint_cut_fit(counts, edges, fits, fix_tau, cuts, fix_sigma=None):
    """Edges fixed at ``cuts``; common sigma, tau and offset P (centre = cut + P); per detector signal
    and background.  Gives the pulse model for the window and the absolute centre."""
    edges = np.asarray(edges, dtype=np.float64)
    nd = len(fits)
    sig0 = float(np.mean([f.sigma for f in fits]))
    tau0 = float(np.mean([f.tau for f in fits])) if fix_tau is None else fix_tau
    p0 = float(np.mean([f.mu - c for f, c in zip(fits, cuts)]))
    th0 = [np.log(sig0 / _NS), np.log(tau0 / _NS), p0 / _NS]
    for f in fits:
        th0 += [np.log(f.signal), np.log(max(f.background, 1e-12))]

    def unpack(th):
        s = np.exp(th[0]) * _NS if fix_sigma is None else fix_sigma
        t = np.exp(th[1]) * _NS if fix_tau is None else fix_tau
        per = np.asarray(th[3:]).reshape(nd, 2)
        return s, t, th[2] * _NS, np.exp(per[:, 0]), np.exp(per[:, 1])

    # bins wholly before a detector's edge take no part (stray clicks there say nothing about the pulse)
    use = np.concatenate([edges[1:] > cuts[k] for k in range(nd)])

    def model(th):
        s, t, P, a, b = unpack(th)
        m = np.concatenate([expected_counts(edges, cuts[k] + P, s, t, a[k], b[k], cuts[k]) for k in range(nd)])
        return np.where(use, m, 0.0)

    res = poisson_fit(model, np.array(th0), np.where(use, counts.ravel(), 0),
                      what="arrival histograms (joint fit with the conditional-sync edge)")
    s, t, P, a, b = unpack(res.theta)
    e = res.err
    out = []
    for k, f in enumerate(fits):
        err = dict(mu=float(e[2] * _NS), sigma=(e[0] * s if fix_sigma is None else 0.0),
                   tau=(e[1] * t if fix_tau is None else 0.0),
                   signal=e[3 + 2 * k] * a[k], background=e[4 + 2 * k] * b[k])
        out.append(PulseFit(f.channel, float(cuts[k] + P), s, t, float(a[k]), float(b[k]), err, res.deviance,
                            res.dof, cut=float(cuts[k])))
    return tuple(out)
