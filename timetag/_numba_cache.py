"""Numba's compiled-function cache lives in the user's cache folder, never inside the installed package.

Numba's default puts cache files in ``__pycache__`` beside the source: inside ``site-packages`` after
``pip install .``, where they outlive an uninstall and then shadow a later editable install of the package.
Set before numba is first imported (``NUMBA_CACHE_DIR`` is read then); a value the user set is kept.
"""
from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "timetag" / "numba"


def use_user_cache_dir() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    os.environ["NUMBA_CACHE_DIR"] = str(user_cache_dir())
    import sys

    config = getattr(sys.modules.get("numba"), "config", None)
    if config is not None:  # numba was imported before timetag: tell its live config too
        config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]
