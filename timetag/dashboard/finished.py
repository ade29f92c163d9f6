"""The page's payload for finished runs (``timetag serve``): rounds files, estimates, calibrations and scans.

Folders are searched (recursively, up to :data:`MAX_FILES` files) for rounds files (``*.h5`` with ``/rounds``),
estimate JSON (``timetag estimate --json``), scan tables (``scan.json``) and calibrated setups (a ``[clock]``
table).  The first Alice/Bob pair of rounds files found (shallowest folder first) is drawn like a live run: rates
over the run's time from the round and herald times, the stored histograms, and the running estimate at growing
prefixes of the run (the paper's Fig. 4 style); everything else is listed in tables.  Incomplete files are shown
(and said so), never refused: looking at what a stopped run left is what a dashboard is for.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import TimetagError
from ..estimators.pipeline import estimate
from ..estimators.running import compact_estimate, running_estimate
from ..records import FLAG_NAMES, PATTERN_NAMES
from ..roundsfile import RoundsData, is_rounds_file, read_rounds
from ..setupfile import Setup, load_setup, loads_setup
from .feed import finite_key_progress, lab_setup_view, setup_clock

__all__ = ["finished_payload", "find_inputs", "MAX_FILES"]

MAX_FILES = 500
_BINS = 120


def find_inputs(paths) -> dict[str, list[Path]]:
    """``{"rounds": [...], "estimates": [...], "scans": [...], "setups": [...]}`` under the given files/folders."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted((f for f in p.rglob("*") if f.is_file() and f.suffix in (".h5", ".json", ".toml")),
                           key=lambda f: (len(f.relative_to(p).parts), str(f)))
            files.extend(found[:MAX_FILES])
        elif p.is_file():
            files.append(p)
        else:
            raise TimetagError(f"{p}: no such file or folder")
    out: dict[str, list[Path]] = {"rounds": [], "estimates": [], "scans": [], "setups": []}
    for f in files:
        if f.suffix == ".h5" and not f.name.endswith(".partial") and is_rounds_file(f):
            out["rounds"].append(f)
        elif f.suffix == ".json":
            kind = _json_kind(f)
            if kind:
                out[kind].append(f)
        elif f.suffix == ".toml":
            out["setups"].append(f)
    return out


def _json_kind(path: Path) -> str | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if isinstance(d, dict) and "S" in d and "join" in d:
        return "estimates"
    if isinstance(d, dict) and isinstance(d.get("rows"), list) and "varies" in d:
        return "scans"
    return None


def finished_payload(paths, *, points: int = 16, samples: int = 2000) -> dict:
    """Everything the page draws for the files and folders ``paths`` (see the module docstring)."""
    found = find_inputs(paths)
    datas = []
    for f in found["rounds"]:
        try:
            datas.append(read_rounds(f, accept_incomplete=True))
        except TimetagError:
            continue  # a damaged file is listed by `timetag info`; the page shows the others
    alice = next((d for d in datas if d.role == "alice"), None)
    bob = next((d for d in datas if d.role == "bob" and (alice is None or d.path.parent == alice.path.parent)),
               None) or next((d for d in datas if d.role == "bob"), None)
    main = [d for d in (alice, bob) if d is not None] or datas[:1]
    calibrated = _calibrated_setup(found["setups"])
    labs = {d.lab or d.path.stem: _lab_view(d) for d in main}
    alarms = [f"{d.path.name}: run {d.completion} ({d.completion_reason})" for d in main if not d.complete]
    for d in main:
        lost = (d.summary.get("lost") or {})
        n_lost = sum(int(lost.get(k) or 0) for k in ("overflow_begin", "missed", "error"))
        if n_lost:
            alarms.append(f"{d.lab}: lost data in this run: {lost.get('overflow_begin', 0)} overflow interval(s), "
                          f"{lost.get('missed', 0)} missed-event record(s), {lost.get('error', 0)} device error(s)")
    est, series, clock, notes = None, {"n": 0, "cols": {}}, setup_clock(calibrated) if calibrated else {"source": "–"}, []
    if alice is not None and bob is not None:
        est, series, clock, notes = _estimates(alice, bob, calibrated, points, samples)
    title = "finished run: " + ", ".join(sorted({str(d.path.parent) for d in main})) if main else "no rounds files"
    return {
        "mode": "finished", "version": 1, "title": title,
        "run": {"completion": None},
        "labs": labs, "estimate": est, "estimate_series": series, "estimate_tail": {"n": 0, "cols": {}},
        "full": True, "gen": "",
        "finite_key": finite_key_progress(est), "clock": clock,
        "alarms": alarms + notes, "alarm_log": [], "errors": [],
        "extras": _tables(datas, found),
    }


def _calibrated_setup(setups: list[Path]) -> Setup | None:
    for f in setups:
        try:
            s = load_setup(f)
        except (TimetagError, OSError):
            continue
        if isinstance(s.extra.get("clock"), dict):
            return s
    return None


def _lab_view(d: RoundsData) -> dict:
    setup_view = {"role": d.role, "window_ps": [0, 0], "sync_reference": "?", "threshold": 0,
                  "fluorescence_window_ps": [0, 0], "trigger": "?", "patterns": []}
    if d.setup_text:
        try:
            setup_view = lab_setup_view(loads_setup(d.setup_text).lab(d.lab))
        except TimetagError:
            pass
    return {"name": d.lab, **setup_view, "snapshot": _snapshot(d), "series": _series(d),
            "series_tail": {"n": 0, "cols": {}}, "x_label": "time in the run (s)",
            "histograms": {"arrival": _list(d.histograms.get("arrival")),
                           "arrival_channels": _list(d.histograms.get("arrival_channels")),
                           "arrival_edges_ps": _list(d.histograms.get("arrival_edges_ps")),
                           "counts": _list(d.histograms.get("fluorescence_counts"))},
            "badges": ([] if d.complete else [str(d.completion).upper()]),
            "file": str(d.path)}


def _snapshot(d: RoundsData) -> dict:
    s, r = d.summary, d.rounds
    dur = (s.get("duration_ps") or 0) * 1e-12
    singles = s.get("singles") or {}
    heralds = s.get("heralds") or {p: int(np.count_nonzero(d.heralds["pattern"] == c)) for c, p in
                                   PATTERN_NAMES.items()} if d.heralds is not None else (s.get("heralds") or {})
    lost = s.get("lost") or {}
    return {
        "lab": d.lab, "rounds": int(r.size), "outputs_up": int(np.count_nonzero(r["output"] == 1)),
        "flags": {name: int(np.count_nonzero(r["flags"] & int(bit))) for bit, name in FLAG_NAMES.items()},
        "heralds": heralds, "herald_rates": {p: (n / dur if dur else None) for p, n in heralds.items()},
        "tags": s.get("tags"), "tag_rate": (s["tags"] / dur if dur and s.get("tags") else None),
        "device_time_s": dur,
        "channel_rates": {str(c): (n / dur if dur else None) for c, n in singles.items()},
        "channel_totals": {str(c): n for c, n in singles.items()},
        "lost": {"overflow_intervals": lost.get("overflow_begin", 0), "missed_events": lost.get("missed", 0),
                 "errors": lost.get("error", 0), "overflow_open": False},
        "counts": {"p_up": float(np.mean(r["output"] == 1)) if r.size else None},
        "completion": {"state": str(d.completion), "reason": d.completion_reason},
    }


def _series(d: RoundsData) -> dict:
    """Round and herald rates per pattern over the run, in bins of the run's time (seconds since its start), in
    the page's column layout (``t``, ``round_rate``, ``her:<pattern>``)."""
    t = d.rounds["trigger_time"].astype(np.float64)
    if d.heralds is not None and len(d.heralds):
        t0 = min(t.min() if t.size else np.inf, float(d.heralds["time"].min()))
    else:
        t0 = t.min() if t.size else 0.0
    t1 = max(t.max() if t.size else t0, float(d.heralds["time"].max()) if d.heralds is not None and len(d.heralds) else t0)
    if not t1 > t0:
        return {"n": 0, "cols": {}}
    edges = np.linspace(t0, t1, _BINS + 1)
    width = (edges[1] - edges[0]) * 1e-12
    x = ((edges[:-1] + edges[1:]) / 2 - t0) * 1e-12
    cols = {"t": x.tolist(), "round_rate": (np.histogram(t, edges)[0] / width).tolist()}
    if d.heralds is not None and len(d.heralds):
        ht = d.heralds["time"].astype(np.float64)
        for code, name in PATTERN_NAMES.items():
            sel = d.heralds["pattern"] == code
            if name != "none" and sel.any():
                cols[f"her:{name}"] = (np.histogram(ht[sel], edges)[0] / width).tolist()
    return {"n": _BINS, "cols": cols}


def _estimates(a: RoundsData, b: RoundsData, calibrated: Setup | None, points: int, samples: int):
    notes = []
    try:
        full = estimate(a, b, samples=samples, setup=calibrated, accept_incomplete=True, same_run=True).to_json()
    except TimetagError as exc:
        return {"pairs": 0, "note": str(exc)}, {"n": 0, "cols": {}}, {"source": "–"}, [f"estimate: {exc}"]
    est = dict(compact_estimate(full), pairs=(full.get("join") or {}).get("pairs"))
    j = full.get("join") or {}
    ck = j.get("clock") or {}
    cal = ck.get("calibrated") or {}
    clock = {"source": ck.get("label") or ck.get("source") or "join", "offset_ps": j.get("offset_ps"),
             "offset_err_ps": cal.get("offset_err_ps"), "drift": j.get("drift"), "drift_err": cal.get("drift_err"),
             "residual_rms_ps": j.get("residual_rms_ps"), "pairs": j.get("pairs")}
    notes.extend(j.get("notes") or [])
    n = min(a.rounds.size, b.rounds.size)
    rows = []
    for k in sorted({int(round(v)) for v in np.geomspace(min(50, n), n, points)} if n else ()):
        e = running_estimate(a.rounds[:k], b.rounds[:k], samples=samples)
        if e.get("S") is None:
            continue
        ci = e.get("key_rate_ci") or [None, None]
        rows.append({"pairs": e["pairs"], **{f: e.get(f) for f in ("S", "S_err", "Q0", "Q0_err", "Q1", "Q1_err",
                                                                      "key_rate", "key_rate_err")},
                     "key_rate_lo": ci[0], "key_rate_hi": ci[1]})
    series = {"n": len(rows), "cols": {key: [_finite(r.get(key)) for r in rows] for key in (rows[0] if rows else {})}}
    return est, series, clock, notes


def _tables(datas: list[RoundsData], found: dict) -> list[dict]:
    tables = [{"title": "Rounds files", "columns": ["file", "lab", "role", "rounds", "flagged", "run ended"],
               "rows": [[str(d.path), d.lab, d.role, int(d.rounds.size), int(np.count_nonzero(d.rounds["flags"])),
                         str(d.completion) + (f" ({d.completion_reason})" if d.completion_reason else "")]
                        for d in datas]}]
    ests = []
    for f in found["estimates"]:
        d = json.loads(f.read_text(encoding="utf-8"))
        kr = (d.get("key_rate_per_event") or {}).get("random_basis")
        ests.append([str(f), _r(d.get("S")), _r(d.get("Q0")), _r(d.get("Q1")), _r(kr), (d.get("join") or {}).get("pairs"),
                     _r(d.get("min_block_length"), 0)])
    if ests:
        tables.append({"title": "Estimates", "columns": ["file", "S", "Q0", "Q1", "key rate", "pairs", "block length"],
                       "rows": ests})
    cal = []
    for f in found["setups"]:
        try:
            c = load_setup(f).extra.get("clock")
        except (TimetagError, OSError):
            continue
        if isinstance(c, dict):
            cal.append([str(f), _r(c.get("offset_ps"), 0), _r(c.get("offset_err_ps"), 1), c.get("drift"), c.get("pairs")])
    if cal:
        tables.append({"title": "Calibrations (clock)", "columns": ["setup", "offset (ps)", "± (ps)", "drift", "pairs"],
                       "rows": cal})
    for f in found["scans"]:
        d = json.loads(f.read_text(encoding="utf-8"))
        keys = [v.get("name") or v.get("key") for v in d.get("varies") or [] if isinstance(v, dict)]
        keys = [k for k in keys if k]
        cols = keys + ["herald_rate_hz", "S", "Q", "key_rate_per_event"]
        tables.append({"title": f"Scan {f}", "columns": cols,
                       "rows": [[_r(row.get(c)) if isinstance(row.get(c), float) else row.get(c) for c in cols]
                                for row in d["rows"]]})
    return tables


def _r(v, d: int = 4):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else round(float(v), d)


def _finite(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


def _list(a):
    return None if a is None else np.asarray(a).tolist()
