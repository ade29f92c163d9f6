"""`timetag calibrate`: delays, time-filter window, thresholds and clock offset from recorded tags.

A plugin of the ``timetag`` command line (entry point group ``timetag.commands``, see :mod:`timetag.plugins`):
timetag does not import this package; installing it adds the command.  Importing this module stays cheap (``timetag
calibrate --help`` imports it): the calibration itself and the setup reader (numpy, scipy) are imported when
the command runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from timetag.errors import CalibrationError


def register(app):
    @app.command("calibrate")
    def calibrate_cmd(
        tags: list[Path] = typer.Argument(..., help="ALICE_TAGS BOB_TAGS (one file each), or one file with --lab."),
        setup: Path = typer.Option(..., "--setup", "-s", help="Current setup TOML."),
        out: Path = typer.Option(..., "--out", "-o", help="Write the calibrated setup here."),
        lab: Optional[str] = typer.Option(None, "--lab", "-l", show_default="both labs",
                                          help="Calibrate one lab only (the single TAGS file)."),
        plots: Optional[Path] = typer.Option(None, "--plots", show_default="no figures",
                                             help="Write PNG figures into this directory."),
        steps: str = typer.Option("delays,window,thresholds,darkcounts,clock", "--steps",
                                  help="Comma-separated calibration steps."),
        reference: Optional[int] = typer.Option(None, "--reference", help="Reference BSM detector channel "
                                                "(keeps its delay; default: the first)."),
        pulse_position_ps: Optional[float] = typer.Option(None, "--pulse-position-ps", show_default="relative delays",
                                                          help="Absolute pulse centre after the sync (instead "
                                                               "of relative delays)."),
        count_model: str = typer.Option("auto", "--count-model", help="poisson, negbin or auto."),
        v0: Optional[float] = typer.Option(None, "--fom-v0", min=0.0, max=1.0, help="FOM: visibility of a clean "
                                           "herald incl. read-out (default: v-state x ionisation^2 x fitted count "
                                           "contrasts)."),
        v_state: float = typer.Option(0.94, "--fom-v-state", min=0.0, max=1.0, help="FOM: atom-atom state "
                                      "visibility of a clean herald (placeholder)."),
        ion_eff: float = typer.Option(0.98, "--fom-ionisation", min=0.0, max=1.0, help="FOM: state-selective "
                                      "ionisation efficiency per lab (literature > 98 %)."),
        p_double: float = typer.Option(0.07, "--fom-p-double", min=0.0, help="FOM: first photons of two-photon "
                                       "emissions (pulse envelope) per good photon (placeholder)."),
        strict: bool = typer.Option(False, "--strict", help="Fail when a step cannot be calibrated "
                                    "(default: keep its old values and warn)."),
        force: bool = typer.Option(False, "--force", help="Replace existing outputs (the --out setup, the "
                                   "figures); the old files stay until the new ones are complete."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar (the report is still printed)."),
    ):
        """Calibrate a run: per-detector delays, the post-pulse window, fluorescence thresholds, dark
        counts and the clock offset/drift between the labs; writes the updated setup and reports every
        changed value (old -> new +- uncertainty).

        The setup and the figures are written together when the calibration is complete (an existing file is
        replaced only with --force); the output is never one of the inputs (the --setup file, the tag files)."""
        from timetag.setupfile import load_setup   # numpy (through timetag.records): not for --help

        from .api import calibrate_run, check_calibration_targets, save_calibration

        s = load_setup(setup)
        if lab is not None:
            if len(tags) != 1:
                raise CalibrationError(f"--lab {lab} takes one tag file, got {len(tags)}")
            role = s.lab(lab).role
            a, b = (tags, None) if role == "alice" else (None, tags)
            kw = {"alice_lab": lab} if role == "alice" else {"bob_lab": lab}
        else:
            if len(tags) != 2:
                raise CalibrationError(f"expected ALICE_TAGS BOB_TAGS (2 files), got {len(tags)}; "
                                       "use --lab NAME for one lab")
            a, b = [tags[0]], [tags[1]]
            names = {l.role: n for n, l in s.labs.items()}
            kw = {"alice_lab": names.get("alice", "alice"), "bob_lab": names.get("bob", "bob")}
        step_list = [x.strip() for x in steps.split(",") if x.strip()]
        _check_options(s, kw.get("alice_lab"), step_list, count_model, reference)
        inputs = [setup, *tags]
        labs = [n for n in kw.values()]
        # refused now, not after the calibration: an input as output, an existing file without --force, ...
        check_calibration_targets(out, plots, labs, inputs=inputs, force=force)
        with _LabBars(enabled=not quiet) as bars:
            new, rep = calibrate_run(a, b, s, steps=step_list,
                                     reference=reference, pulse_position_ps=pulse_position_ps,
                                     fom=dict(v0=v0, v_state=v_state, ionisation_efficiency=ion_eff,
                                              p_double=p_double), count_model=count_model, strict=strict,
                                     plots_dir=None, progress=bars, **kw)
        written = save_calibration(out, new, s, rep, plots_dir=plots, inputs=inputs, force=force,
                                   old_text=Path(setup).read_text(encoding="utf-8"))
        typer.echo(rep.text())
        typer.echo(f"wrote {out}" + (f" and {len(written) - 1} figures in {plots}" if plots is not None else ""))


def _check_options(setup, alice_lab, steps: list[str], count_model: str, reference) -> None:
    """Option mistakes refused before any data is read (a calibration step would only warn and keep old values)."""
    from .api import STEPS

    unknown = [x for x in steps if x not in STEPS]
    if unknown or not steps:
        raise CalibrationError(f"--steps: {'unknown step ' + repr(unknown[0]) if unknown else 'no step given'} "
                               f"(steps: {', '.join(STEPS)})")
    if count_model not in ("auto", "poisson", "negbin"):
        raise CalibrationError(f"--count-model must be poisson, negbin or auto (got {count_model!r})")
    if reference is not None and alice_lab is not None:
        channels = [d.channel for d in setup.lab(alice_lab).bsm]
        if reference not in channels:
            raise CalibrationError(f"--reference {reference} is not a BSM detector channel of lab {alice_lab!r} "
                                   f"({', '.join(map(str, channels)) or 'none'})")


class _LabBars:
    """One bar per lab of the records read (on stderr), then the fits; a ``progress(lab, done, total)`` callback."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._bar = None
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> "_LabBars":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("records"), TimeRemainingColumn(), console=Console(stderr=True),
                                 transient=True)  # gone when the reading is: the report (or one error line) follows
            self._bar.start()
        return self

    def __call__(self, lab: str, done: int, total: int | None) -> None:
        if self._bar is None:
            return
        if lab not in self._tasks:
            self._tasks[lab] = self._bar.add_task(f"{lab}: reading", total=total)
        self._bar.update(self._tasks[lab], completed=done, total=total)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
