"""`timetag calibrate` against `timetag process` on the same full-scale file: wall time and peak RSS (issue 21).

Goal: calibration in one streaming pass at the speed of processing -- at most 2x the time of ``process`` on the
same file, with flat memory.  Each repeat runs both commands as separate processes, interleaved (process,
calibrate, process, calibrate, ...), so that drifts of the machine (cache, other load) hit both alike; time, CPU
time (user + system: on a loaded machine the steadier measure of the work done) and peak RSS are read from
``wait4``'s rusage.  Prints every run, the medians and the ratios::

    python benchmarks/bench_calibrate.py                       # simulates lmu2022, 2000 rounds, --speedup 1
    python benchmarks/bench_calibrate.py --run DIR --repeats 5 # an existing simulation (alice.dump, setup.toml)
    python benchmarks/bench_calibrate.py --json out.json
    python benchmarks/bench_calibrate.py --run DIR --baseline /tmp/old  # also calibrate with the package
                                                                        # ``calibrate`` found in /tmp/old (before/after)

The simulation is the issue's file: 2000 rounds at the paper's efficiency (~77 M Alice tags, 1.2 GB).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _realistic import run_child  # noqa: E402


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float, int, float]:
    """(wall s, peak RSS MB, return code, CPU s) of one command run as a child process."""
    # run from the temporary folder: ``python -m`` puts the working directory first on sys.path, which would hide
    # a --baseline package behind the tree's own
    r = run_child(cmd, env=env, cwd=tempfile.gettempdir())
    if r["rc"] != 0:
        print(f"  {' '.join(cmd[2:4])} failed ({r['rc']}): {r['err'].strip()[-500:]}", file=sys.stderr)
    return r["wall"], r["rss_mb"], r["rc"], r["cpu"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="simulation folder (alice.dump, setup.toml); default: simulate one")
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--speedup", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", default="delays,window,thresholds,darkcounts",
                    help="calibrate --steps (one lab: the clock needs both)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--baseline", type=Path, help="a folder holding another ``calibrate`` package (e.g. a copy of "
                    "the code before a change): run it too, interleaved, under PYTHONPATH=BASELINE")
    a = ap.parse_args(argv)
    py = [sys.executable, "-m", "timetag"]
    with tempfile.TemporaryDirectory(prefix="benchcal") as tmp:
        tmp = Path(tmp)
        run = a.run
        if run is None:
            run = tmp / "run"
            print(f"simulating lmu2022, {a.rounds} rounds, --speedup {a.speedup} ...", file=sys.stderr)
            subprocess.run(py + ["simulate", "--preset", "lmu2022", "--rounds", str(a.rounds), "--speedup",
                                 str(a.speedup), "--seed", str(a.seed), "--out", str(run)], check=True,
                           stdout=subprocess.DEVNULL)
        dump = run / "alice.dump"
        setup = run / "setup.toml"
        size = dump.stat().st_size
        print(f"file {dump} ({size / 1e9:.2f} GB, {size // 16:,} records)")
        proc_cmd = py + ["process", str(dump), "--setup", str(setup), "--lab", "alice", "--out",
                         str(tmp / "rounds.h5"), "--force"]
        def cal_cmd(name):
            return py + ["calibrate", str(dump), "--lab", "alice", "--setup", str(setup), "--out",
                         str(tmp / f"{name}.toml"), "--force", "--steps", a.steps]
        runs = [("process", proc_cmd, None), ("calibrate", cal_cmd("calibrate"), None)]
        if a.baseline is not None:
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join([str(a.baseline.resolve())] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
            runs.append(("baseline", cal_cmd("baseline"), env))
        # one warm-up of each (numba's cache, the page cache) that does not count
        for _, cmd, env in runs:
            timed(cmd, env)
        res = {name: [] for name, _, _ in runs}
        for r in range(a.repeats):
            for name, cmd, env in runs:
                wall, rss, rc, cpu = timed(cmd, env)
                res[name].append((wall, rss, rc, cpu))
                print(f"repeat {r + 1}: {name:<9} {wall:7.2f} s  {rss:7.0f} MB  cpu {cpu:6.2f} s  load "
                      f"{os.getloadavg()[0]:.1f}" + ("" if rc == 0 else f"  rc={rc}"))
        failed = sorted(k for k, v in res.items() if any(x[2] != 0 for x in v))
        if failed:
            # a failed command's time is the time to fail: no ratio of it means anything
            raise SystemExit(f"bench_calibrate: {', '.join(failed)} failed (see above): no ratios")
        same = None
        if a.baseline is not None:
            # a speed-up that changes the calibration is no speed-up: the setups written must be the same bytes
            same = (tmp / "calibrate.toml").read_bytes() == (tmp / "baseline.toml").read_bytes()
            print(f"calibrated setup identical to the baseline's: {'yes' if same else 'NO'}")
        med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for k, v in res.items()}
        best = {k: (min(x[0] for x in v), min(x[1] for x in v)) for k, v in res.items()}
        # ratios per repeat (each against the process run of the same repeat): robust to a drifting machine
        per = {k: [(x[0] / p[0], x[1] / p[1]) for x, p in zip(v, res["process"])] for k, v in res.items()
               if k != "process"}
        out = {"file_bytes": size, "runs": res, "median": med, "best": best, "steps": a.steps,
               "setup_identical_to_baseline": same}
        for k in per:
            t_med, m_med = med[k][0] / med["process"][0], med[k][1] / med["process"][1]
            t_best = best[k][0] / best["process"][0]
            t_rep = statistics.median(x[0] for x in per[k])
            c_med = statistics.median(x[3] for x in res[k]) / statistics.median(x[3] for x in res["process"])
            print(f"median {k:<9} {med[k][0]:.2f} s, {med[k][1]:.0f} MB  (--steps {a.steps})")
            print(f"ratio {k}/process: time {t_med:.2f} median, {t_best:.2f} best/best, {t_rep:.2f} median of the "
                  f"repeats' ratios (goal <= 2); peak RSS {m_med:.2f}; CPU time {c_med:.2f}")
            out[k] = {"time_ratio": t_med, "time_ratio_best": t_best, "time_ratio_per_repeat": t_rep,
                      "rss_ratio": m_med, "cpu_ratio": c_med}
        print(f"median process   {med['process'][0]:.2f} s, {med['process'][1]:.0f} MB")
        if a.json:
            out["time_ratio"], out["rss_ratio"] = out["calibrate"]["time_ratio"], out["calibrate"]["rss_ratio"]
            a.json.write_text(json.dumps(out, indent=1))
    return 0


def run(quick: bool) -> list[dict]:
    """Rows for benchmarks/run.py (full mode only: the full-scale file takes a minute to simulate and run)."""
    if quick:
        return []
    with tempfile.TemporaryDirectory(prefix="benchcal_json") as tmp:
        js = Path(tmp) / "out.json"
        main(["--json", str(js)])
        out = json.loads(js.read_text())
    med = out["median"]
    return [
        {"name": "calibrate / process time (full-scale Alice dump)", "value": round(out["time_ratio"], 2),
         "median": round(out["calibrate"]["time_ratio_per_repeat"], 2), "unit": "x",
         "baseline": f"process {med['process'][0]:.2f} s on the same file, interleaved",
         "target": "<= 2 (issue 21)", "gross_regression": False},
        {"name": "calibrate / process peak RSS", "value": round(out["rss_ratio"], 2), "unit": "x",
         "baseline": f"process {med['process'][1]:.0f} MB", "target": "flat memory", "gross_regression": False},
    ]


if __name__ == "__main__":
    sys.exit(main())
