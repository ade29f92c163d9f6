"""Ctrl-C that is never lost.

Python turns SIGINT into a KeyboardInterrupt wherever the interpreter happens to be, and one raised inside a
``__del__`` (numba's compiler releases LLVM objects in them: a first run spends most of a minute there) is printed
as "Exception ignored" and dropped: the run went on to the end as if nobody had pressed Ctrl-C.  The command line
installs :func:`on_sigint`, which also remembers the request; the long loops (the stream driver, the simulator)
call :func:`check` between chunks, which raises it again where it cannot be swallowed.
"""
from __future__ import annotations

import signal
import threading

__all__ = ["install", "restore", "check", "requested", "on_sigint"]

_requested = threading.Event()


def on_sigint(signum, frame) -> None:
    _requested.set()
    raise KeyboardInterrupt


def install():
    """Handle SIGINT with :func:`on_sigint` (main thread only); returns the previous handler for :func:`restore`."""
    _requested.clear()
    return signal.signal(signal.SIGINT, on_sigint)


def restore(previous) -> None:
    signal.signal(signal.SIGINT, previous)
    _requested.clear()


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed (its first KeyboardInterrupt may have been swallowed)."""
    if _requested.is_set():
        raise KeyboardInterrupt
