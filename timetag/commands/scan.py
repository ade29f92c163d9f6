"""`timetag scan ALICE_TAGS BOB_TAGS --setup setup.toml --vary KEY=SPEC ... --out DIR`: parameter scans."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import typer

from ..errors import SetupError
from .options import chunk_size_option, quiet_option

TABLE_COLUMNS = ("heralds", "herald_rate_hz", "pairs", "S", "Q", "key_rate_per_event")  # after the varied keys
#: column headers with units (fields without one are shown by name); a metric with an uncertainty field
#: (:data:`timetag.distributed.scan.ERR_FIELDS`) is shown as value ± one standard deviation
HEADERS = {"heralds": "heralds", "herald_rate_hz": "herald rate (1/s)", "pairs": "pairs (rounds)",
           "S": "S ± 1σ", "Q": "Q ± 1σ", "key_rate_per_event": "key rate ± 1σ (bits/event)"}
LEGEND = ("S: CHSH value; Q: pooled quantum bit error rate; key rate: asymptotic, random key basis, bits per "
          "heralded event; ± : one standard deviation (key rate: propagated from those of S, Q0, Q1).")


def _fmt(v, err=None) -> str:
    if v is None:
        return "not computed"
    if isinstance(v, float) and err is not None and math.isfinite(err) and err > 0:
        d = max(0, 1 - math.floor(math.log10(err)))  # the error to two significant digits, the value alike
        return f"{v:.{d}f} ± {err:.{d}f}"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def rich_table(rows: Sequence[dict], keys: Sequence[str]):
    """The scan's rows (:func:`timetag.distributed.scan.run_scan`) as a terminal table: the varied ``keys`` (with
    their unit), then heralds, herald rate, pairs, S, Q and key rate with one standard deviation; the caption
    says what they are."""
    from rich.table import Table

    from ..distributed.scan import ERR_FIELDS, key_unit

    t = Table(title="timetag scan", caption_justify="left")
    for k in keys:
        unit = key_unit(k)
        t.add_column(f"{k} ({unit})" if unit else k, justify="right")
    for c in TABLE_COLUMNS:
        t.add_column(HEADERS.get(c, c), justify="right")
    for r in rows:
        t.add_row(*[_fmt(r.get(k)) for k in keys],
                  *[_fmt(r.get(c), r.get(ERR_FIELDS[c]) if c in ERR_FIELDS else None) for c in TABLE_COLUMNS])
    lines = [LEGEND]
    if any("not computed" in str(c) for col in t.columns for c in col.cells):
        notes = sorted({r["note"] for r in rows if r.get("note")})
        lines.append("not computed: no estimate at this point" + (f" ({'; '.join(notes)})" if notes else "") + ".")
    t.caption = "\n".join(lines)
    return t


def register(app):
    @app.command("scan")
    def scan_cmd(
        alice_tags: list[Path] = typer.Argument(..., metavar="ALICE_TAGS... BOB_TAGS",
                                                help="Alice's tag file(s), then Bob's (see --bob-files)."),
        setup: Path = typer.Option(..., "--setup", "-s", help="The setup TOML both labs are processed with."),
        vary: list[str] = typer.Option(..., "--vary", help="KEY=start:stop:step or KEY=v1,v2 (units: ps ns us ms s). "
                                       "KEY: labs.alice.herald.window_stop_ps, herald.window_stop_ps, window.stop, "
                                       "window.start, threshold, coincidence, fluorescence.start/stop. Repeatable."),
        out: Path = typer.Option(..., "--out", "-o", help="Output directory: scan.csv, scan.png, scan.json, rounds/."),
        dask: str | None = typer.Option(None, "--dask", show_default="no Dask: this process",
                                        help="Run on Dask: local, local:N or tcp://scheduler:8786."),
        bob_files: int = typer.Option(1, "--bob-files", help="How many of the trailing files are Bob's."),
        chunk_size: int = chunk_size_option(),
        force: bool = typer.Option(False, "--force", help="Replace existing outputs in OUT; the old files stay "
                                   "until the new ones are complete."),
        quiet: bool = quiet_option("No table and no summary: only warnings and errors (on stderr)."),
    ):
        """Re-process both labs for every parameter combination; table and plot of herald rate, S, Q, key rate.

        Existing outputs in OUT are refused (all named) unless --force; every file appears only when complete.
        scan.png needs matplotlib (without it the scan writes the table files only, and says so)."""
        # the estimators package pulls in scipy (most of a second): not for `timetag --help`
        from ..estimators.plots import have_matplotlib

        if bob_files < 1 or bob_files >= len(alice_tags):
            raise SetupError(f"give Alice's tag file(s) then Bob's {bob_files} file(s) "
                             f"(got {len(alice_tags)} file(s))")
        a_paths, b_paths = alice_tags[:-bob_files], alice_tags[-bob_files:]
        for p in alice_tags:
            if not p.is_file():
                raise SetupError(f"tag file not found: {p}")
        plot = have_matplotlib()
        from ..distributed.scan import run_scan  # the engine and estimators load for this command only

        from .progress import Working

        # run_scan reports no progress of its own; past a second a spinner says it is working
        where = "on Dask" if dask else "here"
        with Working(f"scan: processing both labs and estimating every --vary combination ({where})",
                     enabled=not quiet):
            rows = run_scan(a_paths, b_paths, setup, vary, out, dask=dask, chunk_size=chunk_size, force=force,
                            plot=plot)
        if quiet:
            return
        keys = [v.split("=", 1)[0].strip() for v in vary]
        from .estimate import console_for

        table = rich_table(rows, keys)
        console_for(table).print(table)
        if plot:
            typer.echo(f"wrote {out / 'scan.csv'}, {out / 'scan.json'} and {out / 'scan.png'}")
        else:
            typer.echo(f"wrote {out / 'scan.csv'} and {out / 'scan.json'} (no scan.png: matplotlib is not "
                       "installed; pip install 'timetag[plot]')")
