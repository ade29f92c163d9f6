"""Two rounds files (or RoundsData) -> join -> sift -> every estimator: the JSON object of `timetag estimate`."""
from __future__ import annotations

from pathlib import Path


from ..errors import EstimationError
from .counts import tally
from .report import estimate_from_counts


def _load(obj, what: str):
    from ..roundsfile import RoundsData, read_rounds

    if isinstance(obj, RoundsData):
        return obj
    if isinstance(obj, (str, Path)):
        return read_rounds(obj)
    raise EstimationError(f"{what}: expected a rounds file path or RoundsData, got {type(obj).__name__}")


def _name(d) -> str:
    return str(d.path) if getattr(d, "path", None) is not None else f"<{d.role or 'rounds'} data>"


def check_pair(a, b):
    """Order two RoundsData as (alice, bob) by role and refuse mismatched inputs with clear messages."""
    roles = (a.role.lower(), b.role.lower())
    if roles == ("bob", "alice"):
        a, b = b, a
    elif roles[0] == roles[1] and roles[0]:
        raise EstimationError(f"both rounds files are from the same lab (role {roles[0]!r}): "
                              f"{_name(a)} and {_name(b)}; give one Alice and one Bob file")
    elif set(roles) - {"alice", "bob", ""}:
        bad = [r for r in roles if r not in ("alice", "bob", "")]
        raise EstimationError(f"unknown role {bad[0]!r} in rounds file(s) {_name(a)}, {_name(b)}; "
                              "expected 'alice' and 'bob'")
    if a.setup_hash and b.setup_hash and a.setup_hash != b.setup_hash:
        raise EstimationError(f"rounds files come from different runs: setup hash {a.setup_hash} in {_name(a)} "
                              f"but {b.setup_hash} in {_name(b)}")
    for d in (a, b):
        if len(d.rounds) == 0:
            raise EstimationError(f"{_name(d)}: rounds file is empty (no rounds)")
    return a, b


def estimate(alice, bob, flagged: str = "keep", samples: int = 20000, seed: int | None = 0, *,
             offset_ps: float | None = None, drift: float | None = None, tolerance_ps: float | None = None,
             prob_error: float = 0.03, finite_key: dict | None = None, strict: bool = True) -> dict:
    """Join, sift and estimate; returns the JSON-ready dict (see :func:`estimate_from_counts`) plus
    ``join``, ``sift`` and ``flagged_other_policy`` (S, Q, rates with the other flag policy)."""
    from ..join import join_rounds, sift

    a, b = check_pair(_load(alice, "alice"), _load(bob, "bob"))
    j = join_rounds(a, b, offset_ps=offset_ps, drift=drift, tolerance_ps=tolerance_ps)
    if j.n_pairs == 0:
        raise EstimationError(f"no rounds of {_name(a)} and {_name(b)} could be paired in time "
                              f"(offset {j.offset_ps:.0f} ps, drift {j.drift:.3g}, tolerance {j.tolerance_ps:.0f} ps)")
    sf = sift(a, b, j, flagged)
    if strict and sf.stats["test"] == 0:
        raise EstimationError(f"no test rounds (Alice input X in {{2,3}}) among {j.n_pairs} joined rounds of "
                              f"{_name(a)} and {_name(b)}: CHSH S cannot be estimated")
    if strict and sf.stats["key"] == 0:
        raise EstimationError(f"no key rounds (X = Y in {{0,1}}) among {j.n_pairs} joined rounds of "
                              f"{_name(a)} and {_name(b)}: the QBER cannot be estimated")
    res = estimate_from_counts(tally(sf.x, sf.y, sf.a, sf.b), samples=samples, seed=seed, prob_error=prob_error,
                               finite_key=finite_key)
    other = "drop" if flagged == "keep" else "keep"
    so = sift(a, b, j, other)
    ro = estimate_from_counts(tally(so.x, so.y, so.a, so.b), samples=0)
    res["flagged_other_policy"] = {"policy": other, "rounds": ro["rounds"], "S": ro["S"], "Q": ro["Q"],
                                   "key_rate_per_event": ro["key_rate_per_event"]}
    res["join"] = j.summary()
    res["sift"] = sf.stats
    res["files"] = {"alice": _name(a), "bob": _name(b), "setup_hash": a.setup_hash or b.setup_hash}
    return res
