"""What a rounds file says about itself: format version, units and meaning of every field, the legends of the
flag bits and pattern codes, what each histogram holds.

:class:`~timetag.roundsfile.RoundsWriter` writes these as HDF5 attributes (JSON text, readable from any
language), ``timetag info rounds.h5`` prints them, and ``docs/rounds-format.md`` is the same text for people.
The legends are built from :mod:`timetag.constants`, so a new flag appears in every file without an edit here.
"""
from __future__ import annotations

import inspect
import json

from .constants import Pattern, RoundFlag

__all__ = ["FORMAT_VERSION", "ROUND_FIELDS", "HERALD_FIELDS", "HISTOGRAMS", "flag_legend", "pattern_legend",
           "dataset_attrs", "histogram_attrs"]

FORMAT_VERSION = "1.1"
"""1.0: rounds, heralds, histograms, provenance; 1.1: these self-descriptions and the setup's text."""

# field -> (unit, meaning); unit "" for codes and counts
ROUND_FIELDS: dict[str, tuple[str, str]] = {
    "index": ("", "round number: 0, 1, 2, ... per lab and run, in trigger-time order"),
    "trigger_time": ("ps", "time of the round's trigger, the lab's own clock, delay-corrected"),
    "herald_time": ("ps", "time of the software herald (the later BSM click), -1 without one"),
    "pattern": ("", "click pattern of the herald: see the 'patterns' legend"),
    "setting": ("", "input of the round (Alice 0..3, Bob 0..1), -1 when missing or ambiguous"),
    "count": ("photons", "fluorescence clicks in the read-out window"),
    "output": ("", "1 when count >= the lab's threshold (atom present, 'up'), else 0"),
    "flags": ("", "bit mask of reasons the round is doubtful: see the 'flags' legend (0: none)"),
}
HERALD_FIELDS: dict[str, tuple[str, str]] = {
    "time": ("ps", "delay-corrected time of the later click"),
    "sync_time": ("ps", "delay-corrected time of the attempt's sync"),
    "pattern": ("", "click pattern: see the 'patterns' legend"),
    "det1": ("", "channel of the earlier click"),
    "det2": ("", "channel of the later click"),
    "dt1": ("ps", "earlier click - sync"),
    "dt2": ("ps", "later click - sync"),
    "nclicks": ("", "clicks in the acceptance window of this attempt"),
}
# histogram name -> (unit of the values, meaning); names not listed are described as "a side product"
HISTOGRAMS: dict[str, tuple[str, str]] = {
    "arrival": ("clicks", "per BSM detector (rows, channels in 'arrival_channels'), click - sync in the bins of "
                          "'arrival_edges_ps' (columns), every click with a sync in range, accepted or not"),
    "arrival_channels": ("", "channel of each row of 'arrival'"),
    "arrival_edges_ps": ("ps", "bin edges of 'arrival' (one more than its columns)"),
    "fluorescence_counts": ("rounds", "rounds per fluorescence count 0, 1, 2, ... (the last bin: that many or more)"),
    "singles_counts": ("tags", "tags per channel of the lab (channels in 'singles_channels')"),
    "singles_channels": ("", "channel of each entry of 'singles_counts'"),
}


def _doc(member) -> str:
    return inspect.cleandoc(member.__doc__ or "") if member.__doc__ != type(member).__doc__ else ""



def flag_legend() -> dict[str, dict]:
    """``{"1": {"name": "LOST_DATA", "meaning": ...}, ...}``: one entry per flag bit (value as text)."""
    return {str(int(f)): {"name": f.name, "meaning": _doc(f)} for f in RoundFlag}


def pattern_legend() -> dict[str, dict]:
    """``{"0": {"name": "NONE", "meaning": ...}, ...}``: one entry per pattern code."""
    return {str(int(p)): {"name": p.name, "meaning": _doc(p)} for p in Pattern}


def _fields(fields: dict[str, tuple[str, str]]) -> str:
    return json.dumps([{"name": k, "unit": u, "meaning": m} for k, (u, m) in fields.items()])


def dataset_attrs(name: str) -> dict[str, str]:
    """Attributes of ``/rounds`` or ``/heralds``."""
    fields = ROUND_FIELDS if name == "rounds" else HERALD_FIELDS
    what = ("one record per trigger (herald or 'ready'): input, fluorescence count, output, flags" if name == "rounds"
            else "one record per closed attempt with >= 2 accepted clicks (a psi+/psi-/other herald)")
    out = {"description": what, "fields": _fields(fields), "patterns": json.dumps(pattern_legend())}
    if name == "rounds":
        out["flags"] = json.dumps(flag_legend())
    return out


def histogram_attrs(name: str) -> dict[str, str]:
    unit, meaning = HISTOGRAMS.get(name, ("", "a side product of the run"))
    return {"unit": unit, "description": meaning}
