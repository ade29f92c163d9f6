"""Progress on stderr for long commands (presentation: the domain code only reports numbers or calls back).

:class:`RecordsBar`: a bar of records done, for work that reports progress.  :class:`Working`: a spinner with the
elapsed time for work that does not (an estimate, a scan), shown only once it has run for a second.
:func:`announce_compiles`: one line when numba starts compiling kernels its cache does not hold.
"""
from __future__ import annotations

import threading

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

__all__ = ["RecordsBar", "PartitionsBar", "Working", "announce_compiles", "COMPILE_NOTICE"]


def _text(text_format: str, style: str = "none") -> TextColumn:
    """A column of text taken as it is: a lab's name or a label is no markup and holds no emoji code (and rich's
    emoji table, ~3 ms to import, stays unloaded)."""
    return TextColumn(text_format, style=style, markup=False)


class _Bar:
    """A rich progress bar on stderr for the length of a ``with`` block (stopped however the command ends)."""

    def __init__(self, label: str, *, enabled: bool = True):
        self._bar = None
        self._task = None
        self.label = label
        self.enabled = enabled

    def _columns(self) -> tuple:
        return ()  # after the count: what each bar adds (rounds made, a time)

    def __enter__(self):
        if self.enabled:
            self._bar = Progress(_text("{task.description}", "bold"), BarColumn(), MofNCompleteColumn(),
                                 *self._columns(), console=Console(stderr=True), transient=False)
            self._task = self._bar.add_task(self.label, total=None, rounds=0)
            self._bar.start()
        return self

    def _update(self, **fields) -> None:
        if self._bar is not None:
            self._bar.update(self._task, **fields)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class RecordsBar(_Bar):
    """A bar of records done (and rounds made); a ``progress(done, total, rounds)`` callback."""

    def _columns(self) -> tuple:
        return _text("{task.fields[rounds]} rounds"), TimeRemainingColumn()

    def __call__(self, done: int, total: int | None, rounds: int) -> None:
        self._update(completed=done, total=total, rounds=rounds)


class PartitionsBar(_Bar):
    """A bar of the partitions a Dask run has finished (``process --dask``); a ``progress(done, total)``
    callback."""

    def _columns(self) -> tuple:
        return _text("partitions"), TimeElapsedColumn()

    def __call__(self, done: int, total: int | None) -> None:
        self._update(completed=done, total=total)


class Working:
    """A spinner, ``label`` and the elapsed time on stderr while the ``with`` block runs -- shown only once it
    has run ``after`` seconds (a quick command stays silent) and removed when it ends, so that what the command
    prints next starts on a clean line.  Only on a terminal: a pipe or a log file gets nothing."""

    def __init__(self, label: str, *, enabled: bool = True, after: float = 1.0, console: Console | None = None):
        self.label = label
        self.enabled = enabled
        self.after = after
        self.shown = False  # whether the spinner appeared (tests; a caller may want to know)
        self._console = console
        self._bar = None
        self._timer = None
        self._lock = threading.Lock()  # the timer thread shows, the command's thread stops: never both at once
        self._done = False

    def _show(self) -> None:
        with self._lock:
            console = self._console or Console(stderr=True)
            # on a pipe or a file rich would still end with an empty line: a log gets nothing
            if self._done or not console.is_terminal:
                return
            self._bar = Progress(SpinnerColumn(), _text("{task.description}"), TimeElapsedColumn(),
                                 console=console, transient=True)
            self._bar.add_task(self.label, total=None)
            self._bar.start()
            self.shown = True

    def __enter__(self) -> "Working":
        if self.enabled:
            self._timer = threading.Timer(self.after, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self._done = True
            if self._bar is not None:
                self._bar.stop()
                self._bar = None


#: The line printed when numba starts compiling (``{dir}``: its cache folder).
COMPILE_NOTICE = ("compiling numba kernels: the first run after an install, an upgrade or a cleared cache takes "
                  "up to a minute longer; later runs load them from {dir}")


def announce_compiles(console: Console | None = None) -> None:
    """Print :data:`COMPILE_NOTICE` on stderr (one line, once per process) when numba starts compiling a kernel
    its cache does not hold (:func:`timetag._numba_cache.on_first_compile`); nothing when every kernel is
    cached.  Costs nothing in commands that never use numba."""
    from .._numba_cache import on_first_compile

    on_first_compile(lambda kernel: print_compile_notice(kernel, console))


def print_compile_notice(kernel: str, console: Console | None = None) -> None:
    """The one line of :data:`COMPILE_NOTICE`, naming numba's cache folder."""
    import os

    from .._numba_cache import user_cache_dir

    con = console or Console(stderr=True, highlight=False)
    where = os.environ.get("NUMBA_CACHE_DIR") or str(user_cache_dir())
    con.print(COMPILE_NOTICE.format(dir=where), soft_wrap=True)
