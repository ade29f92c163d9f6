"""`timetag convert IN OUT`: stream a tag file into another format (:func:`timetag.formats.convert.convert`),
with a progress bar on stderr."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .options import deprecated_format_option, from_deprecated, quiet_option


def register(app):
    from ..constants import DEFAULT_CHUNK_SIZE

    @app.command("convert")
    def convert_cmd(
        src: Path = typer.Argument(..., help="Input tag file (any readable format: ptu, ht3, qutag, h5, dump, text)."),
        dst: Path = typer.Argument(..., help="Output file; its extension picks the format unless --out-format is "
                                             "given."),
        out_format: Optional[str] = typer.Option(None, "--out-format", show_default="from OUT's extension",
                                                 help="Output format: h5 (timetag HDF5, keeps lost data), dump "
                                                      "(Swabian 16-byte records), text (channel time_ps), ptu "
                                                      "(HydraHarp T2 at 1 ps; cannot hold lost data)."),
        in_format: Optional[str] = typer.Option(None, "--in-format", show_default="detected",
                                                help="Force the input format (ptu, ht3, qutag, h5, dump, text, "
                                                     "ttbin)."),
        chunk_size: int = typer.Option(DEFAULT_CHUNK_SIZE, "--chunk-size", min=1, help="Records per chunk."),
        drop_lost: bool = typer.Option(False, "--drop-lost", help="For PTU output: drop lost-data events "
                                       "(overflow/missed/error) instead of refusing to convert."),
        tolerance_ps: int = typer.Option(0, "--tolerance-ps", min=0, help="Reorder tags that are out of time "
                                         "order by at most this many ps (quTAG files) instead of failing."),
        swmr: bool = typer.Option(False, "--swmr", help="HDF5 output readable while it is written (single-writer/"
                                  "multiple-reader): while it grows it is OUT.h5.partial (`timetag live --source "
                                  "follow:OUT.h5.partial`), renamed to OUT.h5 when complete."),
        force: bool = typer.Option(False, "--force", help="Replace an existing output; the old file stays until "
                                   "the new one is complete."),
        quiet: bool = quiet_option(),
        format: Optional[str] = deprecated_format_option("--out-format", short=True),
    ):
        """Convert a time-tag file to another format, streaming (files larger than memory are fine).

        Times are kept in picoseconds and channel numbers as the reader reports them
        (PTU: photon channel c -> c, T2 sync -> 64, marker bit m -> 100+m).
        A progress bar is shown on stderr. The output is written as OUT.partial and renamed when complete;
        an existing OUT is replaced only with --force, and the input is never overwritten.
        """
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from ..formats.convert import convert

        out_format = from_deprecated(out_format, format, "--out-format")
        cols = [TextColumn("converting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        with Progress(*cols, console=Console(stderr=True), transient=True, disable=quiet) as bar:
            task = bar.add_task("convert", total=None, start=False)

            def opened(partial: Path) -> None:
                if swmr and not quiet:
                    bar.console.print(f"writing {partial} (SWMR: follow it while it grows; renamed to {dst} when "
                                      "complete)", markup=False, highlight=False, soft_wrap=True)

            def advanced(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)
                bar.start_task(task)

            s = convert(src, dst, format=out_format, in_format=in_format, chunk_size=chunk_size, drop_lost=drop_lost,
                        tolerance_ps=tolerance_ps, swmr=swmr, force=force, progress=advanced, on_open=opened)
        msg = f"{s['tags']} tags {s['from']} -> {s['output']}"
        if s["lost_dropped"]:
            msg += f" ({s['lost_dropped']} lost-data events dropped)"
        if not quiet:
            typer.echo(msg, err=True)
