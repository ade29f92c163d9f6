"""The running estimate of live mode: S, Q0, Q1 and the key rate from the rounds of both labs seen so far.

Rounds go through the same join and sift as ``timetag estimate`` (:func:`.join.join_rounds`, :func:`.join.sift`
with flagged rounds kept: every heralded round counts in the device-independent setting; Psi- rounds in the
Psi+ frame), so the live view and the file-level estimate of the same rounds agree.  The result is a small
JSON-ready dict for a status line; while the data cannot give numbers yet (one lab silent, too few rounds for the
join or for every input pair) it says why in ``note`` instead of raising: the live loop must keep running.
"""
from __future__ import annotations

import numpy as np

from ..errors import TimetagError
from ..provenance import jsonable
from .counts import tally
from .join import join_rounds, sift
from .report import estimate_from_counts

LIVE_SAMPLES = 5000  # posterior samples per update: error bars at a cost the live loop can pay every status tick
COMPACT_KEYS = ("S", "S_err", "Q0", "Q0_err", "Q1", "Q1_err", "test_rounds", "key_rounds")


def running_estimate(rounds_a: np.ndarray, rounds_b: np.ndarray, *, samples: int = LIVE_SAMPLES,
                     protocol: str = "random_basis") -> dict:
    """``{"pairs": n, ...}``: the numbers of :func:`compact_estimate` from Alice's and Bob's rounds so far.

    ``rounds_a``/``rounds_b``: round records (:data:`~timetag.records.ROUND_DTYPE`, or any record array with
    its ``index``, ``trigger_time``, ``setting``, ``output``, ``pattern`` and ``flags`` fields).  ``pairs``
    counts the joined rounds whose inputs are valid on both sides.
    """
    if rounds_a.size == 0 or rounds_b.size == 0:
        return {"pairs": 0, "note": "waiting for rounds of both labs"}
    try:
        joined = join_rounds(rounds_a, rounds_b)
    except Exception as exc:  # the join refuses (e.g. too few rounds yet): show why, keep the live loop running
        return {"pairs": 0, "note": f"join failed: {exc}"}
    sifted = sift(rounds_a, rounds_b, joined, flagged="keep")
    res: dict = {"pairs": sifted.stats["used"]}
    if sifted.stats["used"] == 0:
        return res
    try:
        est = estimate_from_counts(tally(sifted.x, sifted.y, sifted.a, sifted.b), samples=samples)
    except (TimetagError, ValueError, FloatingPointError) as exc:  # too few rounds per input pair yet
        res["note"] = f"not enough rounds yet ({exc})"
        return res
    res.update(compact_estimate(est, protocol))
    return res


def compact_estimate(est, protocol: str = "random_basis") -> dict:
    """The few numbers the live view shows, from the estimators' full report (dict or :class:`.result.Estimate`)."""
    out = {k: est.get(k) for k in COMPACT_KEYS}
    out["key_rate"] = (est.get("key_rate_per_event") or {}).get(protocol)
    bayes = ((est.get("bayes") or {}).get("key_rate_per_event") or {}).get(protocol) or {}
    out["key_rate_err"] = bayes.get("std")
    out["key_rate_ci"] = bayes.get("ci_physical") or bayes.get("ci")  # cut at the physical floor 0, as estimate
    out["key_rate_protocol"] = protocol
    # what makes the numbers fragile (few rounds, no error seen, S above 2 sqrt 2), as estimate prints it
    out["warnings"] = [w.get("message") if isinstance(w, dict) else getattr(w, "message", str(w))
                       for w in (est.get("warnings") or [])]
    return jsonable(out, max_array=64)
