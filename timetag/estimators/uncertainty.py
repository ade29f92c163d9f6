"""Uncertainties: binomial standard errors and Beta posteriors combined by sampling.

Bayesian model (the paper's "standard Bayesian methods", assuming i.i.d. rounds): for each input pair
the probability of equal outputs has a uniform prior, hence a Beta(n_same + 1, n_diff + 1) posterior;
the pairs are independent, so samples of S, Q0, Q1, Q (and any function of them, e.g. the key rate)
come from sampling each pair's posterior and combining.
"""
from __future__ import annotations

import numpy as np

from .chsh import CHSH_TERMS, KEY_PAIRS, correlators, qber
from .counts import n_diff, n_pairs, n_same


def binomial_errors(n: np.ndarray) -> dict:
    """Standard errors: sigma_E = sqrt((1 - E^2)/N_xy), sigma_Q = sqrt(Q (1 - Q)/N); S's in quadrature."""
    E = correlators(n)
    tot = n_pairs(n).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        E_err = np.where(tot > 0, np.sqrt(np.clip(1 - E**2, 0, None) / tot), np.nan)
    S_err = float(np.sqrt(sum(E_err[xy] ** 2 for xy in CHSH_TERMS)))
    Qs = qber(n)
    key_tot = [tot[KEY_PAIRS[0]], tot[KEY_PAIRS[1]], tot[KEY_PAIRS[0]] + tot[KEY_PAIRS[1]]]
    Q_err = [float(np.sqrt(q * (1 - q) / t)) if t > 0 else float("nan") for q, t in zip(Qs, key_tot)]
    return {"E_err": E_err, "S_err": S_err, "Q0_err": Q_err[0], "Q1_err": Q_err[1], "Q_err": Q_err[2]}


def beta_samples(n: np.ndarray, samples: int = 20000, seed: int | None = 0) -> dict:
    """Posterior samples: ``E`` (samples, 4, 2), ``S``, ``Q0``, ``Q1``, ``Q`` (samples,).

    Q is the pooled error rate, sampled as the round-weighted mean of the Q0 and Q1 samples (the two
    key bases are independent input pairs, each with its own posterior).
    """
    rng = np.random.default_rng(seed)
    same = n_same(n).astype(float)
    diff = n_diff(n).astype(float)
    p_same = rng.beta(same + 1.0, diff + 1.0, size=(int(samples),) + same.shape)
    E = 2.0 * p_same - 1.0
    S = sum(sign * E[:, x, y] for (x, y), sign in CHSH_TERMS.items())
    Q0 = p_same[:, 0, 0]
    Q1 = p_same[:, 1, 1]
    w = n_pairs(n)
    w0, w1 = float(w[0, 0]), float(w[1, 1])
    Q = (w0 * Q0 + w1 * Q1) / (w0 + w1) if w0 + w1 > 0 else (Q0 + Q1) / 2
    return {"E": E, "S": S, "Q0": Q0, "Q1": Q1, "Q": Q}


def posterior_summary(samples: np.ndarray, level: float = 0.95) -> dict:
    """Mean, standard deviation, median and central credible interval at ``level`` of a sample array."""
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if len(s) == 0:
        return {"mean": float("nan"), "std": float("nan"), "median": float("nan"),
                "ci": [float("nan"), float("nan")], "level": level}
    lo, med, hi = np.quantile(s, [(1 - level) / 2, 0.5, (1 + level) / 2])
    return {"mean": float(s.mean()), "std": float(s.std(ddof=1)) if len(s) > 1 else 0.0, "median": float(med),
            "ci": [float(lo), float(hi)], "level": level}
