"""`timetag demo`: the whole chain on the embedded lmu2022 simulation, next to the paper's values."""
from __future__ import annotations

from pathlib import Path

import typer


def _fmt(v, err=None, digits=3):
    if v is None:
        return "not computed"
    s = f"{v:.{digits}f}"
    return s + (f" ± {err:.{digits}f}" if err is not None else "")


#: The mark of a paper value computed here from the paper's own numbers (explained under the table).
DERIVED_MARK = " *"
DERIVED_NOTE = ("* not printed in the paper, which says only that the original protocol's rate is positive: its bound "
                "(Pironio et al. 2009) at the paper's S = 2.578 and Q = 0.078.")


def comparison_table(res: dict):
    """Our estimate beside the paper's numbers (Zhang et al. 2022); the caption is the legend (symbols, units,
    the paper values computed here, every word shown instead of a number)."""
    from rich.table import Table

    from ..demo import PAPER
    from .estimate import _block_length, _cells, legend_lines

    t = Table(title="timetag demo vs the paper (Nature 607, 687 (2022))", header_style="bold",
              caption_justify="left")
    t.add_column("quantity")
    t.add_column("this run ± 1σ", justify="right")
    t.add_column("paper ± 1σ", justify="right")
    t.add_row("rounds (heralded events)", str(res["rounds"]), str(PAPER["rounds"]))
    for xy in ("2,0", "3,0", "2,1", "3,1"):
        t.add_row(f"E{xy.replace(',', '')}", _fmt(res["E"][xy], res["E_err"][xy]), _fmt(*PAPER["E"][xy]))
    t.add_row("S", _fmt(res["S"], res["S_err"]), _fmt(*PAPER["S"]), end_section=True)
    for q, d in (("Q0", 4), ("Q1", 4), ("Q", 4)):
        t.add_row(q, _fmt(res[q], res.get(f"{q}_err"), d), _fmt(*PAPER[q], d))
    derived = set(PAPER.get("derived", ()))
    for p, label in (("random_basis", "random key basis"), ("original", "original protocol")):
        paper = PAPER["key_rate_per_event"][p]
        mark = DERIVED_MARK if f"key_rate_per_event.{p}" in derived else ""
        t.add_row(f"key rate, {label} (bits/event)", _fmt(res["key_rate_per_event"][p]),
                  ("not given" if paper is None else f"{paper:.3g}") + mark)
    t.add_row("finite-key min. block length (events)", _block_length(res.get("min_block_length")),
              f"{PAPER['min_block_length']:.3g}")
    lines = legend_lines(*_cells(t))
    if derived:
        lines.append(DERIVED_NOTE)
    if "not given" in " ".join(_cells(t)):
        lines.append("not given: the paper gives no value.")
    t.caption = "\n".join(lines)
    return t


def register(app):
    @app.command("demo")
    def demo_cmd(
        out: Path = typer.Option(Path("timetag-demo"), "--out", "-o", help="Folder for every file the demo writes."),
        rounds: int = typer.Option(3000, "--rounds", "-n", help="Heralded rounds to simulate (the paper had 3342)."),
        seed: int = typer.Option(2022, "--seed", min=0, help="Seed of the simulation (same seed, same files)."),
        speedup: float = typer.Option(2e4, "--speedup",
                                      help="Factor on the entanglement efficiency: the paper's 1 event / 82 s "
                                           "becomes many per second; nothing else changes."),
        plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PNG figures (needs matplotlib)."),
        force: bool = typer.Option(False, "--force", help="Write into an OUT that is not the demo's own folder "
                                   "(files with the demo's names are replaced; the old file stays until the new "
                                   "one is complete). The demo's own folder is always refreshed without it."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress: only the result table."),
    ):
        """Run the whole chain on a simulated link: simulate -> calibrate -> process -> estimate.

        Uses the simulator's lmu2022 preset (the paper's set-up, with the entanglement efficiency raised
        by --speedup so that it takes seconds), starts calibration from a deliberately mis-set setup,
        and prints the paper-style result table next to the paper's own values.

        Re-running replaces the files of the demo's own folder (marked by a .timetag-demo file), each only when
        its replacement is complete; a folder that holds other things is refused unless --force.
        """
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from ..demo import run_demo
        from ..estimators.plots import have_matplotlib

        if plots and not have_matplotlib():
            plots = False
            typer.secho("matplotlib not installed: no plots (pip install 'timetag[plot]')", err=True)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=Console(stderr=True), transient=True, disable=quiet) as prog:
            task = prog.add_task("starting", total=None)
            res = run_demo(out, rounds=rounds, seed=seed, speedup=speedup, plots=plots, force=force,
                           progress=lambda name: prog.update(task, description=name))
        from .estimate import console_for

        table = comparison_table(res.estimate)
        console = console_for(table)
        console.print(table)
        from .estimate import print_warnings

        print_warnings(console, res.estimate.to_json() if hasattr(res.estimate, "to_json") else res.estimate)
        j = res.estimate.get("join", {})
        if j:
            console.print(f"join: {j.get('pairs', '?')} pairs, unmatched alice {j.get('unmatched_alice', '?')}, "
                          f"bob {j.get('unmatched_bob', '?')}")
        console.print(f"calibration: {len(res.calibration_changes)} setup values checked; "
                      f"see {res.files['calibrated_setup']}")
        console.print("files:")
        for k, v in res.files.items():
            console.print(f"  {k:<20} {v}")
        console.print(f"done in {res.timings['total']:.1f} s "
                      + ", ".join(f"{k} {v:.1f} s" for k, v in res.timings.items() if k != "total"))
