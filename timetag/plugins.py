"""What other installed packages add to timetag, found through entry points (timetag never imports them).

Two groups:

``timetag.commands``
    ``name = "package.module:register"``: ``register(app)`` adds the command ``timetag <name>`` to the typer app.
    The ``calibrate`` package adds ``timetag calibrate`` this way.
``timetag.calibrators``
    ``name = "package.module:function"``: a calibration from recorded tags,
    ``function(alice_paths, bob_paths, setup, *, steps, plots_dir, force) -> (new_setup, report)``: the updated
    :class:`~timetag.setupfile.Setup` (not written anywhere), figures written into ``plots_dir`` when given, and a
    report whose ``changes`` list the setup values it checked.  The calibrate package registers ``calibrate``
    (``calibrate.calibrate_run``), which ``timetag demo`` and ``timetag.calibrate`` use.

Entry points are registered when a package is installed (``pip install -e .`` again after adding one).

Reading them means importing ``importlib.metadata`` and reading the metadata of every installed distribution,
which ``timetag --help`` would pay only to list the plugins' commands (docs/performance.md):
:func:`command_names` keeps that list in the user's cache folder, valid while no folder of ``sys.path`` changed
(installing or removing a distribution adds or removes a folder there, which changes its folder's mtime).
"""
from __future__ import annotations

import json
import os
import sys
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .errors import TimetagError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = ["COMMANDS_GROUP", "CALIBRATORS_GROUP", "PluginMissing", "calibrator", "command_plugins", "command_names"]

COMMANDS_GROUP = "timetag.commands"
CALIBRATORS_GROUP = "timetag.calibrators"


class PluginMissing(TimetagError):
    """No installed package provides what was asked for."""


def entry_points(group: str) -> list:
    """``importlib.metadata.entry_points(group=group)``, imported when first needed (tests replace this)."""
    from importlib.metadata import entry_points as installed

    return list(installed(group=group))


def _entry_points(group: str) -> dict[str, EntryPoint]:
    # the first of equal names wins: one installed distribution per name is the normal case
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep)
    return found


def command_plugins() -> dict[str, EntryPoint]:
    """Name -> entry point of every installed ``timetag.commands`` plugin (loaded by the CLI when it registers it)."""
    return _entry_points(COMMANDS_GROUP)


_CACHED_PATHS = 8   # sys.path differs between `timetag` and `python -m timetag` (the script's folder, the cwd)


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    # one file per Python environment, so that two environments used in turn do not rewrite each other's
    return Path(base) / "timetag" / f"command-plugins-{zlib.crc32(os.fsencode(sys.prefix)):08x}.json"


def _path_state() -> list[dict]:
    """Every entry of sys.path and its mtime (None: not a folder): what the cached names are valid for."""
    state = []
    for entry in sys.path:
        try:
            mtime_ns = os.stat(entry or ".").st_mtime_ns
        except (OSError, ValueError, TypeError):
            mtime_ns = None
        state.append({"entry": str(entry), "mtime_ns": mtime_ns})   # str: a Path appended to sys.path works too
    return state


def command_names() -> list[str]:
    """The names :func:`command_plugins` has, in its order, from the cache file when it holds them for this
    ``sys.path`` as it is now (see the module docstring); otherwise read from the entry points and added to the
    cache file.  The cache is only a shortcut: a cache folder that cannot be read or written is the same as none."""
    path, state = _cache_file(), _path_state()
    entries = _read_cache(path)
    for entry in entries:
        if entry["sys_path"] == state:
            return entry["names"]
    names = list(command_plugins())
    kept = [e for e in entries if [s["entry"] for s in e["sys_path"]] != [s["entry"] for s in state]]
    from .cachefile import write_cache_file  # only when the cache is (re)written: not on every --help

    write_cache_file(path, json.dumps([{"sys_path": state, "names": names}, *kept][:_CACHED_PATHS]).encode())
    return names


def _read_cache(path: Path) -> list[dict]:
    """The cache file's entries; none when it is missing or not what :func:`command_names` writes."""
    try:
        entries = [{"sys_path": [{"entry": s["entry"], "mtime_ns": s["mtime_ns"]} for s in e["sys_path"]],
                    "names": list(e["names"])}
                   for e in json.loads(path.read_text(encoding="utf-8"))]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return entries if all(isinstance(n, str) for e in entries for n in e["names"]) else []


def calibrator(name: str = "calibrate") -> Callable:
    """The calibration function an installed package provides under ``name`` (see the module docstring)."""
    eps = _entry_points(CALIBRATORS_GROUP)
    if name not in eps:
        have = ", ".join(sorted(eps)) or "none"
        raise PluginMissing(f"no calibrator {name!r} is installed (entry point group {CALIBRATORS_GROUP!r}; installed: "
                            f"{have}): install the calibrate package that comes with timetag (pip install timetag, "
                            "or pip install -e . in its source tree)")
    return eps[name].load()
