"""LabPipeline: herald stage -> round stage for one lab, with the run summary and histograms."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ..chunk import TagChunk
from ..records import HERALD_DTYPE, ROUND_DTYPE
from .herald import HeraldOutput, HeraldStage
from .params import compile_lab
from .rounds import RoundStage
from .summary import RunSummary, SummaryCounter


class LabPipeline:
    """``process(chunk) -> (rounds, heralds)`` for each chunk in stream order, then ``flush()``.

    ``heralds`` are every herald record (all patterns); ``rounds`` are emitted as soon
    as their windows are closed by later data.  ``summary`` and ``histograms`` are
    up to date after every call.
    """

    name = "lab pipeline"

    def __init__(self, lab):
        self.lab = lab
        self.params = compile_lab(lab, self.name)
        self.herald = HeraldStage(lab, self.params)
        self.round = RoundStage(lab, self.params)
        self._count = SummaryCounter(lab.name, lab.role, lab.round.trigger)
        self._fluo_hist = np.zeros(lab.histograms.max_count + 1, np.int64)

    def _consume(self, h: HeraldOutput, final: bool):
        c = self._count
        c.add_heralds(h.pattern_counts)
        c.add_inputs(h.new_ready, h.new_settings, h.new_fluo)
        rounds = self.round.process(h)
        c.add_rounds(rounds)
        if rounds.size:
            counts = np.minimum(rounds["count"], self.lab.histograms.max_count)
            self._fluo_hist += np.bincount(counts, minlength=self._fluo_hist.size)
        return rounds, h.heralds

    def process(self, chunk: TagChunk) -> tuple[np.ndarray, np.ndarray]:
        return self._consume(self.herald.process(chunk), final=False)

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        return self._consume(self.herald.flush(), final=True)

    def run(self, chunks: Iterable[TagChunk]) -> tuple[np.ndarray, np.ndarray]:
        """Whole stream at once (tests, small files): concatenated rounds and heralds."""
        rs, hs = [], []
        for ch in chunks:
            r, h = self.process(ch)
            rs.append(r)
            hs.append(h)
        r, h = self.flush()
        rs.append(r)
        hs.append(h)
        return np.concatenate(rs) if rs else np.zeros(0, ROUND_DTYPE), \
            np.concatenate(hs) if hs else np.zeros(0, HERALD_DTYPE)

    @property
    def summary(self) -> RunSummary:
        hs, c = self.herald, self._count
        first, last = hs.first_raw, hs.last_raw
        singles = {int(ch): int(n) for ch, n in zip(self.params.slot_channel, hs.singles[:-1])}
        heralding = sum(c.heralds[name] for name in self.lab.herald.patterns)
        return RunSummary(
            lab=self.lab.name,
            role=self.lab.role,
            trigger=self.lab.round.trigger,
            tags=hs.n_tags,
            tags_other_channels=int(hs.singles[-1]),
            first_time_ps=first,
            last_time_ps=last,
            duration_ps=(last - first) if first is not None else 0,
            **hs.counters,
            heralds=dict(c.heralds),
            heralds_heralding=heralding,
            readies=c.readies,
            setting_tags=c.setting_tags,
            fluorescence_tags=c.fluorescence_tags,
            triggers=c.rounds + self.round.pending,
            rounds=c.rounds,
            rounds_pending=self.round.pending,
            rounds_up=c.rounds_up,
            rounds_flagged=c.rounds_flagged,
            flags=dict(c.flags),
            settings={str(k): v for k, v in sorted(c.setting_counts.items())},
            lost=dict(self.round.lost_counts),
            singles=singles,
        )

    @property
    def histograms(self) -> dict:
        p, hs = self.params, self.herald
        return {
            "arrival": hs.arrival.copy(),
            "arrival_channels": p.det_chan.copy(),
            "arrival_edges_ps": p.arrival_edges.copy(),
            "fluorescence_counts": self._fluo_hist.copy(),
            "singles_channels": p.slot_channel.copy(),
            "singles_counts": hs.singles[:-1].copy(),
        }
