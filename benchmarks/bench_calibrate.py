"""`timetag calibrate` against `timetag process` on the same full-scale file: wall time and peak RSS (issue 21).

Goal: calibration in one streaming pass at the speed of processing -- at most 2x the time of ``process`` on the
same file, with flat memory.  Each repeat runs both commands as separate processes, interleaved (process,
calibrate, process, calibrate, ...), so that drifts of the machine (cache, other load) hit both alike; time and
peak RSS are read from ``wait4``'s rusage.  Prints every run, the medians and the ratios::

    python benchmarks/bench_calibrate.py                       # simulates lmu2022, 2000 rounds, --speedup 1
    python benchmarks/bench_calibrate.py --run DIR --repeats 5 # an existing simulation (alice.dump, setup.toml)
    python benchmarks/bench_calibrate.py --json out.json

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
import time
from pathlib import Path


def timed(cmd: list[str]) -> tuple[float, float, int]:
    """(wall s, peak RSS MB, return code) of one command run as a child process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        print(f"  {' '.join(cmd[2:4])} failed ({rc}): {err.strip()[-500:]}", file=sys.stderr)
    return wall, ru.ru_maxrss / 1024.0, rc


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
        cal_cmd = py + ["calibrate", str(dump), "--lab", "alice", "--setup", str(setup), "--out",
                        str(tmp / "cal.toml"), "--force", "--steps", a.steps]
        # one warm-up of each (numba's cache, the page cache) that does not count
        timed(proc_cmd)
        timed(cal_cmd)
        res = {"process": [], "calibrate": []}
        for r in range(a.repeats):
            for name, cmd in (("process", proc_cmd), ("calibrate", cal_cmd)):
                wall, rss, rc = timed(cmd)
                res[name].append((wall, rss, rc))
                print(f"repeat {r + 1}: {name:<9} {wall:7.2f} s  {rss:7.0f} MB" + ("" if rc == 0 else f"  rc={rc}"))
        med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for k, v in res.items()}
        t_ratio = med["calibrate"][0] / med["process"][0]
        m_ratio = med["calibrate"][1] / med["process"][1]
        print(f"median process   {med['process'][0]:.2f} s, {med['process'][1]:.0f} MB")
        print(f"median calibrate {med['calibrate'][0]:.2f} s, {med['calibrate'][1]:.0f} MB  (--steps {a.steps})")
        print(f"ratio calibrate/process: time {t_ratio:.2f} (goal <= 2), peak RSS {m_ratio:.2f}")
        if a.json:
            a.json.write_text(json.dumps({"file_bytes": size, "runs": res, "median": med, "time_ratio": t_ratio,
                                          "rss_ratio": m_ratio, "steps": a.steps}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
