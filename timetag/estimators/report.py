"""The paper-style result: one JSON-ready dict from counts (the table is drawn by ``timetag estimate``).

``estimate_from_counts(n)`` is the single place that assembles every estimator; ``estimate_from_pairs``
feeds it from plain per-round arrays that are already paired (rounds files go through the join and sift of
:mod:`.pipeline`, live mode's through :mod:`.running`).  Values that cannot be computed
(no rounds for an input pair, ...) are ``None`` in the dict, never NaN, so it serialises as strict JSON.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import betaincinv

from .chsh import CHSH_TERMS, KEY_PAIRS, chsh, correlation_probabilities, correlators, key_counts, qber
from .counts import n_pairs, tally
from .fidelity import fidelity_bound, fit_visibilities
from .finitekey import FK_DEFAULTS, min_block_length
from .keyrate import S_MAX, entropy_bound, key_rate, threshold_depolarising
from .patterns import to_psi_plus_frame
from .uncertainty import (
    DEFAULT_INTERVALS, DEFAULT_PRIOR, INTERVAL_METHODS, LEVELS, beta_samples, interval_table, pair_intervals,
    posterior_errors, posterior_summary, prior_description, prior_table,
)

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


def worst_case(n, prob_error: float = 0.03, samples: int = 20000, seed: int | None = 0, S_samples=None,
               prior=DEFAULT_PRIOR) -> dict:
    """Worst-case S, Q0, Q1 at a common probability error: the prob_error quantile of S's posterior
    (lower side) and the 1 - prob_error quantiles of the Beta posteriors of Q0, Q1 (upper side); the key
    rates per key round at those values for both protocols."""
    if S_samples is None:
        S_samples = beta_samples(n, samples, seed, prior=prior)["S"]
    S_wc = float(np.quantile(S_samples, prob_error))
    err, tot = key_counts(n)
    a = prior_table(prior)
    Q_wc = [float(betaincinv(e + a[xy], t - e + a[xy], 1 - prob_error)) for e, t, xy in zip(err, tot, KEY_PAIRS)]
    rates = {p: float(key_rate(S_wc, Q_wc[0], Q_wc[1], protocol=p, per="round"))
             for p in ("random_basis", "original", "tan_affine")}
    return {"prob_error": prob_error, "S": S_wc, "Q0": Q_wc[0], "Q1": Q_wc[1], "key_rate_per_key_round": rates,
            "positive": {p: r > 0 for p, r in rates.items()}}


def _label(level: float) -> str:
    return f"{100 * level:g}%"


def _sample_intervals(s, floor=None) -> dict:
    """{label: [lo, hi]} at every level of LEVELS from samples (one quantile pass); cut at ``floor``."""
    s = np.asarray(s, dtype=float)
    s = s[np.isfinite(s)]
    if len(s) == 0:
        return None
    q = np.quantile(s, [v for lv in LEVELS for v in ((1 - lv) / 2, (1 + lv) / 2)])
    if floor is not None:
        q = np.maximum(q, floor)
    return {_label(lv): [float(q[2 * i]), float(q[2 * i + 1])] for i, lv in enumerate(LEVELS)}


def _ci(lo, hi):
    return None if not (np.isfinite(lo) and np.isfinite(hi)) else [float(lo), float(hi)]


def estimate_from_counts(n, *, samples: int = 20000, seed: int | None = 0, prob_error: float = 0.03,
                         level: float = 0.95, finite_key: dict | None = None, fidelity_d: int = 3,
                         prior=DEFAULT_PRIOR, intervals: str = DEFAULT_INTERVALS) -> dict:
    """Every estimator on counts n[x, y, a, b]; ``samples = 0`` skips the Bayesian part (fast, live).

    Point values are the observed frequencies (E, S, Q: the paper's estimators); their ``*_err`` are the
    posterior standard deviations under ``prior`` (:mod:`.uncertainty`; never zero).  ``intervals`` holds the
    68.3 % and 95 % intervals made by the method ``intervals`` (:data:`.uncertainty.INTERVAL_METHODS`): by default
    mid-p / MOVER confidence intervals, with or without samples; ``"posterior"``: the central credible intervals
    of the posteriors (exact for E, Q0, Q1; from the samples for S, Q, key rates).  Key-rate intervals are cut at
    their physical floor 0.  ``warnings`` what makes the numbers fragile (few rounds,
    no error seen, S above 2 sqrt 2, intervals outside the physical range), see :func:`sample_warnings`.
    """
    n = np.asarray(n, dtype=np.int64)
    E = correlators(n)
    errs = posterior_errors(n, prior)
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
    prior_name = prior if isinstance(prior, str) else "custom"
    if intervals not in INTERVAL_METHODS:
        raise ValueError(f"unknown interval method {intervals!r}; expected one of {', '.join(INTERVAL_METHODS)}")
    iv = {"prior": prior_name, "prior_text": prior_description(prior), "method": intervals,
          "method_text": INTERVAL_METHODS[intervals], "levels": list(LEVELS),
          "E": {f"{x},{y}": None for x in range(4) for y in range(2)}, "S": None, "Q0": None, "Q1": None, "Q": None,
          "key_rate_per_event": {p: None for p in PROTOCOLS_KEYS}}
    tables = {lv: interval_table(n, lv, PROTOCOLS_KEYS) for lv in LEVELS} if intervals == "midp-mover" else {}
    for lv in LEVELS:
        lo, hi = tables[lv]["p_same"] if tables else pair_intervals(n, lv, prior)
        for x in range(4):
            for y in range(2):
                ci = _ci(2 * lo[x, y] - 1, 2 * hi[x, y] - 1)
                if ci is not None:
                    iv["E"][f"{x},{y}"] = {**(iv["E"][f"{x},{y}"] or {}), _label(lv): ci}
        for name, xy in (("Q0", KEY_PAIRS[0]), ("Q1", KEY_PAIRS[1])):
            ci = _ci(lo[xy], hi[xy])
            if ci is not None:
                iv[name] = {**(iv[name] or {}), _label(lv): ci}
    if samples and np.isfinite(S + Q0 + Q1):
        post = beta_samples(n, samples, seed, prior=prior)
        bayes = {k: posterior_summary(post[k], level) for k in ("S", "Q0", "Q1", "Q")}
        bayes["S"] = posterior_summary(post["S"], level, physical_range=(-S_MAX, S_MAX))
        E_sd = post["E"].std(axis=0, ddof=1) if samples > 1 else np.zeros((4, 2))
        bayes["E"] = {f"{x},{y}": float(E_sd[x, y]) for x in range(4) for y in range(2)}
        rates = {p: key_rate(post["S"], post["Q0"], post["Q1"], protocol=p, per="event") for p in PROTOCOLS_KEYS}
        bayes["key_rate_per_event"] = {p: posterior_summary(r, level, physical_range=(0.0, None))
                                       for p, r in rates.items()}
        bayes["samples"] = int(samples)
        bayes["seed"] = seed
        bayes["prior"] = prior_name
        out["bayes"] = bayes
        out["worst_case"] = worst_case(n, prob_error, S_samples=post["S"], prior=prior)
        if not tables:
            for name in ("S", "Q"):
                iv[name] = _sample_intervals(post[name])
            for p, r in rates.items():
                iv["key_rate_per_event"][p] = _sample_intervals(r, floor=0.0)
    for lv, tab in tables.items():
        for name in ("S", "Q"):
            if tab[name] is not None:
                iv[name] = {**(iv[name] or {}), _label(lv): _ci(*tab[name])}
        for p, r in tab["key_rate_per_event"].items():
            if r is not None:
                iv["key_rate_per_event"][p] = {**(iv["key_rate_per_event"][p] or {}),
                                               _label(lv): [max(float(v), 0.0) for v in r]}
    out["intervals"] = iv
    out["warnings"] = sample_warnings(out)
    return out


PROTOCOLS_ALL = ("random_basis", "original", "tan_affine")
PROTOCOL_NAMES = {"random_basis": "random key basis", "original": "original protocol"}
MIN_ROUNDS_PER_PAIR = 30  # below this S and the rates are skewed, their +- errors rough (docs/validation.md)
SIGMA_FLUCTUATION = 3.0   # S above 2 sqrt 2 by less than this many standard deviations: a fluctuation


def _w(code: str, message: str) -> dict:
    return {"code": code, "message": message}


def _pair_name(xy: str) -> str:
    return xy.replace(",", "")


def sample_warnings(res: dict) -> list[dict]:
    """What makes an estimate fragile, each as ``{"code", "message"}`` (the messages are printed by
    ``timetag estimate`` and ``timetag demo``), from the JSON object of an estimate:

    ``no_rounds``                  a CHSH or key input pair without rounds;
    ``few_rounds``                 CHSH or key input pairs with fewer than :data:`MIN_ROUNDS_PER_PAIR` rounds;
    ``extreme_correlator``         a CHSH pair whose outputs were all equal (E = +1) or all different (E = -1);
    ``no_key_errors``              a key basis without a single error (Q = 0) or with nothing but errors;
    ``S_above_quantum_bound``      S > 2 sqrt 2, said to be a fluctuation when within 3 standard deviations;
    ``interval_outside_physical``  S's 95 % interval reaching beyond +-2 sqrt 2;
    ``key_rate_floor``             a key rate whose 95 % interval reaches below 0 (reported with the floor 0);
    ``fidelity_above_one``         the fidelity bound above 1 (visibilities fitted to fluctuating correlators).
    """
    out = []
    N, E = res["N"], res["E"]
    iv = res.get("intervals") or {}
    key = {"0,0": "Q0", "1,1": "Q1"}
    chsh_pairs = [f"{x},{y}" for x, y in CHSH_TERMS]
    used = chsh_pairs + list(key)
    empty = [xy for xy in used if N[xy] == 0]
    if empty:
        out.append(_w("no_rounds", f"no rounds for input pair(s) {', '.join(empty)}: "
                                   + ("S" if any(xy in chsh_pairs for xy in empty) else "")
                                   + (" and " if any(xy in chsh_pairs for xy in empty)
                                      and any(xy in key for xy in empty) else "")
                                   + ("the QBER" if any(xy in key for xy in empty) else "")
                                   + " cannot be estimated"))
    few = [xy for xy in used if 0 < N[xy] < MIN_ROUNDS_PER_PAIR]
    if few:
        out.append(_w("few_rounds",
                      f"few rounds per input pair ({', '.join(f'{xy}: {N[xy]}' for xy in few)}; fewer than "
                      f"{MIN_ROUNDS_PER_PAIR}): S, Q and the key rate fluctuate widely and the +- errors are rough; "
                      "quote the 95 % intervals (confidence intervals that keep their level down to ~10 rounds per "
                      "pair, see docs/validation.md)"))

    def interval(q, lv="95%"):
        v = iv.get(q) if not isinstance(q, tuple) else (iv.get(q[0]) or {}).get(q[1])
        return (v or {}).get(lv)

    for xy in chsh_pairs:
        e = E[xy]
        if N[xy] > 0 and e is not None and abs(e) == 1.0:
            ci = interval(("E", xy))
            out.append(_w("extreme_correlator",
                          f"E{_pair_name(xy)} = {e:+.0f}: " + (f"all {N[xy]} rounds" if N[xy] > 1 else "the one round")
                          + f" of input pair {xy} gave "
                          f"{'equal' if e > 0 else 'different'} outputs, which does not make |E| = 1"
                          + (f" (95 % interval [{ci[0]:+.3f}, {ci[1]:+.3f}])" if ci else "")))
    for xy, q in key.items():
        v = res[q]
        if N[xy] > 0 and v is not None and v in (0.0, 1.0):
            ci = interval(q)
            what = "no error" if v == 0.0 else "nothing but errors"
            out.append(_w("no_key_errors",
                          f"{what} in key basis {xy[0]} ({round(v * N[xy])} of {N[xy]} rounds): {q} = {v:.0f} is "
                          f"what {N[xy]} rounds can show, not a measured {v:.0f}"
                          + (f" (95 % interval [{ci[0]:.3f}, {ci[1]:.3f}])" if ci else "")))
    S, S_err = res.get("S"), res.get("S_err")
    if S is not None and S > S_MAX:
        z = (S - S_MAX) / S_err if S_err else float("inf")
        head = (f"S = {S:.3f} +- {S_err:.3f} is above the quantum maximum 2 sqrt 2 = {S_MAX:.3f} by {z:.1f} standard "
                "deviations: ")
        if z < SIGMA_FLUCTUATION:
            out.append(_w("S_above_quantum_bound", head + f"a statistical fluctuation of {res['test_rounds']} test "
                          "rounds (no quantum state exceeds 2 sqrt 2); the key rates use S = 2 sqrt 2"))
        else:
            out.append(_w("S_above_quantum_bound", head + "more than a fluctuation; check the inputs' labelling, "
                          "the join and the herald patterns"))
    ci = interval("S")
    if ci and (ci[1] > S_MAX or ci[0] < -S_MAX) and not (S is not None and S > S_MAX):
        out.append(_w("interval_outside_physical",
                      f"S's 95 % interval [{ci[0]:.3f}, {ci[1]:.3f}] reaches beyond the quantum maximum 2 sqrt 2 = "
                      f"{S_MAX:.3f}: these rounds cannot tell S from the maximum"))
    # the reported intervals are cut at 0, so a lower limit of exactly 0 is one that reached below it
    rates = iv.get("key_rate_per_event") or {}
    below = [(p, r["95%"]) for p, r in rates.items() if p in PROTOCOL_NAMES and r and r["95%"][0] <= 0.0]
    if below:
        parts = [f"{PROTOCOL_NAMES[p]} [{lo:.3f}, {hi:.3f}]" for p, (lo, hi) in below]
        out.append(_w("key_rate_floor",
                      f"the 95 % interval of the key rate reaches below 0 (no key), reported with the "
                      f"physical floor 0: {'; '.join(parts)}; these rounds do not exclude a zero rate"))
    fid = res.get("fidelity") or {}
    if fid.get("F") is not None and fid["F"] > 1.0:
        vs = ", ".join("-" if v is None else f"{v:.3f}" for v in fid.get("V") or [])
        out.append(_w("fidelity_above_one",
                      f"fidelity bound F = {fid['F']:.3f} +- {fid['F_err'] or 0:.3f} is above 1: visibilities "
                      f"(V = {vs}) fitted to fluctuating correlators; not a physical fidelity"))
    return out


def estimate_from_pairs(x, y, a, b, pattern=None, **kw) -> dict:
    """:func:`estimate_from_counts` on plain per-round arrays (inputs x, y; outputs a, b in {0, 1}).

    ``pattern`` (herald pattern code per round, e.g. Alice's ``rounds['pattern']``): Psi- rounds are then
    relabelled into the Psi+ frame (:func:`.patterns.to_psi_plus_frame`); without it all rounds count as Psi+.
    """
    if pattern is not None:
        y = to_psi_plus_frame(y, pattern)
    return estimate_from_counts(tally(x, y, a, b), **kw)

