"""A campaign of several dump files on Dask against one thread and two threads in one process, interleaved.

The campaign is one lab's run cut into files at record boundaries (as a long acquisition rotates its dump
files): the lmu2022 simulation at full scale (3342 rounds, ~131 M Alice records, 2.1 GB) in 4 files, or a small
one for ``--quick``.  Each repetition runs back to back, on the same files:

* ``single``: :func:`timetag.process.process_files` on one thread;
* ``threads2``: the same with ``threads=2`` (partitions on two threads of one process), when available;
* ``dask2``: :func:`timetag.distributed.run.process_files_dask` on a running 2-worker ``LocalCluster``
  (a campaign starts its cluster once; the start-up is reported on its own);
* ``cli_single`` / ``cli_threads2`` / ``cli_dask2``: ``timetag process``, with ``--threads 2`` and with
  ``--dask local:2`` as a user runs them (a fresh process; the last starts its cluster).

Also measured: planning (with and without the pass over every record type), the cost of one task that reads
no record (scheduler round trip, opening the input, an empty output sent back), the merge of the partitions'
outputs, the CPU time of each run (this process, which also hosts the scheduler, and the worker processes,
which is what a loaded machine charges; it does not depend on the load as the wall time does), and the identity
of the outputs (rounds, heralds, summary, histograms).  Checksums are off in every run (``--no-checksum``): they
are item 5 of issue 18, not the scaling of the processing.

    python benchmarks/bench_distributed.py --campaign /tmp/campaign --reps 3
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _realistic as R  # noqa: E402  (the full run shares the simulation of the other headline benchmarks)

RECORD = 16
VOLATILE = {"elapsed_s", "tags_per_s", "inputs", "out", "channels"}


def build_campaign(d: Path, n_rounds: int, n_files: int = 4, sim=None) -> tuple[list[Path], Path]:
    """Cut Alice's dump of ``sim`` (a ``SimResult``; None: simulate ``n_rounds`` here) into ``n_files`` files at
    record boundaries."""
    from timetag.simulator import load_preset, simulate

    d.mkdir(parents=True, exist_ok=True)
    own = sim is None
    if own:
        sim = simulate(load_preset("lmu2022"), n_rounds, 11, d / "sim", speedup=1 if n_rounds >= 1000 else 50,
                       force=True)
    size = sim.alice.stat().st_size
    per = -(-size // n_files // RECORD) * RECORD
    paths = []
    with open(sim.alice, "rb") as src:
        for k in range(n_files):
            p = d / f"alice_{k}.dump"
            with open(p, "wb") as dst:
                left = min(per, size - k * per)
                while left > 0:
                    n = os.copy_file_range(src.fileno(), dst.fileno(), left)
                    if n <= 0:
                        break
                    left -= n
            paths.append(p)
    shutil.copy(sim.setup, d / "setup.toml")
    if own:
        sim.alice.unlink()  # the pieces hold every record
    return paths, d / "setup.toml"


def campaign(d: Path) -> tuple[list[Path], Path]:
    return sorted(d.glob("alice_*.dump")), d / "setup.toml"


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _same_output(a: Path, b: Path) -> bool:
    from timetag.roundsfile import read_rounds

    x, y = read_rounds(a), read_rounds(b)
    sx = {k: v for k, v in x.summary.items() if k not in VOLATILE}
    sy = {k: v for k, v in y.summary.items() if k not in VOLATILE}
    return (np.array_equal(x.rounds, y.rounds) and np.array_equal(x.heralds, y.heralds) and sx == sy
            and x.histograms.keys() == y.histograms.keys()
            and all(np.array_equal(x.histograms[k], y.histograms[k]) for k in x.histograms))


def task_overhead(client, path: Path, lab, n: int = 20) -> dict:
    """Median wall time of one task that reads no record, and of an empty task (the bare round trip)."""
    from timetag.distributed.partition import Partition, Segment
    from timetag.distributed.run import spare_cores
    from timetag.distributed.worker import process_partition

    empty = Partition(0, (Segment(str(path), 0, 0),))
    prefetch = spare_cores(client)
    bare, zero = [], []
    for i in range(n):
        bare.append(_timed(lambda: client.submit(int, i, pure=False).result()))
        zero.append(_timed(lambda: client.submit(process_partition, empty, lab, None, prefetch=prefetch,
                                                 pure=False).result()))
    return {"bare_s": statistics.median(bare), "zero_records_s": statistics.median(zero)}


def merge_cost(client, paths, setup, tmp: Path) -> tuple[float, int]:
    """Time of the merge alone (the partitions' outputs, fetched from the workers first, appended and the file
    closed), and the outputs' bytes."""
    from timetag.distributed.merge import MergeWriter
    from timetag.distributed.partition import plan_partitions
    from timetag.distributed.worker import process_partition

    lab = setup.lab("alice")
    parts = plan_partitions(paths, lab, n_partitions=4, overflow_check=False, by_file=True)
    reports = client.gather([client.submit(process_partition, p, lab, None, prefetch=False, pure=False)
                             for p in parts])
    dest = tmp / "m.h5"

    def merge():
        with MergeWriter(dest, lab="alice", role=lab.role, setup_hash=setup.hash) as w:
            for p, rep in zip(parts, reports):
                w.append(rep["output"], p.name)
            w.close(sync_reference=lab.herald.sync_reference)
    t = _timed(merge)
    dest.unlink()
    nbytes = sum(r["output"].rounds.nbytes + r["output"].heralds.nbytes for r in reports)
    return t, nbytes


def _cpu(procs) -> float:
    return sum(t.user + t.system for t in (p.cpu_times() for p in procs))


def _cli(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "timetag", "process", *args], check=True, capture_output=True)
    return time.perf_counter() - t0


def measure(paths: list[Path], setup_path: Path, reps: int, cli: bool = True) -> dict:
    import psutil
    from distributed import Client, LocalCluster

    from timetag.distributed.partition import plan_partitions
    from timetag.distributed.run import process_files_dask
    from timetag.process import process_files
    from timetag.setupfile import load_setup

    setup = load_setup(setup_path)
    lab = setup.lab("alice")
    tmp = Path(tempfile.mkdtemp(prefix="bench_distributed_", dir=paths[0].parent))
    res: dict = {"times": {}, "cpu": {}, "records": sum(p.stat().st_size for p in paths) // RECORD,
                 "bytes": sum(p.stat().st_size for p in paths), "files": len(paths)}
    times = res["times"]
    try:
        st_full, st_quick = {}, {}
        res["plan_full_s"] = _timed(lambda: plan_partitions(paths, lab, n_partitions=4, stats=st_full))
        res["plan_s"] = _timed(lambda: plan_partitions(paths, lab, n_partitions=4, overflow_check=False,
                                                       by_file=True, stats=st_quick))
        res["plan_full_bytes"], res["plan_bytes"] = st_full["bytes_read"], st_quick["bytes_read"]
        try:
            process_files(paths[:1], setup, "alice", tmp / "probe.h5", checksum=False, progress=False, threads=2)
            has_threads = True
        except TypeError:
            has_threads = False
        t0 = time.perf_counter()
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            res["cluster_start_s"] = time.perf_counter() - t0
            me, workers = psutil.Process(), [psutil.Process(pid) for pid in client.run(os.getpid).values()]
            # warm-up (imports, numba caches in the workers, page cache) outside the timing
            process_files_dask(paths, setup, "alice", tmp / "dask2.h5", dask=client, checksum=False, force=True)
            res["task"] = task_overhead(client, paths[0], lab)
            res["merge_s"], res["output_bytes"] = merge_cost(client, paths, setup, tmp)
            runs = {
                # one engine thread (and its read-ahead thread): threads='auto' would use both cores
                "single": lambda: process_files(paths, setup, "alice", tmp / "single.h5", checksum=False,
                                                progress=False, force=True, threads=1),
                "dask2": lambda: process_files_dask(paths, setup, "alice", tmp / "dask2.h5", dask=client,
                                                    checksum=False, force=True),
            }
            if has_threads:
                runs["threads2"] = lambda: process_files(paths, setup, "alice", tmp / "threads2.h5",
                                                         checksum=False, progress=False, force=True, threads=2)
            common = [*map(str, paths), "--setup", str(setup_path), "--lab", "alice", "--no-checksum", "--force"]
            if cli:
                runs["cli_single"] = lambda: _cli([*common, "--out", str(tmp / "cli_single.h5"), "--threads", "1"])
                runs["cli_threads2"] = lambda: _cli([*common, "--out", str(tmp / "cli_threads2.h5"), "--threads", "2"])
                runs["cli_dask2"] = lambda: _cli([*common, "--out", str(tmp / "cli_dask2.h5"), "--dask", "local:2"])
            for _ in range(reps):
                for name, fn in runs.items():
                    c0, w0 = _cpu([me]), _cpu(workers)
                    times.setdefault(name, []).append(_timed(fn))
                    if not name.startswith("cli"):   # a command's own process is not measured here
                        res["cpu"].setdefault(name, []).append((_cpu([me]) - c0, _cpu(workers) - w0))
                    res.setdefault("load", []).append(os.getloadavg()[0])
        res["identical"] = {name: _same_output(tmp / "single.h5", tmp / f"{name}.h5")
                            for name in runs if name != "single"}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def _speedup(times: dict, base: str, cand: str) -> tuple[float, float]:
    """(best, median) of base time / candidate time."""
    return (min(times[base]) / min(times[cand]),
            statistics.median(times[base]) / statistics.median(times[cand]))


def report(res: dict) -> list[str]:
    t = res["times"]
    lines = [f"campaign: {res['files']} files, {res['bytes'] / 1e9:.2f} GB, {res['records'] / 1e6:.1f} M records; "
             f"load {min(res['load']):.1f}-{max(res['load']):.1f} (2 cores)"]
    for name, v in t.items():
        lines.append(f"  {name:10s} " + " ".join(f"{x:.2f}" for x in v) + " s  "
                     f"(best {res['records'] / min(v) / 1e6:.1f} M records/s)")
    for name, v in res["cpu"].items():
        lines.append(f"  {name:10s} CPU s (median): this process {statistics.median(c for c, _ in v):.2f}, "
                     f"workers {statistics.median(w for _, w in v):.2f}, "
                     f"all {statistics.median(c + w for c, w in v):.2f}")
    for base, cand in (("single", "dask2"), ("threads2", "dask2"), ("single", "threads2"),
                       ("cli_single", "cli_dask2"), ("cli_threads2", "cli_dask2")):
        if base in t and cand in t:
            best, med = _speedup(t, base, cand)
            lines.append(f"  {cand} vs {base}: best {best:.2f}x, median {med:.2f}x")
    lines.append(f"  planning: {res['plan_s'] * 1e3:.1f} ms reading {res['plan_bytes'] / 1e6:.2f} MB "
                 f"(with the overflow pass: {res['plan_full_s']:.2f} s, {res['plan_full_bytes'] / 1e9:.2f} GB)")
    lines.append(f"  cluster start (2 worker processes): {res['cluster_start_s']:.2f} s")
    lines.append(f"  one task: bare round trip {res['task']['bare_s'] * 1e3:.1f} ms, reading no record "
                 f"{res['task']['zero_records_s'] * 1e3:.1f} ms")
    lines.append(f"  merge of the partitions' outputs: {res['merge_s'] * 1e3:.0f} ms ({res['output_bytes'] / 1e6:.1f} MB)")
    lines.append(f"  outputs identical to single: {res['identical']}")
    return lines


def run(quick: bool) -> list[dict]:
    d = Path(tempfile.mkdtemp(prefix="bench_campaign_"))
    try:
        # the full run: the shared full-scale lmu2022 simulation (2.1 GB of Alice records), as the goal asks
        shared = None if quick else R.lmu2022_run(False)[0]
        paths, setup_path = build_campaign(d, 40, sim=shared)
        res = measure(paths, setup_path, reps=1 if quick else 2, cli=not quick)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    t = res["times"]
    rows = []
    for base, target in (("single", ">= 1.6x (issue 18, on >= 2 GB)"), ("threads2", ">= 0.9x")):
        if base in t:
            best, med = _speedup(t, base, "dask2")
            rows.append({"name": f"dask local:2 vs {base} ({res['files']} files)", "value": round(best, 3),
                         "unit": "x", "baseline": f"{base}, interleaved; median {med:.2f}x",
                         "target": target, "gross_regression": (not quick) and best < 0.5,
                         "detail": f"{res['bytes'] / 1e6:.0f} MB campaign; load {max(res['load']):.1f}"})
    if "cli_dask2" in t and "cli_threads2" in t:
        # the command line as users run it: `--dask local:2` starts (and stops) its own cluster
        best, med = _speedup(t, "cli_threads2", "cli_dask2")
        rows.append({"name": f"timetag process --dask local:2 vs --threads 2 ({res['files']} files)",
                     "value": round(best, 3), "unit": "x",
                     "baseline": f"the same command with --threads 2, interleaved; median {med:.2f}x",
                     "target": ">= 0.9x (issue 18)", "gross_regression": False,
                     "detail": "includes importing Dask and starting and stopping the 2-worker cluster"})
    cpu = res["cpu"]
    if "threads2" in cpu:
        med = {k: statistics.median(c + w for c, w in v) for k, v in cpu.items()}
        rows.append({"name": "dask local:2 CPU / threads2 CPU (all processes)",
                     "value": round(med["dask2"] / med["threads2"], 3), "unit": "x",
                     "baseline": f"threads2 {med['threads2']:.2f} s, dask2 {med['dask2']:.2f} s (medians)",
                     "target": "report (does not depend on the load)", "gross_regression": False})
    rows.append({"name": "dask task reading no record", "value": round(res["task"]["zero_records_s"] * 1e3, 2),
                 "unit": "ms", "baseline": f"bare round trip {res['task']['bare_s'] * 1e3:.1f} ms",
                 "target": "report", "gross_regression": False})
    rows.append({"name": "dask planning", "value": round(res["plan_s"] * 1e3, 2), "unit": "ms",
                 "baseline": f"with the overflow pass {res['plan_full_s'] * 1e3:.0f} ms", "target": "report",
                 "gross_regression": False})
    rows.append({"name": "dask outputs identical", "value": float(all(res["identical"].values())), "unit": "bool",
                 "baseline": "single-thread run", "target": "1", "gross_regression": not all(res["identical"].values())})
    return rows


def main(argv: list[str]) -> None:
    reps = int(argv[argv.index("--reps") + 1]) if "--reps" in argv else 3
    if "--campaign" in argv:
        d = Path(argv[argv.index("--campaign") + 1])
        paths, setup_path = campaign(d) if list(d.glob("alice_*.dump")) else build_campaign(d, 3342)
    else:
        d = Path(tempfile.mkdtemp(prefix="bench_campaign_"))
        paths, setup_path = build_campaign(d, 3342)
    for line in report(measure(paths, setup_path, reps, cli="--no-cli" not in argv)):
        print(line, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
