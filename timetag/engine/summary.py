"""Run summary of one lab: counts accumulated while the stages run (:class:`SummaryCounter`) and the typed
result they make (:class:`RunSummary`, JSON through ``to_json()``)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import numpy as np

from ..records import FLAG_NAMES, PATTERN_NAMES

try:
    from .._cext import engine_rounds as _k
except ImportError as exc:  # pragma: no cover - build problem
    raise ImportError("timetag._cext.engine_rounds is not built: run `pip install -e .`") from exc

_FLAG_BIT = {name: bit.bit_length() - 1 for bit, name in FLAG_NAMES.items()}  # flag name -> bit index
assert all((1 << b) in FLAG_NAMES for b in _FLAG_BIT.values())


class SummaryCounter:
    def __init__(self, lab_name: str, role: str, trigger: str):
        self.lab, self.role, self.trigger = lab_name, role, trigger
        self.heralds = {name: 0 for code, name in PATTERN_NAMES.items() if code}
        self.rounds = 0
        self.rounds_up = 0
        self.rounds_flagged = 0
        self._flag_bits = np.zeros(max(_FLAG_BIT.values()) + 1, np.int64)
        self._settings = np.zeros(129, np.int64)  # setting -1 (none) .. 127
        self.readies = 0
        self.setting_tags = 0
        self.fluorescence_tags = 0

    @property
    def flags(self) -> dict[str, int]:
        return {name: int(self._flag_bits[b]) for name, b in _FLAG_BIT.items()}

    @property
    def setting_counts(self) -> dict[int, int]:
        return {int(v) - 1: int(self._settings[v]) for v in np.flatnonzero(self._settings)}

    def add_heralds(self, counts: np.ndarray) -> None:
        """``counts[pattern code]``: heralds of each pattern."""
        for code, name in PATTERN_NAMES.items():
            if code:
                self.heralds[name] += int(counts[code])

    def add_inputs(self, ready: int, settings: int, fluo: int) -> None:
        self.readies += ready
        self.setting_tags += settings
        self.fluorescence_tags += fluo

    def add_rounds(self, rounds: np.ndarray) -> None:
        if not rounds.size:
            return
        self.rounds += int(rounds.size)
        up, flagged = _k.tally_rounds(rounds, self._flag_bits, self._settings)
        self.rounds_up += up
        self.rounds_flagged += flagged


@dataclass
class RunSummary(Mapping):
    """What one lab's run did, by name (:meth:`LabPipeline.summary`), and what the driver adds (timing, inputs,
    the channel report...).  ``to_json()`` is the dict stored in the rounds file's ``summary`` attribute; the
    summary also reads as that mapping (``s["rounds"]``) for code written against the JSON."""

    lab: str
    role: str
    trigger: str
    tags: int = 0
    tags_other_channels: int = 0
    first_time_ps: int | None = None
    last_time_ps: int | None = None
    duration_ps: int = 0
    syncs: int = 0
    clicks: int = 0
    clicks_accepted: int = 0
    clicks_without_sync: int = 0
    heralds: dict[str, int] = field(default_factory=dict)
    heralds_heralding: int = 0
    readies: int = 0
    setting_tags: int = 0
    fluorescence_tags: int = 0
    triggers: int = 0
    rounds: int = 0
    rounds_pending: int = 0
    rounds_up: int = 0
    rounds_flagged: int = 0
    flags: dict[str, int] = field(default_factory=dict)
    settings: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)
    singles: dict[int, int] = field(default_factory=dict)
    # added by the driver (absent from the JSON while None)
    elapsed_s: float | None = None
    tags_per_s: float | None = None
    inputs: list[str] | None = None
    out: str | None = None
    channels: dict | None = None
    bad_records: dict | None = None
    #: keys a driver adds that have no field (a custom pipeline's counters, live-mode details)
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None and f.name in _OPTIONAL:
                continue
            out[f.name] = value
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, d: dict) -> "RunSummary":
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in d.items() if k in known}, extra={k: v for k, v in d.items() if k not in known})

    # the mapping view of to_json()
    def __getitem__(self, key):
        return self.to_json()[key]

    def __iter__(self):
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())


_OPTIONAL = {"elapsed_s", "tags_per_s", "inputs", "out", "channels", "bad_records"}
