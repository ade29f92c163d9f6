"""`timetag recover FILE.partial`: save the rounds of a run that was killed (SIGKILL, power loss)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .options import quiet_option


def register(app):
    @app.command("recover")
    def recover(
        partial: Path = typer.Argument(..., help="The partial rounds file a killed run left "
                                                 "(<out>.partial, or <out>/<lab>_rounds.h5.partial for live)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the recovered file "
                                           "(default: the name without .partial)."),
        force: bool = typer.Option(False, "--force", help="Replace an existing --out (never the partial file)."),
        keep: bool = typer.Option(False, "--keep", help="Keep the partial file after recovering it."),
        quiet: bool = quiet_option("No summary line: only warnings and errors (on stderr)."),
    ):
        """Save every round a killed run flushed into a plain rounds file marked 'recovered'.

        A run killed hard (SIGKILL, power loss) leaves its rounds in <out>.partial, an HDF5 file still flagged as
        open for SWMR writing (plain h5py and h5dump refuse it until recovered). This copies every round and herald
        up to the last flush into <out> (readable by any HDF5 tool), records its completion state as 'recovered'
        (estimate then asks for --accept-incomplete), checks the copy, and deletes the partial file. Refused while
        the writer is still running. Example: timetag recover live/alice_rounds.h5.partial
        """
        from ..roundsoutput import recover_rounds

        res = recover_rounds(partial, out, force=force, keep=keep)
        if quiet:
            return
        heralds = "" if res["heralds"] is None else f" and {res['heralds']:,} heralds"
        typer.echo(f"recovered {res['rounds']:,} rounds{heralds} (state was {res['state_was']}) -> {res['out']}")
