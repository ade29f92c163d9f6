"""`timetag info FILE`: what is in a time-tag file (format, tags per channel, rates, lost data, time order).

The summary is :func:`timetag.formats.summary.summarize` (order check off, so that it can describe a file
``timetag process`` refuses: backward time steps and negative times are counted and shown; exit code 0 all the
same: describing is info's job); this module prints it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..constants import DEFAULT_CHUNK_SIZE
from .options import deprecated_format_option, from_deprecated, quiet_option


def _human(s: dict) -> None:
    con = Console()
    dur = s["duration_ps"] * 1e-12
    con.print(f"[bold]{s['path']}[/bold]  format [cyan]{s['format']}[/cyan]")
    meta = s["meta"]
    if "device" in meta:
        con.print(f"device {meta['device']} ({meta.get('mode', '')}), record type {meta.get('record_type', '')}")
    con.print(f"records {s['records']}, tags {s['tags']}, resolution {s['resolution_ps']:g} ps")
    if s["tags"]:
        con.print(f"time {s['first_ps']} .. {s['last_ps']} ps, duration {dur:.6g} s")
    t = Table(title="tags per channel")
    t.add_column("channel", justify="right")
    t.add_column("tags", justify="right")
    t.add_column("rate (Hz)", justify="right")
    for c, n in s["channels"].items():
        r = s["rates_hz"][c]
        t.add_row(c, str(n), "-" if r is None else f"{r:.6g}")
    con.print(t)
    for line, style in order_lines(s):
        con.print(f"[{style}]{escape(line)}[/{style}]" if style else escape(line))
    if s["lost"]:
        con.print(f"[red]lost data: {len(s['lost'])} interval(s)/event(s)[/red]")
        for ev in s["lost"][:20]:
            con.print(f"  {ev['kind']}: {ev['start_ps']} .. {ev['end_ps']} ps"
                      + (f", channel {ev['channel']}, {ev['count']} tags" if "count" in ev else ""))
        if len(s["lost"]) > 20:
            con.print(f"  ... {len(s['lost']) - 20} more (use --json)")
    else:
        con.print("no lost-data events (overflows, missed events, device errors)")


def order_lines(s: dict) -> list[tuple[str, str]]:
    """(text, rich style) lines describing the time-order problems of a summary."""
    o = s["order"]
    if not o["backward_steps"] and not o["negative_times"]:
        return [("time order: no backward steps, no negative times", "")]
    out = []
    if o["backward_steps"]:
        fb = o["first_backward"]
        out.append((f"time goes backwards {o['backward_steps']} times (largest step {o['max_backward_ps']} ps); first "
                    f"at tag {fb['tag_index']} (from 0, lost-data records not counted): {fb['after_ps']} ps after "
                    f"{fb['before_ps']} ps", "red"))
        if o["process_checks_order"]:
            out.append((f"timetag process will refuse this file ({s['format']} files are read with the order check "
                        "on)", "red"))
        else:
            out.append((f"timetag process reads {s['format']} files without an order check: the engine would get "
                        "these tags out of order", "red"))
    if o["negative_times"]:
        fn = o["first_negative"]
        out.append((f"{o['negative_times']} tags have negative times (first: tag {fn['tag_index']}, "
                    f"{fn['time_ps']} ps)", "yellow"))
    return out


def _human_rounds(r: dict) -> None:
    console = Console()
    head = Table(show_header=False, box=None, title=f"{escape(r['path'])}: rounds file (format {r['format_version']})")
    for key, value in (("lab / role", f"{r['lab']} / {r['role']}"), ("run", r["run"] or "(not named)"),
                       ("setup hash", r["setup_hash"][:16]),
                       ("completion", f"{r['completion']['state']} {r['completion']['reason']}".strip()),
                       ("rounds", f"{r['rounds']:,} ({r['flagged']:,} flagged)"),
                       ("heralds", "not kept" if r["heralds"] is None else f"{r['heralds']:,}"),
                       ("software", r["software_version"])):
        head.add_row(key, escape(str(value)))
    console.print(head)
    console.print(_legend_table("flags (bit mask of the 'flags' field)", "bit", r["flag_legend"], r["flags"]))
    console.print(_legend_table("patterns (the 'pattern' field)", "code", r["pattern_legend"], r["patterns"]))
    fields = Table(title="/rounds fields")
    for col in ("field", "unit", "meaning"):
        fields.add_column(col)
    for name, f in r["fields"]["rounds"].items():
        fields.add_row(name, f["unit"], f["meaning"])
    console.print(fields)
    if r["histograms"]:
        hist = Table(title="/histograms")
        for col in ("name", "shape", "unit", "meaning"):
            hist.add_column(col)
        for name, h in r["histograms"].items():
            hist.add_row(name, "x".join(map(str, h["shape"])), h["unit"], h["description"])
        console.print(hist)
    if r["setup"]:
        console.print("[bold]setup[/bold] (the text the rounds were made with):")
        console.print(escape(r["setup"]), highlight=False)


def _legend_table(title: str, code_name: str, legend: dict, rounds: dict) -> Table:
    """One row per code of a legend: the code, its name, the rounds that carry it, what it means."""
    table = Table(title=title)
    for col in (code_name, "name", "rounds", "meaning"):
        table.add_column(col, justify="right" if col in (code_name, "rounds") else "left")
    for code, leg in legend.items():
        table.add_row(code, leg["name"], f"{rounds[leg['name']]:,}", leg["meaning"])
    return table


def register(app):
    @app.command("info")
    def info(
        file: Path = typer.Argument(..., help="Tag file: .ptu, .ht3, .qutag, .h5 (timetag or Photon-HDF5), "
                                              ".dump (Swabian), .txt (channel time_ps); or a rounds file "
                                              "(what `process` writes)."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables "
                                      "(keys: format, records, duration_ps, channels, lost, order, ...)."),
        chunk_size: int = typer.Option(DEFAULT_CHUNK_SIZE, "--chunk-size", min=1,
                                       help="Records per chunk (memory use is about 30 bytes x this)."),
        in_format: Optional[str] = typer.Option(None, "--in-format", show_default="detected",
                                                help="Force the input format instead of sniffing it (ptu, ht3, "
                                                     "qutag, h5, dump, text, ttbin)."),
        format: Optional[str] = deprecated_format_option("--in-format"),
        quiet: bool = quiet_option("No tables: read the whole file and print only warnings and errors (on "
                                   "stderr); the exit code says whether it is readable (--json still prints)."),
    ):
        """Show what a time-tag file holds: format and device, tags and rate per channel, measurement
        duration, lost-data intervals (overflows, missed events, device errors) and time-order problems.

        Reads the file once, in chunks, so it works on files larger than memory.
        """
        from ..roundsfile import describe_rounds, is_rounds_file

        in_format = from_deprecated(in_format, format, "--in-format")
        if in_format is None and is_rounds_file(file):
            r = describe_rounds(file)
            if json_out:
                typer.echo(json.dumps(r))
            elif not quiet:
                _human_rounds(r)
            return
        from ..formats.summary import summarize   # numpy and the readers: with the command, not its --help

        s = summarize(file, chunk_size=chunk_size, format=in_format)
        if json_out:
            typer.echo(json.dumps(s))
        elif not quiet:
            _human(s)
