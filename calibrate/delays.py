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

from dataclasses import dataclass, replace

import numpy as np

from timetag.errors import CalibrationError

from .fitting import poisson_fit
from .pulse import FWHM_TO_SIGMA, LIFETIME_PS, PULSE_FWHM_PS, afterpulse_counts, expected_counts

MIN_SIGNAL = 200   # photons above background for a delay fit
_NS = 1000.0
# The dead-time loss factor (photons per detector and attempt) is fitted on a linear scale in units of KAPPA0,
# free to go below 0: at low detection efficiency it is consistent with 0, and on a log scale (positive by
# construction) it ran off to 0 in about half the --speedup 1 runs and switched the term off there, mixing two sizes
# of error bar on the decay time (pull sd 0.62).
KAPPA0 = 0.05
DOUBLE0 = 0.1      # starting value of the double-emission fraction of the signal (calibrate.pulse)
# Starting value of the afterpulses per click, fitted as a log: an afterpulse rate below 0 would take the late
# clicks from the flat background, and the window's background with them (seen on a small synthetic run).
AP0 = 0.005
# The afterpulses' delay beyond the dead time (exponential mean): a property of the detectors, taken as known.
# The histogram's ~200 ns after the pulse cannot tell it from a flat background (fitted free it runs off to 0 or
# to infinity), while the afterpulses' amplitude is fitted.  Measured on the simulator (--speedup 100, 1500
# rounds, 10 seeds): assuming 150 / 300 / 600 ns moves the fitted decay by +1 / +12 / +20 ps (error 41-55 ps).
AFTERPULSE_TAU_PS = 300_000.0


def _logit(p):
    return float(np.log(p / (1.0 - p)))


def _expit(x):
    return float(0.5 * (1.0 + np.tanh(0.5 * x)))   # 1 / (1 + e^-x) without overflow


def _overdispersed(res, n_used: int | None = None):
    """The fit's covariance scaled by its deviance per degree of freedom when that exceeds 1: what the model
    leaves out shows as excess scatter of the bins, and the error bars grow with it (quasi-likelihood)."""
    dof = (res.dof if n_used is None else n_used - res.theta.size)
    if dof <= 0 or not np.isfinite(res.deviance):
        return res
    phi = max(1.0, res.deviance / dof)
    return replace(res, cov=res.cov * phi, dof=dof)


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
    double: float = 0.0        # fraction of the signal clicks from double emissions (calibrate.pulse)
    afterpulse: float = 0.0    # afterpulses per signal click (calibrate.pulse.afterpulse_counts)
    afterpulse_tau_ps: float = 0.0   # ps, their mean delay beyond the dead time (assumed, not fitted)
    dead_time_ps: float = 0.0

    def model(self, edges):
        m = expected_counts(edges, self.mu, self.sigma, self.tau, self.signal, self.background,
                            self.cut, self.floor, self.double)
        if self.afterpulse > 0:
            m = m + self.afterpulse * afterpulse_counts(edges, self.mu, self.sigma, self.tau, self.signal,
                                                        self.dead_time_ps, self.afterpulse_tau_ps, self.cut,
                                                        self.double)
        return m


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
                     fix_sigma: float | None = None, dead_time_ps: float | None = None,
                     afterpulse_tau_ps: float | None = AFTERPULSE_TAU_PS) -> DelayResult:
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

    ``afterpulse_tau_ps``: the joint fits model the afterpulses of the pulse's own clicks (one fitted number per
    click, each afterpulse the dead time plus an exponential delay of this mean after its click; see
    :data:`AFTERPULSE_TAU_PS`); None: no afterpulse term.  Left to the flat background they lengthen the decay
    time (issue 21: pull mean +0.7 at every scale of the simulator).
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
            located = locate_edges([fine_counts[k] for k in range(len(channels))], fine_edges)
        except CalibrationError as exc:
            note = f"{exc}; delays from the pulse fit"
        else:
            cuts = np.array([c for c, _ in located])
            edge_err = {c: e for c, (_, e) in zip(channels, located)}
            fits = _joint_cut_fit(counts, edges, fits, fix_tau, cuts, fix_sigma, dead_time_ps, afterpulse_tau_ps)
    if edge_err is None and shared_shape and len(fits) > 1:
        fits = _joint_fit(counts, edges, fits, fix_tau, fix_sigma, dead_time_ps, afterpulse_tau_ps)
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


def _blocked(counts, edges, dead_time_ps):
    """Per detector and bin: the detector's own clicks in the dead time before the bin, as a fraction of all its
    clicks (from the histogram itself).  A click is lost when the same detector clicked less than the dead time
    before it in the same attempt, which happens in proportion to this (at high detection efficiency, e.g. the
    simulator's ``--speedup`` 20000, eta = 0.4, the pulse's tail loses clicks to its own front); the fits scale
    it by one free factor ``kappa`` (photons per detector and attempt).  None: no dead time given."""
    if dead_time_ps is None or dead_time_ps <= 0:
        return None
    counts = np.asarray(counts, dtype=np.float64)
    w = float(np.median(np.diff(edges)))
    k = max(1, int(round(dead_time_ps / w)))
    c = np.concatenate([np.zeros((counts.shape[0], 1)), np.cumsum(counts, axis=1)], axis=1)
    i = np.arange(counts.shape[1])
    # clicks in [t - D, t) for a bin's centre t: the k bins before it (half of the bin itself)
    r = c[:, i] - c[:, np.maximum(i - k, 0)] + 0.5 * counts
    return r / np.maximum(c[:, -1:], 1.0)


class _AfterpulseTerm:
    """The afterpulses of the pulse's own clicks (:func:`calibrate.pulse.afterpulse_counts`), their number per
    click fitted (slot ``at`` of the parameter vector, as a log).  ``ap_tau_ps`` None: no term."""

    def __init__(self, dead_time_ps, ap_tau_ps, at: int):
        self.dead = float(dead_time_ps or 0.0)
        self.tau = ap_tau_ps
        self.at = at
        self.th0 = [] if ap_tau_ps is None else [np.log(AP0)]

    def counts(self, th, edges, mu, s, t, a, cut, q):
        if self.tau is None:
            return 0.0
        return np.exp(th[self.at]) * afterpulse_counts(edges, mu, s, t, a, self.dead, self.tau, cut, q)

    def fields(self, th, e) -> tuple[dict, float]:
        """PulseFit's afterpulse fields and the error of the number per click."""
        if self.tau is None:
            return {}, 0.0
        p = float(np.exp(th[self.at]))
        return dict(afterpulse=p, afterpulse_tau_ps=float(self.tau), dead_time_ps=self.dead), float(e[self.at] * p)


def _best_of(model, th0, counts, i_tau, fix_tau, what):
    """The fit from ``th0`` and from the literature decay time (slot ``i_tau``), whichever fits better: started
    from the single-detector fits alone, the joint fit can stop in the valley where a longer decay trades for an
    earlier centre (seen at high detection efficiency)."""
    th0 = np.asarray(th0, dtype=np.float64)
    best = poisson_fit(model, th0, counts, what=what)
    if fix_tau is None:
        alt = th0.copy()
        alt[i_tau] = np.log(LIFETIME_PS / _NS)
        try:
            other = poisson_fit(model, alt, counts, what=what)
        except CalibrationError:
            other = None
        if other is not None and other.nll < best.nll:
            best = other
    return best


def _joint_fit(counts, edges, fits, fix_tau, fix_sigma=None, dead_time_ps=None,
               afterpulse_tau_ps=AFTERPULSE_TAU_PS):
    """Common sigma and tau, per-detector centre, signal and background."""
    nd = len(fits)
    sig0 = float(np.mean([f.sigma for f in fits]))
    tau0 = float(np.mean([f.tau for f in fits])) if fix_tau is None else fix_tau
    blocked = _blocked(counts, edges, dead_time_ps)
    th0 = [np.log(sig0 / _NS), np.log(tau0 / _NS), _logit(DOUBLE0)]
    for f in fits:
        th0 += [f.mu / _NS, np.log(f.signal), np.log(max(f.background, 1e-12))]
    if blocked is not None:
        th0.append(1.0)
    ap = _AfterpulseTerm(dead_time_ps, afterpulse_tau_ps, len(th0))
    th0 += ap.th0
    edges = np.asarray(edges, dtype=np.float64)

    def unpack(th):
        s = np.exp(th[0]) * _NS if fix_sigma is None else fix_sigma
        t = np.exp(th[1]) * _NS if fix_tau is None else fix_tau
        per = np.asarray(th[3:3 + 3 * nd]).reshape(nd, 3)
        return s, t, per[:, 0] * _NS, np.exp(per[:, 1]), np.exp(per[:, 2]), _expit(th[2])

    def model(th):
        s, t, mu, a, b, q = unpack(th)
        m = [expected_counts(edges, mu[k], s, t, a[k], b[k], double=q)
             + ap.counts(th, edges, mu[k], s, t, a[k], None, q) for k in range(nd)]
        if blocked is not None:
            m = [mk * np.clip(1.0 - th[3 + 3 * nd] * KAPPA0 * blocked[k], 0.0, 2.0) for k, mk in enumerate(m)]
        return np.concatenate(m)

    th0 = np.array(th0)
    if fix_tau is not None:
        # tau is not a parameter: keep the slot but hold it (zero Jacobian column -> pinv ignores it)
        pass
    res = _overdispersed(_best_of(model, th0, counts.ravel(), 1, fix_tau, "arrival histograms (joint fit)"))
    s, t, mu, a, b, q = unpack(res.theta)
    e = res.err
    ap_fields, ap_err = ap.fields(res.theta, e)
    out = []
    for k, f in enumerate(fits):
        err = dict(mu=e[3 + 3 * k] * _NS, sigma=(e[0] * s if fix_sigma is None else 0.0),
                   tau=(e[1] * t if fix_tau is None else 0.0), double=e[2] * q * (1 - q),
                   signal=e[4 + 3 * k] * a[k], background=e[5 + 3 * k] * b[k])
        err["afterpulse"] = ap_err
        out.append(PulseFit(f.channel, float(mu[k]), s, t, float(a[k]), float(b[k]), err, res.deviance, res.dof,
                            double=float(q), **ap_fields))
    return tuple(out)


def _edge_start(n, edges, span_ps: float = 2_000.0, min_counts: int = 3, with_step: bool = False):
    """Where the counts jump from (next to) nothing: the bin that best splits a window of ``span_ps`` before
    it from one after it (largest likelihood ratio of two densities against one), among the bins with at most a
    tenth as many counts before as after.  Stray clicks before the edge, or a cluster of them, do not move it:
    the ratio is largest where the bulk of the counts begins.  Returns where the counts begin near it (a stray
    click up to half a span before the step counts) and, with ``with_step``, also the step itself: the change
    point is searched between the two (issue 21: a lone stray click 540 ps before the edge used to end the
    search there, 480 ps off with a 4 ps error bar).  Starting value for :func:`locate_edge`."""
    n = np.asarray(n, dtype=np.float64)
    if n.sum() < min_counts:
        return (float(edges[0]), float(edges[0])) if with_step else float(edges[0])
    k = max(1, int(round(span_ps / float(edges[1] - edges[0]))))
    c = np.concatenate([np.zeros(k), np.cumsum(n), np.full(k, n.sum())])
    i = np.arange(n.size) + k
    a = c[i] - c[i - k]            # counts in the k bins before bin i
    b = c[i + k] - c[i]            # counts in bin i and the k - 1 after it
    with np.errstate(divide="ignore", invalid="ignore"):
        tot = a + b
        llr = np.where(b > 0, b * np.log(2 * b / tot), 0.0) + np.where(a > 0, a * np.log(2 * a / tot), 0.0)
    ok = (a <= 0.1 * b) & (b >= min_counts)
    if not ok.any():
        first = float(edges[int(np.flatnonzero(n)[0])]) if n.any() else float(edges[0])
        return (first, first) if with_step else first
    j = int(np.argmax(np.where(ok, llr, -np.inf)))
    # the ratio's maximum scatters by a few 1/density: the counts begin at the first occupied bin that has
    # ``min_counts`` within the span, searched from half a span before it
    cs = np.concatenate([[0.0], np.cumsum(n)])
    i0 = max(int(np.searchsorted(edges, float(edges[j]) - span_ps / 2, "left")), 0)
    start = float(edges[j])
    for i in np.flatnonzero(n[i0:]) + i0:
        if cs[min(i + k, n.size)] - cs[i] >= min_counts:
            start = float(edges[i])
            break
    return (start, max(start, float(edges[j]))) if with_step else start


EDGE_MIN_LLR = 25.0    # 2 Delta log L of a step over a smooth (log-linear) rise: ~5 sigma
EDGE_MIN_CLICKS = 20


def _loglinear_nll(k, e):
    """Smallest -log L of a smooth, log-linear density (no step) over the bins ``e`` with counts ``k``."""
    x = 0.5 * (e[1:] + e[:-1])
    x = (x - x.mean()) / max(float(np.ptp(e)), 1.0)
    w = np.diff(e)
    tot = max(float(k.sum()), 1e-3)

    def model(th):
        return np.exp(th[0] + th[1] * x) * w

    best = None
    for slope in (0.0, 3.0, 8.0):
        th0 = np.array([np.log(tot / float(w.sum())) - 0.3 * slope, slope])
        try:
            r = poisson_fit(model, th0, k, what="edge test")
        except CalibrationError:
            continue
        if best is None or r.nll < best:
            best = r.nll
    return np.inf if best is None else float(best)


def _step_llr(n, edges, c, span_ps, want: int = 150, max_span_ps: float = 12_000.0) -> float:
    """2 Delta log L of a step at ``c`` (flat before, log-linear after) over a smooth log-linear density
    without a step, over a span either side of ``c`` grown from ``span_ps`` until ``want`` clicks lie after it
    (at most ``max_span_ps``): with few clicks a longer stretch of the pulse's rise tells a step from a slope."""
    cs = np.concatenate([[0.0], np.cumsum(n)])
    i_c = int(np.clip(np.searchsorted(edges, c, "left"), 0, n.size))
    sp = span_ps
    while True:
        i_hi = min(int(np.searchsorted(edges, c + sp, "left")), n.size)
        if cs[i_hi] - cs[i_c] >= want or sp >= max_span_ps:
            break
        sp *= 1.5
    i_lo = max(int(np.searchsorted(edges, c - sp, "right")) - 1, 0)
    if i_hi - i_c < 3 or i_c - i_lo < 1:
        return 0.0
    k, e = n[i_lo:i_hi], edges[i_lo:i_hi + 1]
    kb, eb = n[i_lo:i_c], edges[i_lo:i_c + 1]
    ka, ea = n[i_c:i_hi], edges[i_c:i_hi + 1]
    nb, lb = float(kb.sum()), float(eb[-1] - eb[0])
    nll_b = nb - nb * np.log(nb / lb) if nb > 0 else 0.0      # flat before the step, at its MLE (per ps)
    nll_b -= float(np.sum(kb * np.log(np.diff(eb))))           # (per bin, as the log-linear fits count)
    return 2.0 * (_loglinear_nll(k, e) - (nll_b + _loglinear_nll(ka, ea)))


def locate_edge(n, edges, *, span_ps: float = 2_000.0, step_ps: float = 1.0, min_llr: float | None = None):
    """Position of the conditional-sync edge in one detector's histogram, and its 1-sigma.

    Local change-point model over ``[c0 - span, c0 + span]`` around the start ``c0`` of the counts
    (:func:`_edge_start`): a constant density before the edge ``c`` (stray clicks, ~0) and another after it,
    both at their MLE given ``c``.  The profile likelihood is scanned on a ``step_ps`` grid — a sharp edge makes
    the likelihood kinked at bin edges, which gradient fits handle badly.  The error is half the width of the
    ``Delta(-log L) <= 1/2`` interval, at least 1/density (the first click's scatter behind a sharp edge; the
    estimate is corrected for its mean) and at least the bin width / sqrt(12).  The pulse density's slope over
    the span biases ``c`` alike for every detector (same pulse), so relative delays keep no bias from it.

    The step is accepted when it is a step and not the smooth rise of a pulse: at least
    :data:`EDGE_MIN_CLICKS` clicks after it, less than a fifth of their density before it, and the step model
    beats a smooth log-linear density over the same span by ``2 Delta log L >=`` :data:`EDGE_MIN_LLR` (a
    significance, whatever the pulse's peak: an edge low on the pulse's rise is still an edge).
    ``min_llr``: that threshold instead (:func:`calibrate_delays` asks for less per detector and for
    :data:`EDGE_MIN_LLR` over all of them together, see :func:`locate_edges`).
    """
    pos, err, _ = _locate_edge(n, edges, span_ps, step_ps, EDGE_MIN_LLR if min_llr is None else min_llr)
    return pos, err


EDGE_MIN_LLR_EACH = 9.0   # per detector when all detectors' edges are asked for together (~3 sigma each)


def locate_edges(counts, edges, *, span_ps: float = 2_000.0):
    """Every detector's edge (``counts[k]``): each must be a step at ``2 Delta log L >=``
    :data:`EDGE_MIN_LLR_EACH`, and all together at :data:`EDGE_MIN_LLR` — the edge is the lab's (conditional
    sync recording), so the evidence adds up over its detectors.  Returns ``[(position, error), ...]``."""
    out = [_locate_edge(np.asarray(c), edges, span_ps, 1.0, EDGE_MIN_LLR_EACH) for c in counts]
    total = float(sum(x[2] for x in out))
    if total < EDGE_MIN_LLR:
        raise CalibrationError(f"no conditional-sync edge: the detectors' steps together beat a smooth rise by "
                               f"2 dlogL = {total:.1f}, {EDGE_MIN_LLR:.0f} needed (too few clicks at the edge)")
    return [(p, e) for p, e, _ in out]


def _locate_edge(n, edges, span_ps, step_ps, min_llr):
    n = np.asarray(n, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    c0, c1 = _edge_start(n, edges, span_ps, with_step=True)
    lo_i = max(int(np.searchsorted(edges, c0 - span_ps, "right")) - 1, 0)
    hi_i = min(int(np.searchsorted(edges, c1 + span_ps, "left")), n.size)
    e = edges[lo_i:hi_i + 1]
    k = n[lo_i:hi_i]
    w = np.diff(e)
    start, end = float(e[0]), float(e[-1])
    # the edge lies before the first occupied bin's end, and not far before it: the density right after an
    # accepted edge is >= 20 clicks / span, so a gap of many 1/rho before c0 would be a step of its own
    grid = np.arange(max(start, c0 - span_ps / 2) + step_ps, min(end - step_ps, c1 + 2 * float(w.max())), step_ps)
    if grid.size == 0 or k.sum() == 0:
        raise CalibrationError("no conditional-sync edge: no counts in the histogram range")
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
    n_after = rho_a[j] * (end - grid[j])
    llr = _step_llr(n, edges, float(grid[j]), span_ps) if n_after >= EDGE_MIN_CLICKS else 0.0
    if not (rho_b[j] < 0.2 * rho_a[j] and n_after >= EDGE_MIN_CLICKS and llr >= min_llr):
        raise CalibrationError(f"no conditional-sync edge near {c0:.0f} ps ({n_after:.0f} clicks in the "
                               f"{end - grid[j]:.0f} ps after it, density before/after "
                               f"{rho_b[j] / max(rho_a[j], 1e-300):.2f}; a step beats a smooth rise by "
                               f"2 dlogL = {llr:.1f}, {min_llr:.0f} needed)")
    inside = grid[nll <= nll[j] + 0.5]
    # the first click after a sharp edge lies Exp(1/rho) behind it: that, not the (one-sided) likelihood
    # interval, is the scatter of the estimate
    err = max(0.5 * float(inside.max() - inside.min()), 1.0 / rho_a[j], float(np.median(w)) / np.sqrt(12))
    # the maximum sits at the first click, on average 1/rho behind the edge (less half a bin, where the
    # binned likelihood puts it inside the first occupied bin): remove that, or detectors with different
    # densities get different biases
    bias = max(1.0 / rho_a[j] - 0.5 * float(np.median(w)), 0.0)
    return float(grid[j]) - bias, err, llr


def _joint_cut_fit(counts, edges, fits, fix_tau, cuts, fix_sigma=None, dead_time_ps=None,
                   afterpulse_tau_ps=AFTERPULSE_TAU_PS):
    """Edges fixed at ``cuts``; common sigma, tau and offset P (centre = cut + P); per detector signal
    and background.  Gives the pulse model for the window and the absolute centre."""
    edges = np.asarray(edges, dtype=np.float64)
    nd = len(fits)
    sig0 = float(np.mean([f.sigma for f in fits]))
    tau0 = float(np.mean([f.tau for f in fits])) if fix_tau is None else fix_tau
    p0 = float(np.mean([f.mu - c for f, c in zip(fits, cuts)]))
    blocked = _blocked(counts, edges, dead_time_ps)
    th0 = [np.log(sig0 / _NS), np.log(tau0 / _NS), p0 / _NS, _logit(DOUBLE0)]
    for f in fits:
        th0 += [np.log(f.signal), np.log(max(f.background, 1e-12))]
    if blocked is not None:
        th0.append(1.0)
    ap = _AfterpulseTerm(dead_time_ps, afterpulse_tau_ps, len(th0))
    th0 += ap.th0

    def unpack(th):
        s = np.exp(th[0]) * _NS if fix_sigma is None else fix_sigma
        t = np.exp(th[1]) * _NS if fix_tau is None else fix_tau
        per = np.asarray(th[4:4 + 2 * nd]).reshape(nd, 2)
        return s, t, th[2] * _NS, np.exp(per[:, 0]), np.exp(per[:, 1]), _expit(th[3])

    # bins wholly before a detector's edge take no part (stray clicks there say nothing about the pulse)
    use = np.concatenate([edges[1:] > cuts[k] for k in range(nd)])

    def model(th):
        s, t, P, a, b, q = unpack(th)
        m = [expected_counts(edges, cuts[k] + P, s, t, a[k], b[k], cuts[k], double=q)
             + ap.counts(th, edges, cuts[k] + P, s, t, a[k], cuts[k], q) for k in range(nd)]
        if blocked is not None:
            m = [mk * np.clip(1.0 - th[4 + 2 * nd] * KAPPA0 * blocked[k], 0.0, 2.0) for k, mk in enumerate(m)]
        return np.where(use, np.concatenate(m), 0.0)

    res = _overdispersed(_best_of(model, np.array(th0), np.where(use, counts.ravel(), 0), 1, fix_tau,
                                  "arrival histograms (joint fit with the conditional-sync edge)"),
                         n_used=int(use.sum()))
    s, t, P, a, b, q = unpack(res.theta)
    e = res.err
    ap_fields, ap_err = ap.fields(res.theta, e)
    out = []
    for k, f in enumerate(fits):
        err = dict(mu=float(e[2] * _NS), sigma=(e[0] * s if fix_sigma is None else 0.0),
                   tau=(e[1] * t if fix_tau is None else 0.0), double=e[3] * q * (1 - q),
                   signal=e[4 + 2 * k] * a[k], background=e[5 + 2 * k] * b[k])
        err["afterpulse"] = ap_err
        out.append(PulseFit(f.channel, float(cuts[k] + P), s, t, float(a[k]), float(b[k]), err, res.deviance,
                            res.dof, cut=float(cuts[k]), double=float(q), **ap_fields))
    return tuple(out)
