"""Shared helpers for the headline benchmarks: realistic inputs and interleaved timing.

* :func:`lmu2022_run` simulates the paper's link (preset ``lmu2022``) once per process and caches the
  files: ``run.py`` loads every benchmark module into one interpreter, and this module is imported by
  name (``sys.modules``), so all modules of one run share one simulation.  The files live in a temporary
  directory removed at exit.
* :func:`real_t2_tiled` tiles the records of a real HydraHarp v2 T2 file (``pqsd_hydraharp_v20_t2.ptu``,
  see ``/work/shared/data/real/SOURCES.md``; 435 319 records, 29.8 % of them overflow records) into a
  larger PTU file with a valid header.
* :func:`interleaved` times several cases in turn (A, B, C, A, B, C, ...) and reports best and median.
* :func:`run_child` runs a command and reports its wall time, peak RSS and CPU time, its own only.
"""
from __future__ import annotations

import atexit
import gc
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

#: rounds simulated: the paper's full run (3342 rounds, ~130 M tags of both labs) and a CI-sized run
LMU_ROUNDS_FULL = 3342
LMU_ROUNDS_QUICK = 300
LMU_SEED = 2022

_tmp: Path | None = None
_cache: dict = {}

# A child's peak RSS (``ru_maxrss``) keeps the RSS of the process it was forked from before its exec: a benchmark
# run holding gigabytes of arrays would lend them to every command it measures.  So each command is started by a
# small, fresh Python process, which waits for it and reports what the kernel says of that child alone.
_PROBE = ("import json, os, subprocess, sys, time; t = time.perf_counter(); "
          "p = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, "
          "cwd=sys.argv[1] or None); err = p.stderr.read(); _, status, ru = os.wait4(p.pid, 0); "
          "print(json.dumps({'rc': os.waitstatus_to_exitcode(status), 'wall': time.perf_counter() - t, "
          "'rss_mb': ru.ru_maxrss / 1024.0, 'cpu': ru.ru_utime + ru.ru_stime, "
          "'err': err.decode(errors='replace')[-2000:]}))")


def run_child(cmd: list[str], env: dict | None = None, cwd=None) -> dict:
    """Run ``cmd`` to its end: ``{'rc', 'wall' (s), 'rss_mb' (its peak RSS), 'cpu' (user + system, s), 'err'
    (the end of its stderr)}``, measured by a fresh parent (see ``_PROBE``)."""
    out = subprocess.run([sys.executable, "-c", _PROBE, str(cwd or ""), *map(str, cmd)], capture_output=True,
                         text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"the measuring parent failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout)


def scratch() -> Path:
    """One temporary directory per process, removed at exit."""
    global _tmp
    if _tmp is None:
        _tmp = Path(tempfile.mkdtemp(prefix="timetag-bench-real-"))
        atexit.register(shutil.rmtree, _tmp, True)
    return _tmp


def lmu2022_run(quick: bool):
    """``SimResult`` of ``simulate(load_preset("lmu2022"), rounds, LMU_SEED, dir)``, simulated once per process.

    Returns ``(result, seconds_spent_simulating)``; the seconds are 0 when the cache was hit."""
    from timetag.simulator import load_preset, simulate

    n_rounds = LMU_ROUNDS_QUICK if quick else LMU_ROUNDS_FULL
    key = ("lmu2022", n_rounds)
    if key in _cache:
        return _cache[key], 0.0
    t0 = time.perf_counter()
    res = simulate(load_preset("lmu2022"), n_rounds, LMU_SEED, scratch() / f"lmu2022_{n_rounds}")
    dt = time.perf_counter() - t0
    _cache[key] = res
    return res, dt


# --- real PTU file, tiled ------------------------------------------------------------------------------------

REAL_DIR = Path(os.environ.get("TIMETAG_REAL_DATA", "/work/shared/data/real"))
REAL_T2 = "pqsd_hydraharp_v20_t2.ptu"  # HydraHarp 400, HydraHarp2T2 0x01010204, 435 319 records
# HydraHarp v2 T2 overflow record: special bit, channel 0x3F, timetag field = number of overflows (here 1)
_HH2_T2_OVERFLOW_1 = np.uint32((1 << 31) | (0x3F << 25) | 1)


def real_t2_path() -> Path | None:
    p = REAL_DIR / REAL_T2
    return p if p.is_file() else None


def real_t2_tiled(n_tiles: int) -> tuple[Path, dict]:
    """The real T2 file's records repeated ``n_tiles`` times, with one extra overflow record between tiles (so
    that time keeps increasing across the seam) and ``TTResult_NumberOfRecords`` patched to the new count.
    Cached per process."""
    key = ("t2", n_tiles)
    if key in _cache:
        return _cache[key]
    from timetag.formats.ptu import PtuReader

    src = real_t2_path()
    if src is None:
        raise FileNotFoundError(f"{REAL_DIR / REAL_T2} not found (set TIMETAG_REAL_DATA)")
    r = PtuReader(src)
    if r.rectype != 0x01010204:
        raise ValueError(f"{src}: expected HydraHarp2T2 records, got {r.rectype:#x}")
    raw = src.read_bytes()
    header, off = bytearray(raw[:r.data_offset]), r.data_offset
    rec = np.frombuffer(raw, "<u4", offset=off, count=r.records)
    # patch TTResult_NumberOfRecords (tag: 32-byte ident, int32 idx, uint32 type, 8-byte value)
    ident = b"TTResult_NumberOfRecords".ljust(32, b"\0")
    pos = header.find(ident)
    if pos < 0:
        raise ValueError(f"{src}: no TTResult_NumberOfRecords tag")
    total = n_tiles * rec.size + (n_tiles - 1)
    struct.pack_into("<q", header, pos + 40, total)
    out = scratch() / f"real_t2_x{n_tiles}.ptu"
    tile = np.concatenate([rec, np.array([_HH2_T2_OVERFLOW_1], "<u4")])
    with open(out, "wb") as fh:
        fh.write(header)
        for i in range(n_tiles):
            (tile if i < n_tiles - 1 else rec).tofile(fh)
    # the record mix of the source (one overflow record per tile seam added)
    special = (rec >> 31) == 1
    ovf = special & (((rec >> 25) & 0x3F) == 0x3F)
    info = {"source": str(src), "tiles": n_tiles, "records": int(total),
            "overflow_fraction": float((ovf.sum() * n_tiles + n_tiles - 1) / total),
            "photon_records": int((~special).sum() * n_tiles), "file_mb": out.stat().st_size / 1e6}
    _cache[key] = (out, info)
    return out, info


# --- timing ---------------------------------------------------------------------------------------------------

def interleaved(cases: dict, repeat: int, warm: bool = True) -> dict[str, list[float]]:
    """Seconds of every case, run in turn ``repeat`` times (A, B, C, A, B, C, ...), so that every case sees
    the same phases of the other load on this shared machine.  Each case is run once first (untimed) if
    ``warm``: page cache, first-touch allocations, imports."""
    if warm:
        for fn in cases.values():
            fn()
    times = {k: [] for k in cases}
    for _ in range(repeat):
        for k, fn in cases.items():
            gc.collect()
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return times


def best(ts) -> float:
    return min(ts)


def median(ts) -> float:
    return statistics.median(ts)


def ratio_row(name: str, ours: list[float], base: list[float], unit: str, baseline: str, target: str,
              faster: bool, gross_below: float | None = None, **extra) -> dict:
    """A ratio row with best and median.  ``faster``: value = base/ours ("x <baseline> speed"); otherwise
    value = ours/base ("x slower").  ``value`` is the ratio of the best times (as before); ``median`` is the
    ratio of the median times; ``gross_below`` flags a gross regression when the best-time ratio is below it."""
    if faster:
        v, m = best(base) / best(ours), median(base) / median(ours)
    else:
        v, m = best(ours) / best(base), median(ours) / median(base)
    row = {"name": name, "value": v, "median": m, "unit": unit, "baseline": baseline, "target": target,
           "gross_regression": bool(gross_below is not None and v < gross_below), "repeat": len(ours),
           "ours_best_s": best(ours), "ours_median_s": median(ours),
           "baseline_best_s": best(base), "baseline_median_s": median(base)}
    row.update(extra)
    return row

