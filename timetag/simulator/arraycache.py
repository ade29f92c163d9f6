"""Arrays that are slow to compute and fixed by their inputs, kept in the user's cache folder between runs.

The simulator's click-time quantile table needs ``scipy.stats``, whose import alone takes 0.6-1.7 s: longer than a
short simulation, and a sizeable share of a full-scale one.  The table is a pure function of its parameters and
of the library versions that compute it, so it is computed once and loaded afterwards (same bytes).  The cache is
advisory: a missing, unreadable or damaged file is recomputed, and a folder that cannot be written to is left
alone.  Files are written under a temporary name and renamed, so a reader never sees half a table.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import io
from pathlib import Path

import numpy as np

from .._numba_cache import user_cache_dir
from ..cachefile import write_cache_file


def cache_dir() -> Path:
    return user_cache_dir().parent / "tables"


def _versions(libraries) -> str:
    out = []
    for lib in libraries:
        try:
            out.append(f"{lib}={importlib.metadata.version(lib)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{lib}=?")
    return ",".join(out)


def cached_array(name: str, key: str, size: int, compute, *, libraries=("numpy", "scipy")) -> np.ndarray:
    """``compute()`` (``size`` float64 values), or the copy saved by an earlier call with the same ``name``,
    ``key`` and versions of ``libraries``.  ``key`` must name every input of ``compute`` (and a version of its
    method)."""
    digest = hashlib.sha256(f"{key}|{_versions(libraries)}".encode()).hexdigest()[:24]
    path = cache_dir() / f"{name}-{digest}.npy"
    try:
        arr = np.load(path, allow_pickle=False)
        if arr.dtype == np.float64 and arr.shape == (size,):
            return arr
    except (OSError, ValueError, EOFError):
        pass
    arr = np.ascontiguousarray(compute(), np.float64)
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    write_cache_file(path, buf.getvalue())  # no cache this time if it fails: the next run computes it again
    return arr

