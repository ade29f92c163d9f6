"""Simulator throughput: tags generated and written per second, against a plain numpy write of the same bytes.

Paper-scale efficiency (speedup 1, conditional sync), so the tag mix is that of a real long run: dark counts,
single photons, conditional syncs, rare rounds.  The baseline writes a record array of the same size with
``ndarray.tofile`` in the same run.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np


def run(quick: bool) -> list[dict]:
    from timetag.formats.dump import RECORD_DTYPE
    from timetag.simulator import load_preset, simulate

    p = load_preset("lmu2022")
    n_rounds = 40 if quick else 1000
    with tempfile.TemporaryDirectory() as d:
        simulate(p, 2, 0, Path(d) / "warm")  # numba compile / cache load outside the timing
        c0 = time.process_time()
        t0 = time.perf_counter()
        res = simulate(p, n_rounds, 1, Path(d) / "run")
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        n_tags = res.stats["alice_tags"] + res.stats["bob_tags"]
        rec = np.zeros(n_tags, RECORD_DTYPE)
        rec["time"] = np.arange(n_tags)
        t1 = time.perf_counter()
        rec.tofile(Path(d) / "base.bin")
        base = time.perf_counter() - t1
        d2 = Path(d) / "demo"
        t2 = time.perf_counter()
        simulate(p, 4000, 3, d2, speedup=2e4)
        demo = time.perf_counter() - t2
    rate = n_tags / dt
    base_rate = n_tags / base
    return [
        {"name": "simulate_tags_per_s", "value": rate, "unit": "tags/s", "baseline": "absolute",
         "target": ">= 1e7 tags/s", "gross_regression": False,
         "detail": f"{n_tags} tags, {n_rounds} rounds at paper efficiency, {res.stats['simulated_seconds']:.0f} s "
                   f"simulated, {dt:.2f} s"},
        {"name": "simulate_tags_per_cpu_s", "value": n_tags / cpu, "unit": "tags/s", "baseline": "process time",
         "target": ">= 1e7 tags/s", "gross_regression": False,
         "detail": "CPU time of this process: less sensitive to other load on the shared machine"},
        {"name": "simulate_vs_tofile", "value": rate / base_rate, "unit": "ratio", "baseline": "ndarray.tofile",
         "target": "report", "gross_regression": rate / base_rate < 0.005},
        {"name": "simulate_demo_4000_rounds_s", "value": demo, "unit": "s", "baseline": "absolute",
         "target": "< 30 s", "gross_regression": False},
    ]


if __name__ == "__main__":
    for r in run(quick=True):
        print(r)
