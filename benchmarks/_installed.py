"""What an installed package costs to start: its modules compiled to bytecode beforehand.

``pip install`` writes a ``.pyc`` for every module; an editable checkout under ``PYTHONDONTWRITEBYTECODE=1`` (as
in the development shell) has none, and every child process would compile timetag's modules from source again
(~0.06-0.08 s of a `timetag process`).  Benchmarks that time the command line in child processes call
:func:`compile_package` first, which writes the ``.pyc`` into the usual ``__pycache__`` folders (ignored by git).
"""
from __future__ import annotations

import compileall
import importlib.util

PACKAGES = ("timetag", "calibrate")


def compile_package(packages=PACKAGES) -> None:
    """Bytecode for every module of ``packages`` where Python looks for it (stale or missing files only)."""
    for name in packages:
        spec = importlib.util.find_spec(name)   # the package's folder, without importing it
        for folder in (spec.submodule_search_locations or []) if spec is not None else []:
            if not compileall.compile_dir(folder, quiet=1):
                raise RuntimeError(f"cannot compile {name} in {folder}")
