"""Ctrl-C that is never lost.

Python turns SIGINT into a KeyboardInterrupt wherever the interpreter happens to be, and one raised inside a
``__del__`` (numba's compiler releases LLVM objects in them: a first run spends most of a minute there) is printed
as "Exception ignored" and dropped: the run went on to the end as if nobody had pressed Ctrl-C.  The command line
installs :func:`on_sigint`, which also remembers the request; the long loops (the stream driver, the simulator)
call :func:`check` between chunks, which raises it again where it cannot be swallowed.  While installed, a
KeyboardInterrupt that Python could only report as "Exception ignored" (raised in a ``__del__`` or a weakref
callback) is not printed: it is remembered, and the run stops at the next check with its one-line message.
"""
from __future__ import annotations

import signal
import sys
import threading

__all__ = ["install", "restore", "check", "requested", "on_sigint"]

_requested = threading.Event()


def on_sigint(signum, frame) -> None:
    _requested.set()
    raise KeyboardInterrupt


def _unraisable(previous):
    def hook(info) -> None:
        if isinstance(info.exc_value, KeyboardInterrupt) and _requested.is_set():
            return  # remembered: check() raises it again where it can stop the run
        previous(info)
    return hook


def install():
    """Handle SIGINT with :func:`on_sigint` (main thread only); returns what :func:`restore` puts back."""
    _requested.clear()
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _unraisable(previous_hook)
    return signal.signal(signal.SIGINT, on_sigint), previous_hook


def restore(previous) -> None:
    handler, hook = previous
    signal.signal(signal.SIGINT, handler)
    sys.unraisablehook = hook
    _requested.clear()


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed (its first KeyboardInterrupt may have been swallowed)."""
    if _requested.is_set():
        raise KeyboardInterrupt
