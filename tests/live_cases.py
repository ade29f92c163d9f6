"""A small streaming stand-in pipeline for the live-mode tests, and its own chunk-invariance check.

``ToyPipeline`` follows the engine's interface (``process(chunk) -> (rounds, heralds)``, ``flush()``,
``summary``, ``histograms``) with a deliberately simple rule set: every tag on the lab's ready channel triggers a
round; the setting is the one setting tag in the setting window; the count is the number of fluorescence tags
in the fluorescence window; a round is emitted once the data have passed its last window (so rounds leave the
pipeline incrementally, like the engine's); lost data overlapping the round's span flags it.  It lets the live
machinery (writer cadence, SIGKILL safety, replay equivalence) be tested independently of the engine.
"""
from __future__ import annotations

import numpy as np

from timetag.chunk import ERROR, MISSED, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk
from timetag.records import (FLAG_LOST_DATA, FLAG_SETTING_AMBIGUOUS, FLAG_SETTING_MISSING, FLAG_TRUNCATED,
                             PATTERN_NONE, SETTING_NONE, empty_heralds, empty_rounds)
from timetag.setupfile import setup_from_dict


INF = np.iinfo(np.int64).max


def toy_setup(threshold: int = 3):
    lab = lambda role, n: {  # noqa: E731
        "role": role, "ready_channel": 6, "setting_channels": list(range(7, 7 + n)),
        "fluorescence_channels": [2, 3], "delays_ps": {str(c): 0 for c in (2, 3, 6, *range(7, 7 + n))}, "round": {"trigger": "ready", "setting_window_ps": [0, 2_000_000],
                                                   "fluorescence_window_ps": [5_000_000, 25_000_000],
                                                   "threshold": threshold}}
    return setup_from_dict({"labs": {"alice": lab("alice", 4), "bob": lab("bob", 2)}})


class ToyPipeline:
    def __init__(self, lab):
        self.lab = lab
        r = lab.round
        self.sw, self.fw, self.thr = r.setting_window_ps, r.fluorescence_window_ps, r.threshold
        self.span = (min(self.sw[0], self.fw[0]), max(self.sw[1], self.fw[1]))
        self.t = np.zeros(0, np.int64)
        self.c = np.zeros(0, np.int32)
        self.pending: list[int] = []
        self.intervals: list[list[int]] = []  # [begin, end) of lost data (end INF while open)
        self.index = 0
        self.horizon = np.iinfo(np.int64).min
        self.summary = {"rounds": 0, "tags": 0}
        self.histograms = {"count": np.zeros(64, np.int64)}

    def _lost(self, lost):
        for ev in lost:
            t, k = int(ev["time"]), int(ev["kind"])
            if k == OVERFLOW_BEGIN:
                self.intervals.append([t, INF])
            elif k == OVERFLOW_END:
                if self.intervals and self.intervals[-1][1] == INF:
                    self.intervals[-1][1] = t
            elif k in (MISSED, ERROR):
                self.intervals.append([t, t + 1])

    def _emit(self, final: bool):
        out = []
        keep = []
        for trig in self.pending:
            if trig + self.span[1] > self.horizon and not final:
                keep.append(trig)
                continue
            rec = empty_rounds(1)[0]
            rec["index"], rec["trigger_time"], rec["herald_time"], rec["pattern"] = self.index, trig, -1, PATTERN_NONE
            self.index += 1
            s = (self.t >= trig + self.sw[0]) & (self.t < trig + self.sw[1])
            sch = self.c[s][np.isin(self.c[s], self.lab.setting_channels)]
            flags = 0
            if sch.size == 1:
                rec["setting"] = self.lab.setting_channels.index(int(sch[0]))
            else:
                rec["setting"] = SETTING_NONE
                flags |= FLAG_SETTING_MISSING if sch.size == 0 else FLAG_SETTING_AMBIGUOUS
            f = (self.t >= trig + self.fw[0]) & (self.t < trig + self.fw[1]) & np.isin(self.c, self.lab.fluorescence_channels)
            rec["count"] = int(f.sum())
            rec["output"] = int(rec["count"] >= self.thr)
            lo, hi = trig + self.span[0], trig + self.span[1]
            if any(b < hi and e > lo for b, e in self.intervals):
                flags |= FLAG_LOST_DATA
            if trig + self.span[1] > self.horizon:
                flags |= FLAG_TRUNCATED
            rec["flags"] = flags
            self.histograms["count"][min(int(rec["count"]), 63)] += 1
            out.append(rec)
        self.pending = keep
        lo = (min(self.pending) if self.pending else self.horizon) + self.span[0]
        k = int(np.searchsorted(self.t, lo, side="left"))
        self.t, self.c = self.t[k:], self.c[k:]
        self.intervals = [iv for iv in self.intervals if iv[1] > lo - 1]
        self.summary["rounds"] += len(out)
        return (np.array(out, dtype=empty_rounds().dtype) if out else empty_rounds()), empty_heralds()

    def process(self, chunk: TagChunk):
        self.summary["tags"] += len(chunk)
        self._lost(chunk.lost)
        if len(chunk):
            self.t = np.concatenate([self.t, chunk.time])
            self.c = np.concatenate([self.c, chunk.channel])
            self.pending.extend(int(x) for x in chunk.time[chunk.channel == self.lab.ready_channel])
            self.horizon = max(self.horizon, int(chunk.time[-1]))
        return self._emit(final=False)

    def flush(self):
        return self._emit(final=True)


def make_stream(n_rounds: int, seed: int = 0, period_ps: int = 50_000_000, lab: str = "alice",
                lost=()) -> TagChunk:
    """Hand-made tags: a ready tag per period, one setting tag, Poisson fluorescence counts, background."""
    rng = np.random.default_rng(seed)
    t, c = [], []
    n_set = 4 if lab == "alice" else 2
    for i in range(n_rounds):
        t0 = 1_000_000 + i * period_ps
        t.append(t0); c.append(6)
        t.append(t0 + 500_000); c.append(7 + int(rng.integers(n_set)))
        k = int(rng.poisson(4 if rng.random() < 0.5 else 0.3))
        t.extend((t0 + rng.integers(5_000_000, 25_000_000, size=k)).tolist()); c.extend([2] * k)
        nb = int(rng.poisson(2))
        t.extend((t0 + rng.integers(0, period_ps, size=nb)).tolist()); c.extend([3] * nb)
    t, c = np.asarray(t, np.int64), np.asarray(c, np.int32)
    o = np.argsort(t, kind="stable")
    t, c = t[o], c[o]
    from timetag.chunk import LOST_DTYPE

    lo = np.zeros(len(lost), LOST_DTYPE)
    for j, (time_, kind) in enumerate(lost):
        lo[j]["time"], lo[j]["kind"] = time_, kind
    return TagChunk(t, c, lo)


def run_toy(chunks, lab):
    p = ToyPipeline(lab)
    parts = [p.process(ch)[0] for ch in chunks]
    parts.append(p.flush()[0])
    return np.concatenate(parts)

