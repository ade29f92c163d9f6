"""The ``timetag`` command line: a thin layer over the Python API.

Each command lives in its own module under :mod:`timetag.commands` and exposes
``register(app)``.  User mistakes (:class:`~timetag.errors.TimetagError`) become
one line on stderr and exit code 2, never a traceback.
"""
from __future__ import annotations

import importlib
import sys

import typer

from ._version import __version__
from .errors import TimetagError

# Order = order in --help.
COMMANDS = ["info", "convert", "simulate", "process", "calibrate", "estimate", "live", "scan", "demo"]

app = typer.Typer(
    name="timetag",
    help=(
        "Time-tag processing for event-ready entanglement experiments (DIQKD with two trapped atoms).\n\n"
        "Raw detector time stamps -> heralds (BSM coincidences after the post-pulse time filter) -> "
        "rounds (input setting, fluorescence count, output bit, flags) -> CHSH S, QBER and key rates."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool):
    if value:
        typer.echo(f"timetag {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
):
    """timetag command line."""


for _name in COMMANDS:
    _mod = importlib.import_module(f"timetag.commands.{_name}")
    _mod.register(app)


def main(argv=None) -> None:
    try:
        app(args=argv, standalone_mode=True)
    except TimetagError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        sys.exit(2)
