"""The garbage collector around a command: its start-up and the end of the process.

Importing numpy, h5py, typer, rich and the engine makes some hundred thousand objects that live as long as the
process; the collector scans them again and again: while they load (~10 ms of a small `timetag process`), and in
the interpreter's last collections at exit (~20 ms).  When the process is the command line (:func:`begin` from
:func:`timetag.cli.main` without an argument list), a command imports what it needs inside :func:`imports`, after
which the objects made so far are frozen (``gc.freeze``: never scanned again); and at exit they are frozen again
before the interpreter's last collections.  A program that runs a command in-process (tests, with an argument
list) keeps its collector as it was: freezing would keep its garbage of the moment for good.
"""
from __future__ import annotations

import atexit
import gc
from contextlib import contextmanager

_state = {"program": False, "at_exit": False}


def begin(*, program: bool) -> None:
    """Called by the command line as a command starts; ``program``: this process ends with the command."""
    _state["program"] = program
    if program and not _state["at_exit"]:
        # registered before the command imports anything: atexit runs it last (logging, h5py and the like run
        # their handlers first, on objects that are still whole)
        atexit.register(gc.freeze)
        _state["at_exit"] = True


@contextmanager
def imports():
    """A command's imports: no collection while they run; in the command line's own process, what exists
    afterwards is frozen.  The collector is as it was afterwards, however the block ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _state["program"]:
            gc.freeze()
        if was_enabled:
            gc.enable()
