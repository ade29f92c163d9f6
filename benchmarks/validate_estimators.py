"""Coverage study of the estimators' uncertainties: do the reported intervals hold the truth as often as they say?

Runs with known truth are drawn at several sizes (rounds per run) from a table of P(A = B | x, y) with uniform
inputs (:func:`timetag.estimators.model.sample_counts`, the distribution of ``tally(*sample_pairs(...))``) and
put through :func:`timetag.estimators.report.estimate_from_counts`, the code ``timetag estimate`` runs.  Per
quantity (S, Q0, Q1, Q, the key rates per event) and size it prints

  coverage    fraction of runs whose 68.3 % / 95 % interval (``intervals`` of the result; key rates with their
              floor 0, against max(true rate, 0)) holds the truth, with its binomial error sqrt(c (1 - c) / runs)
              and ``ok`` when within 2 binomial errors of the nominal level;
  2sd         fraction of runs with |value - truth| <= 2 err (the +- error bars read as Gaussian);
  pull        mean and spread of (value - truth) / err (err: ``S_err``, ``Q0_err``, ...; key rates: the posterior
              standard deviation);
  zero-err    fraction of runs with an error bar of zero width;
  flagged     fraction of runs with a warning in the result.

Truths: ``paper`` (the correlators of Zhang et al. 2022, Q0 = Q1 = 0.078: S = 2.578), ``lmu2022`` (the
simulator's analytic correlators of its lmu2022 preset: S = 2.46, Q = 0.065, read-out errors included),
``V<v>`` (the ideal Psi+ model of visibility v, e.g. ``V0.95``).

``--before`` measures what the estimators did before issue 21: uniform Beta(1, 1) priors and the plug-in binomial
errors sqrt(p (1 - p) / N) (zero when outputs are all equal or no key error is seen), credible intervals.
``--intervals posterior`` measures the credible intervals of the neutral-chsh posteriors (issue 21 before its item
3 was fixed); the default ``midp-mover`` the confidence intervals reported now (timetag.estimators.uncertainty).

    python benchmarks/validate_estimators.py                      # paper + lmu2022, 100 .. 3000 rounds, 1000 runs
    python benchmarks/validate_estimators.py --before --runs 400  # the old behaviour, for comparison
    python benchmarks/validate_estimators.py --truth V0.95 --rounds 100 300 --json out.json
    python benchmarks/validate_estimators.py --intervals posterior --truth paper --rounds 100
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

from timetag.estimators.chsh import CHSH_TERMS
from timetag.estimators.keyrate import key_rate
from timetag.estimators.model import p_same, sample_counts
from timetag.estimators.report import estimate_from_counts
from timetag.estimators.uncertainty import DEFAULT_INTERVALS, INTERVAL_METHODS, binomial_errors

PROTOCOLS = ("random_basis", "original")
LEVELS = (("68.3%", 0.683), ("95%", 0.95))


def truth_table(name: str) -> np.ndarray:
    """(4, 2) P(A = B | x, y) of a named truth."""
    if name == "paper":
        E = np.zeros((4, 2))
        E[2, 0], E[3, 0], E[2, 1], E[3, 1] = -0.599, -0.664, 0.618, -0.697
        E[0, 0] = E[1, 1] = -(1 - 2 * 0.078)
        return (1 + E) / 2
    if name == "lmu2022":
        from timetag.simulator.analytic import expected_correlator, expected_stats
        from timetag.simulator.params import load_preset
        p = load_preset("lmu2022")
        s = expected_stats(p)
        E = np.array([[expected_correlator(p, x, y, s) for y in range(2)] for x in range(4)])
        return (1 + E) / 2
    if name.startswith("V"):
        return p_same(float(name[1:]))
    raise SystemExit(f"unknown truth {name!r}: paper, lmu2022 or V<visibility>")


def true_values(ps: np.ndarray) -> dict:
    E = 2 * ps - 1
    S = float(sum(s * E[xy] for xy, s in CHSH_TERMS.items()))
    Q0, Q1 = float(ps[0, 0]), float(ps[1, 1])
    out = {"S": S, "Q0": Q0, "Q1": Q1, "Q": (Q0 + Q1) / 2}
    for p in PROTOCOLS:
        out[f"rate_{p}"] = float(key_rate(S, Q0, Q1, protocol=p, per="event"))
    return out


def one_run(n, truth, before: bool, samples: int, seed: int, intervals: str = "midp-mover") -> dict | None:
    """Per quantity: (value, err, {level: interval}) of one run; None if a used input pair has no rounds."""
    res = estimate_from_counts(n, samples=samples, seed=seed, prior="uniform" if before else "neutral-chsh",
                               intervals="posterior" if before else intervals)
    if res["S"] is None or res["Q0"] is None or res["Q1"] is None:
        return None
    iv = res["intervals"]
    errs = binomial_errors(n) if before else None
    out = {}
    for q in ("S", "Q0", "Q1", "Q"):
        err = errs[f"{q}_err"] if before else res[f"{q}_err"]
        out[q] = (res[q], float(err), iv[q])
    for p in PROTOCOLS:
        b = res["bayes"]["key_rate_per_event"][p]
        # (before issue 21 the raw interval was reported; for a positive true rate the floor changes nothing)
        out[f"rate_{p}"] = (res["key_rate_per_event"][p], b["std"], iv["key_rate_per_event"][p])
    out["flagged"] = bool(res["warnings"])
    return out


def study(truth_name: str, rounds: int, runs: int, samples: int, before: bool, seed: int,
          intervals: str = "midp-mover") -> list[dict]:
    ps = truth_table(truth_name)
    truth = true_values(ps)
    counts = sample_counts(rounds, ps, rng=np.random.default_rng([seed, rounds]), runs=runs)
    acc = {q: {"cover": {lab: 0 for lab, _ in LEVELS}, "two_sd": 0, "pulls": [], "zero": 0} for q in truth}
    used = flagged = 0
    for i in range(runs):
        r = one_run(counts[i], truth, before, samples, seed=i, intervals=intervals)
        if r is None:
            continue
        used += 1
        flagged += r.pop("flagged")
        for q, (v, err, ivq) in r.items():
            t = truth[q]
            if q.startswith("rate_"):
                t = max(t, 0.0)  # the floored interval against the physical rate
            a = acc[q]
            for lab, _ in LEVELS:
                lo, hi = ivq[lab]
                a["cover"][lab] += lo <= t <= hi
            tv = truth[q]
            a["two_sd"] += abs(v - tv) <= 2 * err
            a["zero"] += err == 0
            if err > 0:
                a["pulls"].append((v - tv) / err)
    rows = []
    for q, a in acc.items():
        for lab, lv in LEVELS:
            c = a["cover"][lab] / used
            be = math.sqrt(lv * (1 - lv) / used)  # binomial error of the coverage at the nominal level
            pulls = np.array(a["pulls"])
            rows.append({"truth": truth_name, "quantity": q, "true": truth[q], "rounds": rounds, "runs": used,
                         "level": lab, "coverage": c, "binomial_error": be, "ok": abs(c - lv) <= 2 * be,
                         "two_sd": a["two_sd"] / used, "pull_mean": float(pulls.mean()) if len(pulls) else None,
                         "pull_sd": float(pulls.std(ddof=1)) if len(pulls) > 1 else None,
                         "zero_err": a["zero"] / used, "flagged": flagged / used,
                         "mode": "before" if before else intervals})
    return rows


HEADER = (f"{'truth':<8} {'quantity':<18} {'true':>7} {'rounds':>6} {'level':>6} {'coverage':>8} {'+-':>6} "
          f"{'ok':>3} {'2sd':>6} {'pull mean':>9} {'pull sd':>7} {'zero-err':>8} {'flagged':>7}")


def format_row(r) -> str:
    pm = "-" if r["pull_mean"] is None else f"{r['pull_mean']:+.2f}"
    psd = "-" if r["pull_sd"] is None else f"{r['pull_sd']:.2f}"
    return (f"{r['truth']:<8} {r['quantity']:<18} {r['true']:>7.4f} {r['rounds']:>6} {r['level']:>6} "
            f"{r['coverage']:>8.3f} {r['binomial_error']:>6.3f} {'yes' if r['ok'] else 'NO':>3} {r['two_sd']:>6.3f} "
            f"{pm:>9} {psd:>7} {r['zero_err']:>8.3f} {r['flagged']:>7.2f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--truth", nargs="+", default=["paper", "lmu2022"])
    ap.add_argument("--rounds", nargs="+", type=int, default=[100, 300, 1000, 3000])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=4000, help="posterior samples per run")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--before", action="store_true", help="uniform priors and plug-in binomial errors (pre issue 21)")
    ap.add_argument("--intervals", choices=sorted(INTERVAL_METHODS), default=DEFAULT_INTERVALS,
                    help="interval method measured (ignored with --before)")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = []
    print(HEADER, flush=True)
    for truth in args.truth:
        for n in args.rounds:
            new = study(truth, n, args.runs, args.samples, args.before, args.seed, args.intervals)
            for r in new:
                print(format_row(r), flush=True)
            rows += new
    print(f"{len(rows)} rows in {time.perf_counter() - t0:.0f} s "
          f"({'before: uniform prior, plug-in errors' if args.before else 'intervals ' + args.intervals})")
    bad = [r for r in rows if not r["ok"]]
    print(f"coverage outside 2 binomial errors of the nominal level: {len(bad)} of {len(rows)}")
    if args.json:
        tmp = args.json + ".part"  # the old file stays until the new one is complete
        try:
            with open(tmp, "w") as fh:
                json.dump(rows, fh, indent=1)
            os.replace(tmp, args.json)
        except OSError as exc:
            raise SystemExit(f"validate_estimators: cannot write {args.json}: {exc.strerror}") from None
    return rows


if __name__ == "__main__":
    main()
