"""`timetag process` end to end on the full-scale Alice dump: one thread, threads in this process, Dask.

What a user runs, as a user runs it: the CLI in a fresh process on the lmu2022 stream at full scale (3342 rounds,
~130 M tags, a 2 GB dump), checksum included.  Each mode is timed ``repeat`` times, interleaved with the others and
with the baseline ``read``: the same file read once in 8 MiB blocks (what any tool on this disk must pay).
Reported: tags/s (best and median), the ratio against the single-thread run of the same round, peak RSS and CPU
time (user + system, from ``wait4`` of that process alone), and once the start-up of the command (``timetag
process --help`` in a fresh process: imports), which every mode pays.

    python benchmarks/bench_process_modes.py [--run DIR] [--repeat 3] [--modes default,single,inproc:2,threads:2,local:2]

Modes: ``single`` (one thread, ``--threads 1``, xxh3-128 checksum of the input), ``no-checksum``, ``sha256`` (the
checksum on request), ``inproc:N`` (``--threads N``: quiet-gap partitions on N threads of the one process, with
the checksum), ``inproc-no-checksum:N``, ``threads:N`` / ``local:N`` (``--dask``).

The package is compiled to bytecode first (:mod:`_installed`): the times are those of an installed package, not
of a checkout whose modules a ``PYTHONDONTWRITEBYTECODE=1`` shell compiles again in every child process.

``--run DIR`` reuses a simulated run (``timetag simulate --preset lmu2022 --rounds 3342 --speedup 1 --out DIR``);
without it one is simulated into a temporary folder (23 s, 2 GB).  Under ``benchmarks/run.py`` the quick mode
skips it (too large for a quick pass).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _installed import compile_package  # noqa: E402
from _realistic import run_child  # noqa: E402

ROUNDS = 3342
SEED = 2022


def _timed(argv: list[str]) -> tuple[float, int, float]:
    """Wall time, peak RSS (bytes) and CPU time (user + system, s) of one child process."""
    r = run_child(argv)
    if r["rc"] != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {r['err']}")
    return r["wall"], int(r["rss_mb"] * 2**20), r["cpu"]


def _argv(mode: str, alice: Path, setup: Path, out: Path) -> list[str]:
    argv = [sys.executable, "-m", "timetag", "process", str(alice), "--setup", str(setup), "--lab", "alice",
            "--out", str(out), "-q", "--force"]
    if mode in ("single", "no-checksum", "sha256"):
        argv += ["--threads", "1"]       # the default is 'auto': two threads on this file
    if mode == "no-checksum":
        argv += ["--no-checksum"]     # the checksum's cost: it should hide behind the engine (issue 18)
    elif mode == "sha256":
        argv += ["--checksum", "sha256"]
    elif mode.startswith("inproc"):
        kind, n = mode.split(":")
        argv += ["--threads", n] + (["--no-checksum"] if kind == "inproc-no-checksum" else [])
    elif mode not in ("single", "default"):    # default: what a user gets without options (--threads auto)
        argv += ["--dask", mode]
    return argv


def _read_pass(path: Path) -> tuple[float, int]:
    code = ("import sys\nb = bytearray(8 << 20); v = memoryview(b)\n"
            "with open(sys.argv[1], 'rb', buffering=0) as f:\n    while f.readinto(v): pass\n")
    return _timed([sys.executable, "-c", code, str(path)])


def simulate_full(out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "timetag", "simulate", "--preset", "lmu2022", "--rounds", str(ROUNDS),
                    "--seed", str(SEED), "--speedup", "1", "--out", str(out), "-q", "--force"], check=True)
    return out


def measure(run_dir: Path, modes: list[str], repeat: int, scratch: Path) -> dict:
    compile_package()
    alice, setup = run_dir / "alice.dump", run_dir / "setup.toml"
    n_tags = (alice.stat().st_size // 16)  # records: tags plus a few lost-data events
    results: dict[str, list[tuple[float, int, float]]] = {m: [] for m in ["read", *modes]}
    startup = []
    for _ in range(repeat):
        results["read"].append(_read_pass(alice))
        startup.append(_timed([sys.executable, "-m", "timetag", "process", "--help"])[0])
        for mode in modes:
            results[mode].append(_timed(_argv(mode, alice, setup, scratch / f"{mode.replace(':', '_')}.h5")))
    out = {}
    for mode, runs in results.items():
        walls = [w for w, _, _ in runs]
        out[mode] = {"best_s": min(walls), "median_s": statistics.median(walls),
                     "best_tags_per_s": n_tags / min(walls), "median_tags_per_s": n_tags / statistics.median(walls),
                     "peak_rss_mb": max(r for _, r, _ in runs) / 2**20,
                     "median_cpu_s": statistics.median(c for _, _, c in runs)}
    return {"records": n_tags, "modes": out, "startup_s": min(startup), "load": os.getloadavg()[0]}


def run(quick: bool) -> list[dict]:
    if quick:
        return []
    tmp = Path(tempfile.mkdtemp(prefix="bench_process_modes_"))
    try:
        res = measure(simulate_full(tmp / "run"), ["default", "single", "no-checksum", "inproc-no-checksum:2",
                                                  "threads:2", "local:2"], 3, tmp)
        return _rows(res)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _rows(res: dict) -> list[dict]:
    m = res["modes"]
    single = m["single"]
    rows = []
    for mode, r in m.items():
        rows.append({"name": f"process {mode} (full-scale Alice dump)" if mode != "read" else "read pass, 8 MiB blocks",
                     "value": round(r["best_tags_per_s"] / 1e6, 1), "median": round(r["median_tags_per_s"] / 1e6, 1),
                     "unit": "M records/s",
                     "baseline": (f"x{single['best_s'] / r['best_s']:.2f} of single (best), "
                                  f"x{single['median_s'] / r['median_s']:.2f} (median); "
                                  f"peak RSS {r['peak_rss_mb']:.0f} MB; CPU {r['median_cpu_s']:.2f} s (median)"),
                     "target": ">= 100 M tags/s on 2 cores, RSS <= 300 MB (issue 18)" if mode != "read" else "",
                     "gross_regression": False})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a simulated full-scale run to reuse")
    ap.add_argument("--repeat", "--repeats", type=int, default=3)
    ap.add_argument("--modes", default="default,single,no-checksum,inproc:2,threads:2,local:2")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_process_modes_"))
    try:
        run_dir = a.run or simulate_full(tmp / "run")
        res = measure(run_dir, a.modes.split(","), a.repeat, tmp)
        print(f"{res['records']:,} records; load average {res['load']:.1f} at the end; start-up of the command "
              f"(process --help) {res['startup_s']:.2f} s, included in every mode's time")
        for row in _rows(res):
            print(f"  {row['name']:<45} best {row['value']:7.1f}  median {row['median']:7.1f} {row['unit']}   "
                  f"{row['baseline']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
