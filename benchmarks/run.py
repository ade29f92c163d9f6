"""Run every benchmark module (benchmarks/bench_*.py) and write one JSON artefact.

Each module defines ``run(quick: bool) -> list[dict]``; a result dict has
``name``, ``value`` (the measured ratio or rate), ``unit``, ``baseline`` (what the
ratio is against), ``target`` (a human-readable goal), and ``gross_regression``
(bool: True only when a ratio measured in this same run is far off — e.g. the
engine slower than its numpy baseline).  Absolute times are reported, never
judged: the machine is shared and noisy.
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, for CI")
    ap.add_argument("--only", default="", help="comma-separated module names (bench_formats,...)")
    ap.add_argument("--out", default=str(HERE / "results" / "latest.json"))
    ap.add_argument("--markdown", default="", help="also write the table as Markdown (e.g. docs/performance.md)")
    args = ap.parse_args(argv)
    only = {s for s in args.only.split(",") if s}
    results, failures = [], []
    console = Console()
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
    table = Table(title="timetag benchmarks (ratios measured in this run)")
    for col in ("benchmark", "value", "unit", "vs", "target", "status"):
        table.add_column(col)
    for r in results:
        status = "[red]REGRESSION[/red]" if r.get("gross_regression") else "ok"
        table.add_row(r["name"], f"{r['value']:.3g}", r.get("unit", ""), r.get("baseline", ""), r.get("target", ""), status)
    console.print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(), "quick": args.quick,
            "cpus": __import__("os").cpu_count()}
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


def markdown(meta: dict, results: list[dict], failures: list[str]) -> str:
    lines = [
        "# Performance",
        "",
        f"Measured by `python benchmarks/run.py{' --quick' if meta['quick'] else ''}` on {meta['cpus']} shared cores "
        f"({meta['machine']}, Python {meta['python']}). Ratios are against baselines measured in the same run; "
        "absolute rates are for orientation only (the machine is shared and noisy).",
        "",
        "| benchmark | value | unit | against | target |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['name']} | {r['value']:.3g} | {r.get('unit', '')} | {r.get('baseline', '')} | "
                     f"{r.get('target', '')} |")
    lines += [f"- failed: {f}" for f in failures]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
