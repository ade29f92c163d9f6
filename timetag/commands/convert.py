"""`timetag convert IN OUT`: stream a tag file into another format."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..chunk import DEFAULT_CHUNK_SIZE


def convert(src, dst, format: str | None = None, in_format: str | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
            drop_lost: bool = False, tolerance_ps: int = 0, progress: bool = False, swmr: bool = False,
            force: bool = False) -> dict:
    """Convert ``src`` to ``dst`` chunk by chunk; returns a small summary (tags written, formats).

    The output goes through custody (:class:`~timetag.custody.AtomicOutput`): written as ``<dst>.partial`` and
    renamed to ``dst`` when complete; ``dst`` is never the input (also through a link), an existing ``dst`` is
    replaced only with ``force`` (and stays whole until then), and a failed conversion leaves nothing behind.
    With ``swmr`` the partial file is the one to follow while it grows.
    """
    from ..custody import AtomicOutput
    from ..errors import SetupError
    from ..formats import _check_format_name, _format_from_extension, open_tags, writer_for
    from ..provenance import provenance

    src, dst = Path(src), Path(dst)
    # the partial file's extension is '.partial': the format comes from the target, decided here
    fmt = _check_format_name(format.lower()) if format else _format_from_extension(dst)
    if swmr and fmt != "h5":
        raise SetupError("--swmr applies to HDF5 output only", key="swmr")
    opts = {"tolerance_ps": tolerance_ps} if tolerance_ps else {}
    n = 0
    with AtomicOutput(dst, inputs=[src], force=force) as out:
        reader = open_tags(src, chunk_size=chunk_size, format=in_format, **opts)
        if tolerance_ps and reader.format != "qutag":  # the other readers would ignore it without a word
            raise SetupError(f"--tolerance-ps reorders quTAG files only; {src} is {reader.format}",
                             key="tolerance_ps")
        meta = {"resolution_ps": reader.resolution_ps, "name": dst,  # name: for messages, not the partial file's
                "provenance": provenance(inputs=[src], converted_from=reader.format)}
        if drop_lost:
            meta["drop_lost"] = True
        if swmr:
            meta["swmr"] = True
        writer = writer_for(out.partial, fmt, **meta)
        if swmr and progress:
            import typer

            typer.echo(f"writing {out.partial} (SWMR: follow it while it grows; renamed to {dst} when complete)",
                       err=True)
        with writer:
            if progress:
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

                cols = [TextColumn("converting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
                with Progress(*cols, console=Console(stderr=True), transient=True) as bar:
                    task = bar.add_task("convert", total=reader.records)
                    for chunk in reader:
                        writer.write(chunk)
                        n += len(chunk)
                        bar.update(task, completed=n)
            else:
                for chunk in reader:
                    writer.write(chunk)
                    n += len(chunk)
    return {"tags": n, "from": reader.format, "to": fmt, "output": str(dst),
            "lost_dropped": getattr(writer, "lost_dropped", 0)}


def register(app):
    @app.command("convert")
    def convert_cmd(
        src: Path = typer.Argument(..., help="Input tag file (any readable format: ptu, ht3, qutag, h5, dump, text)."),
        dst: Path = typer.Argument(..., help="Output file; its extension picks the format unless --format is given."),
        format: Optional[str] = typer.Option(None, "--format", "-f",
                                             help="Output format: h5 (timetag HDF5, keeps lost data), dump "
                                                  "(Swabian 16-byte records), text (channel time_ps), ptu "
                                                  "(HydraHarp T2 at 1 ps; cannot hold lost data)."),
        in_format: Optional[str] = typer.Option(None, "--in-format", help="Force the input format."),
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
    ):
        """Convert a time-tag file to another format, streaming (files larger than memory are fine).

        Times are kept in picoseconds and channel numbers as the reader reports them
        (PTU: photon channel c -> c, T2 sync -> 64, marker bit m -> 100+m).
        A progress bar is shown on stderr. The output is written as OUT.partial and renamed when complete;
        an existing OUT is replaced only with --force, and the input is never overwritten.
        """
        s = convert(src, dst, format=format, in_format=in_format, chunk_size=chunk_size, drop_lost=drop_lost,
                    tolerance_ps=tolerance_ps, progress=True, swmr=swmr, force=force)
        msg = f"{s['tags']} tags {s['from']} -> {s['output']}"
        if s["lost_dropped"]:
            msg += f" ({s['lost_dropped']} lost-data events dropped)"
        typer.echo(msg, err=True)
