"""Ctrl-C that is never lost.

Python turns SIGINT into a KeyboardInterrupt wherever the interpreter happens to be, and one raised inside a
``__del__`` (numba's compiler releases LLVM objects in them: a first run spends most of a minute there) is printed
as "Exception ignored" and dropped: the run went on to the end as if nobody had pressed Ctrl-C.  The command line
installs :func:`on_sigint`, which also remembers the request; the long loops (the stream driver, the simulator)
call :func:`check` between chunks, which raises it again where it cannot be swallowed.  While installed, a
KeyboardInterrupt that Python could only report as "Exception ignored" (raised in a ``__del__`` or a weakref
callback) is not printed: it is remembered, and the run stops at the next check with its one-line message.

A KeyboardInterrupt raised inside the code of a lock (a ``queue.Queue``, a ``Future``, a ``Condition``) can leave
the lock held: the next thread that needs it waits forever, and so does the run (seen: a Ctrl-C of ``process``
that hung in the read-ahead's queue).  Waits on such objects therefore run under :class:`deferred` (Ctrl-C only
remembered inside, raised on leaving), in short slices: :func:`result` for a ``Future``.
"""
from __future__ import annotations

import signal
import sys
import threading

__all__ = ["install", "restore", "check", "requested", "on_sigint", "deferred", "result", "wait_quietly"]

_requested = threading.Event()
_deferring = 0   # the main thread's open `deferred` blocks (signal handlers run in the main thread)

#: how long a deferred wait blocks before it lets a Ctrl-C through
SLICE_S = 0.1


def on_sigint(signum, frame) -> None:
    _requested.set()
    if _deferring:
        return  # raised when the deferred block ends
    raise KeyboardInterrupt


class deferred:
    """A block in which Ctrl-C is only remembered (:func:`on_sigint` installed); leaving the block normally raises
    it (unless ``raise_on_exit`` is False: cleanup code, which leaves it to the next :func:`check`).  Only the main
    thread's blocks defer (other threads never see KeyboardInterrupt)."""

    def __init__(self, raise_on_exit: bool = True):
        self.raise_on_exit = raise_on_exit

    def __enter__(self) -> "deferred":
        global _deferring
        self._main = threading.current_thread() is threading.main_thread()
        if self._main:
            _deferring += 1
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        global _deferring
        if self._main:
            _deferring -= 1
        if exc_type is None and self.raise_on_exit:
            check()
        return False


def result(future):
    """``future.result()``, waited for in slices under :class:`deferred`: a Ctrl-C is raised between them, never
    inside the future's lock."""
    from concurrent.futures import TimeoutError as FutureTimeout

    while True:
        with deferred():
            try:
                return future.result(timeout=SLICE_S)
            except FutureTimeout:
                pass


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


def wait_quietly(future) -> None:
    """Wait for ``future`` to end, whatever it raised (cleanup: a Ctrl-C meanwhile is left to the next
    :func:`check`)."""
    with deferred(raise_on_exit=False):
        future.exception()
