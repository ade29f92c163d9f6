"""`timetag process`: raw tag files of one lab -> rounds file (HDF5)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..constants import CHECKSUMS, DEFAULT_CHECKSUM
from .options import chunk_size_option, deprecated_format_option, from_deprecated, quiet_option


def summary_table(s: dict):
    """A rich table of the run summary (tags, triggers, rounds per flag, heralds per pattern, rates)."""
    from rich.table import Table

    dur = (s.get("duration_ps") or 0) * 1e-12
    rate = (lambda n: f"{n / dur:,.3g}") if dur > 0 else (lambda n: "")
    t = Table(title=f"timetag process: lab {s['lab']} ({s['role']}, trigger {s['trigger']})", show_lines=False,
              caption="rate: per second of recorded time (the duration row); rounds output up: rounds whose "
                      "fluorescence count reached the threshold (atom detected).", caption_justify="left")
    t.add_column("quantity")
    t.add_column("count (or unit given)", justify="right")
    t.add_column("rate (1/s)", justify="right")
    t.add_row("tags", f"{s['tags']:,}", rate(s["tags"]))
    t.add_row("duration", f"{dur:,.6g} s", "")
    if s.get("syncs"):
        t.add_row("syncs", f"{s['syncs']:,}", rate(s["syncs"]))
        t.add_row("BSM clicks (accepted)", f"{s['clicks']:,} ({s['clicks_accepted']:,})", rate(s["clicks"]))
    for name, n in s["heralds"].items():
        if n or name == "psi+":
            t.add_row(f"heralds {name}", f"{n:,}", rate(n))
    t.add_row("ready tags", f"{s['readies']:,}", rate(s["readies"]))
    t.add_row("triggers", f"{s['triggers']:,}", rate(s["triggers"]))
    t.add_row("rounds", f"{s['rounds']:,}", rate(s["rounds"]))
    t.add_row("rounds output up", f"{s['rounds_up']:,}", "")
    for name, n in s["flags"].items():
        t.add_row(f"  flagged {name}", f"{n:,}", "", style="yellow" if n else None)
    lost = s.get("lost", {})
    if any(lost.values()):
        t.add_row("lost-data events", ", ".join(f"{k} {v}" for k, v in lost.items() if v), "", style="red")
    for line in (s.get("channels") or {}).get("channels", []):
        if line["roles"] == ["unused"]:
            t.add_row(f"tags on unused channel {line['channel']}", f"{line['tags']:,}", rate(line["tags"]),
                      style="yellow")
    bad = (s.get("bad_records") or {}).get("count", 0)
    if bad:
        t.add_row("bad records made lost data", f"{bad:,}", "", style="red")
    if s.get("pending_dropped"):
        t.add_row("pending clicks dropped", f"{s['pending_dropped']:,}", "", style="red")
    if s.get("elapsed_s"):
        t.add_row("processing time (rate: tags per second of processing)", f"{s['elapsed_s']:.2f} s",
                  f"{s['tags_per_s']:,.3g}")
    return t


def register(app):
    @app.command("process")
    def process(
        files: List[Path] = typer.Argument(..., help="Tag files of one run and one lab, processed in order as one "
                                                     "continuous stream (any supported format)."),
        setup: Path = typer.Option(..., "--setup", "-s", help="Setup TOML (channel map, delays, windows, threshold)."),
        lab: str = typer.Option(..., "--lab", "-l", help="Which lab of the setup these files belong to (alice|bob)."),
        out: Path = typer.Option(..., "--out", "-o", help="Rounds file to write (HDF5: /rounds, /heralds, "
                                                          "/histograms, summary and provenance)."),
        chunk_size: int = chunk_size_option(),
        in_format: Optional[str] = typer.Option(None, "--in-format", show_default="detected",
                                                help="Input format (ptu, ht3, qutag, h5, dump, text, ttbin)."),
        checksum: str = typer.Option(DEFAULT_CHECKSUM, "--checksum", help="Checksum of each input in the "
                                     f"provenance: {', '.join(CHECKSUMS)} (computed on the second core while "
                                     "the engine runs)."),
        no_checksum: bool = typer.Option(False, "--no-checksum", help="Skip input checksums in the provenance."),
        force: bool = typer.Option(False, "--force", help="Replace an existing output (the old file stays whole "
                                   "until the new one is complete). An input file is never replaced."),
        on_bad_record: str = typer.Option("fail", "--on-bad-record", help="What a bad record (time going "
                                          "backwards, negative time, unknown record type) does: 'fail' stops "
                                          "there, keeping the rounds made before it in a file marked failed; "
                                          "'lost' turns it into lost data (the rounds it touches are flagged "
                                          "lost_data) and goes on."),
        max_jump_ps: Optional[int] = typer.Option(None, "--max-jump-ps", min=1, help="A tag later than the "
                                                  "previous one by more than this is a bad record (default: no "
                                                  "limit)."),
        quiet: bool = quiet_option("No progress bar and no summary table."),
        dask: Optional[str] = typer.Option(None, "--dask", show_default="no Dask: this process",
                                           help="Process in partitions on Dask: local:N (N worker "
                                           "processes), threads:N (N threads in this process), or "
                                           "tcp://scheduler:8786 (files on a shared file system). Dump files "
                                           "are also cut inside at quiet gaps. Same output as without."),
        threads: str = typer.Option("auto", "--threads", help="Threads in this process: N, or 'auto' (a thread "
                                    "per core, up to 4, with 3 cores or more, for dump inputs of 64 MB or more; "
                                    "else 1: one thread already keeps ~1.5 cores busy). Dump files are cut at "
                                    "quiet gaps and the pieces processed side by side; same output as one thread. "
                                    "Other formats run on one thread."),
        format: Optional[str] = deprecated_format_option("--in-format"),
    ):
        """Herald and round stages: raw tags -> one round record per trigger (setting, count, output, flags).

        Delay-corrects the tags, applies the post-excitation-pulse time filter, finds BSM coincidences (psi+ / psi-), reads the input setting and counts fluorescence photons for every trigger (software herald, hardware 'ready', or both cross-checked), and writes the rounds file. Example: timetag process run/alice_*.dump --setup run/setup.toml --lab alice --out alice_rounds.h5
        """
        from .startup import imports

        with imports():
            from rich.console import Console

            from ..errors import SetupError
            from ..formats import order_series
            from ..process import process_files
            from .progress import RecordsBar

        in_format = from_deprecated(in_format, format, "--in-format")
        ordered = order_series(files)
        if ordered != list(files):  # a shell glob (raw/alice*.dump) lists a rotated series out of order
            typer.echo("reading the rotated series in recording order: " + ", ".join(p.name for p in ordered), err=True)
            files = ordered
        if on_bad_record not in ("fail", "lost"):
            raise SetupError(f"--on-bad-record must be 'fail' or 'lost' (got {on_bad_record!r})", key="on_bad_record")
        if dask and max_jump_ps is not None:
            raise SetupError("--max-jump-ps is not available with --dask yet", key="max_jump_ps")
        if dask and in_format is not None:  # the partitions sniff each file's format
            raise SetupError("--in-format is not available with --dask yet", key="in_format")
        if dask:
            from ..distributed.run import process_files_dask

            if on_bad_record != "fail":
                raise SetupError("--on-bad-record lost is not available with --dask yet", key="on_bad_record")
            from .progress import PartitionsBar

            with PartitionsBar(f"{lab} (dask {dask})", enabled=not quiet) as bar:
                summary = process_files_dask(files, setup, lab, out, dask=dask, chunk_size=chunk_size,
                                             checksum=False if no_checksum else checksum, force=force, progress=bar)
        else:
            with RecordsBar(str(lab), enabled=not quiet) as bar:
                summary = process_files(files, setup, lab, out, chunk_size=chunk_size, progress=bar,
                                        format=in_format, checksum=False if no_checksum else checksum, force=force,
                                        on_bad_record=on_bad_record, max_jump_ps=max_jump_ps,
                                        threads=threads)
        if not quiet:
            console = Console(emoji=False)   # a lab's name and a path hold no emoji codes (timetag.commands.progress)
            console.print(summary_table(summary))
            console.print(f"wrote {out}")
