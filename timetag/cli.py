"""The ``timetag`` command line: a thin layer over the Python API.

Each command lives in its own module under :mod:`timetag.commands` and exposes
``register(app)``.  Nothing a user or the machine causes ends in a traceback; each ends in one line on stderr:

=====  ===========================================================================
exit   cause
=====  ===========================================================================
1      an OS error (disk full, permission denied, no such folder, ...)
2      a user mistake or bad data (:class:`~timetag.errors.TimetagError`), or bad usage
130    interrupted (Ctrl-C); what was made so far is kept and said
=====  ===========================================================================

Warnings print as one line each (``warning: ...``).
"""
from __future__ import annotations

import importlib.util
import os
import re
import signal
import sys
import threading
import warnings

import typer
from typer.core import TyperCommand, TyperGroup

from ._version import __version__
from .errors import RunStopped, Terminated, TimetagError
from .plugins import command_plugins

# Order = order in --help.  A name without a module in timetag.commands is a plugin's (entry point group
# 'timetag.commands', see timetag.plugins): `calibrate` comes with the calibrate package, and is left out when that
# is not installed.  Installed plugins the list does not name come last.
COMMANDS = ["info", "convert", "simulate", "process", "calibrate", "estimate", "distill", "live", "recover", "scan",
            "demo"]


def _flags_without_metavar(params: list) -> list:
    """Typer shows every option's type in --help, ``<bool>`` for a flag, which takes no value: a flag shows none
    (the one place that decides it, for the root and every command, plugins' included)."""
    for p in params:
        if getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""
    return params


class _Command(TyperCommand):
    def get_params(self, ctx) -> list:
        return _flags_without_metavar(super().get_params(ctx))


class _Group(TyperGroup):
    def get_params(self, ctx) -> list:
        return _flags_without_metavar(super().get_params(ctx))


app = typer.Typer(
    name="timetag",
    cls=_Group,
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


_plugins = command_plugins()
for _name in COMMANDS:
    if importlib.util.find_spec(f"timetag.commands.{_name}") is not None:
        importlib.import_module(f"timetag.commands.{_name}").register(app)
    elif _name in _plugins:
        _plugins[_name].load()(app)
for _name, _ep in _plugins.items():
    if _name not in COMMANDS:  # a plugin never replaces a command of timetag's own
        _ep.load()(app)
for _info in app.registered_commands:
    if _info.cls in (None, TyperCommand):  # typer's default: a command that asked for its own class keeps it
        _info.cls = _Command

# The library's messages name its keyword arguments where the command line has a flag ("drop_lost=True; CLI:
# --drop-lost"); said by the command line, they name the flag only.
_CLI_WORDING = (
    (re.compile(r"\((?:[a-z_]+=[^;()]*); CLI: ([^()]*)\)"), r"(\1)"),  # (drop_lost=True; CLI: --drop-lost)
    (re.compile(r"\b[a-z_]+=N \(CLI: ([^()]*)\)"), r"\1"),  # use tolerance_ps=N (CLI: timetag convert --tolerance-ps N)
    (re.compile(r"\bon_bad_record='(\w+)'"), r"--on-bad-record \1"),
    (re.compile(r" in meta\['bad_records'\]"), " in the summary"),
)
# "[max_jump_ps] --max-jump-ps ...": a key in brackets (SetupError) before the flag it names says it twice
_REDUNDANT_KEY = re.compile(r"\[([a-z_]+)\] (?=--)")


def cli_wording(message: str) -> str:
    """``message`` (an error or a warning of the library) in the words of the command line: flags, not keyword
    arguments."""
    for pattern, replacement in _CLI_WORDING:
        message = pattern.sub(replacement, message)
    return _REDUNDANT_KEY.sub(
        lambda m: "" if message[m.end():].startswith("--" + m.group(1).replace("_", "-")) else m.group(0), message)


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    stream = file if file is not None else sys.stderr
    try:
        stream.write(f"warning: {cli_wording(str(message))}\n")
    except OSError:
        pass


def os_error_line(exc: OSError) -> str:
    """``<file>: <reason>`` for an OSError, as the shell's own tools say it."""
    reason = exc.strerror or str(exc)
    names = [n for n in (exc.filename, exc.filename2) if n is not None]
    return ": ".join([*(os.fsdecode(n) for n in names), reason]) if names else reason


def _fail(message: str, code: int) -> None:
    try:
        typer.secho(f"error: {cli_wording(message)}", err=True, fg="red")
    except OSError:
        pass
    sys.exit(code)


# typer carries its own copy of click in recent versions (and uses the click package in older ones): its usage
# errors are found through a class typer exports rather than by importing click
_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _invoke(argv) -> object:
    """Parse and run the command line without typer's own error handling, which turns Ctrl-C into a silent
    exit 130 (recent typer) or 'Aborted!' (older ones): here every error, Ctrl-C included, is said in one line."""
    command = typer.main.get_command(app)
    with command.make_context("timetag", list(sys.argv[1:] if argv is None else argv)) as ctx:
        return command.invoke(ctx)


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv=None) -> None:
    warnings.showwarning = _one_line_warning
    # `kill` ends a run like Ctrl-C does (outputs kept and marked, partial files cleaned up); `live` installs its
    # own handler for a graceful stop
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        sys.exit(_run(argv))
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _run(argv) -> int:
    """The command's exit code; every error said in one line."""
    try:
        code = _invoke(argv)
    except RunStopped as exc:
        _fail(str(exc), exc.exit_code)
    except TimetagError as exc:
        _fail(str(exc), 2)
    except Terminated as exc:
        _fail(str(exc), exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        _fail("interrupted (Ctrl-C)", 130)
    except _USAGE_ERROR as exc:
        exc.show()
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except OSError as exc:
        _fail(os_error_line(exc), 1)
    return code if isinstance(code, int) else 0
