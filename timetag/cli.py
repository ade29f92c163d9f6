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

import importlib
import importlib.util
import os
import signal
import sys
import threading
import types
import warnings

import typer
from typer.core import TyperCommand, TyperGroup

from . import interrupts
from ._numba_cache import on_first_compile
from ._version import __version__
from .commands import startup
from .errors import RunStopped, Terminated, TimetagError, for_cli

# Order = order in --help.  A name without a module in timetag.commands is a plugin's (entry point group
# 'timetag.commands', see timetag.plugins): `calibrate` comes with the calibrate package, and is left out when that
# is not installed.  Installed plugins the list does not name come last.
COMMANDS = ["info", "convert", "simulate", "process", "calibrate", "estimate", "distill", "live", "recover", "scan",
            "serve", "demo"]

# What `timetag --help` lists for each command: the first paragraph of the command's own help, kept here so that
# listing the commands imports none of them (a command module imports what its command needs: numpy, h5py, the
# engine, ...).  tests/cli/test_startup.py checks every entry against the command's help.
SUMMARIES = {
    "info": "Show what a time-tag file holds: format and device, tags and rate per channel, measurement\n"
            "duration, lost-data intervals (overflows, missed events, device errors) and time-order problems.",
    "convert": "Convert a time-tag file to another format, streaming (files larger than memory are fine).",
    "simulate": "Simulate the two-lab DIQKD link and write what the two time taggers would record.",
    "process": "Herald and round stages: raw tags -> one round record per trigger (setting, count, output, flags).",
    "calibrate": "Calibrate a run: per-detector delays, the post-pulse window, fluorescence thresholds, dark\n"
                 "counts and the clock offset/drift between the labs; writes the updated setup and reports every\n"
                 "changed value (old -> new +- uncertainty).",
    "estimate": "Estimate S, QBERs, key rates and the finite-key block length from both labs' rounds.",
    "distill": "Distil a shared secret key from both labs' rounds (one process, both roles), or run one lab's side\n"
               "over TCP (--role alice --listen HOST:PORT / --role bob --connect HOST:PORT, with --psk).",
    "live": "Process tags live: rounds are appended to the rounds files and flushed at least every second.",
    "recover": "Save every round a killed run flushed into a plain rounds file marked 'recovered'.",
    "scan": "Re-process both labs for every parameter combination; table and plot of herald rate, S, Q, key rate.",
    "serve": "Serve the dashboard page of finished runs: the same views as `timetag live --web`, read from files.",
    "demo": "Run the whole chain on a simulated link: simulate -> calibrate -> process -> estimate.",
}


def _flags_without_metavar(params: list) -> list:
    """Typer shows every option's type in --help, ``<bool>`` for a flag, which takes no value: a flag shows none
    (the one place that decides it, for the root and every command, plugins' included)."""
    for p in params:
        if getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""
    return params


# What typer's rich help renderer (typer.rich_utils) imports at module level for features timetag does not use:
# help written in Markdown (timetag's is rich markup) and rich tracebacks (pretty_exceptions_enable=False).  With
# them come markdown_it, pygments and attrs, a large part of a `timetag --help` (docs/performance.md).
_UNUSED_BY_HELP = {"rich.markdown": "Markdown", "rich.traceback": "Traceback"}


class _Deferred(type):
    """The class of a stand-in for one of :data:`_UNUSED_BY_HELP`: making one, or reading an attribute of the
    class (``Traceback.from_exception``), imports the real class and hands the work to it."""

    def __call__(cls, *args, **kwargs):
        return cls.real()(*args, **kwargs)

    def __getattr__(cls, name):
        if name.startswith("__"):   # typing and copy probe dunder names: not a use of the class
            raise AttributeError(name)
        return getattr(cls.real(), name)

    def real(cls) -> type:
        return getattr(importlib.import_module(cls.module), cls.__name__)


def _import_rich_help() -> None:
    """Import typer's rich help renderer with stand-ins for :data:`_UNUSED_BY_HELP`.

    While typer imports it, each of those modules not imported yet is a module holding only a :class:`_Deferred`
    stand-in for the class typer takes from it; afterwards the real module is what any import gets.
    tests/cli/test_startup.py checks that every command's help is the same either way, that markdown help and
    tracebacks still work through the stand-ins, and how typer uses them (typer's range is pinned in
    pyproject.toml)."""
    if "typer.rich_utils" in sys.modules:
        return
    stand_ins = {}
    for module, name in _UNUSED_BY_HELP.items():
        if module not in sys.modules:
            stand_ins[module] = types.ModuleType(module)
            setattr(stand_ins[module], name, _Deferred(name, (), {"module": module}))
    sys.modules.update(stand_ins)
    try:
        import typer.rich_utils  # noqa: F401
    finally:
        for module, stand_in in stand_ins.items():
            if sys.modules.get(module) is stand_in:
                del sys.modules[module]


class _HelpMixin:
    """What the root group and every command share: flags show no metavar, --help stays cheap, and values are
    converted without pydantic where typer's converter would do the same (timetag.commands.coerce)."""

    def get_params(self, ctx) -> list:
        params = _flags_without_metavar(super().get_params(ctx))
        if any(getattr(getattr(p, "type_descriptor", None), "annotation", bool) is not bool for p in params):
            from .commands.coerce import install   # values converted without pydantic (its import and adapters)

            install(params)
        return params

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            # typer makes a parameter's value converter (pydantic, a large import) before it looks at the value,
            # except for a flag whose value is already a bool: an unset --help is None without this, and so
            # `timetag info --help` paid for the root group's --help converter
            option.default = False
        return option

    def format_help(self, ctx, formatter) -> None:
        _import_rich_help()
        super().format_help(ctx, formatter)


class _Command(_HelpMixin, TyperCommand):
    pass


class _Group(_HelpMixin, TyperGroup):
    """The root group: a command's module is imported when that command runs or shows its own help, not before
    (``timetag --help`` lists the commands from :data:`SUMMARIES`)."""

    _listing = False

    def list_commands(self, ctx) -> list[str]:
        return _command_names()

    def get_command(self, ctx, cmd_name: str):
        if cmd_name in _loaded:
            return _loaded[cmd_name]
        if self._listing and cmd_name in SUMMARIES and cmd_name in _command_names():
            return _Command(name=cmd_name, help=SUMMARIES[cmd_name])
        return _load(cmd_name)

    def format_help(self, ctx, formatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


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


_loaded: dict = {}      # command name -> its click command, made once per process
_names: list = []


def _own(name: str) -> bool:
    return importlib.util.find_spec(f"timetag.commands.{name}") is not None


def _plugins() -> dict:
    from .plugins import command_plugins

    return command_plugins()


def _command_names() -> list[str]:
    """Every command, in --help order: the installed ones of :data:`COMMANDS`, then other plugins."""
    if not _names:
        from .plugins import command_names   # the plugins' names only, cached: no metadata read for --help

        plugins = command_names()
        _names.extend(n for n in COMMANDS if _own(n) or n in plugins)
        _names.extend(n for n in plugins if n not in COMMANDS)  # a plugin never replaces a command of timetag's own
    return _names


def _load(name: str):
    """The click command ``name``, its module imported and registered on first use; None if there is none."""
    if name not in _loaded:
        sub = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        if name in COMMANDS and _own(name):
            importlib.import_module(f"timetag.commands.{name}").register(sub)
        else:
            plugins = _plugins()
            if name not in plugins:
                return None
            plugins[name].load()(sub)
        if not sub.registered_commands:
            return None
        for info in sub.registered_commands:
            if info.cls in (None, TyperCommand):  # typer's default: a command that asked for its own class keeps it
                info.cls = _Command
        made = typer.main.get_command(sub)
        for command in (made.commands.values() if isinstance(made, TyperGroup) else [made]):
            _loaded.setdefault(command.name, command)
    return _loaded.get(name)

def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    stream = file if file is not None else sys.stderr
    try:
        stream.write(f"warning: {for_cli(message)}\n")
    except OSError:
        pass


def os_error_line(exc: OSError) -> str:
    """``<file>: <reason>`` for an OSError, as the shell's own tools say it."""
    reason = exc.strerror or str(exc)
    names = [n for n in (exc.filename, exc.filename2) if n is not None]
    return ": ".join([*(os.fsdecode(n) for n in names), reason]) if names else reason


def _fail(message: str, code: int) -> None:
    try:
        typer.secho(f"error: {message}", err=True, fg="red")
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
    # numpy's bundled OpenBLAS starts a thread per core at import, which spins on the core the engine's second
    # thread wants; timetag's matrices are small.  Before any numpy import, and a user's own setting wins.  The
    # library (import timetag) leaves it to the program that imports it.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    startup.begin(program=argv is None)   # without an argument list, this process is the command line
    warnings.showwarning = _one_line_warning
    # `kill` ends a run like Ctrl-C does (outputs kept and marked, partial files cleaned up); `live` installs its
    # own handler for a graceful stop
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    previous_int = interrupts.install() if in_main_thread else None  # Ctrl-C remembered (timetag.interrupts)
    on_first_compile(_compile_notice)
    try:
        sys.exit(_run(argv))
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
            interrupts.restore(previous_int)


def _compile_notice(kernel: str) -> None:
    # the progress module (rich) only when numba really compiles: `timetag --help` imports no command module
    from .commands.progress import print_compile_notice

    print_compile_notice(kernel)


def _run(argv) -> int:
    """The command's exit code; every error said in one line."""
    try:
        code = _invoke(argv)
    except RunStopped as exc:
        _fail(exc.for_cli(), exc.exit_code)
    except TimetagError as exc:
        _fail(exc.for_cli(), 2)
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
    except Exception as exc:
        # Ctrl-C while numba loaded a kernel surfaces as the SystemError wrapped around the KeyboardInterrupt
        if interrupts.requested() and _from_interrupt(exc):
            _fail("interrupted (Ctrl-C)", 130)
        raise
    return code if isinstance(code, int) else 0


def _from_interrupt(exc: BaseException) -> bool:
    """A KeyboardInterrupt among the causes and contexts of ``exc``."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False
