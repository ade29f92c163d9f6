"""Plain-Python reference implementation of the herald and round stages (whole stream, per tag).

Written for obviousness, not speed: the Cython kernels in ``timetag.engine`` must
agree with it record for record.  Semantics (the same as documented in
:mod:`timetag.engine`):

* corrected time = raw - delays_ps[channel]; channels the lab does not use are ignored
  (but counted as singles).  Canonical order of the corrected stream: by (time, rank,
  channel, stream position) where rank puts the sync *before* other tags of equal time with
  ``sync_reference = "previous"`` and *after* them with ``"next"`` (so "at or before" /
  "at or after" hold for equal times).
* each BSM click gets the latest sync at or before it ('previous') or the first at or
  after it ('next'); dt = click - sync goes into the arrival histogram; accepted when
  window_start <= dt < window_stop; accepted clicks are grouped per sync.
* an attempt with >= 2 accepted clicks gives a herald (time = last accepted click,
  det1/dt1 = first, det2/dt2 = last, pattern by the rules of the issue).
* triggers: 'herald' -> e = herald + ready_delay; 'ready' -> each ready; 'both' -> readies
  in time order each take the earliest still-unmatched heralding herald with
  |ready - e| <= tolerance.  Triggers sorted by (time, herald_time).
* windows are half-open [start, stop) relative to the trigger; lost data: an overflow
  interval [begin, end) overlapping the window, or a MISSED/ERROR event inside it
  (lost-event times are raw device times; an OVERFLOW_END without an open BEGIN is a
  point event); the herald's acceptance window
  [sync + start, sync + stop) counts as a window of the round.
* FLAG_TRUNCATED when a window of the round stops after the data horizon
  H_end = last raw time - max(0, largest delay of the lab's channels).
"""
from __future__ import annotations

import bisect

import numpy as np

from timetag.chunk import ERROR, MISSED, OVERFLOW_BEGIN, OVERFLOW_END, concat
from timetag.constants import INF
from timetag.records import (FLAG_HERALD_WITHOUT_READY, FLAG_LOST_DATA, FLAG_READY_WITHOUT_HERALD,
                             FLAG_SETTING_AMBIGUOUS, FLAG_SETTING_MISSING, FLAG_TRUNCATED, HERALD_DTYPE,
                             PATTERN_NONE, PATTERN_OTHER, PATTERN_PSI_MINUS, PATTERN_PSI_PLUS, ROUND_DTYPE,
                             SETTING_NONE)


def reference_process(chunks, lab):
    """Process a whole stream (iterable of TagChunk or one TagChunk) -> (rounds, heralds, extras dict)."""
    whole = concat(chunks) if not hasattr(chunks, "time") else chunks
    raw_t = [int(x) for x in whole.time]
    raw_c = [int(x) for x in whole.channel]
    used = set(lab.channels)
    hc, rc, hist_cfg = lab.herald, lab.round, lab.histograms
    sync_rank = 0 if hc.sync_reference == "previous" else 2

    singles = {}
    tags = []  # (time, rank, pos, channel)
    for pos, (t, c) in enumerate(zip(raw_t, raw_c)):
        singles[c] = singles.get(c, 0) + 1
        if c not in used:
            continue
        rank = sync_rank if c == lab.sync_channel else 1
        tags.append((t - lab.delay(c), rank, pos, c))
    tags.sort(key=lambda x: (x[0], x[1], x[3], x[2]))  # time, rank, channel, position

    bsm = {d.channel: d for d in lab.bsm}
    syncs = [t for t, _, _, c in tags if c == lab.sync_channel] if lab.sync_channel is not None else []
    sync_keys = [(t, r, c, p) for t, r, p, c in tags if c == lab.sync_channel] if lab.sync_channel is not None else []

    lo, hi = hist_cfg.arrival_range_ps
    nbins = -(-(hi - lo) // hist_cfg.arrival_bin_ps)
    arrival = np.zeros((len(lab.bsm), nbins), np.int64)
    det_index = {d.channel: i for i, d in enumerate(lab.bsm)}

    attempts = {}  # sync index -> list of (time, channel)
    n_accepted = 0
    for t, r, p, c in tags:
        if c not in bsm or not sync_keys:
            continue
        key = (t, r, c, p)
        if hc.sync_reference == "previous":
            k = bisect.bisect_left(sync_keys, key) - 1
            if k < 0:
                continue
        else:
            k = bisect.bisect_left(sync_keys, key)
            if k >= len(sync_keys):
                continue
        dt = t - syncs[k]
        if lo <= dt < hi:
            arrival[det_index[c], (dt - lo) // hist_cfg.arrival_bin_ps] += 1
        if hc.window_start_ps <= dt < hc.window_stop_ps:
            attempts.setdefault(k, []).append((t, c))
            n_accepted += 1

    heralds = []
    for k in sorted(attempts):
        clicks = attempts[k]
        if len(clicks) < 2:
            continue
        (t1, c1), (t2, c2) = clicks[0], clicks[-1]
        pattern = PATTERN_OTHER
        if len(clicks) == 2 and c1 != c2 and abs(t2 - t1) <= hc.coincidence_ps:
            d1, d2 = bsm[c1], bsm[c2]
            if d1.pol != d2.pol:
                pattern = PATTERN_PSI_PLUS if d1.arm == d2.arm else PATTERN_PSI_MINUS
        heralds.append((t2, syncs[k], pattern, c1, c2, t1 - syncs[k], t2 - syncs[k], len(clicks)))
    heralds_arr = np.array(heralds, dtype=HERALD_DTYPE) if heralds else np.zeros(0, HERALD_DTYPE)

    # --- triggers -----------------------------------------------------------
    codes = set(hc.pattern_codes)
    her = [h for h in heralds if h[2] in codes] if rc.trigger in ("herald", "both") else []
    readies = [t for t, _, _, c in tags if c == lab.ready_channel] if rc.trigger in ("ready", "both") else []
    delay, tol = rc.ready_delay_ps, rc.ready_tolerance_ps
    triggers = []  # (x, herald_time, pattern, flags, herald window lo, hi)

    def herald_trigger(h, x, flags):
        return (x, h[0], h[2], flags, h[1] + hc.window_start_ps, h[1] + hc.window_stop_ps)

    if rc.trigger == "herald":
        triggers = [herald_trigger(h, h[0] + delay, 0) for h in her]
    elif rc.trigger == "ready":
        triggers = [(r, -1, PATTERN_NONE, 0, INF, -INF) for r in readies]
    else:
        matched = [False] * len(her)
        for r in readies:
            hit = None
            for i, h in enumerate(her):
                if not matched[i] and abs(r - (h[0] + delay)) <= tol:
                    hit = i
                    break
            if hit is None:
                triggers.append((r, -1, PATTERN_NONE, FLAG_READY_WITHOUT_HERALD, INF, -INF))
            else:
                matched[hit] = True
                triggers.append(herald_trigger(her[hit], r, 0))
        for i, h in enumerate(her):
            if not matched[i]:
                triggers.append(herald_trigger(h, h[0] + delay, FLAG_HERALD_WITHOUT_READY))
    triggers.sort(key=lambda tr: (tr[0], tr[1]))

    # --- lost data ------------------------------------------------------------
    intervals, points = [], []
    open_begin = None
    for ev in whole.lost:
        t, kind = int(ev["time"]), int(ev["kind"])
        if kind == OVERFLOW_BEGIN:
            if open_begin is None:
                open_begin = t
        elif kind == OVERFLOW_END:
            if open_begin is not None:
                intervals.append((open_begin, t))
                open_begin = None
            else:
                points.append(t)  # a stray END (e.g. the recording started inside an overflow)
        elif kind in (MISSED, ERROR):
            points.append(t)
    if open_begin is not None:
        intervals.append((open_begin, INF))

    def touched(a, b):
        if a >= b:
            return False
        return any(p0 < b and p1 > a for p0, p1 in intervals) or any(a <= p < b for p in points)

    max_delay = max([lab.delay(c) for c in used] + [0])
    horizon = (raw_t[-1] - max_delay) if raw_t else -INF

    set_chan = {c: i for i, c in enumerate(lab.setting_channels)}
    fluo = set(lab.fluorescence_channels)
    set_tags = [(t, set_chan[c]) for t, _, _, c in tags if c in set_chan]
    fluo_times = [t for t, _, _, c in tags if c in fluo]
    s0, s1 = rc.setting_window_ps
    f0, f1 = rc.fluorescence_window_ps
    rounds = []
    for idx, (x, htime, pattern, flags, hlo, hhi) in enumerate(triggers):
        inside = [i for t, i in set_tags if x + s0 <= t < x + s1]
        if len(inside) == 1:
            setting = inside[0]
        elif not inside:
            setting, flags = SETTING_NONE, flags | FLAG_SETTING_MISSING
        else:
            setting, flags = SETTING_NONE, flags | FLAG_SETTING_AMBIGUOUS
        count = sum(1 for t in fluo_times if x + f0 <= t < x + f1)
        if touched(x + s0, x + s1) or touched(x + f0, x + f1) or touched(hlo, hhi):
            flags |= FLAG_LOST_DATA
        if max(x + s1, x + f1, hhi) > horizon:
            flags |= FLAG_TRUNCATED
        rounds.append((idx, x, htime, pattern, setting, count, int(count >= rc.threshold), flags))
    rounds_arr = np.array(rounds, dtype=ROUND_DTYPE) if rounds else np.zeros(0, ROUND_DTYPE)
    extras = {"arrival": arrival, "singles": singles, "clicks_accepted": n_accepted}
    return rounds_arr, heralds_arr, extras
