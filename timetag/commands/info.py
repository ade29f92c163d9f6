"""`timetag info FILE`: what is in a time-tag file (format, tags per channel, rates, lost data)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from ..chunk import DEFAULT_CHUNK_SIZE, ERROR, LOST_KIND_NAMES, MISSED, OVERFLOW_BEGIN, OVERFLOW_END


def summarize(path, chunk_size: int = DEFAULT_CHUNK_SIZE, format: str | None = None) -> dict:
    """One streaming pass: counts per channel, first/last time, lost-data intervals, order problems."""
    from ..formats import open_tags

    reader = open_tags(path, chunk_size=chunk_size, format=format, check_order=False)
    counts: dict[int, int] = {}
    first = last = None
    n_tags = 0
    lost: list[dict] = []
    open_overflow = None
    for chunk in reader:
        if len(chunk):
            ch, n = np.unique(chunk.channel, return_counts=True)
            for c, k in zip(ch.tolist(), n.tolist()):
                counts[c] = counts.get(c, 0) + k
            lo, hi = int(chunk.time.min()), int(chunk.time.max())
            first = lo if first is None else min(first, lo)
            last = hi if last is None else max(last, hi)
            n_tags += len(chunk)
        for ev in chunk.lost.tolist():
            t, kind, channel, count = ev
            if kind == OVERFLOW_BEGIN:
                open_overflow = t if open_overflow is None else open_overflow
            elif kind == OVERFLOW_END:
                lost.append({"kind": "overflow", "start_ps": open_overflow if open_overflow is not None else t,
                             "end_ps": t})
                open_overflow = None
            elif kind in (MISSED, ERROR):
                lost.append({"kind": LOST_KIND_NAMES[kind], "start_ps": t, "end_ps": t, "channel": channel,
                             "count": count})
    if open_overflow is not None:
        lost.append({"kind": "overflow", "start_ps": open_overflow, "end_ps": None, "note": "no overflow end"})
    duration = (last - first) if n_tags else 0
    meta = {k: v for k, v in reader.meta.items() if _jsonable(v)}
    return {
        "path": str(path),
        "format": reader.format,
        "records": reader.records,
        "tags": n_tags,
        "first_ps": first,
        "last_ps": last,
        "duration_ps": duration,
        "resolution_ps": reader.resolution_ps,
        "channels": {str(c): counts[c] for c in sorted(counts)},
        "rates_hz": {str(c): (counts[c] / (duration * 1e-12) if duration else None) for c in sorted(counts)},
        "lost": lost,
        "meta": meta,
    }


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def _human(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table

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
    if meta.get("backward_steps"):
        con.print(f"[yellow]time goes backwards {meta['backward_steps']} times (largest step "
                  f"{meta['max_backward_ps']} ps)[/yellow]")
    if s["lost"]:
        con.print(f"[red]lost data: {len(s['lost'])} interval(s)/event(s)[/red]")
        for ev in s["lost"][:20]:
            con.print(f"  {ev['kind']}: {ev['start_ps']} .. {ev['end_ps']} ps"
                      + (f", channel {ev['channel']}, {ev['count']} tags" if "count" in ev else ""))
        if len(s["lost"]) > 20:
            con.print(f"  ... {len(s['lost']) - 20} more (use --json)")
    else:
        con.print("no lost data")


def register(app):
    @app.command("info")
    def info(
        file: Path = typer.Argument(..., help="Tag file: .ptu, .ht3, .qutag, .h5 (timetag or Photon-HDF5), "
                                              ".dump (Swabian), .txt (channel time_ps)."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables "
                                      "(keys: format, records, duration_ps, channels, lost, ...)."),
        chunk_size: int = typer.Option(DEFAULT_CHUNK_SIZE, "--chunk-size", min=1,
                                       help="Records per chunk (memory use is about 30 bytes x this)."),
        format: Optional[str] = typer.Option(None, "--format", help="Force the input format instead of sniffing "
                                             "it (ptu, ht3, qutag, h5, dump, text)."),
    ):
        """Show what a time-tag file holds: format and device, tags and rate per channel, measurement
        duration, lost-data intervals (overflows, missed events, device errors) and time-order problems.

        Reads the file once, in chunks, so it works on files larger than memory.
        """
        s = summarize(file, chunk_size=chunk_size, format=format)
        if json_out:
            typer.echo(json.dumps(s))
        else:
            _human(s)
