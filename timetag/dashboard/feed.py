"""What the page shows, kept up to date from the live runner's status snapshots (or fixed, for finished runs).

:class:`LiveFeed` is a status callback of :class:`~timetag.live.runner.LiveRunner`: once per status interval it
appends the snapshot's rates to a bounded :class:`~.history.History` and copies the histograms the herald and
round kernels already fill (a few kB).  That is all it does in the acquisition thread -- no JSON, no estimator, no
pass over tags; the payload is built by the server's thread when a browser asks, at most once per status update.
The two threads share only references swapped under a lock held for a few list copies.

:class:`StaticFeed` holds one payload (``timetag serve``).  Both answer ``payload() -> (version, bytes)`` and
``status() -> (version, bytes)`` (the runner's own status, as ``--json-lines`` prints it).  A page that has drawn
version ``v`` asks ``payload(since=v, gen=...)`` and gets only the rows added since (see :mod:`.history`).
"""
from __future__ import annotations

import json
import math
import threading
import time
from collections import deque

from ..estimators.finitekey import FK_DEFAULTS, min_block_length
from ..provenance import jsonable
from .history import History, columns

__all__ = ["LiveFeed", "StaticFeed", "lab_setup_view", "finite_key_progress", "dumps"]

_EST_KEYS = ("S", "S_err", "Q0", "Q0_err", "Q1", "Q1_err", "key_rate", "key_rate_err")


def dumps(obj) -> bytes:
    """JSON for the page: NaN and infinities become null (browsers' JSON.parse refuses them)."""
    return json.dumps(jsonable(obj, max_array=1 << 20), allow_nan=False, default=str).encode()


def lab_setup_view(lab_setup) -> dict:
    """The setup values the page draws on the histograms: acceptance window, threshold, read-out window."""
    h, r = lab_setup.herald, lab_setup.round
    return {"role": lab_setup.role, "window_ps": [h.window_start_ps, h.window_stop_ps],
            "sync_reference": h.sync_reference, "threshold": r.threshold,
            "fluorescence_window_ps": list(r.fluorescence_window_ps), "trigger": r.trigger,
            "patterns": list(h.patterns)}


def finite_key_progress(est: dict | None, rounds: int | None = None) -> dict | None:
    """Rounds so far against the block length the current S, Q0, Q1 need for a positive finite key."""
    if not est or est.get("S") is None or est.get("Q0") is None or est.get("Q1") is None:
        return None
    S, Q0, Q1 = float(est["S"]), float(est["Q0"]), float(est["Q1"])
    try:
        need = min_block_length(S, Q0, Q1, **FK_DEFAULTS)
    except (ValueError, FloatingPointError, ZeroDivisionError):
        need = float("nan")
    have = int(rounds if rounds is not None else est.get("pairs") or 0)
    frac = have / need if need and math.isfinite(need) and need > 0 else None
    return {"rounds": have, "needed": need if math.isfinite(need) else None,
            "reachable": bool(math.isfinite(need)), "fraction": frac, "eps": FK_DEFAULTS["eps"]}


def setup_clock(setup) -> dict:
    table = (getattr(setup, "extra", None) or {}).get("clock")
    if isinstance(table, dict) and "offset_ps" in table:
        return {"source": "the setup's [clock] table (timetag calibrate)", **{k: table.get(k) for k in (
            "offset_ps", "offset_err_ps", "drift", "drift_err", "pairs")}}
    return {"source": "not calibrated: the join fits offset and drift from the trigger times", "offset_ps": None,
            "drift": None}


class StaticFeed:
    """One payload that never changes (finished runs)."""

    def __init__(self, payload: dict):
        self.version = 1
        payload = dict(payload, version=1)
        self._payload = dumps(payload)
        self._status = dumps({"version": 1, "mode": payload.get("mode", "finished"),
                              "labs": {k: v.get("snapshot") for k, v in payload.get("labs", {}).items()},
                              "estimate": payload.get("estimate")})

    def payload(self, since: int | None = None, gen: str | None = None) -> tuple[int, bytes]:
        return self.version, self._payload  # one version: always the whole page

    def status(self) -> tuple[int, bytes]:
        return self.version, self._status


class LiveFeed:
    """Status callback feeding the page; ``runner`` (optional) gives the kernels' histograms.

    ``attach(runner)`` adds the feed to a runner's status callbacks (the server may start before the runner
    exists, so that a port in use refuses the run before anything is opened).  ``stall_after_s``: wall seconds
    without a lab's device time moving before the page calls its source stalled (the runner's own alarms count
    device time, which stops with the source).
    """

    def __init__(self, setup, labs=(), *, runner=None, stall_after_s: float = 5.0, maxlen: int = 2000):
        self.setup, self.runner, self.maxlen = setup, runner, int(maxlen)
        self.stall_after_s = float(stall_after_s)
        self.version = 0
        self._lock = threading.Lock()
        self._status: dict | None = None
        self._set_labs(labs or (runner.labs if runner is not None else ()))
        self._estimates = History(maxlen)
        self._hists: dict[str, dict] = {}
        self._moved: dict[str, tuple[float, float]] = {}  # lab -> (device time, wall time it last changed)
        self._alarm_log: deque = deque(maxlen=200)
        self._active: set[str] = set()
        self._error = ""
        self._cache: dict[str, tuple[int, bytes]] = {}
        self._clock = setup_clock(setup)
        self.started = time.time()

    def _set_labs(self, labs) -> None:
        self.labs = tuple(labs)
        self._rates = {lab: History(self.maxlen) for lab in self.labs}
        self._views = {lab: lab_setup_view(self.setup.lab(lab)) for lab in self.labs}

    def attach(self, runner) -> None:
        """Feed from ``runner`` (a :class:`~timetag.live.runner.LiveRunner` not yet started)."""
        with self._lock:
            self.runner = runner
            self._set_labs(runner.labs)
        runner.callbacks.append(self)

    # -- the acquisition thread -------------------------------------------------
    def __call__(self, status: dict) -> None:
        try:
            self._take(status)
        except Exception as exc:  # a dashboard bug must never end an acquisition: shown on the page instead
            self._error = f"dashboard feed: {type(exc).__name__}: {exc}"

    def _take(self, status: dict) -> None:
        wall = float(status.get("wall_s") or 0.0)
        v = self.version + 1  # the version this status becomes: every row carries it (deltas for the page)
        rows = {lab: _rate_row(wall, snap, self._rates[lab].last, v) for lab, snap in (status.get("labs") or {}).items()
                if lab in self._rates}
        hists = self._pull_histograms()
        est = status.get("estimate") or {}
        est_row = None
        if est.get("S") is not None and est.get("pairs"):
            est_row = {"v": v, "pairs": est["pairs"], "wall": wall, **{k: est.get(k) for k in _EST_KEYS}}
            ci = est.get("key_rate_ci")
            if isinstance(ci, (list, tuple)) and len(ci) == 2:
                est_row["key_rate_lo"], est_row["key_rate_hi"] = ci
        alarms = list(status.get("alarms") or []) + self._stalls(status, wall)
        with self._lock:
            for lab, row in rows.items():
                self._rates[lab].append(row)
            last = self._estimates.last
            if est_row is not None and (last is None or last["pairs"] != est_row["pairs"]):
                self._estimates.append(est_row)
            self._hists.update(hists)
            self._log_alarms(alarms, wall)
            self._status = dict(status, alarms=alarms)
            self.version = v

    def _pull_histograms(self) -> dict[str, dict]:
        pipes = getattr(self.runner, "pipelines", None) or {}
        out = {}
        for lab, pipe in pipes.items():
            h = getattr(pipe, "histograms", None)  # the pipeline's property copies its arrays
            if h:
                out[lab] = {"arrival": h.get("arrival"), "arrival_channels": h.get("arrival_channels"),
                            "arrival_edges_ps": h.get("arrival_edges_ps"),
                            "fluorescence_counts": h.get("fluorescence_counts")}
        return out

    def _stalls(self, status: dict, wall: float) -> list[str]:
        out = []
        if status.get("completion"):
            return out
        for lab, snap in (status.get("labs") or {}).items():
            t = snap.get("device_time_s")
            prev = self._moved.get(lab)
            if prev is None or t != prev[0]:
                self._moved[lab] = (t, wall)
            elif wall - prev[1] >= self.stall_after_s:
                out.append(f"{lab}: source stalled: no data for {wall - prev[1]:.0f} s of wall time "
                           f"(device time stuck at {t:.3f} s)")
        return out

    def _log_alarms(self, alarms: list[str], wall: float) -> None:
        # keyed by the text before any number, so that a counter changing in an alarm does not re-log it
        keys = {_alarm_key(a): a for a in alarms}
        for k, a in keys.items():
            if k not in self._active:
                self._alarm_log.append({"wall_s": wall, "event": "raised", "alarm": a})
        for k in self._active - keys.keys():
            self._alarm_log.append({"wall_s": wall, "event": "cleared", "alarm": k})
        self._active = set(keys)

    # -- the server's threads ---------------------------------------------------
    def status(self) -> tuple[int, bytes]:
        with self._lock:
            v, st = self.version, self._status
        return self._cached("status", v, lambda: dict(st or {}, version=v))

    def generation(self) -> str:
        return ".".join(str(h.generation) for h in (*self._rates.values(), self._estimates))

    def payload(self, since: int | None = None, gen: str | None = None) -> tuple[int, bytes]:
        """The page's data: everything, or (``since``: the version the page has, ``gen``: the generation it
        got with it) only the rows added after ``since``."""
        with self._lock:  # copies of references only: the acquisition thread waits for nothing longer
            v, st, g = self.version, self._status, self.generation()
            delta = since is not None and gen == g and 0 <= since <= v
            pick = (lambda h: h.rows_after(since)) if delta else (lambda h: h.kept())
            rates = {lab: (pick(h), h.tail()) for lab, h in self._rates.items()}
            ests = (pick(self._estimates), self._estimates.tail())
            hists = dict(self._hists)
            log = list(self._alarm_log)
        if delta:
            return v, dumps(self._build(v, g, st or {}, rates, ests, hists, log, full=False))
        return self._cached("payload", v, lambda: self._build(v, g, st or {}, rates, ests, hists, log, full=True))

    def _cached(self, name: str, v: int, build) -> tuple[int, bytes]:
        hit = self._cache.get(name)
        if hit is not None and hit[0] == v:
            return hit
        out = (v, dumps(build()))
        self._cache[name] = out
        return out

    def _build(self, v, g, st, rates, ests, hists, log, full: bool) -> dict:
        labs = {}
        for lab in self.labs:
            snap = (st.get("labs") or {}).get(lab, {})
            kept, tail = rates.get(lab, ([], []))
            labs[lab] = {"name": lab, **self._views[lab], "snapshot": snap, "x_label": "device time (s)",
                         "series": _flat(kept), "series_tail": _flat(tail),
                         "histograms": _hist_view(hists.get(lab)),
                         "badges": _badges(snap, st.get("alarms") or [], lab)}
        est = st.get("estimate")
        return {
            "mode": "live", "version": v, "gen": g, "full": full, "title": st.get("source", "live run"),
            "run": {k: st.get(k) for k in ("wall_s", "lag_s", "lag_s_max", "load", "idle_s", "rounds_on_disk",
                                           "rounds_made", "latency_s", "flushes", "source_stats", "completion")},
            "labs": labs, "estimate": est, "estimate_series": _flat(ests[0]),
            "estimate_tail": _flat(ests[1]),
            "finite_key": finite_key_progress(est), "clock": self._clock,
            "alarms": st.get("alarms") or [], "alarm_log": log,
            "errors": [self._error] if self._error else [], "started": self.started,
        }


def _rate_row(wall: float, snap: dict, prev: dict | None, v: int) -> dict:
    t, rounds = snap.get("device_time_s"), snap.get("rounds")
    row = {"v": v, "wall": wall, "t": t, "tag_rate": snap.get("tag_rate"), "rounds": rounds,
           "flagged": sum((snap.get("flags") or {}).values())}
    if prev is not None and None not in (t, rounds, prev.get("t"), prev.get("rounds")) and t > prev["t"]:
        row["round_rate"] = (rounds - prev["rounds"]) / (t - prev["t"])
    for ch, r in (snap.get("channel_rates") or {}).items():
        row[f"ch:{ch}"] = r
    for p, r in (snap.get("herald_rates") or {}).items():
        row[f"her:{p}"] = r
    return row


def _flat(rows: list[dict]) -> dict:
    """Rows as ``{"n": rows, "cols": {key: [...]}}``: what the page appends to what it has."""
    cols = columns(rows)
    cols.pop("v", None)
    return {"n": len(rows), "cols": cols}


def _hist_view(h: dict | None) -> dict | None:
    if not h or h.get("arrival") is None:
        return None if not h else {"counts": _tolist(h.get("fluorescence_counts"))}
    return {"arrival": _tolist(h["arrival"]), "arrival_channels": _tolist(h.get("arrival_channels")),
            "arrival_edges_ps": _tolist(h.get("arrival_edges_ps")), "counts": _tolist(h.get("fluorescence_counts"))}


def _tolist(a):
    return None if a is None else a.tolist()


def _badges(snap: dict, alarms: list[str], lab: str) -> list[str]:
    out = []
    if (snap.get("lost") or {}).get("overflow_open"):
        out.append("OVERFLOW")
    if any(a.startswith(f"{lab}: source stalled") for a in alarms):
        out.append("STALLED")
    if any(a.startswith(f"{lab}: no heralds") for a in alarms):
        out.append("NO HERALDS")
    if any(a.startswith(f"{lab}: detector dark") for a in alarms):
        out.append("DARK DETECTOR")
    return out


def _alarm_key(alarm: str) -> str:
    for i, c in enumerate(alarm):
        if c.isdigit() and i > 0 and alarm[i - 1] in " (":
            return alarm[:i].rstrip(" (")
    return alarm
