"""The paper-style result: one JSON-ready dict from counts (the table is drawn by ``timetag estimate``).

``estimate_from_counts(n)`` is the single place that assembles every estimator; ``estimate_from_pairs``
feeds it from plain per-round arrays that are already paired (rounds files go through the join and sift of
:mod:`.pipeline`, live mode's through :mod:`.running`).  Values that cannot be computed
(no rounds for an input pair, ...) are ``None`` in the dict, never NaN, so it serialises as strict JSON.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import beta as beta_dist

from .chsh import CHSH_TERMS, KEY_PAIRS, chsh, correlation_probabilities, correlators, key_counts, qber
from .counts import n_pairs, tally
from .fidelity import fidelity_bound, fit_visibilities
from .finitekey import FK_DEFAULTS, min_block_length
from .keyrate import entropy_bound, key_rate, threshold_depolarising
from .patterns import to_psi_plus_frame
from .uncertainty import beta_samples, binomial_errors, posterior_summary

PROTOCOLS_KEYS = ("random_basis", "original")


def _num(v):
    """float or None (for NaN) -- JSON-safe; infinities become the string 'inf'."""
    if v is None:
        return None
    v = float(v)
    if math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def _pairs_map(arr) -> dict:
    return {f"{x},{y}": _num(arr[x, y]) for x in range(4) for y in range(2)}


def worst_case(n, prob_error: float = 0.03, samples: int = 20000, seed: int | None = 0, S_samples=None) -> dict:
    """Worst-case S, Q0, Q1 at a common probability error: the prob_error quantile of S's posterior
    (lower side) and the 1 - prob_error quantiles of the Beta posteriors of Q0, Q1 (upper side); the key
    rates per key round at those values for both protocols."""
    if S_samples is None:
        S_samples = beta_samples(n, samples, seed)["S"]
    S_wc = float(np.quantile(S_samples, prob_error))
    err, tot = key_counts(n)
    Q_wc = [float(beta_dist.ppf(1 - prob_error, e + 1, t - e + 1)) for e, t in zip(err, tot)]
    rates = {p: float(key_rate(S_wc, Q_wc[0], Q_wc[1], protocol=p, per="round"))
             for p in ("random_basis", "original", "tan_affine")}
    return {"prob_error": prob_error, "S": S_wc, "Q0": Q_wc[0], "Q1": Q_wc[1], "key_rate_per_key_round": rates,
            "positive": {p: r > 0 for p, r in rates.items()}}


def estimate_from_counts(n, *, samples: int = 20000, seed: int | None = 0, prob_error: float = 0.03,
                         level: float = 0.95, finite_key: dict | None = None, fidelity_d: int = 3) -> dict:
    """Every estimator on counts n[x, y, a, b]; ``samples = 0`` skips the Bayesian part (fast, live)."""
    n = np.asarray(n, dtype=np.int64)
    E = correlators(n)
    errs = binomial_errors(n)
    S = chsh(E)
    Q0, Q1, Q = qber(n)
    N_xy = n_pairs(n)
    p_same, _ = correlation_probabilities(n)
    per_event = {p: _num(key_rate(S, Q0, Q1, protocol=p, per="event")) if np.isfinite(S + Q0 + Q1) else None
                 for p in PROTOCOLS_ALL}
    per_round = {p: _num(key_rate(S, Q0, Q1, protocol=p, per="round")) if np.isfinite(S + Q0 + Q1) else None
                 for p in PROTOCOLS_ALL}
    fk = dict(FK_DEFAULTS, **(finite_key or {}))
    mbl = min_block_length(S, Q0, Q1, **fk) if np.isfinite(S + Q0 + Q1) else float("nan")
    vis = fit_visibilities(E, errs["E_err"])
    fid = fidelity_bound(vis["V"], vis["V_err"], d=fidelity_d)
    out = {
        "rounds": int(n.sum()),
        "test_rounds": int(sum(N_xy[xy] for xy in CHSH_TERMS)),
        "key_rounds": int(sum(N_xy[xy] for xy in KEY_PAIRS)),
        "N": {f"{x},{y}": int(N_xy[x, y]) for x in range(4) for y in range(2)},
        "E": _pairs_map(E),
        "E_err": _pairs_map(errs["E_err"]),
        "P_same": _pairs_map(p_same),
        "S": _num(S), "S_err": _num(errs["S_err"]),
        "Q0": _num(Q0), "Q0_err": _num(errs["Q0_err"]),
        "Q1": _num(Q1), "Q1_err": _num(errs["Q1_err"]),
        "Q": _num(Q), "Q_err": _num(errs["Q_err"]),
        "H_key_given_E": {p: _num(entropy_bound(S, p)) if np.isfinite(S) else None for p in PROTOCOLS_ALL},
        "key_rate_per_event": per_event,
        "key_rate_per_key_round": per_round,
        "thresholds_depolarising": {p: threshold_depolarising(p) for p in PROTOCOLS_ALL},
        "min_block_length": _num(mbl),
        "finite_key": fk,
        "fidelity": {"V": [_num(v) for v in vis["V"]], "V_err": [_num(v) for v in vis["V_err"]],
                     "F": _num(fid["F"]), "F_err": _num(fid["F_err"]), "d": fidelity_d},
    }
    if samples and np.isfinite(S + Q0 + Q1):
        post = beta_samples(n, samples, seed)
        bayes = {k: posterior_summary(post[k], level) for k in ("S", "Q0", "Q1", "Q")}
        bayes["E"] = {f"{x},{y}": posterior_summary(post["E"][:, x, y], level)["std"]
                      for x in range(4) for y in range(2)}
        bayes["key_rate_per_event"] = {
            p: posterior_summary(key_rate(post["S"], post["Q0"], post["Q1"], protocol=p, per="event"), level)
            for p in PROTOCOLS_KEYS}
        bayes["samples"] = int(samples)
        bayes["seed"] = seed
        out["bayes"] = bayes
        out["worst_case"] = worst_case(n, prob_error, S_samples=post["S"])
    return out


PROTOCOLS_ALL = ("random_basis", "original", "tan_affine")


def estimate_from_pairs(x, y, a, b, pattern=None, **kw) -> dict:
    """:func:`estimate_from_counts` on plain per-round arrays (inputs x, y; outputs a, b in {0, 1}).

    ``pattern`` (herald pattern code per round, e.g. Alice's ``rounds['pattern']``): Psi- rounds are then
    relabelled into the Psi+ frame (:func:`.patterns.to_psi_plus_frame`); without it all rounds count as Psi+.
    """
    if pattern is not None:
        y = to_psi_plus_frame(y, pattern)
    return estimate_from_counts(tally(x, y, a, b), **kw)

