"""Run summary of one lab: counts accumulated while the stages run (plain dict, JSON-serialisable)."""
from __future__ import annotations

import numpy as np

from ..records import FLAG_NAMES, PATTERN_NAMES


class SummaryCounter:
    def __init__(self, lab_name: str, role: str, trigger: str):
        self.lab, self.role, self.trigger = lab_name, role, trigger
        self.heralds = {name: 0 for code, name in PATTERN_NAMES.items() if code}
        self.rounds = 0
        self.rounds_up = 0
        self.flags = {name: 0 for name in FLAG_NAMES.values()}
        self.rounds_flagged = 0
        self.setting_counts: dict[int, int] = {}
        self.readies = 0
        self.setting_tags = 0
        self.fluorescence_tags = 0

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
        self.rounds_up += int(np.count_nonzero(rounds["output"]))
        flags = rounds["flags"]
        for bit, name in FLAG_NAMES.items():
            self.flags[name] += int(np.count_nonzero(flags & bit))
        self.rounds_flagged += int(np.count_nonzero(flags))
        # settings are -1 (none) .. 3: a count per value without sorting
        counts = np.bincount(rounds["setting"].astype(np.int64) + 1)
        for v in np.flatnonzero(counts).tolist():
            self.setting_counts[v - 1] = self.setting_counts.get(v - 1, 0) + int(counts[v])
