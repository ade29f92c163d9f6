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

The reported 68.3 % / 95 % intervals (``DEFAULT_INTERVALS = "midp-mover"``, :func:`interval_table`) are
confidence intervals, not these posteriors' quantiles.  Credible intervals of S from any Beta(a, a) prior per pair
undercover at ~12 rounds per pair (S 94.2 %, key rate 91.9-94.4 % at 95 %, 4000 runs): each pair's posterior is pulled toward E = 0 by
~a/N, and S adds the four pulls coherently (its signs follow the E's) while their spreads add in quadrature, so S's
posterior sits low by ~0.3 sd and misses the truth above it 4-5 times as often as below; a smaller a removes the
pull but makes every posterior narrower than the sampling spread.  Instead:

* each input pair gets Lancaster's mid-p interval: the quantiles of the mid-p confidence distribution
  P_p(X > k) + P_p(X = k) / 2 (the 50/50 mixture of Beta(k, N - k + 1) and Beta(k + 1, N - k), Hannig's fiducial
  distribution of a binomial p; Hannig, Stat. Sinica 19, 491 (2009)).  Nominal on average at every N, between
  Jeffreys (too short at small N p) and Clopper-Pearson (conservative); [0, hi] when k = 0, [lo, 1] when k = N;
* sums of terms (S = E21 - E20 - E30 - E31, the pooled Q, and the key rate H(S) - h(Q0)/2 - h(Q1)/2, a sum of
  monotone functions of independent parameters) get MOVER, the method of variance estimates recovery (Zou &
  Donner, Stat. Med. 27, 1693 (2008); Newcombe's method 10 for a difference): lower = sum - sqrt(sum of each
  term's squared distance down to its own lower limit), upper alike, each term's limits the image of its
  parameter's interval.  The skew of each term is kept, the centres are not shifted.
  Measured (docs/validation.md): 95 % coverage of S, Q and the key rate within 2 binomial errors of 95 % at
  100 .. 3000 rounds (1000 runs); at ~12 rounds per pair Q and the key rate over-cover by ~1-1.6 %, and S's
  misses fall mostly above the interval.  No prior enters.
"""
from __future__ import annotations

import numpy as np
from scipy.special import betainc, betaincinv

from .chsh import CHSH_TERMS, KEY_PAIRS, chsh, correlators, qber
from .counts import n_diff, n_pairs, n_same
from .keyrate import P_KEY_UNIFORM, binary_entropy, entropy_bound

DEFAULT_PRIOR = "neutral-chsh"
PRIORS = {
    "neutral-chsh": "Beta(1/3, 1/3) (Kerman's neutral prior) for the CHSH pairs, Beta(1/2, 1/2) (Jeffreys) for "
                    "the others, on P(A = B | x, y)",
    "jeffreys": "Beta(1/2, 1/2) (Jeffreys) for every input pair, on P(A = B | x, y)",
    "uniform": "Beta(1, 1) (uniform) for every input pair, on P(A = B | x, y)",
}
DEFAULT_INTERVALS = "midp-mover"
INTERVAL_METHODS = {
    "midp-mover": "confidence intervals: mid-p per input pair (exact binomial, P(X > k) + P(X = k)/2), combined "
                  "into S, Q and the key rates by MOVER (Zou & Donner 2008); no prior",
    "posterior": "central credible intervals of the Beta posteriors (Monte Carlo quantiles for S, Q, key rates)",
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


def midp_interval(k, N, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Lancaster's mid-p interval (lo, hi) of a binomial p from k successes in N trials (arrays; NaN where N = 0).

    The limits are the (1 -+ level)/2 quantiles of the mid-p confidence distribution
    C(p) = (I_p(k, N - k + 1) + I_p(k + 1, N - k)) / 2 (I the regularised incomplete beta; the first term is 1
    for k = 0, the second 0 for k = N), found by bisection; the interval always holds k / N.
    """
    k = np.asarray(k, dtype=float)
    N = np.asarray(N, dtype=float)
    has = N > 0
    k_, N_ = np.where(has, k, 0.0), np.where(has, N, 1.0)
    tiny = 1e-300  # betainc needs a > 0, b > 0; the branches using it are masked by np.where

    def conf(p):
        below = np.where(k_ > 0, betainc(np.maximum(k_, tiny), N_ - k_ + 1.0, p), 1.0)
        above = np.where(k_ < N_, betainc(k_ + 1.0, np.maximum(N_ - k_, tiny), p), 0.0)
        return 0.5 * (below + above)

    def quantile(t):
        lo, hi = np.zeros_like(k_), np.ones_like(k_)
        for _ in range(56):  # 2**-56: below float resolution of p
            mid = 0.5 * (lo + hi)
            up = conf(mid) >= t
            lo, hi = np.where(up, lo, mid), np.where(up, mid, hi)
        return 0.5 * (lo + hi)

    p_hat = k_ / N_
    lo = np.minimum(quantile((1.0 - level) / 2.0), p_hat)
    hi = np.maximum(quantile((1.0 + level) / 2.0), p_hat)
    return np.where(has, lo, np.nan), np.where(has, hi, np.nan)


def mover(est, lo, hi) -> tuple[float, float, float]:
    """(sum, lower, upper) of a sum of independent terms from each term's estimate and interval (MOVER):
    the sum's limits lie sqrt(sum of squared distances) below / above it.  Arguments: sequences of equal length
    with lo <= est <= hi."""
    est, lo, hi = (np.asarray(v, dtype=float) for v in (est, lo, hi))
    tot = float(est.sum())
    return tot, tot - float(np.sqrt(((est - lo) ** 2).sum())), tot + float(np.sqrt(((hi - est) ** 2).sum()))


def _entropy_image(lo, hi):
    """[min, max] of the binary entropy h over [lo, hi]."""
    h_lo, h_hi = binary_entropy(lo), binary_entropy(hi)
    top = 1.0 if lo < 0.5 < hi else max(h_lo, h_hi)
    return min(h_lo, h_hi), top


def interval_table(n: np.ndarray, level: float = 0.95, protocols=("random_basis", "original"),
                   p_key: float = P_KEY_UNIFORM) -> dict:
    """The mid-p / MOVER confidence intervals at ``level`` (see the module text), raw (no physical cut):

    ``p_same`` (lo, hi) each (4, 2) of P(A = B | x, y) (NaN without rounds); ``S``, ``Q0``, ``Q1``, ``Q``:
    (lo, hi) or None when an input pair they need has no rounds; ``key_rate_per_event``: protocol -> (lo, hi) of
    p_key (H(S) - (h(Q0) + h(Q1)) / 2), None without S, Q0 or Q1.
    """
    tot = n_pairs(n).astype(float)
    same = n_same(n).astype(float)
    lo, hi = midp_interval(same, tot, level)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(tot > 0, same / np.where(tot > 0, tot, 1.0), np.nan)
    out = {"p_same": (lo, hi), "S": None, "Q0": None, "Q1": None, "Q": None,
           "key_rate_per_event": {pr: None for pr in protocols}}
    if all(tot[xy] > 0 for xy in CHSH_TERMS):
        terms = [(sign * (2 * p[xy] - 1), *sorted((sign * (2 * lo[xy] - 1), sign * (2 * hi[xy] - 1))))
                 for xy, sign in CHSH_TERMS.items()]
        e, l, h = zip(*[(t[0], t[1], t[2]) for t in terms])
        _, S_lo, S_hi = mover(e, l, h)
        out["S"] = (S_lo, S_hi)
    k0, k1 = KEY_PAIRS
    for name, xy in (("Q0", k0), ("Q1", k1)):
        if tot[xy] > 0:
            out[name] = (float(lo[xy]), float(hi[xy]))
    w = np.array([tot[k0], tot[k1]])
    if w.sum() > 0:
        use = [i for i, xy in enumerate(KEY_PAIRS) if w[i] > 0]
        f = w / w.sum()
        _, Q_lo, Q_hi = mover([f[i] * p[KEY_PAIRS[i]] for i in use], [f[i] * lo[KEY_PAIRS[i]] for i in use],
                              [f[i] * hi[KEY_PAIRS[i]] for i in use])
        out["Q"] = (Q_lo, Q_hi)
    if out["S"] is not None and out["Q0"] is not None and out["Q1"] is not None:
        S_hat = chsh(2 * p - 1)
        q_terms = []
        for xy, name in ((k0, "Q0"), (k1, "Q1")):
            h_min, h_max = _entropy_image(*out[name])
            q_terms.append((-p_key / 2 * binary_entropy(p[xy]), -p_key / 2 * h_max, -p_key / 2 * h_min))
        for pr in protocols:
            H = [p_key * entropy_bound(s, pr) for s in (S_hat, *out["S"])]  # non-decreasing in S
            e, l, h = zip((H[0], H[1], H[2]), *q_terms)
            _, r_lo, r_hi = mover(e, l, h)
            out["key_rate_per_event"][pr] = (r_lo, r_hi)
    return out
