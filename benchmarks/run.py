"""Run every benchmark module (benchmarks/bench_*.py) and write one JSON artefact.

Each module defines ``run(quick: bool) -> list[dict]``; a result dict has
``name``, ``value`` (the measured ratio or rate; for timed repetitions, from the best times), optionally
``median`` (the same from the median times), ``unit``, ``baseline`` (what the
ratio is against), ``target`` (a human-readable goal), and ``gross_regression``
(bool: True only when a ratio measured in this same run is far off — e.g. the
engine slower than its numpy baseline).  Absolute times are reported, never
judged: the machine is shared and noisy.  The package is compiled to bytecode first (benchmarks/_installed.py), so
that commands timed in child processes start as an installed package does.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _hardware() -> dict:
    """CPU model, the SIMD features the engine's kernels use (cext/engine_slots_kernels.h dispatches its split
    to AVX2 at run time), core count."""
    import os

    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("unknown", "", platform.machine()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        from timetag._cext import engine_slots

        vec = bool(engine_slots.vector_split_available())
    except Exception:
        vec = None
    return {"cpu_model": model, "cpus": os.cpu_count(),
            "simd": " ".join(f for f in ("sse4_2", "avx2", "avx512f") if f in flags) or "n/a",
            "engine_avx2_split": vec}


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, for CI")
    ap.add_argument("--only", default="", help="comma-separated module names (bench_formats,...)")
    ap.add_argument("--out", default=str(HERE / "results" / "latest.json"))
    ap.add_argument("--markdown", default="", help="also write the table as Markdown (e.g. docs/performance.md)")
    args = ap.parse_args(argv)
    only = {s for s in args.only.split(",") if s}
    results, failures = [], []
    load_before, t_run = _loadavg(), time.perf_counter()
    console = Console()
    _load(HERE / "_installed.py").compile_package()   # child processes start as from an installed package
    for path in sorted(HERE.glob("bench_*.py")):
        if only and path.stem not in only:
            continue
        t0 = time.perf_counter()
        try:
            mod = _load(path)
            rows = mod.run(quick=args.quick)
        except Exception as exc:  # a broken benchmark is a failure, reported by name
            failures.append(f"{path.stem}: {type(exc).__name__}: {exc}")
            continue
        for r in rows:
            r.setdefault("module", path.stem)
        results.extend(rows)
        console.print(f"[dim]{path.stem}: {time.perf_counter() - t0:.1f} s[/dim]")
    load_after, wall = _loadavg(), time.perf_counter() - t_run
    table = Table(title="timetag benchmarks (ratios measured in this run)")
    for col in ("benchmark", "best", "median", "unit", "vs", "target", "status"):
        table.add_column(col)
    for r in results:
        status = "[red]REGRESSION[/red]" if r.get("gross_regression") else "ok"
        table.add_row(r["name"], f"{r['value']:.3g}", _med(r), r.get("unit", ""), r.get("baseline", ""),
                      r.get("target", ""), status)
    console.print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(), "quick": args.quick,
            **_hardware(), "loadavg_before": load_before, "loadavg_after": load_after, "wall_s": wall,
            "modules": sorted(only) if only else "all"}
    out.write_text(json.dumps({"meta": meta, "results": results, "failures": failures}, indent=2))
    console.print(f"wrote {out}")
    if args.markdown:
        Path(args.markdown).write_text(markdown(meta, results, failures))
        console.print(f"wrote {args.markdown}")
    for f in failures:
        console.print(f"[red]benchmark failed[/red] {f}")
    bad = [r["name"] for r in results if r.get("gross_regression")]
    if bad:
        console.print(f"[red]gross regressions:[/red] {', '.join(bad)}")
    return 1 if (failures or bad) else 0


def _med(r: dict) -> str:
    return f"{r['median']:.3g}" if r.get("median") is not None else ""


def markdown(meta: dict, results: list[dict], failures: list[str]) -> str:
    only = "" if meta.get("modules", "all") == "all" else f" --only {','.join(meta['modules'])}"
    lines = [
        "# Performance",
        "",
        f"Measured by `python benchmarks/run.py{' --quick' if meta['quick'] else ''}{only}` "
        f"({meta.get('wall_s', 0):.0f} s) on {meta['cpus']} shared cores of an {meta.get('cpu_model', '?')} "
        f"({meta['machine']}, SIMD flags used or relevant: {meta.get('simd', '?')}; the engine's AVX2 split "
        f"{'active' if meta.get('engine_avx2_split') else 'not active'}), Python {meta['python']}. "
        f"Load average (1/5/15 min) before the run: {meta.get('loadavg_before', '?')}, after: "
        f"{meta.get('loadavg_after', '?')}.",
        "",
        "Ratios are against baselines measured in the same run, interleaved (A, B, A, B, ...); *best* is the ratio "
        "of the best times, *median* the ratio of the median times (the headline rows; older rows have one "
        "value). Absolute rates are for orientation only (the machine is shared and noisy).",
    ]

    def table(rows):
        out = ["", "| benchmark | best | median | unit | against | target |", "|---|---|---|---|---|---|"]
        for r in rows:
            out.append(f"| {r['name']} | {r['value']:.3g} | {_med(r)} | {r.get('unit', '')} | "
                       f"{r.get('baseline', '')} | {r.get('target', '')} |")
        return out

    head = [r for r in results if not r["name"].startswith("synthetic_")]
    synth = [r for r in results if r["name"].startswith("synthetic_")]
    lines += ["", "## Headline: real and realistic inputs, and the other modules"] + table(head)
    if synth:
        lines += ["", "## Extra: synthetic streams (same run)", "",
                  "The dense synthetic engine stream (~1 tag per 100 ps, every channel in play) and the synthetic "
                  "PTU file (~1 % overflow records) flatter the engine and the PTU decoder; they are kept to "
                  "compare with older numbers."] + table(synth)
    lines += [f"- failed: {f}" for f in failures]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
