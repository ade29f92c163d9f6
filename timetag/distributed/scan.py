"""Parameter scans: re-process both labs for every combination of varied setup parameters and estimate each.

``--vary KEY=SPEC``: KEY is a dotted path into the setup file (``labs.alice.herald.window_stop_ps``), a path
inside every lab that has it (``herald.window_stop_ps``, ``round.threshold``), or a short alias
(``window.start``, ``window.stop``, ``threshold``, ``coincidence``, ``fluorescence.start``,
``fluorescence.stop``).  SPEC is ``start:stop:step`` (stop included when on the grid) or ``v1,v2,...``;
times may carry a unit (``20ns``, ``1.5us``; plain numbers are the key's own unit, ps for ``*_ps``).

A lab is processed once per distinct setting of *its* parameters (varying Bob's threshold does not
re-process Alice); processing tasks and estimates run on Dask when a cluster is given, else in turn.

The scan returns its rows (plain dicts) and writes its files; it draws nothing itself and prints nothing: the
figure is :func:`timetag.estimators.plots.scan_figure`, the terminal table is ``timetag scan``'s
(:mod:`timetag.commands.scan`).
"""
from __future__ import annotations

import copy
import csv
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..chunk import DEFAULT_CHUNK_SIZE
from ..custody import AtomicOutputs, check_not_input, check_target
from ..errors import EstimationError, OutputError, SetupError, TimetagError
from ..estimators import plots
from ..estimators.pipeline import estimate
from ..process import process_files
from ..roundsfile import read_rounds
from ..setupfile import Setup, load_setup, setup_from_dict
from .run import dask_client

ALIASES = {
    "window.start": "herald.window_start_ps",
    "window.stop": "herald.window_stop_ps",
    "threshold": "round.threshold",
    "coincidence": "herald.coincidence_ps",
    "fluorescence.start": "round.fluorescence_window_ps[0]",
    "fluorescence.stop": "round.fluorescence_window_ps[1]",
    "setting.start": "round.setting_window_ps[0]",
    "setting.stop": "round.setting_window_ps[1]",
}
_UNITS = {"ps": 1, "ns": 1_000, "us": 1_000_000, "µs": 1_000_000, "ms": 1_000_000_000, "s": 1_000_000_000_000}
_NUM = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([a-zµ]*)\s*$")
METRICS = plots.SCAN_METRICS  # the panels of scan.png


@dataclass(frozen=True)
class Vary:
    key: str              # as the user wrote it
    paths: tuple[str, ...]  # resolved setup paths it sets
    values: tuple


def _number(text: str, key: str):
    m = _NUM.match(text)
    if not m:
        raise SetupError(f"--vary {key}: {text!r} is not a number (optionally with a unit: ps, ns, us, ms, s)",
                         key=key)
    value, unit = m.groups()
    if unit:
        if unit not in _UNITS:
            raise SetupError(f"--vary {key}: unknown unit {unit!r} (known: {', '.join(_UNITS)})", key=key)
        x = float(value) * _UNITS[unit]
        return int(round(x))
    x = float(value)
    return int(x) if x.is_integer() and not any(c in value for c in ".eE") else x


def parse_values(spec: str, key: str) -> tuple:
    if ":" in spec and "," not in spec:
        parts = spec.split(":")
        if len(parts) != 3:
            raise SetupError(f"--vary {key}={spec}: a range is start:stop:step", key=key)
        a, b, step = (_number(p, key) for p in parts)
        if step == 0 or (b - a) * step < 0:
            raise SetupError(f"--vary {key}={spec}: step {step} does not lead from {a} to {b}", key=key)
        n = int(math.floor((b - a) / step + 1e-9)) + 1
        if n > 10_000:
            raise SetupError(f"--vary {key}={spec}: {n} values is too many for a scan", key=key)
        vals = [a + i * step for i in range(n)]
        return tuple(int(v) if float(v).is_integer() else v for v in vals)
    vals = tuple(_number(p, key) for p in spec.split(",") if p.strip())
    if not vals:
        raise SetupError(f"--vary {key}=: no values given", key=key)
    return vals


def _get(d: dict, path: str):
    cur = d
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            idx = int(part[1:-1])
            if not isinstance(cur, list) or idx >= len(cur):
                raise KeyError(path)
            cur = cur[idx]
        else:
            if not isinstance(cur, dict) or part not in cur:
                raise KeyError(path)
            cur = cur[part]
    return cur


def _set(d: dict, path: str, value) -> None:
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    cur = d
    for part in parts[:-1]:
        cur = cur[int(part[1:-1])] if part.startswith("[") else cur[part]
    last = parts[-1]
    if last.startswith("["):
        cur[int(last[1:-1])] = value
    else:
        cur[last] = value


def resolve_key(setup_dict: dict, key: str) -> tuple[str, ...]:
    """Setup paths a --vary key refers to (every lab that has it, for lab-relative keys and aliases)."""
    rel = ALIASES.get(key, key)
    if rel.startswith("labs."):
        candidates = [rel]
    else:
        labs = setup_dict.get("labs", {})
        # the herald window only matters for labs that herald (have a sync channel)
        candidates = [f"labs.{name}.{rel}" for name, lab in labs.items()
                      if not (rel.startswith("herald.") and "sync_channel" not in lab)]
    found = []
    for c in candidates:
        try:
            _get(setup_dict, c)
        except KeyError:
            continue
        found.append(c)
    if not found:
        raise SetupError(f"--vary {key}: no such setup parameter (use a path like "
                         f"labs.alice.herald.window_stop_ps, or one of: {', '.join(ALIASES)})", key=key)
    return tuple(found)


def key_unit(key: str) -> str:
    """The unit of a --vary key's values as the scan rows hold them: ps for times, counts for the threshold."""
    path = ALIASES.get(key, key)
    if re.search(r"_ps(\[\d+\])?$", path):
        return "ps"
    if path.split(".")[-1] == "threshold":
        return "counts"
    return ""


def parse_vary(spec: str, setup_dict: dict) -> Vary:
    if "=" not in spec:
        raise SetupError(f"--vary {spec!r}: expected KEY=VALUES (e.g. window.stop=20ns:120ns:10ns)", key="vary")
    key, values = (s.strip() for s in spec.split("=", 1))
    return Vary(key, resolve_key(setup_dict, key), parse_values(values, key))


def _check_distinct(varies: Sequence[Vary]) -> None:
    """Two --vary setting one setup key would overwrite each other in every point (rows labelled wrongly)."""
    seen: dict[str, str] = {}
    for v in varies:
        for path in v.paths:
            if path in seen:
                raise SetupError(f"--vary {v.key} and --vary {seen[path]} both set {path}: give each key once",
                                 key="vary")
            seen[path] = v.key


def scan_points(setup: Setup, varies: Sequence[Vary]) -> list[tuple[dict, Setup]]:
    """Every combination: (values by key, the validated setup). A bad combination raises SetupError naming it."""
    base = setup.to_dict()
    out = []
    for combo in itertools.product(*(v.values for v in varies)):
        d = copy.deepcopy(base)
        for v, x in zip(varies, combo):
            for p in v.paths:
                _set(d, p, x)
        params = {v.key: x for v, x in zip(varies, combo)}
        try:
            s = setup_from_dict(d)
        except SetupError as exc:
            raise SetupError(f"scan point {params}: {exc}") from None
        out.append((params, s))
    return out


def _lab_key(setup: Setup, lab: str) -> str:
    d = setup.to_dict()["labs"][lab]
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


# --- tasks (run on workers or locally) ------------------------------------------

def process_lab_task(paths: list[str], setup: Setup, lab: str, out: str, chunk_size: int,
                     force: bool = False) -> dict:
    """Process one lab into ``out``, through custody as `timetag process` (:func:`timetag.process.process_files`)."""

    return process_files(paths, setup, lab, out, chunk_size=chunk_size, progress=False, checksum=False,
                         force=force)


def estimate_task(alice_summary: dict, bob_summary: dict, alice_out: str, bob_out: str, params: dict) -> dict:

    row: dict = dict(params)
    dur = alice_summary.get("duration_ps") or 0
    heralding = alice_summary.get("heralds_heralding", alice_summary.get("rounds", 0))
    row["heralds"] = heralding
    row["rounds_alice"] = alice_summary.get("rounds")
    row["rounds_bob"] = bob_summary.get("rounds")
    row["herald_rate_hz"] = heralding / (dur * 1e-12) if dur else None

    a, b = read_rounds(alice_out), read_rounds(bob_out)
    # A lab's rounds are shared by every point that sets its parameters alike, so the two files of one
    # point may carry different setup hashes; they do come from one scan of one run.
    a.setup_hash = b.setup_hash = ""
    try:
        res = estimate(a, b, samples=0)
    except (EstimationError, TimetagError) as exc:
        row.update({"pairs": 0, "S": None, "Q": None, "key_rate_per_event": None, "note": str(exc),
                    "S_err": None, "Q_err": None, "key_rate_per_event_err": None})
        return row
    kr = res.get("key_rate_per_event")
    row["pairs"] = res.get("rounds")
    row["S"] = res.get("S")
    row["Q"] = res.get("Q")
    row["key_rate_per_event"] = kr.get("random_basis") if isinstance(kr, dict) else kr
    row["note"] = ""
    # one standard deviation of each (added after the columns above: scan.csv's first columns stay where they were)
    row["S_err"] = res.get("S_err")
    row["Q_err"] = res.get("Q_err")
    row["key_rate_per_event_err"] = key_rate_err(res.get("S"), res.get("S_err"), res.get("Q0"), res.get("Q0_err"),
                                                 res.get("Q1"), res.get("Q1_err"))
    return row


#: the uncertainty field of each metric of a scan's rows (one standard deviation)
ERR_FIELDS = {"S": "S_err", "Q": "Q_err", "key_rate_per_event": "key_rate_per_event_err"}


def key_rate_err(S, S_err, Q0, Q0_err, Q1, Q1_err, protocol: str = "random_basis") -> float | None:
    """One standard deviation of the asymptotic key rate per event, propagated to first order from those of S,
    Q0 and Q1 (taken as independent: the test and key rounds are disjoint); None when one is missing."""
    from ..estimators.keyrate import key_rate

    vals = (S, S_err, Q0, Q0_err, Q1, Q1_err)
    if any(v is None or not math.isfinite(v) for v in vals):
        return None

    def rate(s, q0, q1):
        return key_rate(s, q0, q1, protocol=protocol, per="event")

    var = 0.0
    for i, (v, e) in enumerate(((S, S_err), (Q0, Q0_err), (Q1, Q1_err))):
        if not e:
            continue
        h = min(e, 1e-4) if i else min(e, 1e-3)
        lo, hi = [S, Q0, Q1], [S, Q0, Q1]
        lo[i], hi[i] = v - h, v + h
        if i and lo[i] < 0:  # a QBER at 0: one-sided difference
            lo[i] = v
        d = (rate(*hi) - rate(*lo)) / (hi[i] - lo[i])
        var += (d * e) ** 2
    out = math.sqrt(var)
    return out if math.isfinite(out) else None


SCAN_FILES = ("scan.csv", "scan.png", "scan.json")


def run_scan(alice_paths: Sequence, bob_paths: Sequence, setup, varies: Sequence[str], out_dir, *,
             dask=None, chunk_size: int = DEFAULT_CHUNK_SIZE, alice: str = "alice", bob: str = "bob",
             force: bool = False, plot: bool | None = None) -> list[dict]:
    """Process and estimate every scan point; writes ``scan.csv``, ``scan.png`` and ``scan.json`` (and the
    rounds files under ``rounds/``) in ``out_dir``; returns rows.

    Every file goes through custody: written as ``<name>.partial`` and renamed when complete, never over an
    input; existing files are refused up front (all named) unless ``force``, and stay whole until replaced.
    ``plot``: draw ``scan.png`` (None: when matplotlib is installed; True without it: a clear error).
    """
    setup_path = None if isinstance(setup, Setup) else Path(setup)
    setup = setup if isinstance(setup, Setup) else load_setup(setup)
    for name in (alice, bob):
        setup.lab(name)
    base = setup.to_dict()
    vs = [parse_vary(s, base) for s in varies]
    if not vs:
        raise SetupError("a scan needs at least one --vary KEY=VALUES", key="vary")
    _check_distinct(vs)
    points = scan_points(setup, vs)
    out_dir = Path(out_dir)
    a_paths, b_paths = [str(p) for p in alice_paths], [str(p) for p in bob_paths]
    inputs = [*a_paths, *b_paths] + ([setup_path] if setup_path is not None else [])
    if plot is None:
        plot = plots.have_matplotlib()
    elif plot:
        plots.require_matplotlib("scan.png")

    jobs: dict[tuple[str, str], tuple] = {}  # (lab, lab key) -> (paths, setup, lab, out)
    point_jobs = []
    for params, s in points:
        keys = []
        for lab, paths in ((alice, a_paths), (bob, b_paths)):
            k = (lab, _lab_key(s, lab))
            if k not in jobs:
                jobs[k] = (paths, s, lab, str(out_dir / "rounds" / f"{lab}-{k[1]}.h5"))
            keys.append(k)
        point_jobs.append((params, keys))
    summary_files = [out_dir / n for n in SCAN_FILES if plot or n != "scan.png"]
    check_scan_outputs(out_dir, summary_files + [Path(job[3]) for job in jobs.values()], inputs=inputs,
                       force=force)

    if dask is None:
        summaries = {k: process_lab_task(*job, chunk_size, force) for k, job in jobs.items()}
        rows = [estimate_task(summaries[ka], summaries[kb], jobs[ka][3], jobs[kb][3], params)
                for params, (ka, kb) in point_jobs]
    else:

        with dask_client(dask) as client:
            futs = {k: client.submit(process_lab_task, *job, chunk_size, force, pure=False)
                    for k, job in jobs.items()}
            est = [client.submit(estimate_task, futs[ka], futs[kb], jobs[ka][3], jobs[kb][3], params, pure=False)
                   for params, (ka, kb) in point_jobs]
            rows = client.gather(est)
    write_summary_files(rows, vs, summary_files, inputs=inputs, force=force)
    return rows


def check_scan_outputs(out_dir: Path, targets: Sequence[Path], *, inputs: Sequence = (), force: bool = False) -> None:
    """Refuse the scan's outputs before anything is processed: one line naming every file that exists (unless
    ``force``); an output that is an input or a folder; ``out_dir`` a file."""

    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: is a file, not a folder; --out takes the folder of the scan's outputs")
    for t in targets:
        check_not_input(t, inputs)
    existing = [str(t.relative_to(out_dir)) for t in targets if t.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 5} more)" if len(existing) > 5 else ""
        raise OutputError(f"{out_dir}: {', '.join(existing[:5])}{more} exist already; pass --force to replace "
                          "them (the old files stay until the new ones are complete), or choose another --out")
    for t in targets:
        check_target(t, inputs=inputs, force=True)  # folders in the way


def write_summary_files(rows: Sequence[dict], vs: Sequence[Vary], targets: Sequence[Path], *,
                        inputs: Sequence = (), force: bool = False) -> list[Path]:
    """scan.csv, scan.png (when in ``targets``) and scan.json, together through custody."""

    fig = None
    if any(Path(t).name == "scan.png" for t in targets):
        # a Figure outside pyplot: nothing to close
        fig = plots.scan_figure(rows, [v.key for v in vs], units={v.key: key_unit(v.key) for v in vs})
    with AtomicOutputs(list(targets), inputs=list(inputs), force=force) as outs:
        for out in outs.outputs:
            name = out.target.name
            if name == "scan.csv":
                write_csv(rows, out.partial)
            elif name == "scan.png":
                plots.savefig_into(fig, out, dpi=110)
            elif name == "scan.json":
                out.partial.write_text(json.dumps({"varies": [v.__dict__ for v in vs], "rows": rows},
                                                  default=list, indent=1))
    return [Path(t) for t in targets]


def columns(rows: Sequence[dict]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    return cols


def write_csv(rows: Sequence[dict], path) -> Path:
    path = Path(path)
    with open(path, "x", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns(rows))
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return path


def plot_scan(rows: Sequence[dict], keys: Sequence[str], path, *, force: bool = False, inputs: Sequence = ()) -> Path:
    """scan.png (:func:`timetag.estimators.plots.scan_figure`), saved through custody."""
    return plots.save_figure(plots.scan_figure(rows, keys), path, inputs=inputs, force=force, dpi=110)
