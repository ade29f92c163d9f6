"""Uncertainties: Beta posteriors per input pair, their exact intervals, and samples combined into S, Q, rates.

Model (the paper's "standard Bayesian methods", assuming i.i.d. rounds): for each input pair (x, y) the
probability p of equal outputs has a Beta(a, a) prior, hence a Beta(n_same + a, n_diff + a) posterior; the pairs
are independent, so S, Q0, Q1, Q (and any function of them, e.g. the key rate) are sampled by sampling each pair's
posterior and combining.

The prior (``DEFAULT_PRIOR = "neutral-chsh"``) is chosen so that the intervals cover the truth at the nominal
level down to a few hundred rounds (measured by ``benchmarks/validate_estimators.py``, docs/validation.md):

* the four CHSH pairs get Kerman's *neutral* prior Beta(1/3, 1/3): each pair's posterior median is then close
  to the observed frequency (Kerman, Electron. J. Stat. 5, 1450 (2011)), so S's posterior is centred on the
  observed S.  The uniform prior Beta(1, 1) pulls every correlator toward 0 by N/(N + 2), hence S and the key
  rate down: at 200 rounds its 95 % key-rate intervals held the true rate in only ~91 % of runs;
* the key pairs (and the two unused pairs) get Jeffreys' prior Beta(1/2, 1/2), the probability-matching prior
  of one binomial proportion (Brown, Cai & DasGupta, Stat. Sci. 16, 101 (2001)): its intervals for Q0 and Q1
  keep their level down to ~10 rounds per basis, also when no error is seen (the interval is then [~0, q_hi],
  never of zero width).

``"jeffreys"`` (1/2 everywhere) and ``"uniform"`` (1 everywhere: the earlier behaviour, and the Beta(n + 1, ...)
posteriors of the paper's worst case) can be asked for.  Standard errors are posterior standard deviations:
never zero, equal to the binomial sqrt(p (1 - p) / N) within ~0.5 % from ~100 rounds per pair on.
"""
from __future__ import annotations

import numpy as np
from scipy.special import betaincinv

from .chsh import CHSH_TERMS, KEY_PAIRS, correlators, qber
from .counts import n_diff, n_pairs, n_same

DEFAULT_PRIOR = "neutral-chsh"
PRIORS = {
    "neutral-chsh": "Beta(1/3, 1/3) (Kerman's neutral prior) for the CHSH pairs, Beta(1/2, 1/2) (Jeffreys) for "
                    "the others, on P(A = B | x, y)",
    "jeffreys": "Beta(1/2, 1/2) (Jeffreys) for every input pair, on P(A = B | x, y)",
    "uniform": "Beta(1, 1) (uniform) for every input pair, on P(A = B | x, y)",
}
LEVELS = (0.683, 0.95)  # the levels of the reported intervals: 1 and 2 standard deviations of a normal


def prior_table(prior=DEFAULT_PRIOR) -> np.ndarray:
    """(4, 2) array of the Beta(a, a) prior parameter per input pair: a name of :data:`PRIORS`, a number (the same
    for every pair) or a (4, 2) array."""
    if isinstance(prior, str):
        if prior == "neutral-chsh":
            a = np.full((4, 2), 0.5)
            for xy in CHSH_TERMS:
                a[xy] = 1.0 / 3.0
            return a
        if prior == "jeffreys":
            return np.full((4, 2), 0.5)
        if prior == "uniform":
            return np.full((4, 2), 1.0)
        raise ValueError(f"unknown prior {prior!r}; expected one of {', '.join(PRIORS)}, a number or a (4, 2) array")
    a = np.broadcast_to(np.asarray(prior, dtype=float), (4, 2)).copy()
    if not np.all(a > 0):
        raise ValueError(f"prior parameters must be > 0, got {a.tolist()}")
    return a


def prior_description(prior=DEFAULT_PRIOR) -> str:
    if isinstance(prior, str):
        return PRIORS.get(prior, prior)
    return "Beta(a, a) per input pair with a = " + str(prior_table(prior).round(4).tolist())


def binomial_errors(n: np.ndarray) -> dict:
    """Plug-in standard errors sigma_E = sqrt((1 - E^2)/N_xy), sigma_Q = sqrt(Q (1 - Q)/N); S's in quadrature.

    The paper's formula; zero when an input pair's outputs are all equal (or no key error is seen), so the
    estimators report :func:`posterior_errors` instead, which agree with these at large N.
    """
    E = correlators(n)
    tot = n_pairs(n).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        E_err = np.where(tot > 0, np.sqrt(np.clip(1 - E**2, 0, None) / tot), np.nan)
    S_err = float(np.sqrt(sum(E_err[xy] ** 2 for xy in CHSH_TERMS)))
    Qs = qber(n)
    key_tot = [tot[KEY_PAIRS[0]], tot[KEY_PAIRS[1]], tot[KEY_PAIRS[0]] + tot[KEY_PAIRS[1]]]
    Q_err = [float(np.sqrt(q * (1 - q) / t)) if t > 0 else float("nan") for q, t in zip(Qs, key_tot)]
    return {"E_err": E_err, "S_err": S_err, "Q0_err": Q_err[0], "Q1_err": Q_err[1], "Q_err": Q_err[2]}


def _posterior_params(n, prior):
    a = prior_table(prior)
    return n_same(n).astype(float) + a, n_diff(n).astype(float) + a


def posterior_errors(n: np.ndarray, prior=DEFAULT_PRIOR) -> dict:
    """Posterior standard deviations (never zero; NaN for an input pair without rounds), exact, no sampling.

    ``E_err`` (4, 2): 2 sd(p) of each pair's Beta posterior; ``S_err``: the four CHSH pairs' in quadrature (the
    pairs are independent); ``Q0_err``, ``Q1_err``: sd of the key pairs' posteriors; ``Q_err``: of the
    round-weighted mean of the two (the pooled Q of :func:`beta_samples`).
    """
    al, be = _posterior_params(n, prior)
    tot = n_pairs(n)
    var_p = al * be / ((al + be) ** 2 * (al + be + 1.0))
    var_p = np.where(tot > 0, var_p, np.nan)
    E_err = 2.0 * np.sqrt(var_p)
    S_err = float(np.sqrt(sum(E_err[xy] ** 2 for xy in CHSH_TERMS)))
    (k0, k1) = KEY_PAIRS
    w0, w1 = float(tot[k0]), float(tot[k1])
    Q_var = (w0 * w0 * var_p[k0] + w1 * w1 * var_p[k1]) / (w0 + w1) ** 2 if w0 + w1 > 0 else float("nan")
    if w0 == 0 or w1 == 0:  # the pooled Q is the one basis with rounds
        Q_var = var_p[k1] if w0 == 0 else var_p[k0]
    return {"E_err": E_err, "S_err": S_err, "Q0_err": float(np.sqrt(var_p[k0])), "Q1_err": float(np.sqrt(var_p[k1])),
            "Q_err": float(np.sqrt(Q_var))}


def pair_intervals(n: np.ndarray, level: float = 0.95, prior=DEFAULT_PRIOR) -> tuple[np.ndarray, np.ndarray]:
    """Exact central credible intervals (lo, hi), each (4, 2), of P(A = B | x, y) from the Beta posteriors
    (NaN for a pair without rounds).  E's interval is [2 lo - 1, 2 hi - 1]; Q0's and Q1's are the key pairs'."""
    al, be = _posterior_params(n, prior)
    tot = n_pairs(n)
    lo = betaincinv(al, be, (1.0 - level) / 2.0)  # the Beta quantile (scipy.stats.beta.ppf computes the same)
    hi = betaincinv(al, be, (1.0 + level) / 2.0)
    return np.where(tot > 0, lo, np.nan), np.where(tot > 0, hi, np.nan)


def beta_samples(n: np.ndarray, samples: int = 20000, seed: int | None = 0, prior=DEFAULT_PRIOR) -> dict:
    """Posterior samples: ``E`` (samples, 4, 2), ``S``, ``Q0``, ``Q1``, ``Q`` (samples,).

    Q is the pooled error rate, sampled as the round-weighted mean of the Q0 and Q1 samples (the two
    key bases are independent input pairs, each with its own posterior).  ``prior``: see :func:`prior_table`.
    """
    rng = np.random.default_rng(seed)
    al, be = _posterior_params(n, prior)
    p_same = rng.beta(al, be, size=(int(samples),) + al.shape)
    E = 2.0 * p_same - 1.0
    S = sum(sign * E[:, x, y] for (x, y), sign in CHSH_TERMS.items())
    Q0 = p_same[:, 0, 0]
    Q1 = p_same[:, 1, 1]
    w = n_pairs(n)
    w0, w1 = float(w[0, 0]), float(w[1, 1])
    Q = (w0 * Q0 + w1 * Q1) / (w0 + w1) if w0 + w1 > 0 else (Q0 + Q1) / 2
    return {"E": E, "S": S, "Q0": Q0, "Q1": Q1, "Q": Q}


def posterior_summary(samples: np.ndarray, level: float = 0.95, physical_range=None) -> dict:
    """Mean, standard deviation, median and central credible interval at ``level`` of a sample array.

    ``physical_range`` (lo, hi), either end may be None: adds ``ci_physical``, the interval cut to the range the
    quantity can physically take (a key rate below 0 is no key: floor 0), and ``physical_range`` itself.
    """
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if len(s) == 0:
        out = {"mean": float("nan"), "std": float("nan"), "median": float("nan"),
               "ci": [float("nan"), float("nan")], "level": level}
    else:
        lo, med, hi = np.quantile(s, [(1 - level) / 2, 0.5, (1 + level) / 2])
        out = {"mean": float(s.mean()), "std": float(s.std(ddof=1)) if len(s) > 1 else 0.0, "median": float(med),
               "ci": [float(lo), float(hi)], "level": level}
    if physical_range is not None:
        lo_p, hi_p = (-np.inf if physical_range[0] is None else physical_range[0],
                      np.inf if physical_range[1] is None else physical_range[1])
        out["ci_physical"] = [float(np.clip(v, lo_p, hi_p)) for v in out["ci"]]
        out["physical_range"] = list(physical_range)
    return out
