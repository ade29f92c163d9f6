"""Fluorescence thresholds from the count histogram: two-component mixture fit.

Counts per round in the read-out window follow a mixture of 'atom absent'
(dark, background only) and 'atom present' (bright) components.  Each is a
Poisson distribution or, for ``model='negbin'``, a negative binomial
(over-dispersed: var = mean + alpha * mean^2, e.g. from a fluctuating collection
efficiency).  ``model='auto'`` fits both and keeps the negative binomial only
when it improves the likelihood significantly (likelihood-ratio test).

The threshold t (output 'up' when count >= t) minimises the misclassification
probability  P_err(t) = w_dark P(k >= t | dark) + w_bright P(k < t | bright)
(the rule :func:`timetag.simulator.analytic.min_error_threshold`, which the simulator
uses too, with the fitted mixture's weights); the read-out fidelity is 1 - P_err,
also given per state.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import betainc, expit, gammainc, gammaln, logit

from timetag.errors import CalibrationError
from timetag.simulator.analytic import min_error_threshold

from .fitting import poisson_fit

MIN_ROUNDS = 20


@dataclass(frozen=True)
class MixtureFit:
    model: str                # 'poisson' or 'negbin'
    n: int                    # rounds in the histogram
    w_bright: float
    mean_dark: float
    mean_bright: float
    alpha_dark: float = 0.0   # over-dispersion (0 = Poisson)
    alpha_bright: float = 0.0
    err: dict | None = None   # 1-sigma uncertainties of the above
    deviance: float = float("nan")
    dof: int = 0
    samples: np.ndarray | None = None  # parameter draws (w, m0, m1, a0, a1) for uncertainty propagation

    def pmf(self, k, component: str | None = None, params=None):
        w, m0, m1, a0, a1 = params if params is not None else (self.w_bright, self.mean_dark, self.mean_bright,
                                                               self.alpha_dark, self.alpha_bright)
        k = np.asarray(k)
        p0 = _pmf(k, m0, a0)
        p1 = _pmf(k, m1, a1)
        if component == "dark":
            return p0
        if component == "bright":
            return p1
        return (1 - w) * p0 + w * p1


def _pmf(k, mean, alpha):
    k = np.asarray(k, dtype=np.float64)
    if alpha <= 1e-9:
        return np.exp(k * np.log(max(mean, 1e-300)) - mean - gammaln(k + 1))
    r = 1.0 / alpha
    p = r / (r + mean)
    return np.exp(gammaln(k + r) - gammaln(r) - gammaln(k + 1) + r * np.log(p) + k * np.log1p(-p))


def _sf(t, mean, alpha):
    """P(k >= t): the regularised incomplete gamma (Poisson) and beta (negative binomial) functions, which is what
    scipy.stats' poisson.sf and nbinom.sf compute (without importing scipy.stats: most of a second)."""
    t = np.asarray(t, dtype=np.float64)
    safe = np.maximum(t, 1.0)
    if alpha <= 1e-9:
        p = gammainc(safe, mean)
    else:
        r = 1.0 / alpha
        p = betainc(safe, r, 1.0 - r / (r + mean))
    return np.where(t <= 0, 1.0, p)


@dataclass(frozen=True)
class ThresholdResult:
    threshold: int
    error: float              # misclassification probability at the threshold
    fidelity: float           # 1 - error
    fidelity_dark: float      # P(k < t | dark)
    fidelity_bright: float    # P(k >= t | bright)
    threshold_range: tuple[int, int]  # 16-84 % range of the optimal threshold over parameter uncertainty
    error_curve: np.ndarray   # P_err(t) for t = 0, 1, ..., len-1
    fit: MixtureFit


def _errors(params, t):
    """P(up | dark) and P(down | bright) at thresholds ``t``."""
    w, m0, m1, a0, a1 = params
    return _sf(t, m0, a0), 1 - _sf(t, m1, a1)


def misclassification(fit_or_params, t_max: int) -> np.ndarray:
    """P_err(t) for t = 0..t_max."""
    if isinstance(fit_or_params, MixtureFit):
        params = (fit_or_params.w_bright, fit_or_params.mean_dark, fit_or_params.mean_bright,
                  fit_or_params.alpha_dark, fit_or_params.alpha_bright)
    else:
        params = fit_or_params
    w = params[0]
    e_dark, e_bright = _errors(params, np.arange(t_max + 1))
    return (1 - w) * e_dark + w * e_bright


def optimal_threshold(params, t_max: int | None = None) -> int:
    """Threshold (>= 1) minimising the misclassification probability (ties go to the lowest)."""
    w, m0, m1, a0, a1 = params
    if t_max is None:
        t_max = int(m1 + 10 * np.sqrt(m1 * (1 + a1 * m1)) + 10)
    t = np.arange(1, t_max + 1)
    e_dark, e_bright = _errors(params, t)
    return min_error_threshold(t, e_dark, e_bright, w_dark=1 - w, w_bright=w)


def fit_mixture(hist, model: str = "auto", *, what: str = "count histogram") -> MixtureFit:
    """Fit the two-component mixture to ``hist[k]`` = rounds with count k."""
    hist = np.asarray(hist, dtype=np.float64)
    n = int(hist.sum())
    if n < MIN_ROUNDS:
        raise CalibrationError(f"{what}: only {n} rounds, at least {MIN_ROUNDS} are needed for a threshold fit")
    if model not in ("auto", "poisson", "negbin"):
        raise CalibrationError(f"unknown count model {model!r} (poisson, negbin, auto)")
    k = np.arange(hist.size)
    # last bin of an engine histogram may be an overflow bin: model it as the tail
    pois = _fit(hist, k, n, over=False, what=what)
    if model == "poisson":
        best = pois
    else:
        nb = _fit(hist, k, n, over=True, what=what, start=pois)
        # likelihood-ratio test (2 extra parameters, on a boundary): keep negbin when clearly better
        better = (pois.nll - nb.nll) * 2 > 9.21
        best = nb if (model == "negbin" or better) else pois
    fit = _to_mixture(best, n, "negbin" if best is not pois else "poisson")
    _check_peaks(fit, hist, what)
    return fit


class _Raw:
    def __init__(self, res, over):
        self.res, self.over, self.nll = res, over, res.nll


def _unpack(theta, over):
    w = expit(theta[0])
    m0 = np.exp(theta[1])
    m1 = m0 + np.exp(theta[2])   # bright is the brighter one by construction
    a0 = np.exp(theta[3]) if over else 0.0
    a1 = np.exp(theta[4]) if over else 0.0
    return w, m0, m1, a0, a1


def _fit(hist, k, n, over, what, start=None):
    top = k.size - 1

    def model(theta):
        w, m0, m1, a0, a1 = _unpack(theta, over)
        p = (1 - w) * _pmf(k, m0, a0) + w * _pmf(k, m1, a1)
        # the top bin collects everything >= top so that the model sums to n
        p[top] = (1 - w) * _sf(top, m0, a0) + w * _sf(top, m1, a1)
        return n * p

    if start is None:
        mean = float((hist * k).sum() / n)
        cut = max(1.0, mean)
        lo, hi = hist[k < cut], hist[k >= cut]
        m0 = max(float((lo * k[k < cut]).sum() / max(lo.sum(), 1)), 0.05)
        m1 = max(float((hi * k[k >= cut]).sum() / max(hi.sum(), 1)), m0 + 1.0)
        w = min(max(hi.sum() / n, 0.02), 0.98)
        theta0 = [logit(w), np.log(m0), np.log(m1 - m0)]
        if over:
            theta0 += [np.log(0.01), np.log(0.01)]
    else:
        theta0 = list(start.res.theta) + ([np.log(0.01), np.log(0.01)] if over else [])
    best = None
    starts = [np.array(theta0, dtype=np.float64)]
    if start is None:
        # a second start with the split at the median guards against a poor first split
        alt = np.array(theta0, dtype=np.float64)
        alt[0] = 0.0
        starts.append(alt)
    for t0 in starts:
        res = poisson_fit(model, t0, hist, what=what)
        if best is None or res.nll < best.nll:
            best = res
    return _Raw(best, over)


def _to_mixture(raw: _Raw, n: int, name: str) -> MixtureFit:
    res, over = raw.res, raw.over
    w, m0, m1, a0, a1 = _unpack(res.theta, over)
    rng = np.random.default_rng(12345)
    cov = res.cov
    if not np.all(np.isfinite(cov)):
        cov = np.zeros_like(cov)
    draws = rng.multivariate_normal(res.theta, cov, size=400, check_valid="ignore", method="eigh")
    samples = np.array([_unpack(d, over) for d in draws])
    sd = samples.std(axis=0)
    err = dict(w_bright=sd[0], mean_dark=sd[1], mean_bright=sd[2], alpha_dark=sd[3], alpha_bright=sd[4])
    return MixtureFit(name, n, w, m0, m1, a0, a1, err, res.deviance, res.dof, samples)


def _check_peaks(fit: MixtureFit, hist, what):
    n_bright = fit.w_bright * fit.n
    sep = fit.mean_bright - fit.mean_dark
    width = np.sqrt(fit.mean_bright * (1 + fit.alpha_bright * fit.mean_bright)) + \
        np.sqrt(fit.mean_dark * (1 + fit.alpha_dark * fit.mean_dark))
    if n_bright < 5 or fit.w_bright < 0.01 or sep < 1.0 * width or n_bright < 3 * fit.err["w_bright"] * fit.n:
        raise CalibrationError(
            f"{what}: no atom-present peak (fitted bright fraction {fit.w_bright:.3g} of {fit.n} rounds, "
            f"means {fit.mean_dark:.3g} and {fit.mean_bright:.3g} counts): cannot choose a threshold")
    if (1 - fit.w_bright) * fit.n < 5:
        raise CalibrationError(f"{what}: no atom-absent rounds ({(1 - fit.w_bright) * fit.n:.1f} of {fit.n}): "
                               "cannot choose a threshold")


def choose_threshold(hist, model: str = "auto", *, what: str = "count histogram") -> ThresholdResult:
    fit = fit_mixture(hist, model, what=what)
    params = (fit.w_bright, fit.mean_dark, fit.mean_bright, fit.alpha_dark, fit.alpha_bright)
    t_max = max(len(hist), int(fit.mean_bright + 10 * np.sqrt(fit.mean_bright) + 10))
    curve = misclassification(params, t_max)
    t = optimal_threshold(params, t_max)
    ts = np.array([optimal_threshold(tuple(s), t_max) for s in fit.samples]) if fit.samples is not None else [t]
    lo, hi = (int(x) for x in np.percentile(ts, [16, 84]))
    return ThresholdResult(
        threshold=t, error=float(curve[t]), fidelity=float(1 - curve[t]),
        fidelity_dark=float(1 - _sf(t, fit.mean_dark, fit.alpha_dark)),
        fidelity_bright=float(_sf(t, fit.mean_bright, fit.alpha_bright)),
        threshold_range=(lo, hi), error_curve=curve, fit=fit)
