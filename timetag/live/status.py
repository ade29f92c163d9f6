"""Running statistics of a live run and the status snapshots the views render.

:class:`LabStats` accumulates one lab's stream (tags per channel, lost data, heralds per pattern, rounds per
flag, fluorescence counts); :meth:`LabStats.snapshot` turns it into a plain dict (JSON-ready) with rates over
the last interval of *device* time.  :func:`alarms` reads snapshots and says what an operator must look at.
"""
from __future__ import annotations

import numpy as np

from .._cext.streamcheck import count_channels
from ..chunk import ERROR, MISSED, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk
from ..engine.summary import SummaryCounter
from ..records import PATTERN_NAMES

_MAX_CH = 1024  # channel numbers are small (Swabian: +-1..18, falling edges negative)


class LabStats:
    def __init__(self, lab: str, channels=(), max_count: int = 256, threshold: int | None = None,
                 detectors=()):
        self.lab = lab
        self.watch = tuple(int(c) for c in channels)  # channels the setup uses: shown even when silent
        # Detector channels (BSM, fluorescence, sync) fire all the time (dark counts at least): a silent one is
        # an alarm.  Setting and 'ready' channels fire once per round and may legitimately be quiet.
        self.detectors = tuple(int(c) for c in detectors)
        self.max_count = int(max_count)
        self.threshold = threshold
        self.tags_by_ch = np.zeros(2 * _MAX_CH + 1, np.int64)
        self._prev_tags_by_ch = self.tags_by_ch.copy()
        self.tags = 0
        self.lost = {"overflow_intervals": 0, "missed_events": 0, "errors": 0}
        self.overflow_open = False
        self.heralds_by_pattern = np.zeros(len(PATTERN_NAMES), np.int64)
        self._prev_heralds = self.heralds_by_pattern.copy()
        self._tally = SummaryCounter(lab, "", "")  # rounds, outputs up, rounds per flag: the run summary's counts
        self.count_hist = np.zeros(self.max_count + 1, np.int64)
        self.first_time: int | None = None
        self.device_time: int | None = None
        self._prev_device_time: int | None = None
        self.last_herald_time: int | None = None
        self.last_round_time: int | None = None
        self._last_rates = None
        self._rate_history: list[float] = []  # total tag rate of past intervals (for the rate-jump alarm)

    def add_chunk(self, chunk: TagChunk, device_time_ps: int | None = None) -> None:
        n = len(chunk)
        if n:
            # channels beyond +-_MAX_CH are counted in `tags` only
            count_channels(np.ascontiguousarray(chunk.channel, np.int32), self.tags_by_ch, _MAX_CH)
            self.tags += n
            if self.first_time is None:
                self.first_time = int(chunk.time[0])
        if chunk.lost.size:
            k = chunk.lost["kind"]
            self.lost["overflow_intervals"] += int(np.count_nonzero(k == OVERFLOW_BEGIN))
            self.lost["missed_events"] += int(chunk.lost["count"][k == MISSED].sum())
            self.lost["errors"] += int(np.count_nonzero(k == ERROR))
            edges = k[(k == OVERFLOW_BEGIN) | (k == OVERFLOW_END)]
            if edges.size:
                self.overflow_open = bool(edges[-1] == OVERFLOW_BEGIN)
            if self.first_time is None:
                self.first_time = int(chunk.lost["time"][0])
        ends = [t for t in (chunk.last_time, int(chunk.lost["time"][-1]) if chunk.lost.size else None, device_time_ps)
                if t is not None]
        if ends:
            self.device_time = max([self.device_time or ends[0]] + ends)

    @property
    def rounds(self) -> int:
        return self._tally.rounds

    @property
    def outputs_up(self) -> int:
        return self._tally.rounds_up

    @property
    def flag_counts(self) -> dict[str, int]:
        return self._tally.flags

    def add_heralds(self, heralds: np.ndarray | None) -> None:
        if heralds is None or len(heralds) == 0:
            return
        p = np.clip(heralds["pattern"].astype(np.int64), 0, len(PATTERN_NAMES) - 1)
        self.heralds_by_pattern += np.bincount(p, minlength=len(PATTERN_NAMES))
        self.last_herald_time = int(heralds["time"][-1])

    def add_rounds(self, rounds: np.ndarray) -> None:
        if len(rounds) == 0:
            return
        self._tally.add_rounds(rounds)
        c = np.clip(rounds["count"].astype(np.int64), 0, self.max_count)
        self.count_hist += np.bincount(c, minlength=self.max_count + 1)
        self.last_round_time = int(rounds["trigger_time"][-1])
        # A lab without a BSM (Bob) is heralded by its 'ready' tags: its rounds' triggers count as heralds here.
        ht = np.where(rounds["herald_time"] >= 0, rounds["herald_time"], rounds["trigger_time"])
        self.last_herald_time = max(self.last_herald_time or int(ht.max()), int(ht.max()))

    def snapshot(self) -> dict:
        """Totals plus rates since the previous snapshot (per device second)."""
        dt_ps = None
        if self.device_time is not None:
            ref = self._prev_device_time if self._prev_device_time is not None else self.first_time
            dt_ps = self.device_time - ref if ref is not None else None
        dt = dt_ps * 1e-12 if dt_ps else None
        d_ch = self.tags_by_ch - self._prev_tags_by_ch
        chans = sorted(set(np.flatnonzero(self.tags_by_ch).tolist()) | {c + _MAX_CH for c in self.watch})
        rates = {str(c - _MAX_CH): (float(d_ch[c]) / dt if dt else None) for c in chans}
        d_her = self.heralds_by_pattern - self._prev_heralds
        total_rate = float(d_ch.sum()) / dt if dt else None
        her_rates = {PATTERN_NAMES[i]: (float(v) / dt if dt else None) for i, v in enumerate(d_her)}
        if not dt and self._last_rates is not None:
            # No device time passed since the last snapshot (e.g. the final one): keep showing the last rates.
            rates, her_rates, total_rate = self._last_rates
        elif dt:
            self._last_rates = (rates, her_rates, total_rate)
        snap = {
            "lab": self.lab,
            "device_time_s": (self.device_time - self.first_time) * 1e-12 if self.device_time is not None and self.first_time is not None else 0.0,
            "interval_s": dt,
            "tags": self.tags,
            "tag_rate": total_rate,
            "channel_rates": rates,
            "channel_totals": {str(c - _MAX_CH): int(self.tags_by_ch[c]) for c in chans},
            "watched_channels": [str(c) for c in self.watch],
            "detector_channels": [str(c) for c in self.detectors],
            "heralds": {PATTERN_NAMES[i]: int(v) for i, v in enumerate(self.heralds_by_pattern)},
            "herald_rates": her_rates,
            "rounds": self.rounds,
            "flags": dict(self.flag_counts),
            "lost": dict(self.lost, overflow_open=self.overflow_open),
            "counts": count_summary(self.count_hist, self.threshold),
            "outputs_up": self.outputs_up,
            "since_last_herald_s": ((self.device_time - self.last_herald_time) * 1e-12
                                    if self.device_time is not None and self.last_herald_time is not None else None),
            "rate_baseline": float(np.median(self._rate_history)) if self._rate_history else None,
        }
        if total_rate is not None and dt and dt > 0:
            self._rate_history = (self._rate_history + [total_rate])[-10:]
        self._prev_tags_by_ch = self.tags_by_ch.copy()
        self._prev_heralds = self.heralds_by_pattern.copy()
        self._prev_device_time = self.device_time
        return snap


def count_summary(hist: np.ndarray, threshold: int | None) -> dict:
    n = int(hist.sum())
    if n == 0:
        return {"n": 0, "mean": None, "median": None, "p_up": None, "threshold": threshold, "max": None}
    k = np.arange(hist.size)
    cdf = np.cumsum(hist)
    out = {"n": n, "mean": float((k * hist).sum() / n), "median": int(np.searchsorted(cdf, (n + 1) / 2)),
           "threshold": threshold, "max": int(k[hist > 0].max())}
    out["p_up"] = float(hist[threshold:].sum() / n) if threshold is not None else None
    # A coarse sparkline of the histogram (8 bins up to the max seen) for the view.
    top = max(out["max"], 1)
    edges = np.linspace(0, top + 1, 9).astype(int)
    out["coarse"] = [int(hist[a:b].sum()) for a, b in zip(edges[:-1], edges[1:])]
    out["coarse_edges"] = edges.tolist()
    return out


def alarms(lab_snap: dict, *, no_herald_s: float = 30.0, jump_factor: float = 3.0, dark_rate: float = 0.0,
           min_interval_s: float = 0.2) -> list[str]:
    """Operator alarms for one lab's snapshot: dark detectors, rate jumps, lost data, heralding stopped.

    Rate-based alarms need ``min_interval_s`` of device time in the interval, so that a short interval with
    few tags does not cry wolf.
    """
    out = []
    dt = lab_snap.get("interval_s")
    if dt and dt >= min_interval_s:
        dark = [c for c in lab_snap.get("detector_channels", []) if (lab_snap["channel_rates"].get(c) or 0.0) <= dark_rate]
        if dark:
            out.append(f"{lab_snap['lab']}: detector dark on channel(s) {', '.join(dark)}")
        base, rate = lab_snap.get("rate_baseline"), lab_snap.get("tag_rate")
        if base and rate is not None and (rate > jump_factor * base or rate < base / jump_factor):
            out.append(f"{lab_snap['lab']}: tag rate jumped to {rate:.3g}/s (recent median {base:.3g}/s)")
    lost = lab_snap.get("lost", {})
    if lost.get("overflow_open"):
        out.append(f"{lab_snap['lab']}: device overflow in progress (tags being lost)")
    if lost.get("overflow_intervals") or lost.get("missed_events") or lost.get("errors"):
        out.append(f"{lab_snap['lab']}: lost data so far: {lost.get('overflow_intervals', 0)} overflow interval(s), "
                   f"{lost.get('missed_events', 0)} missed events, {lost.get('errors', 0)} device error(s)")
    since = lab_snap.get("since_last_herald_s")
    total = sum(lab_snap.get("heralds", {}).values())
    if since is not None and since > no_herald_s:
        out.append(f"{lab_snap['lab']}: no heralds for {since:.0f} s of device time")
    elif total == 0 and lab_snap.get("device_time_s", 0) > no_herald_s and lab_snap.get("rounds", 0) == 0:
        out.append(f"{lab_snap['lab']}: no heralds or rounds after {lab_snap['device_time_s']:.0f} s")
    return out
