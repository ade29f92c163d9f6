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
"""
from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Callable

from .errors import TimetagError

__all__ = ["COMMANDS_GROUP", "CALIBRATORS_GROUP", "PluginMissing", "calibrator", "command_plugins"]

COMMANDS_GROUP = "timetag.commands"
CALIBRATORS_GROUP = "timetag.calibrators"


class PluginMissing(TimetagError):
    """No installed package provides what was asked for."""


def _entry_points(group: str) -> dict[str, EntryPoint]:
    # the first of equal names wins: one installed distribution per name is the normal case
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep)
    return found


def command_plugins() -> dict[str, EntryPoint]:
    """Name -> entry point of every installed ``timetag.commands`` plugin (loaded by the CLI when it registers it)."""
    return _entry_points(COMMANDS_GROUP)


def calibrator(name: str = "calibrate") -> Callable:
    """The calibration function an installed package provides under ``name`` (see the module docstring)."""
    eps = _entry_points(CALIBRATORS_GROUP)
    if name not in eps:
        have = ", ".join(sorted(eps)) or "none"
        raise PluginMissing(f"no calibrator {name!r} is installed (entry point group {CALIBRATORS_GROUP!r}; installed: "
                            f"{have}): install the calibrate package that comes with timetag (pip install timetag, "
                            "or pip install -e . in its source tree)")
    return eps[name].load()
