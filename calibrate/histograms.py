"""Histograms over raw tags for calibration (numba loops, streaming, chunk-independent).

* :class:`ArrivalHistogrammer` — per BSM detector, delay-corrected ``click - sync``
  with the lab's ``sync_reference`` rule ('previous': last sync before the click,
  'next': first sync after it), the same convention as the herald window.
* :class:`CountHistogrammer` — fluorescence clicks per 'ready' trigger in the
  read-out window (independent of the threshold).

Both have ``process(chunk)`` / ``flush()`` and give the same result for any way
the stream is cut into chunks.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from timetag.chunk import TagChunk
from timetag.errors import CalibrationError
from timetag.setupfile import LabSetup

_PREV_STATE = np.dtype([("last_sync", "<i8"), ("has_sync", "u1"), ("n_syncs", "<i8")])


@njit(cache=True, nogil=True)
def _arrival_prev(time, channel, sync_ch, sync_delay, lut, delays, lo, bin_ps, out, state):
    """'previous' rule: state carries the last corrected sync time across chunks."""
    nb = out.shape[1]
    last = state[0]["last_sync"]
    has = state[0]["has_sync"]
    ns = state[0]["n_syncs"]
    for i in range(time.size):
        ch = channel[i]
        if ch == sync_ch:
            last = time[i] - sync_delay
            has = 1
            ns += 1
            continue
        if ch < 0 or ch >= lut.size:
            continue
        k = lut[ch]
        if k < 0 or has == 0:
            continue
        dt = time[i] - delays[k] - last
        if dt < lo:
            continue
        b = (dt - lo) // bin_ps
        if b < nb:
            out[k, b] += 1
    state[0]["last_sync"] = last
    state[0]["has_sync"] = has
    state[0]["n_syncs"] = ns


@njit(cache=True, nogil=True)
def _arrival_next(ptime, pdet, sync_times, lo, hi, bin_ps, out, guard):
    """'next' rule over corrected click times ``ptime`` (sorted per call is not needed) and sorted syncs.

    ``guard`` > 0: clicks with a recorded sync less than ``guard`` before them are left out (see
    :class:`ArrivalHistogrammer`).  Returns the number of clicks with no sync after them (they wait
    for the next chunk).
    """
    nb = out.shape[1]
    ns = sync_times.size
    waiting = 0
    for i in range(ptime.size):
        t = ptime[i]
        # first sync strictly after the click (binary search)
        a, b = 0, ns
        while a < b:
            c = (a + b) // 2
            if sync_times[c] <= t:
                a = c + 1
            else:
                b = c
        if a == ns:
            waiting += 1
            continue
        if guard > 0 and a > 0 and t - sync_times[a - 1] < guard:
            continue
        dt = t - sync_times[a]
        if dt < lo or dt >= hi:
            continue
        bb = (dt - lo) // bin_ps
        if bb < nb:
            out[pdet[i], bb] += 1
    return waiting


class ArrivalHistogrammer:
    """Arrival-time histograms of the BSM detectors relative to the sync, corrected with ``delays``."""

    def __init__(self, lab: LabSetup, *, bin_ps: int | None = None, range_ps: tuple[int, int] | None = None,
                 delays: dict[int, int] | None = None, guard_ps: int = 0):
        if lab.sync_channel is None or not lab.bsm:
            raise CalibrationError(f"lab {lab.name!r}: arrival histograms need a sync channel and BSM detectors")
        self.lab = lab
        self.reference = lab.herald.sync_reference
        # 'next' only: leave out clicks that follow a recorded sync by less than guard_ps.  The hardware
        # refers a click before its attempt's sync tick to that tick; with delay errors the software may
        # see such a click just *after* the tick and refer it to the next one (when that one happens to be
        # recorded), filling the gap before the conditional-sync edge.  Those clicks always follow the tick
        # closely, so the guard removes them; clicks of other attempts lose the same fraction at every
        # detector (the chance that the tick was recorded anyway), which keeps the edge sharp and common.
        self.guard_ps = int(guard_ps)
        self.bin_ps = int(bin_ps or lab.histograms.arrival_bin_ps)
        lo, hi = range_ps or lab.histograms.arrival_range_ps
        if self.reference == "previous":
            lo = max(int(lo), 0)
        else:
            hi = min(int(hi), 0)
        nb = max(1, (int(hi) - int(lo)) // self.bin_ps)
        self.lo = int(lo)
        self.edges = self.lo + self.bin_ps * np.arange(nb + 1, dtype=np.int64)
        self.hi = int(self.edges[-1])
        self.channels = tuple(d.channel for d in lab.bsm)
        dl = lab.delays_ps if delays is None else delays
        self.delays = np.array([int(dl.get(c, 0)) for c in self.channels], dtype=np.int64)
        self.sync_delay = int(dl.get(lab.sync_channel, 0))
        self.lut = np.full(max(max(self.channels), lab.sync_channel) + 1, -1, dtype=np.int64)
        for k, c in enumerate(self.channels):
            self.lut[c] = k
        self.counts = np.zeros((len(self.channels), nb), dtype=np.int64)
        self._state = np.zeros(1, dtype=_PREV_STATE)
        self._pending_t = np.zeros(0, np.int64)
        self._pending_d = np.zeros(0, np.int64)
        self._recent_syncs = np.zeros(0, np.int64)
        self.n_clicks = np.zeros(len(self.channels), dtype=np.int64)
        self.first_time: int | None = None
        self.last_time: int | None = None
        # smallest spacing of consecutive syncs = the attempt period (also when only some syncs are recorded)
        self.period_ps: int | None = None
        self._last_sync_raw: int | None = None

    @property
    def n_syncs(self) -> int:
        return int(self._state[0]["n_syncs"])

    @property
    def duration_ps(self) -> int:
        return 0 if self.first_time is None else int(self.last_time - self.first_time)

    def process(self, chunk: TagChunk) -> None:
        t, ch = chunk.time, chunk.channel
        if t.size == 0:
            return
        if self.first_time is None:
            self.first_time = int(t[0])
        self.last_time = int(t[-1])
        lut_ch = np.where((ch >= 0) & (ch < self.lut.size), ch, 0)
        det = np.where((ch >= 0) & (ch < self.lut.size), self.lut[lut_ch], -1)
        det[ch == self.lab.sync_channel] = -1
        self.n_clicks += np.bincount(det[det >= 0], minlength=len(self.channels))
        st = t[ch == self.lab.sync_channel]
        if st.size:
            d = np.diff(np.concatenate([[self._last_sync_raw], st]) if self._last_sync_raw is not None else st)
            d = d[d > 0]
            if d.size:
                m = int(d.min())
                self.period_ps = m if self.period_ps is None else min(self.period_ps, m)
            self._last_sync_raw = int(st[-1])
        if self.reference == "previous":
            _arrival_prev(t, ch, self.lab.sync_channel, self.sync_delay, self.lut, self.delays, self.lo,
                          self.bin_ps, self.counts, self._state)
            return
        sel = det >= 0
        ct = np.concatenate([self._pending_t, t[sel] - self.delays[det[sel]]])
        cd = np.concatenate([self._pending_d, det[sel]])
        new_syncs = t[ch == self.lab.sync_channel] - self.sync_delay
        self._state[0]["n_syncs"] += new_syncs.size
        # recent syncs stay: a later tag, once delay-corrected, may lie before them
        syncs = np.concatenate([self._recent_syncs, new_syncs])
        _arrival_next(ct, cd, syncs, self.lo, self.hi, self.bin_ps, self.counts, self.guard_ps)
        spread = int(np.abs(self.delays).max()) + abs(self.sync_delay) + 1
        # the guard looks back from waiting clicks (all after the last sync): keep that sync too
        keep_from = int(t[-1]) - spread - self.guard_ps
        if syncs.size and self.guard_ps > 0:
            keep_from = min(keep_from, int(syncs[-1]))
        self._recent_syncs = syncs[syncs >= keep_from]
        # clicks after the last sync of this chunk wait for a later sync, unless one already came in range
        last_sync = syncs[-1] if syncs.size else np.iinfo(np.int64).min
        keep = ct >= last_sync
        # a click older than -lo before the latest tag can never land in range again
        keep &= ct > int(t[-1]) + self.lo - 1 - int(np.abs(self.delays).max()) - abs(self.sync_delay)
        self._pending_t, self._pending_d = ct[keep], cd[keep]

    def flush(self) -> None:
        self._pending_t = np.zeros(0, np.int64)
        self._pending_d = np.zeros(0, np.int64)

    def valid_bins(self) -> slice:
        """Bins where every click of the attempt lands on this attempt's sync.

        With 'next', a click at or before its own attempt's sync belongs to that sync (click - sync
        near 0), so nothing reaches below -period; with 'previous', nothing reaches beyond +period.
        The pulse of a sync tag that sits inside the pulse is therefore cut there: the fits use only
        these bins (a truncated fit) so the cut does not bias them.
        """
        if self.period_ps is None:
            return slice(0, self.counts.shape[1])
        e = self.edges
        if self.reference == "next":
            i0 = int(np.searchsorted(e, -self.period_ps, "left"))
            return slice(min(i0, e.size - 2), e.size - 1)
        i1 = int(np.searchsorted(e, self.period_ps, "right")) - 1
        return slice(0, max(i1, 1))


def arrival_histograms(chunks, lab: LabSetup, **kw) -> ArrivalHistogrammer:
    h = ArrivalHistogrammer(lab, **kw)
    for c in chunks:
        h.process(c)
    h.flush()
    return h


class CountHistogrammer:
    """Fluorescence counts per 'ready' trigger in ``lab.round.fluorescence_window_ps`` (delay-corrected).

    A trigger whose window is not yet closed by the data waits for the next chunk; at the
    end of the stream, triggers whose window runs past the last tag are dropped (truncated).
    """

    def __init__(self, lab: LabSetup, *, delays: dict[int, int] | None = None, window_ps=None):
        if lab.ready_channel is None:
            raise CalibrationError(f"lab {lab.name!r}: count histograms from tags need a ready channel "
                                   "(use the engine's rounds for software-herald triggers)")
        self.lab = lab
        dl = lab.delays_ps if delays is None else delays
        self.fl_channels = np.array(lab.fluorescence_channels, dtype=np.int64)
        self.fl_delays = np.array([int(dl.get(int(c), 0)) for c in self.fl_channels], dtype=np.int64)
        self.ready_delay = int(dl.get(lab.ready_channel, 0))
        self.w0, self.w1 = (int(x) for x in (window_ps or lab.round.fluorescence_window_ps))
        self._max_delay = int(np.abs(self.fl_delays).max()) + abs(self.ready_delay)
        order = np.argsort(self.fl_channels)
        self._sorted_ch, self._sorted_delay = self.fl_channels[order], self.fl_delays[order]
        self._last_raw = np.iinfo(np.int64).min // 4
        self.n_truncated = 0
        self._fl = np.zeros(0, np.int64)        # sorted corrected fluorescence times still needed
        self._trig = np.zeros(0, np.int64)      # corrected trigger times not yet closed
        self._counts: list[np.ndarray] = []
        self._triggers: list[np.ndarray] = []

    def process(self, chunk: TagChunk) -> None:
        t, ch = chunk.time, chunk.channel
        if t.size == 0:
            return
        self._last_raw = int(t[-1])
        k = np.searchsorted(self._sorted_ch, ch)
        k = np.clip(k, 0, self._sorted_ch.size - 1)
        is_fl = self._sorted_ch[k] == ch
        fl_t = t[is_fl] - self._sorted_delay[k[is_fl]]
        self._fl = np.sort(np.concatenate([self._fl, fl_t]), kind="stable")
        self._trig = np.concatenate([self._trig, t[ch == self.lab.ready_channel] - self.ready_delay])
        # every tag still to come has raw time >= t[-1]: corrected >= t[-1] - max|delay|
        horizon = int(t[-1]) - self._max_delay
        self._close(self._trig + self.w1 <= horizon)

    def _close(self, done):
        tr = self._trig[done]
        if tr.size:
            c = np.searchsorted(self._fl, tr + self.w1, "left") - np.searchsorted(self._fl, tr + self.w0, "left")
            self._counts.append(c.astype(np.int64))
            self._triggers.append(tr)
        self._trig = self._trig[~done]
        # clicks before every window still possible are no longer needed
        keep_from = self._last_raw - self.ready_delay + self.w0
        if self._trig.size:
            keep_from = min(keep_from, int(self._trig.min()) + self.w0)
        self._fl = self._fl[self._fl >= keep_from]

    def flush(self) -> None:
        # windows running past the end of the data are truncated: dropped, and counted
        cut = self._trig + self.w1 > self._last_raw
        self.n_truncated += int(np.count_nonzero(cut))
        self._trig = self._trig[~cut]
        self._close(np.ones(self._trig.size, dtype=bool))

    @property
    def counts(self) -> np.ndarray:
        return np.concatenate(self._counts) if self._counts else np.zeros(0, np.int64)

    @property
    def trigger_times(self) -> np.ndarray:
        return np.concatenate(self._triggers) if self._triggers else np.zeros(0, np.int64)


def count_histogram(counts, max_count: int | None = None) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.int64)
    top = int(counts.max()) if counts.size else 0
    n = top + 1 if max_count is None else max_count + 1
    return np.bincount(np.minimum(counts, n - 1), minlength=n)
