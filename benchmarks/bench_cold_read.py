"""`timetag process` on a file that is not in the page cache (cold) against the same file cached (warm) and `cat`.

A dump written by ``timetag simulate`` (O_DIRECT) or copied from the lab is read from the disk.  The file is
evicted from the page cache without root (``posix_fadvise(POSIX_FADV_DONTNEED)``; checked with ``mincore``), then,
interleaved in every repetition: ``cat FILE > /dev/null`` cold (the disk's sequential speed), ``process`` cold and
warm, each with the reader's read-ahead hints and without them (``READ_AHEAD_BYTES = 0`` in the child), in an
order that alternates between repetitions.  Reported: cold process / cold cat, cold / warm, hints / no hints (best
and median), the median CPU time of each (user + system: steadier than the wall on a busy machine), peak RSS, and
whether the rounds written with and without the hints are the same.

    python benchmarks/bench_cold_read.py [--run DIR] [--repeat 3] [--threads auto]

``--run DIR``: a simulated run to reuse (``timetag simulate --preset lmu2022 --rounds 3342 --out DIR``, 2.1 GB);
without it one is simulated into a temporary folder (300 rounds under ``--quick``).  The files are evicted: use
files of your own, or files others may lose from the page cache at no harm.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _realistic import best, median, run_child  # noqa: E402

# a child with the reader's read-ahead set to sys.argv[1] bytes (the baseline: 0, no hints)
_AHEAD = ("import sys, timetag.formats.dump as d, timetag.cli as c; d.READ_AHEAD_BYTES = int(sys.argv[1]); "
          "sys.argv = ['timetag', *sys.argv[2:]]; c.main()")


def evict(path: Path) -> None:
    """Drop the file's clean pages from the page cache (no root needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)   # dirty pages are not dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def resident_fraction(path: Path) -> float:
    """Fraction of the file's pages in the page cache (``mincore`` over a mapping, mapped in slices so that the
    check itself does not map the whole file at once)."""
    libc = ctypes.CDLL(None, use_errno=True)
    size = path.stat().st_size
    step = 256 << 20
    pages = resident = 0
    with open(path, "rb") as fh:
        for off in range(0, size, step):
            n = min(step, size - off)
            mm = mmap.mmap(fh.fileno(), n, prot=mmap.PROT_READ, offset=off)
            view = np.frombuffer(mm, np.uint8)
            vec = np.zeros((n + mmap.PAGESIZE - 1) // mmap.PAGESIZE, np.uint8)
            if libc.mincore(ctypes.c_void_p(view.ctypes.data), ctypes.c_size_t(n),
                            ctypes.c_void_p(vec.ctypes.data)) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
            resident += int((vec & 1).sum())
            pages += vec.size
            del view
            mm.close()
    return resident / max(pages, 1)


def _process_argv(ahead: int | None, alice: Path, setup: Path, out: Path, threads: str) -> list[str]:
    """``ahead``: READ_AHEAD_BYTES in the child (None: the module's own)."""
    head = [sys.executable, "-m", "timetag"] if ahead is None else [sys.executable, "-c", _AHEAD, str(ahead)]
    return head + ["process", str(alice), "--setup", str(setup), "--lab", "alice", "--out", str(out), "-q",
                   "--force", "--threads", threads]


def _timed(argv: list[str]) -> dict:
    r = run_child(argv)
    if r["rc"] != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {r['err']}")
    return r


def _cold(path: Path) -> None:
    evict(path)
    left = resident_fraction(path)
    if left > 0.01:
        raise RuntimeError(f"{path}: {left:.1%} still in the page cache after eviction")


def measure(run_dir: Path, repeat: int, threads: str, scratch: Path, ahead: tuple = (None, 0)) -> dict:
    """``ahead``: READ_AHEAD_BYTES of the 'hints' and the 'plain' runs (None: the reader's default)."""
    alice, setup = run_dir / "alice.dump", run_dir / "setup.toml"
    outs = {h: scratch / f"rounds_{'hints' if h else 'plain'}.h5" for h in (True, False)}
    cases = ["cat cold", "cold hints", "cold plain", "warm hints", "warm plain"]
    res: dict[str, list[dict]] = {c: [] for c in cases}
    loads = []
    for i in range(repeat):
        loads.append(os.getloadavg()[0])
        _cold(alice)
        res["cat cold"].append(_timed(["sh", "-c", f"cat '{alice}' > /dev/null"]))
        order = (True, False) if i % 2 == 0 else (False, True)

        def timed(hints: bool) -> dict:
            return _timed(_process_argv(ahead[not hints], alice, setup, outs[hints], threads))

        for h in order:     # the file is cached by the cat: warm runs first
            res[f"warm {'hints' if h else 'plain'}"].append(timed(h))
        for h in order:
            _cold(alice)
            res[f"cold {'hints' if h else 'plain'}"].append(timed(h))
    loads.append(os.getloadavg()[0])
    walls = {c: [r["wall"] for r in rs] for c, rs in res.items()}
    return {"file": str(alice), "gb": alice.stat().st_size / 1e9, "threads": threads, "walls": walls,
            "peak_rss_mb": {c: max(r["rss_mb"] for r in rs) for c, rs in res.items()},
            "cpu_s": {c: [r["cpu"] for r in rs] for c, rs in res.items()},
            "load": (min(loads), max(loads)), "same_rounds": _same_rounds(*outs.values())}


def _same_rounds(a: Path, b: Path) -> bool:
    import h5py

    def arrays(path):
        with h5py.File(path, "r") as f:
            out = {}
            f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset)
                         and name.split("/")[0] in ("rounds", "heralds") else None)
            return out

    x, y = arrays(a), arrays(b)
    return bool(x) and x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)


def rows(m: dict) -> list[dict]:
    w, gb = m["walls"], m["gb"]
    where = f"{gb:.2f} GB dump, --threads {m['threads']}, load {m['load'][0]:.1f}-{m['load'][1]:.1f}"

    def ratio(name, a, b, baseline, target=""):
        return {"name": f"{name} ({where})", "value": best(w[a]) / best(w[b]), "median": median(w[a]) / median(w[b]),
                "unit": "x time", "baseline": baseline, "target": target, "gross_regression": False,
                "repeat": len(w[a]), f"{a}_s": w[a], f"{b}_s": w[b]}

    out = [
        ratio("process cold / cat cold", "cold hints", "cat cold", "cat FILE > /dev/null, cold",
              "as close to 1 as the engine allows (issue 18)"),
        ratio("process cold / warm", "cold hints", "warm hints", "the same command, file cached", "-> 1"),
        ratio("read-ahead hints, cold", "cold hints", "cold plain", "no hints (READ_AHEAD_BYTES = 0)", "< 1"),
        ratio("read-ahead hints, warm", "warm hints", "warm plain", "no hints (READ_AHEAD_BYTES = 0)", "<= 1"),
    ]
    rss = m["peak_rss_mb"]
    for row, case in ((out[2], "cold"), (out[3], "warm")):    # CPU: steadier than the wall on a busy machine
        row["cpu_median_s"] = {h: round(median(m["cpu_s"][f"{case} {h}"]), 2) for h in ("hints", "plain")}
    out[2]["peak_rss_mb"] = {k: round(v) for k, v in rss.items() if k != "cat cold"}
    out[2]["same_rounds"] = m["same_rounds"]
    # gross: hints that kept read pages in the process (hundreds of MB); the peak RSS of one and the same command
    # moves by ~30 MB between runs here (180-208 MB)
    out[2]["gross_regression"] = not m["same_rounds"] or rss["cold hints"] > rss["cold plain"] + 64
    return out


def run(quick: bool) -> list[dict]:
    tmp = Path(tempfile.mkdtemp(prefix="bench_cold_read_"))
    try:
        rounds = 300 if quick else 3342
        subprocess.run([sys.executable, "-m", "timetag", "simulate", "--preset", "lmu2022", "--rounds", str(rounds),
                        "--seed", "2022", "--out", str(tmp / "run"), "-q"], check=True)
        return rows(measure(tmp / "run", 2 if quick else 3, "auto", tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a simulated run to reuse (its alice.dump is evicted)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", default="auto", help="process --threads (auto, 1, 2, ...)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--ahead", type=float, default=None,
                    help="MiB read ahead in the 'hints' runs (default: the reader's)")
    ap.add_argument("--baseline-ahead", type=float, default=0.0,
                    help="MiB read ahead in the 'plain' runs (0: none)")
    args = ap.parse_args()
    if args.run is None:
        print(json.dumps(run(args.quick), indent=1))
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench_cold_read_"))
    try:
        mib = [None if x is None else int(x * 2**20) for x in (args.ahead, args.baseline_ahead)]
        m = measure(args.run, args.repeat, args.threads, tmp, tuple(mib))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(m, indent=1))
    for r in rows(m):
        print(f"{r['name']}: best {r['value']:.2f}x, median {r['median']:.2f}x", r.get("cpu_median_s", ""))


if __name__ == "__main__":
    main()
