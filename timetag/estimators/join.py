"""Join Alice's and Bob's rounds into pairs, and sift them into key and test rounds.

Clock model: the labs' taggers run on independent clocks, ``t_bob = t_alice + offset_ps + drift * t_alice``.

Pairing is always by trigger time mapped through that model (nearest Bob trigger within ``tolerance_ps``,
one-to-one), never by position: a round missing or extra on one side then costs exactly that round and
cannot shift the later pairs.  The round ``index`` is used where it is consistent: if the rounds with
equal index on both sides fit one clock line, that line is the clock estimate (fast path).  Otherwise the
clock is estimated from the trigger sequences themselves: inter-trigger intervals are fingerprints
(random arrival times, ns jitter), so each pair of consecutive Alice intervals is looked up among Bob's
(within ``max_drift`` relative plus ``jitter_ps``); the candidate offsets of the matches lie on the clock
line and a robust fit (mode of coarse offset bins, then iterated least squares with a MAD cut) rejects
the chance matches.  Unmatched rounds on either side are reported, never paired.

Sifting (``sift``): key rounds X = Y in {0, 1}; test rounds X in {2, 3} (any Y); the rest (X in {0,1},
X != Y) only enter the correlation plots.  A round with a missing/ambiguous setting on either side
cannot be assigned and is reported.  Flagged rounds (lost data, truncated windows, ...): default
``keep`` -- in the device-independent setting every heralded round must count, and dropping rounds on a
flag that may correlate with the outcome would bias S upwards; ``drop`` is offered to show the effect
(the estimate command reports both).

Herald patterns: the pattern of a pair is Alice's (her BSM heralds; Bob's rounds carry PATTERN_NONE).  Psi-
rounds are brought into the Psi+ frame by relabelling Bob's input y -> 1 - y (derivation in
:mod:`timetag.estimators.patterns`), so rounds of both patterns combine into one set of counts.
``patterns`` restricts the sift to some patterns (e.g. only 'psi+').
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import EstimationError
from ..records import PATTERN_CODES, PATTERN_NAMES, ROUND_DTYPE, SETTING_NONE
from .patterns import pattern_counts, round_patterns, to_psi_plus_frame

DEFAULT_MAX_DRIFT = 2e-6     # relative clock drift bound (rubidium/quartz references: <~1 ppm)
DEFAULT_JITTER_PS = 20_000   # absolute slack on an interval (trigger jitter is ~ns)
MIN_TOLERANCE_PS = 1_000_000  # 1 us: pairing window when no clock fit is available (clock given or too few rounds)
MIN_FIT_TOLERANCE_PS = 100_000  # 100 ns: floor of the window derived from a clock fit (20 sigma of its residuals)


@dataclass
class JoinResult:
    ia: np.ndarray                # index into Alice's rounds array, per pair (sorted by Alice time)
    ib: np.ndarray                # index into Bob's rounds array, per pair
    unmatched_alice: np.ndarray   # indices of Alice rounds without a partner
    unmatched_bob: np.ndarray
    offset_ps: float
    drift: float
    residuals: np.ndarray         # ps: mapped Alice time - Bob time, per pair
    tolerance_ps: float
    method: str                   # 'given', 'index' or 'intervals'
    index_slips: int = 0          # changes of (Bob index - Alice index) along the pairs
    notes: list = field(default_factory=list)

    @property
    def n_pairs(self) -> int:
        return int(len(self.ia))

    def summary(self) -> dict:
        return {"pairs": self.n_pairs, "unmatched_alice": int(len(self.unmatched_alice)),
                "unmatched_bob": int(len(self.unmatched_bob)), "offset_ps": float(self.offset_ps),
                "drift": float(self.drift), "tolerance_ps": float(self.tolerance_ps), "method": self.method,
                "residual_rms_ps": float(np.sqrt(np.mean(self.residuals.astype(float) ** 2)))
                if len(self.residuals) else None,
                "index_slips": int(self.index_slips), "notes": list(self.notes)}


def _rounds_array(r) -> np.ndarray:
    arr = getattr(r, "rounds", r)
    arr = np.asarray(arr)
    if arr.dtype != ROUND_DTYPE:
        if arr.dtype.names and "trigger_time" in arr.dtype.names:
            out = np.zeros(len(arr), ROUND_DTYPE)
            for name in ROUND_DTYPE.names:
                if name in arr.dtype.names:
                    out[name] = arr[name]
            return out
        raise EstimationError(f"join: expected rounds records (ROUND_DTYPE), got dtype {arr.dtype}")
    return arr


def map_alice_to_bob(t_alice, offset_ps: float, drift: float) -> np.ndarray:
    """Alice times (int64 ps) on Bob's clock; the drift term in float, added to exact integers."""
    t = np.asarray(t_alice, dtype=np.int64)
    return t + np.rint(offset_ps + drift * t.astype(float)).astype(np.int64)


def _robust_line(t: np.ndarray, d: np.ndarray, max_drift: float, tol0: float):
    """Fit d = offset + drift * t robustly; returns (offset, drift, inlier mask, sigma) or None."""
    if len(t) < 2:
        return None
    tf = t.astype(float)
    tc = float(np.median(tf))
    u = tf - tc
    span = float(tf.max() - tf.min())
    w = max_drift * span + 2 * tol0 + 1.0
    bins = np.floor(d / w).astype(np.int64)
    ub, cnt = np.unique(bins, return_counts=True)
    # best pair of adjacent bins: the true offsets may straddle a bin edge
    nxt = np.zeros_like(cnt)
    adj = np.searchsorted(ub, ub + 1)
    ok = (adj < len(ub)) & (ub[np.minimum(adj, len(ub) - 1)] == ub + 1)
    nxt[ok] = cnt[adj[ok]]
    k = int(np.argmax(cnt + nxt))
    inl = (bins == ub[k]) | (bins == ub[k] + 1)
    slope, icpt = 0.0, float(np.median(d[inl]))
    sigma = w
    for _ in range(6):
        if inl.sum() >= 3 and np.ptp(u[inl]) > 0:
            slope, icpt = np.polyfit(u[inl], d[inl], 1)
        elif inl.sum() >= 1:
            slope, icpt = 0.0, float(np.median(d[inl]))
        res = d - (icpt + slope * u)
        mad = float(np.median(np.abs(res[inl]))) * 1.4826 if inl.any() else w
        sigma = max(mad, 1.0)
        # never wider than the first window: chance matches must not pull the line out of it
        new = np.abs(res) <= min(max(5 * sigma, tol0), w)
        if np.array_equal(new, inl):
            break
        inl = new
    if inl.sum() < 2:
        return None
    return float(icpt - slope * tc), float(slope), inl, float(sigma)


def estimate_clock(ta: np.ndarray, tb: np.ndarray, index_a=None, index_b=None, *,
                   max_drift: float = DEFAULT_MAX_DRIFT, jitter_ps: float = DEFAULT_JITTER_PS):
    """(offset_ps, drift, method, sigma_ps) of ``t_b = t_a + offset + drift t_a`` from two trigger lists."""
    ta = np.asarray(ta, np.int64)
    tb = np.asarray(tb, np.int64)
    if index_a is not None and index_b is not None and len(ta) >= 3:
        common, pa, pb = np.intersect1d(index_a, index_b, return_indices=True)
        if len(common) >= 3:
            fit = _robust_line(ta[pa], (tb[pb] - ta[pa]).astype(float), max_drift, jitter_ps)
            # the index path is trusted only if nearly all equal-index rounds sit on the line
            if fit is not None and fit[2].sum() >= 0.9 * len(common) and fit[3] <= jitter_ps:
                return fit[0], fit[1], "index", fit[3]
    da, db = np.diff(ta), np.diff(tb)
    if len(da) < 2 or len(db) < 2:
        if len(ta) and len(tb):  # too few rounds for fingerprints: align the first triggers
            return float(tb[0] - ta[0]), 0.0, "first", float("nan")
        raise EstimationError("join: no trigger times to estimate the clock offset from")
    order = np.argsort(db, kind="stable")
    dbs = db[order]
    tol = max_drift * da.astype(float) + jitter_ps
    lo = np.searchsorted(dbs, da - tol, "left")
    hi = np.searchsorted(dbs, da + tol, "right")
    cnt = hi - lo
    # cap candidates per interval: periodic triggers make intervals uninformative, not expensive
    cnt = np.minimum(cnt, 16)
    i = np.repeat(np.arange(len(da)), cnt)
    j = order[np.repeat(lo, cnt) + (np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt))]
    ok = (i + 1 < len(da)) & (j + 1 < len(db))
    i, j = i[ok], j[ok]
    second = np.abs(db[j + 1] - da[i + 1]) <= tol[i + 1]
    i, j = i[second], j[second]
    if len(i) < 2:
        raise EstimationError(
            f"join: cannot estimate the clock offset between the labs: no matching trigger-interval patterns "
            f"({len(ta)} Alice and {len(tb)} Bob rounds); give the offset and drift explicitly")
    fit = _robust_line(ta[i], (tb[j] - ta[i]).astype(float), max_drift, jitter_ps)
    if fit is None:
        raise EstimationError("join: trigger-interval matches do not agree on one clock offset")
    return fit[0], fit[1], "intervals", fit[3]


def join_rounds(alice, bob, offset_ps: float | None = None, drift: float | None = None,
                tolerance_ps: float | None = None, *, max_drift: float = DEFAULT_MAX_DRIFT,
                jitter_ps: float = DEFAULT_JITTER_PS) -> JoinResult:
    """Pair Alice's and Bob's rounds (RoundsData or ROUND_DTYPE arrays); see the module docstring.

    ``tolerance_ps`` (pairing window on Bob's clock) defaults to max(100 ns, 20 sigma of the clock fit)
    (1 us when the clock was given or could not be fitted),
    capped at a quarter of the median inter-trigger interval so that neighbours can never be confused.
    """
    ra, rb = _rounds_array(alice), _rounds_array(bob)
    notes: list[str] = []
    ta_all, tb_all = ra["trigger_time"].astype(np.int64), rb["trigger_time"].astype(np.int64)
    if len(ra) == 0 or len(rb) == 0:
        return JoinResult(np.zeros(0, np.int64), np.zeros(0, np.int64), np.arange(len(ra)), np.arange(len(rb)),
                          float(offset_ps or 0.0), float(drift or 0.0), np.zeros(0, np.int64),
                          float(tolerance_ps or MIN_TOLERANCE_PS), "given" if offset_ps is not None else "none")
    sa = np.argsort(ta_all, kind="stable")
    sb = np.argsort(tb_all, kind="stable")
    ta, tb = ta_all[sa], tb_all[sb]
    sigma = float("nan")
    if offset_ps is None:
        offset_ps, est_drift, method, sigma = estimate_clock(ta, tb, ra["index"][sa], rb["index"][sb],
                                                             max_drift=max_drift, jitter_ps=jitter_ps)
        if drift is None:
            drift = est_drift
        else:  # drift given, offset not: keep the estimated line's value at mid-run with the given slope
            offset_ps = offset_ps + (est_drift - float(drift)) * float(np.median(ta))
    else:
        method = "given"
        drift = 0.0 if drift is None else float(drift)
    if tolerance_ps is None:
        # a window much wider than the clock's residual scatter only admits chance coincidences of
        # rounds whose partner is missing on the other side
        tolerance_ps = MIN_TOLERANCE_PS if not np.isfinite(sigma) else max(MIN_FIT_TOLERANCE_PS, 20 * sigma)
        gaps = np.concatenate([np.diff(ta), np.diff(tb)])
        if len(gaps):
            tolerance_ps = min(tolerance_ps, 0.25 * float(np.median(gaps)))
    mapped = map_alice_to_bob(ta, offset_ps, drift)
    pos = np.searchsorted(tb, mapped)
    left = np.clip(pos - 1, 0, len(tb) - 1)
    right = np.clip(pos, 0, len(tb) - 1)
    dl = np.abs(mapped - tb[left])
    dr = np.abs(mapped - tb[right])
    jb = np.where(dr < dl, right, left)
    dist = np.minimum(dl, dr)
    ok = dist <= tolerance_ps
    ka = np.nonzero(ok)[0]
    kb = jb[ok]
    # one-to-one: where two Alice rounds claim one Bob round, the closer one keeps it
    if len(kb) and np.bincount(kb, minlength=len(tb)).max() > 1:  # O(n): np.unique hashes (seconds at 1e7)
        o = np.lexsort((dist[ka], kb))
        keep = np.ones(len(o), bool)
        keep[1:] = kb[o][1:] != kb[o][:-1]
        sel = np.sort(o[keep])
        ka, kb = ka[sel], kb[sel]
    ia, ib = sa[ka], sb[kb]
    um_a, um_b = _unpaired(len(ra), ia), _unpaired(len(rb), ib)
    res = mapped[ka] - tb[kb]
    idiff = rb["index"][ib].astype(np.int64) - ra["index"][ia].astype(np.int64)
    slips = int(np.count_nonzero(np.diff(idiff))) if len(idiff) > 1 else 0
    if len(ia) < 0.5 * min(len(ra), len(rb)):
        notes.append(f"only {len(ia)} of {min(len(ra), len(rb))} rounds paired: clock offset/drift or "
                     f"tolerance ({tolerance_ps:.0f} ps) may be wrong")
    return JoinResult(ia, ib, um_a, um_b, float(offset_ps), float(drift), res, float(tolerance_ps), method,
                      slips, notes)


def _unpaired(n: int, paired: np.ndarray) -> np.ndarray:
    """Sorted positions in range(n) not in ``paired`` (np.setdiff1d's answer, by a mask: linear time)."""
    free = np.ones(n, bool)
    free[paired] = False
    return np.flatnonzero(free)


@dataclass
class SiftResult:
    x: np.ndarray      # Alice input per usable pair
    y: np.ndarray
    a: np.ndarray      # Alice output (1 = up)
    b: np.ndarray
    key: np.ndarray    # bool masks over the usable pairs
    test: np.ndarray
    flagged: np.ndarray
    stats: dict


def _pattern_filter(patterns) -> tuple[int, ...] | None:
    if patterns is None:
        return None
    if isinstance(patterns, str):
        patterns = [p.strip() for p in patterns.split(",") if p.strip()]
    codes = []
    for p in patterns:
        if p not in PATTERN_CODES:
            raise EstimationError(f"unknown herald pattern {p!r}; expected some of {', '.join(PATTERN_CODES)}")
        codes.append(PATTERN_CODES[p])
    if not codes:
        raise EstimationError("empty herald pattern selection")
    return tuple(codes)


def sift(alice, bob, join: JoinResult, flagged: str = "keep", patterns=None) -> SiftResult:
    """Inputs/outputs of the joined pairs with key/test masks; unassignable rounds are counted in stats.

    Bob's input of Psi- pairs is returned in the Psi+ frame (y -> 1 - y); ``patterns`` (names such as
    ``["psi+"]`` or ``"psi+,psi-"``; default all) selects pairs by herald pattern.
    """
    if flagged not in ("keep", "drop"):
        raise EstimationError(f"flagged policy must be 'keep' or 'drop', got {flagged!r}")
    sel = _pattern_filter(patterns)
    ra, rb = _rounds_array(alice)[join.ia], _rounds_array(bob)[join.ib]
    pat, conflicts = round_patterns(ra["pattern"], rb["pattern"])
    x = ra["setting"].astype(np.int64)
    y = to_psi_plus_frame(rb["setting"].astype(np.int64), pat)
    fl = (ra["flags"] != 0) | (rb["flags"] != 0)
    valid = (x >= 0) & (x <= 3) & (y >= 0) & (y <= 1)
    miss_a = int(np.count_nonzero(ra["setting"] == SETTING_NONE))
    miss_b = int(np.count_nonzero(rb["setting"] == SETTING_NONE))
    chosen = np.ones(len(x), bool) if sel is None else np.isin(pat, sel)
    use = valid & chosen & (~fl if flagged == "drop" else True)
    x, y, fu = x[use], y[use], fl[use]
    a, b = ra["output"][use].astype(np.int64), rb["output"][use].astype(np.int64)
    key = (x == y) & (x <= 1)
    test = x >= 2
    stats = {"pairs": join.n_pairs, "used": int(use.sum()), "missing_setting_alice": miss_a,
             "missing_setting_bob": miss_b, "unassignable": int(np.count_nonzero(~valid)),
             "flagged_pairs": int(np.count_nonzero(fl)), "flagged_used": int(np.count_nonzero(fu)),
             "flag_policy": flagged, "key": int(key.sum()), "test": int(test.sum()),
             "other": int(np.count_nonzero(~key & ~test)),
             "patterns": pattern_counts(pat), "patterns_used": pattern_counts(pat[use]),
             "pattern_selection": None if sel is None else [PATTERN_NAMES[c] for c in sel],
             "pattern_conflicts": conflicts,
             "psi_minus_relabelled": int(np.count_nonzero(pat[use] == PATTERN_CODES["psi-"]))}
    return SiftResult(x, y, a, b, key, test, fu, stats)
