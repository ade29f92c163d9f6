"""The sequential part of one lab's tag generation (numba).

Everything that can be drawn independently is drawn in :mod:`timetag.simulator.draws`
(photon candidates of the attempts that had a detection, dark counts) and
:mod:`timetag.simulator.generate` (read-out tags).  What is left is inherently sequential
and runs here, over the time-ordered sources (photon candidates, dark counts,
read-out tags, afterpulses, the pending sync) merged on the fly:

* detector dead time (non-paralysable, per channel) and afterpulses of the
  clicks that survive it;
* the sync clock: which ticks exist (fired attempts and the tick right after
  each fired attempt), recorded for every attempt (``every``) or only the first
  tick after a BSM click (``conditional``, the hardware conditional filter);
* the hardware BSM logic: clicks in the acceptance window of an attempt are
  grouped exactly like the engine does (window relative to the previous sync,
  or to the next sync in conditional mode); a group that forms an announced
  pattern stops the loop (``HERALD``) so the caller can draw the round and set
  the read-out pause, which blanks the following attempts.

The loop is resumable: all its state lives in ``st`` (int64 array, indices
``S_*``), the afterpulse list and the output counters.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from ..constants import INF, Pattern
from .fastrng import draw_std_exponential, draw_uniform

DONE, HERALD, OUT_FULL = 0, 1, 2

# source codes of tags (kept in the truth; not written to the raw files)
SRC_DARK, SRC_A_LAST, SRC_B_LAST, SRC_A_EARLY, SRC_B_EARLY = 0, 1, 2, 3, 4
SRC_AFTERPULSE, SRC_FLUO_ATOM, SRC_FLUO_STRAY, SRC_READY, SRC_SETTING, SRC_SYNC = 5, 6, 7, 8, 9, 10

BIG = np.int64(INF)  # 'never' (a tick, a time)

# state indices
(S_NEXT_TICK, S_SYNC_PEND, S_BLANK_LO, S_BLANK_HI, S_STOP, S_G_ATT, S_G_N, S_G_T1, S_G_CH1, S_G_SRC1, S_G_T2,
 S_G_CH2, S_G_SRC2, S_H_ATT, S_H_T1, S_H_CH1, S_H_SRC1, S_H_T2, S_H_CH2, S_H_SRC2, S_H_PATTERN, S_NOUT, S_NAP,
 S_NHALL, S_CI, S_RI, S_DI, S_G_TL) = range(28)
N_STATE = 28

# heralds_all columns
HALL_COLS = ("attempt", "t1", "t2", "ch1", "ch2", "src1", "src2", "nclicks", "pattern", "gated", "time")

MODE_NONE, MODE_EVERY, MODE_CONDITIONAL = 0, 1, 2
# plain ints: numba freezes module globals into the compiled kernels
PATTERN_PSI_PLUS, PATTERN_PSI_MINUS, PATTERN_OTHER = int(Pattern.PSI_PLUS), int(Pattern.PSI_MINUS), int(Pattern.OTHER)


def new_state() -> np.ndarray:
    st = np.zeros(N_STATE, np.int64)
    st[S_SYNC_PEND] = -1
    st[S_BLANK_LO] = -1
    st[S_BLANK_HI] = -1
    st[S_G_ATT] = -1
    return st


@nb.njit(cache=True, inline="always")
def _divmod(n, m):
    """(n // m, n % m) for 0 <= n < 2**53, m > 0, through a float reciprocal (a 64-bit integer division costs
    tens of cycles and the event loop needs several per photon); the estimate is off by at most one."""
    q = np.int64(np.float64(n) * (1.0 / np.float64(m)))
    r = n - q * m
    while r < 0:
        q -= 1
        r += m
    while r >= m:
        q += 1
        r -= m
    return q, r


@nb.njit(cache=True, inline="always")
def _fired(n, st, on, period_n):
    if n < 0:
        return False
    if n < 9007199254740992:
        r = _divmod(n, period_n)[1]
    else:
        r = n % period_n
    if r >= on:
        return False
    if st[S_BLANK_LO] <= n < st[S_BLANK_HI]:
        return False
    return True


@nb.njit(cache=True, nogil=True)
def _next_fired(n, st, on, period_n):
    if n < 0:
        n = 0
    while True:
        if n >= BIG:
            return BIG
        if n % period_n >= on:
            n = (n // period_n + 1) * period_n
            continue
        if st[S_BLANK_LO] <= n < st[S_BLANK_HI]:
            n = st[S_BLANK_HI]
            continue
        return n


@nb.njit(cache=True, nogil=True)
def _next_emitted(n, st, on, period_n):
    """First tick >= n that the sync clock emits: a fired attempt or the tick right after one."""
    if n >= 1 and _fired(n - 1, st, on, period_n):
        return n
    return _next_fired(n, st, on, period_n)


@nb.njit(cache=True, inline="always")
def _emitted(n, st, on, period_n):
    return _fired(n, st, on, period_n) or _fired(n - 1, st, on, period_n)


@nb.njit(cache=True, inline="always")
def _tick_time(n, t0, T):
    # float guard against overflow of n * T (n = BIG means "no tick"); an integer division here would be
    # paid on every event of the loop
    if np.float64(n) * np.float64(T) >= 4.0e18:
        return BIG
    return t0 + n * T


@nb.njit(cache=True, inline="always")
def _save(st, ci, ri, di, nout, nap, nhall, sync_pend, g):
    st[S_CI] = ci
    st[S_RI] = ri
    st[S_DI] = di
    st[S_NOUT] = nout
    st[S_NAP] = nap
    st[S_NHALL] = nhall
    st[S_SYNC_PEND] = sync_pend
    st[S_G_ATT] = g


@nb.njit(cache=True, nogil=True)
def run(cand_t, cand_ch, cand_src, cand_att, dk_t, dk_ch, rnd_t, rnd_ch, rnd_src, nr,
        ap_t, ap_ch, last, dead, is_det, is_bsm, arm, pol, pat_on,
        t0, T, ws, we, on, period_n, sync_ch, mode, block_end,
        ap_prob, ap_tau, burst_prob, burst_size, burst_tau,
        st, out_t, out_ch, out_src, hall, rs):
    nc = cand_t.size
    nd = dk_t.size
    cap = out_t.size
    ap_cap = ap_t.size
    hall_cap = hall.shape[0]
    # the hot counters live in locals (numba cannot keep array elements in registers: the output arrays might
    # alias ``st``); every return writes them back, so ``st`` stays the whole resumable state
    ci = st[S_CI]
    ri = st[S_RI]
    di = st[S_DI]
    nout = st[S_NOUT]
    nap = st[S_NAP]
    nhall = st[S_NHALL]
    sync_pend = st[S_SYNC_PEND]
    g = st[S_G_ATT]
    s0, s1 = rs[0], rs[1]  # (a fresh state each call: nothing to write back)
    while True:
        if nout + 2 >= cap or nhall >= hall_cap:
            _save(st, ci, ri, di, nout, nap, nhall, sync_pend, g)
            return OUT_FULL
        # next event over the sources: photon candidates, dark counts, read-out tags, afterpulses, pending
        # conditional sync (on equal times the earlier source in this list wins)
        tn = BIG
        which = -1
        if ci < nc:
            tn = cand_t[ci]
            which = 0
        if di < nd and dk_t[di] < tn:
            tn = dk_t[di]
            which = 4
        if ri < nr and rnd_t[ri] < tn:
            tn = rnd_t[ri]
            which = 1
        api = -1
        for j in range(nap):
            if ap_t[j] < tn:
                tn = ap_t[j]
                which = 2
                api = j
        if mode == MODE_CONDITIONAL and sync_pend >= 0:
            ts = _tick_time(sync_pend, t0, T)
            if ts < tn:
                tn = ts
                which = 3
        if tn >= block_end:
            which = -1
        # close the open BSM group once time has left its acceptance window
        if g >= 0 and (which < 0 or tn >= t0 + g * T + we):
            n = st[S_G_N]
            gn = g
            g = -1
            # closing a group changes none of the event sources, so the scan above stays valid: fall through
            # to the event instead of scanning again (a single click is no coincidence: nothing to record)
            if n >= 2:
                pattern = PATTERN_OTHER
                if n == 2 and st[S_G_CH1] != st[S_G_CH2]:
                    c1 = st[S_G_CH1]
                    c2 = st[S_G_CH2]
                    if pol[c1] != pol[c2]:
                        pattern = PATTERN_PSI_PLUS if arm[c1] == arm[c2] else PATTERN_PSI_MINUS
                gated = (st[S_STOP] != 0) or (not _fired(gn, st, on, period_n))
                h = nhall
                hall[h, 0] = gn
                hall[h, 1] = st[S_G_T1]
                hall[h, 2] = st[S_G_T2]
                hall[h, 3] = st[S_G_CH1]
                hall[h, 4] = st[S_G_CH2]
                hall[h, 5] = st[S_G_SRC1]
                hall[h, 6] = st[S_G_SRC2]
                hall[h, 7] = n
                hall[h, 8] = pattern
                hall[h, 9] = 1 if gated else 0
                hall[h, 10] = st[S_G_TL]  # the group's last click (a group may have more than two)
                nhall = h + 1
                if pattern != PATTERN_OTHER and pat_on[pattern] and not gated:
                    st[S_H_ATT] = gn
                    st[S_H_T1] = st[S_G_T1]
                    st[S_H_CH1] = st[S_G_CH1]
                    st[S_H_SRC1] = st[S_G_SRC1]
                    st[S_H_T2] = st[S_G_T2]
                    st[S_H_CH2] = st[S_G_CH2]
                    st[S_H_SRC2] = st[S_G_SRC2]
                    st[S_H_PATTERN] = pattern
                    _save(st, ci, ri, di, nout, nap, nhall, sync_pend, g)
                    return HERALD
        # sync ticks recorded for every attempt
        if mode == MODE_EVERY:
            nt = st[S_NEXT_TICK]
            tt = _tick_time(nt, t0, T)
            lim = tn if which >= 0 else block_end
            if tt < lim:
                out_t[nout] = tt
                out_ch[nout] = sync_ch
                out_src[nout] = SRC_SYNC
                nout += 1
                st[S_NEXT_TICK] = _next_emitted(nt + 1, st, on, period_n)
                continue
        if which < 0:
            _save(st, ci, ri, di, nout, nap, nhall, sync_pend, g)
            return DONE
        # consume the event
        if which == 3:
            out_t[nout] = tn
            out_ch[nout] = sync_ch
            out_src[nout] = SRC_SYNC
            nout += 1
            sync_pend = -1
            continue
        if which == 0:
            ch = cand_ch[ci]
            src = cand_src[ci]
            att = cand_att[ci]
            ci += 1
            if att >= 0 and not _fired(att, st, on, period_n):
                continue  # attempt suppressed by the read-out pause
        elif which == 4:
            att = -1
            ch = dk_ch[di]
            src = SRC_DARK
            di += 1
        elif which == 1:
            att = -1
            ch = rnd_ch[ri]
            src = rnd_src[ri]
            ri += 1
        else:
            att = -1
            ch = ap_ch[api]
            src = SRC_AFTERPULSE
            ap_t[api] = ap_t[nap - 1]
            ap_ch[api] = ap_ch[nap - 1]
            nap -= 1
        if is_det[ch]:
            if tn - last[ch] < dead[ch]:
                continue
            last[ch] = tn
        out_t[nout] = tn
        out_ch[nout] = ch
        out_src[nout] = src
        nout += 1
        if is_det[ch] and src != SRC_AFTERPULSE:
            if ap_prob > 0.0:
                s0, s1, u = draw_uniform(s0, s1)
                if u < ap_prob and nap < ap_cap:
                    s0, s1, e = draw_std_exponential(s0, s1)
                    ap_t[nap] = tn + dead[ch] + np.int64(ap_tau * e)
                    ap_ch[nap] = ch
                    nap += 1
            if burst_prob > 0.0:
                s0, s1, u = draw_uniform(s0, s1)
                if u < burst_prob:
                    tb = tn + dead[ch]
                    for _ in range(burst_size):
                        if nap >= ap_cap:
                            break
                        s0, s1, e = draw_std_exponential(s0, s1)
                        tb += np.int64(burst_tau * e)
                        ap_t[nap] = tb
                        ap_ch[nap] = ch
                        nap += 1
        if is_bsm[ch]:
            rel = tn - t0
            # a photon's attempt is known: its offset d from that attempt decides the tick arithmetic
            # without integer divisions (the general formulas below give the same results)
            d = rel - att * T if which == 0 and att >= 0 else -BIG
            # (such a photon's attempt fired -- checked above -- so the tick after it is emitted, and the sync
            # reference of its window exists)
            if mode == MODE_CONDITIONAL and sync_pend < 0:
                if 0 <= d < T and rel >= 0:
                    sync_pend = att + 1
                else:
                    m = rel // T + 1 if rel >= 0 else 0
                    sync_pend = _next_emitted(m, st, on, period_n)
            if rel >= ws:
                known = ws <= d < ws + T
                if known:
                    n = att
                    off = d
                else:
                    n = (rel - ws) // T
                    off = rel - n * T
                if off < we:
                    if known:
                        ref_ok = True
                    elif mode == MODE_EVERY:
                        ref_ok = _emitted(n, st, on, period_n)
                    else:
                        ref_ok = _emitted(n + 1, st, on, period_n)
                    if ref_ok:
                        if g != n:
                            g = n
                            st[S_G_N] = 0
                        c = st[S_G_N]
                        st[S_G_TL] = tn
                        if c == 0:
                            st[S_G_T1] = tn
                            st[S_G_CH1] = ch
                            st[S_G_SRC1] = src
                        elif c == 1:
                            st[S_G_T2] = tn
                            st[S_G_CH2] = ch
                            st[S_G_SRC2] = src
                        st[S_G_N] = c + 1
            # clicks are sparse, so the pending sync tick is usually the very next event: emit it here exactly as
            # the next pass would (which also closes a one-click group the tick has left), saving that pass
            if mode == MODE_CONDITIONAL and sync_pend >= 0 and nout + 3 < cap and nhall < hall_cap:
                ts = _tick_time(sync_pend, t0, T)
                nxt = ts < block_end and (ci >= nc or ts < cand_t[ci]) and (di >= nd or ts < dk_t[di]) \
                    and (ri >= nr or ts < rnd_t[ri])
                for j in range(nap):
                    if ap_t[j] <= ts:
                        nxt = False
                if nxt and g >= 0 and ts >= t0 + g * T + we:
                    if st[S_G_N] >= 2:
                        nxt = False  # a coincidence to close: the next pass does it
                    else:
                        g = -1
                if nxt:
                    out_t[nout] = ts
                    out_ch[nout] = sync_ch
                    out_src[nout] = SRC_SYNC
                    nout += 1
                    sync_pend = -1


@nb.njit(cache=True, nogil=True)
def apply_pause(st, lo, hi, on, period_n, mode):
    """Suppress attempts [lo, hi) (the read-out pause) and move the pending sync ticks accordingly."""
    st[S_BLANK_LO] = lo
    st[S_BLANK_HI] = hi
    if mode == MODE_EVERY:
        st[S_NEXT_TICK] = _next_emitted(st[S_NEXT_TICK], st, on, period_n)
    if mode == MODE_CONDITIONAL and st[S_SYNC_PEND] >= 0:
        st[S_SYNC_PEND] = _next_emitted(st[S_SYNC_PEND], st, on, period_n)


@nb.njit(cache=True, nogil=True)
def first_emitted(n, st, on, period_n):
    return _next_emitted(n, st, on, period_n)


@nb.njit(cache=True, nogil=True)
def queue_readout(old_t, old_ch, old_src, ri, head_t, head_ch, head_src, fluo_t, fluo_ch, n_atom, atom_src,
                  stray_src):
    """The read-out queue: the tags not yet consumed (``old_*[ri:]``), the round's ready/setting tags
    (``head_*``) and its fluorescence (``fluo_*``, the first ``n_atom`` the atom's), merged in time order (a
    stable insertion sort: equal times keep that order).  A herald's read-out is a few dozen tags."""
    n_old = old_t.size - ri
    n = n_old + head_t.size + fluo_t.size
    t = np.empty(n, np.int64)
    ch = np.empty(n, np.int32)
    src = np.empty(n, np.int8)
    k = 0
    for i in range(ri, old_t.size):
        t[k], ch[k], src[k] = old_t[i], old_ch[i], old_src[i]
        k += 1
    for i in range(head_t.size):
        t[k], ch[k], src[k] = head_t[i], head_ch[i], head_src[i]
        k += 1
    for i in range(fluo_t.size):
        t[k], ch[k], src[k] = fluo_t[i], fluo_ch[i], atom_src if i < n_atom else stray_src
        k += 1
    for j in range(1, n):
        tj, cj, sj = t[j], ch[j], src[j]
        i = j
        while i > 0 and t[i - 1] > tj:
            t[i], ch[i], src[i] = t[i - 1], ch[i - 1], src[i - 1]
            i -= 1
        t[i], ch[i], src[i] = tj, cj, sj
    return t, ch, src
