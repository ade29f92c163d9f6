"""Best-effort writes of small files shared between runs (caches), without the custody of outputs.

A cache file may be written by two processes at once and must never be seen half written: each writer puts the
whole content in a temporary of its own (created exclusively, beside the target) and renames it over the target,
so a reader finds the old file or a new one, and the last rename wins.  A cache is advisory: a write that fails
(read-only or full folder) leaves no temporary behind and is reported, not raised.  (User outputs go through
:mod:`timetag.custody` instead: locks, refusal to replace, disk reserve, fsync.)  Standard library only: the
start-up path (``timetag --help``'s plugin list) writes through it.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_cache_file"]


def write_cache_file(path, data: bytes) -> bool:
    """``path`` holds ``data`` (True), or is left as it was (False: the folder could not be written)."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
        tmp = None
        return True
    except OSError:
        return False
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
