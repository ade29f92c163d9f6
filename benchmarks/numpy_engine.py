"""Vectorised numpy implementation of the engine's semantics (whole stream in memory): the baseline.

Exact for trigger 'herald' and 'ready' (the greedy 'both' matching has no clean
vectorised form) and for streams without lost-data events; used by
``bench_engine.py`` to measure the streaming kernels' speed-up and, on the same
stream, checked to give the same rounds and heralds.
"""
from __future__ import annotations

import numpy as np

from timetag.constants import INF
from timetag.records import (FLAG_SETTING_AMBIGUOUS, FLAG_SETTING_MISSING, FLAG_TRUNCATED, HERALD_DTYPE,
                             PATTERN_NONE, PATTERN_OTHER, PATTERN_PSI_MINUS, PATTERN_PSI_PLUS, ROUND_DTYPE,
                             SETTING_NONE)


def numpy_process(time: np.ndarray, channel: np.ndarray, lab):
    hc, rc = lab.herald, lab.round
    if rc.trigger == "both":
        raise ValueError("numpy baseline: trigger 'both' is not vectorised")
    chans = np.array(lab.channels)
    used = np.isin(channel, chans)
    t, c = time[used], channel[used]
    lut_lo = int(chans.min())
    delay = np.zeros(int(chans.max()) - lut_lo + 1, np.int64)
    for ch in chans:
        delay[ch - lut_lo] = lab.delay(int(ch))
    ct = t - delay[c - lut_lo]
    is_sync = c == lab.sync_channel if lab.sync_channel is not None else np.zeros(c.size, bool)
    rank = np.where(is_sync, 0 if hc.sync_reference == "previous" else 2, 1)
    order = np.lexsort((c, rank, ct))  # stable: (time, rank, channel, stream position)
    ct, c, is_sync = ct[order], c[order], is_sync[order]

    # --- heralds ---
    det_chan = np.array([d.channel for d in lab.bsm], np.int64)
    heralds = np.zeros(0, HERALD_DTYPE)
    if det_chan.size and lab.sync_channel is not None:
        pos = np.arange(ct.size)
        sync_pos = pos[is_sync]
        sync_t = ct[is_sync]
        click = np.isin(c, det_chan)
        cp, clt, clc = pos[click], ct[click], c[click]
        if hc.sync_reference == "previous":
            k = np.searchsorted(sync_pos, cp) - 1
            ok = k >= 0
        else:
            k = np.searchsorted(sync_pos, cp)
            ok = k < sync_pos.size
        kk = np.where(ok, k, 0)
        dt = clt - np.where(ok, sync_t[kk] if sync_t.size else 0, 0)
        acc = ok & (dt >= hc.window_start_ps) & (dt < hc.window_stop_ps)
        ak, at, ac, adt = k[acc], clt[acc], clc[acc], dt[acc]
        if ak.size:
            starts = np.flatnonzero(np.r_[True, ak[1:] != ak[:-1]])
            n = np.diff(np.r_[starts, ak.size])
            last = starts + n - 1
            multi = n >= 2
            s, l, nn = starts[multi], last[multi], n[multi]
            arm = {d.channel: d.arm for d in lab.bsm}
            pol = {d.channel: d.pol for d in lab.bsm}
            lut_arm = np.zeros(int(det_chan.max()) + 1, np.int8)
            lut_pol = np.zeros(int(det_chan.max()) + 1, np.int8)
            for ch in det_chan:
                lut_arm[ch] = arm[int(ch)] == "b"
                lut_pol[ch] = pol[int(ch)] == "V"
            c1, c2 = ac[s], ac[l]
            good = (nn == 2) & (c1 != c2) & (at[l] - at[s] <= hc.coincidence_ps) & (lut_pol[c1] != lut_pol[c2])
            pattern = np.full(s.size, PATTERN_OTHER, np.int8)
            pattern[good & (lut_arm[c1] == lut_arm[c2])] = PATTERN_PSI_PLUS
            pattern[good & (lut_arm[c1] != lut_arm[c2])] = PATTERN_PSI_MINUS
            heralds = np.zeros(s.size, HERALD_DTYPE)
            heralds["time"] = at[l]
            heralds["sync_time"] = sync_t[ak[s]]
            heralds["pattern"] = pattern
            heralds["det1"], heralds["det2"] = c1, c2
            heralds["dt1"], heralds["dt2"] = adt[s], adt[l]
            heralds["nclicks"] = nn

    # --- rounds ---
    if rc.trigger == "herald":
        hs = heralds[np.isin(heralds["pattern"], hc.pattern_codes)]
        x = hs["time"] + rc.ready_delay_ps
        htime, pat = hs["time"], hs["pattern"]
        hwin_hi = hs["sync_time"] + hc.window_stop_ps
    else:
        x = ct[c == lab.ready_channel]
        htime = np.full(x.size, -1, np.int64)
        pat = np.full(x.size, PATTERN_NONE, np.int8)
        hwin_hi = np.full(x.size, -INF, np.int64)
    set_mask = np.isin(c, lab.setting_channels)
    st, sc = ct[set_mask], c[set_mask]
    set_index = np.zeros(int(max(lab.setting_channels)) + 1, np.int8)
    for i, ch in enumerate(lab.setting_channels):
        set_index[ch] = i
    s0, s1 = rc.setting_window_ps
    f0, f1 = rc.fluorescence_window_ps
    lo, hi = np.searchsorted(st, x + s0), np.searchsorted(st, x + s1)
    nset = hi - lo
    setting = np.where(nset == 1, set_index[sc[np.minimum(lo, max(st.size - 1, 0))]] if st.size else 0, SETTING_NONE)
    flags = np.where(nset == 0, FLAG_SETTING_MISSING, 0) | np.where(nset > 1, FLAG_SETTING_AMBIGUOUS, 0)
    ft = ct[np.isin(c, lab.fluorescence_channels)]
    count = np.searchsorted(ft, x + f1) - np.searchsorted(ft, x + f0)
    max_delay = max([lab.delay(int(ch)) for ch in chans] + [0])
    horizon = int(time[-1]) - max_delay if time.size else -INF
    close = np.maximum(np.maximum(x + s1, x + f1), hwin_hi)
    flags |= np.where(close > horizon, FLAG_TRUNCATED, 0)
    order = np.lexsort((htime, x))
    rounds = np.zeros(x.size, ROUND_DTYPE)
    rounds["index"] = np.arange(x.size)
    rounds["trigger_time"] = x[order]
    rounds["herald_time"] = htime[order]
    rounds["pattern"] = pat[order]
    rounds["setting"] = setting[order]
    rounds["count"] = count[order]
    rounds["output"] = count[order] >= rc.threshold
    rounds["flags"] = flags[order]
    return rounds, heralds
