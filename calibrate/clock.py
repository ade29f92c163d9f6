"""Clock offset and drift between the labs from their 'ready' tag sequences.

Thin layer over :func:`timetag.estimators.join.estimate_clock` (robust to missing and extra
triggers): that gives the line ``t_bob = t_alice + offset + drift * t_alice``;
here the triggers are then paired through it and the line is refitted by least
squares on the pairs, which gives the uncertainties and the residuals to plot.
Times are delay-corrected 'ready' tags, i.e. the rounds' trigger times that the
join of the estimators uses, so the offset includes the difference of the two
labs' ready latencies.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from timetag.errors import CalibrationError, EstimationError
from timetag.estimators.join import estimate_clock

MIN_PAIRS = 3
MODEL = "t_bob = t_alice + offset_ps + drift * t_alice (delay-corrected 'ready' tags)"


@dataclass(frozen=True)
class ClockModel:
    """The clock offset/drift between the labs as the setup's ``[clock]`` table holds it: the estimators' join
    reads ``offset_ps`` and ``drift``, the rest says how well they are known and what they mean.  ``None``: not
    given (a table written by hand may hold the two numbers only)."""

    offset_ps: int | float
    drift: float
    offset_err_ps: float | None = None
    drift_err: float | None = None
    pairs: int | None = None
    model: str | None = MODEL

    @classmethod
    def from_result(cls, clk: "ClockResult") -> "ClockModel":
        return cls(int(round(clk.offset_ps)), float(clk.drift), float(clk.offset_err_ps), float(clk.drift_err),
                   int(clk.n_pairs))

    def to_json(self) -> dict:
        """The ``[clock]`` table: plain numbers and text, keys in the order the setup file shows them."""
        table = {"offset_ps": self.offset_ps, "drift": self.drift, "offset_err_ps": self.offset_err_ps,
                 "drift_err": self.drift_err, "pairs": self.pairs, "model": self.model}
        return {k: v for k, v in table.items() if v is not None}

    @classmethod
    def from_json(cls, table: dict) -> "ClockModel":
        """Back from a ``[clock]`` table (numbers kept as written, so that ``to_json`` gives the table again)."""
        if not isinstance(table, dict):
            raise CalibrationError(f"[clock] must be a table with offset_ps and drift (got {table!r})")

        def number(key, required=False):
            v = table.get(key)
            if v is None and not required:
                return None
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise CalibrationError(f"[clock] {key} must be a number (got {v!r})")
            return v

        model = table.get("model")
        return cls(number("offset_ps", True), number("drift", True), number("offset_err_ps"), number("drift_err"),
                   number("pairs"), None if model is None else str(model))


@dataclass(frozen=True)
class ClockResult:
    offset_ps: float
    drift: float
    offset_err_ps: float
    drift_err: float
    n_alice: int
    n_bob: int
    n_pairs: int
    t_alice: np.ndarray      # paired Alice times (ps)
    residuals_ps: np.ndarray # mapped Alice - Bob per pair after the final fit
    method: str

    @property
    def model(self) -> ClockModel:
        return ClockModel.from_result(self)


def calibrate_clock(t_alice, t_bob, *, max_drift: float = 2e-6, jitter_ps: float = 20_000.0,
                    tolerance_ps: float | None = None) -> ClockResult:
    ta = np.sort(np.asarray(t_alice, dtype=np.int64))
    tb = np.sort(np.asarray(t_bob, dtype=np.int64))
    if ta.size < MIN_PAIRS or tb.size < MIN_PAIRS:
        raise CalibrationError(f"clock: {ta.size} Alice and {tb.size} Bob 'ready' tags; at least {MIN_PAIRS} "
                               "on each side are needed")
    try:
        offset, drift, method, sigma = estimate_clock(ta, tb, max_drift=max_drift, jitter_ps=jitter_ps)
    except EstimationError as exc:
        raise CalibrationError(f"clock: no overlap between the labs' trigger sequences ({exc})") from None
    if method == "first":
        raise CalibrationError(f"clock: too few triggers to match the labs' sequences ({ta.size} and {tb.size})")
    if tolerance_ps is None:
        tol = max(20 * sigma, 5 * jitter_ps) if np.isfinite(sigma) else 1e6
        gaps = np.concatenate([np.diff(ta), np.diff(tb)])
        tol = min(tol, 0.25 * float(np.median(gaps)))
    else:
        tol = float(tolerance_ps)
    ia, ib = _pair(ta, tb, offset, drift, tol)
    if ia.size < MIN_PAIRS:
        raise CalibrationError(f"clock: only {ia.size} of {min(ta.size, tb.size)} triggers pair up: no overlap "
                               "between the labs' trigger sequences")
    # least squares on centred times (the offset at t = 0 is then propagated from the centre)
    x = ta[ia].astype(np.float64)
    d = (tb[ib] - ta[ia]).astype(np.float64)
    xc = float(np.mean(x))
    u = x - xc
    for _ in range(3):
        if ia.size >= 3 and np.ptp(u) > 0:
            slope, icpt = np.polyfit(u, d, 1)
        else:
            slope, icpt = drift, float(np.mean(d - drift * u))
        res = d - (icpt + slope * u)
        s = max(float(np.std(res, ddof=min(2, ia.size - 1))), 1.0)
        keep = np.abs(res) <= max(5 * s, 1.0)
        if keep.all():
            break
        ia, ib, x, d, u = ia[keep], ib[keep], x[keep], d[keep], u[keep]
    n = ia.size
    sxx = float(np.sum(u * u)) if n else 0.0
    slope_err = s / np.sqrt(sxx) if sxx > 0 else float("inf")
    icpt_err = s / np.sqrt(n)
    offset_fit = icpt - slope * xc
    offset_err = float(np.hypot(icpt_err, slope_err * xc))
    res = d - (icpt + slope * u)
    return ClockResult(float(offset_fit), float(slope), offset_err, float(slope_err), int(ta.size), int(tb.size),
                       int(n), ta[ia], -res, method)


def _pair(ta, tb, offset, drift, tol):
    mapped = ta + np.rint(offset + drift * ta.astype(np.float64)).astype(np.int64)
    pos = np.searchsorted(tb, mapped)
    left = np.clip(pos - 1, 0, tb.size - 1)
    right = np.clip(pos, 0, tb.size - 1)
    jb = np.where(np.abs(tb[right] - mapped) < np.abs(mapped - tb[left]), right, left)
    ok = np.abs(tb[jb] - mapped) <= tol
    ia, ib = np.flatnonzero(ok), jb[ok]
    # one-to-one: keep the first claim of each Bob trigger
    _, first = np.unique(ib, return_index=True)
    first = np.sort(first)
    return ia[first], ib[first]
