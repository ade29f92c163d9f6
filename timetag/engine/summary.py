"""Run summary of one lab: counts accumulated while the stages run (plain dict, JSON-serialisable)."""
from __future__ import annotations

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
