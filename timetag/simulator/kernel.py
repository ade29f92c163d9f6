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
NO_GROUP = np.int64(2**63 - 1)  # the end of the open BSM group when there is none: after every time

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
    """(n // m, n % m) for 0 <= n < 2**62, m > 0, through a float reciprocal (a 64-bit integer division costs
    tens of cycles and the event loop needs several per click).  The corrections make it exact; it is quick
    while the estimate is close: off by at most one while n / m < 2**51 (three roundings of relative size
    2**-53), by at most three while n < 2**53."""
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
def _quot_limit(m):
    """The n below which ``_divmod(n, m)`` is used: n / m < 2**51, capped at BIG (m > 0)."""
    if m >= 2048:
        return BIG
    return m << 51


@nb.njit(cache=True, inline="always")
def _divmod_any(n, m, n_lim):
    """``divmod(n, m)`` for n >= 0, m > 0; ``n_lim`` is ``_quot_limit(m)``."""
    if n < n_lim:
        return _divmod(n, m)
    return n // m, n % m


# The blanked attempts [blo, bhi) are passed as two integers rather than read from ``st``: numba reloads an
# array element after every store to another array (the output arrays might alias ``st``).
@nb.njit(cache=True, inline="always")
def _fired_b(n, blo, bhi, on, period_n):
    if n < 0:
        return False
    r = _divmod_any(n, period_n, _quot_limit(period_n))[1]
    if r >= on:
        return False
    if blo <= n < bhi:
        return False
    return True


@nb.njit(cache=True, nogil=True)
def _next_fired_b(n, blo, bhi, on, period_n):
    if n < 0:
        n = 0
    while True:
        if n >= BIG:
            return BIG
        q, r = _divmod_any(n, period_n, _quot_limit(period_n))
        if r >= on:
            n = (q + 1) * period_n
            continue
        if blo <= n < bhi:
            n = bhi
            continue
        return n


@nb.njit(cache=True, inline="always")
def _next_emitted_b(n, blo, bhi, on, period_n):
    """First tick >= n that the sync clock emits: a fired attempt or the tick right after one."""
    if n >= 1 and _fired_b(n - 1, blo, bhi, on, period_n):
        return n
    return _next_fired_b(n, blo, bhi, on, period_n)


@nb.njit(cache=True, inline="always")
def _emitted_b(n, blo, bhi, on, period_n):
    return _fired_b(n, blo, bhi, on, period_n) or _fired_b(n - 1, blo, bhi, on, period_n)


@nb.njit(cache=True, nogil=True)
def _next_emitted(n, st, on, period_n):
    return _next_emitted_b(n, st[S_BLANK_LO], st[S_BLANK_HI], on, period_n)


@nb.njit(cache=True, inline="always")
def _tick_time(n, t0, T):
    # float guard against overflow of n * T (n = BIG means "no tick"); an integer division here would be
    # paid on every event of the loop
    if np.float64(n) * np.float64(T) >= 4.0e18:
        return BIG
    return t0 + n * T


@nb.njit(cache=True, inline="always")
def _first_min(a, n):
    """(smallest of a[:n], its first index), (BIG, -1) when n == 0 -- the afterpulse list's next."""
    tm = BIG
    jm = -1
    for j in range(n):
        if a[j] < tm:
            tm = a[j]
            jm = j
    return tm, jm


@nb.njit(cache=True, inline="always")
def _at(a, i):
    """a[i] for 0 <= i < a.size through an unsigned index: numba adds a negative-index fix-up to every signed
    one, which the hot paths pay per event."""
    return a[np.uint64(i)]


@nb.njit(cache=True, inline="always")
def _put(out_t, out_ch, out_src, i, t, ch, src):
    k = np.uint64(i)  # (see _at)
    out_t[k] = t
    out_ch[k] = ch
    out_src[k] = src


@nb.njit(cache=True, inline="always")
def _save(st, ci, ri, di, nout, nap, nhall, sync_pend, g, next_tick, gc, g_t1, g_ch1, g_src1, g_t2, g_ch2, g_src2,
          g_tl):
    st[S_CI] = ci
    st[S_RI] = ri
    st[S_DI] = di
    st[S_NOUT] = nout
    st[S_NAP] = nap
    st[S_NHALL] = nhall
    st[S_SYNC_PEND] = sync_pend
    st[S_G_ATT] = g
    st[S_NEXT_TICK] = next_tick
    st[S_G_N] = gc
    st[S_G_T1] = g_t1
    st[S_G_CH1] = g_ch1
    st[S_G_SRC1] = g_src1
    st[S_G_T2] = g_t2
    st[S_G_CH2] = g_ch2
    st[S_G_SRC2] = g_src2
    st[S_G_TL] = g_tl


@nb.njit(cache=True, nogil=True)
def run(cand_t, cand_ch, cand_src, cand_att, dk_t, dk_ch, rnd_t, rnd_ch, rnd_src, nr,
        ap_t, ap_ch, last, dead, is_det, is_bsm, arm, pol, pat_on,
        t0, T, ws, we, on, period_n, sync_ch, mode, block_end,
        ap_prob, ap_tau, burst_prob, burst_size, burst_tau,
        st, out_t, out_ch, out_src, hall, rs):
    """Run the lab's event loop until the block ends (``DONE``), an announced pattern forms (``HERALD``) or
    the output or herald buffer is full (``OUT_FULL``).  Times stay below ``BIG``; ``block_end <= BIG``."""
    nc = cand_t.size
    nd = dk_t.size
    cap = out_t.size
    ap_cap = ap_t.size
    hall_cap = hall.shape[0]
    cond = mode == MODE_CONDITIONAL
    every = mode == MODE_EVERY
    rel_lim = _quot_limit(T)
    # the whole state lives in locals (numba cannot keep array elements in registers: the output arrays might
    # alias ``st``); every return writes it back, so ``st`` stays the whole resumable state
    ci = st[S_CI]
    ri = st[S_RI]
    di = st[S_DI]
    nout = st[S_NOUT]
    nap = st[S_NAP]
    nhall = st[S_NHALL]
    sync_pend = st[S_SYNC_PEND]
    next_tick = st[S_NEXT_TICK]
    blo = st[S_BLANK_LO]
    bhi = st[S_BLANK_HI]
    stopped = st[S_STOP] != 0
    # the open BSM group: its attempt (-1: none), click count, first two clicks and last click time
    g = st[S_G_ATT]
    gc = st[S_G_N]
    g_t1, g_ch1, g_src1 = st[S_G_T1], st[S_G_CH1], st[S_G_SRC1]
    g_t2, g_ch2, g_src2 = st[S_G_T2], st[S_G_CH2], st[S_G_SRC2]
    g_tl = st[S_G_TL]
    s0, s1 = rs[0], rs[1]  # (a fresh state each call: nothing to write back)
    # each source's next time (BIG when exhausted: candidates, dark counts, read-out tags, the afterpulse list's
    # first earliest at api, the pending conditional sync), refreshed only where that source changes; the open
    # group's end (NO_GROUP when none: above every time, so the close test needs no g >= 0); the next tick of
    # the every-attempt sync
    tc = _at(cand_t, ci) if ci < nc else BIG
    td = _at(dk_t, di) if di < nd else BIG
    tr = rnd_t[ri] if ri < nr else BIG
    ta, api = _first_min(ap_t, nap)
    tsync = _tick_time(sync_pend, t0, T) if cond and sync_pend >= 0 else BIG
    gend = t0 + g * T + we if g >= 0 else NO_GROUP
    tt = _tick_time(next_tick, t0, T)
    while True:
        if nout + 2 >= cap or nhall >= hall_cap:
            _save(st, ci, ri, di, nout, nap, nhall, sync_pend, g, next_tick, gc, g_t1, g_ch1, g_src1, g_t2, g_ch2,
                  g_src2, g_tl)
            return OUT_FULL
        # next event over the sources: photon candidates, dark counts, read-out tags, afterpulses, pending
        # conditional sync (on equal times the earlier source in this list wins)
        tn = tc
        which = 0
        if td < tn:
            tn = td
            which = 4
        if tr < tn:
            tn = tr
            which = 1
        if ta < tn:
            tn = ta
            which = 2
        if tsync < tn:
            tn = tsync
            which = 3
        if tn >= block_end:
            which = -1
        # close the open BSM group once time has left its acceptance window
        if tn >= gend or (which < 0 and g >= 0):
            gn = g
            g = -1
            gend = NO_GROUP
            # closing a group changes none of the event sources, so the scan above stays valid: fall through
            # to the event instead of scanning again (a single click is no coincidence: nothing to record)
            if gc >= 2:
                pattern = PATTERN_OTHER
                if gc == 2 and g_ch1 != g_ch2:
                    if pol[g_ch1] != pol[g_ch2]:
                        pattern = PATTERN_PSI_PLUS if arm[g_ch1] == arm[g_ch2] else PATTERN_PSI_MINUS
                gated = stopped or (not _fired_b(gn, blo, bhi, on, period_n))
                h = nhall
                hall[h, 0] = gn
                hall[h, 1] = g_t1
                hall[h, 2] = g_t2
                hall[h, 3] = g_ch1
                hall[h, 4] = g_ch2
                hall[h, 5] = g_src1
                hall[h, 6] = g_src2
                hall[h, 7] = gc
                hall[h, 8] = pattern
                hall[h, 9] = 1 if gated else 0
                hall[h, 10] = g_tl  # the group's last click (a group may have more than two)
                nhall = h + 1
                if pattern != PATTERN_OTHER and pat_on[pattern] and not gated:
                    st[S_H_ATT] = gn
                    st[S_H_T1] = g_t1
                    st[S_H_CH1] = g_ch1
                    st[S_H_SRC1] = g_src1
                    st[S_H_T2] = g_t2
                    st[S_H_CH2] = g_ch2
                    st[S_H_SRC2] = g_src2
                    st[S_H_PATTERN] = pattern
                    _save(st, ci, ri, di, nout, nap, nhall, sync_pend, g, next_tick, gc, g_t1, g_ch1, g_src1, g_t2,
                          g_ch2, g_src2, g_tl)
                    return HERALD
        # sync ticks recorded for every attempt
        if every:
            lim = tn if which >= 0 else block_end
            if tt < lim:
                _put(out_t, out_ch, out_src, nout, tt, sync_ch, SRC_SYNC)
                nout += 1
                next_tick = _next_emitted_b(next_tick + 1, blo, bhi, on, period_n)
                tt = _tick_time(next_tick, t0, T)
                continue
        if which < 0:
            _save(st, ci, ri, di, nout, nap, nhall, sync_pend, g, next_tick, gc, g_t1, g_ch1, g_src1, g_t2, g_ch2,
                  g_src2, g_tl)
            return DONE
        # consume the event
        if which == 3:
            _put(out_t, out_ch, out_src, nout, tn, sync_ch, SRC_SYNC)
            nout += 1
            sync_pend = -1
            tsync = BIG
            continue
        if which == 0:
            ch = _at(cand_ch, ci)
            src = _at(cand_src, ci)
            att = _at(cand_att, ci)
            ci += 1
            tc = _at(cand_t, ci) if ci < nc else BIG
            if att >= 0 and not _fired_b(att, blo, bhi, on, period_n):
                continue  # attempt suppressed by the read-out pause
        elif which == 4:
            att = -1
            ch = _at(dk_ch, di)
            src = SRC_DARK
            di += 1
            td = _at(dk_t, di) if di < nd else BIG
        elif which == 1:
            att = -1
            ch = rnd_ch[ri]
            src = rnd_src[ri]
            ri += 1
            tr = rnd_t[ri] if ri < nr else BIG
        else:
            att = -1
            ch = ap_ch[api]
            src = SRC_AFTERPULSE
            ap_t[api] = ap_t[nap - 1]
            ap_ch[api] = ap_ch[nap - 1]
            nap -= 1
            ta, api = _first_min(ap_t, nap)
        k = np.uint64(ch)  # (see _at)
        if is_det[k]:
            if tn - last[k] < dead[k]:
                continue
            last[k] = tn
        _put(out_t, out_ch, out_src, nout, tn, ch, src)
        nout += 1
        if is_det[k] and src != SRC_AFTERPULSE:
            if ap_prob > 0.0:
                s0, s1, u = draw_uniform(s0, s1)
                if u < ap_prob and nap < ap_cap:
                    s0, s1, e = draw_std_exponential(s0, s1)
                    tp = tn + dead[k] + np.int64(ap_tau * e)
                    ap_t[nap] = tp
                    ap_ch[nap] = ch
                    if tp < ta:  # (on a tie the earlier entry stays first)
                        ta = tp
                        api = nap
                    nap += 1
            if burst_prob > 0.0:
                s0, s1, u = draw_uniform(s0, s1)
                if u < burst_prob:
                    tb = tn + dead[k]
                    for _ in range(burst_size):
                        if nap >= ap_cap:
                            break
                        s0, s1, e = draw_std_exponential(s0, s1)
                        tb += np.int64(burst_tau * e)
                        ap_t[nap] = tb
                        ap_ch[nap] = ch
                        if tb < ta:
                            ta = tb
                            api = nap
                        nap += 1
        if is_bsm[k]:
            rel = tn - t0
            # the click's attempt a and offset d = rel - a * T, which decide the tick arithmetic: a photon's
            # attempt is known; another click takes the attempt it falls in (0 <= d < T), none before t0
            photon = which == 0 and att >= 0
            if photon:
                a = att
                d = rel - att * T
            elif rel >= 0:
                a, d = _divmod_any(rel, T, rel_lim)
            else:
                a = -1
                d = -BIG
            if cond and sync_pend < 0:
                if 0 <= d < T and rel >= 0:
                    # the tick after the click's attempt is emitted if that attempt fired (a photon's did:
                    # checked above)
                    sync_pend = a + 1 if photon else _next_emitted_b(a + 1, blo, bhi, on, period_n)
                else:
                    m = _divmod_any(rel, T, rel_lim)[0] + 1 if rel >= 0 else 0
                    sync_pend = _next_emitted_b(m, blo, bhi, on, period_n)
                tsync = _tick_time(sync_pend, t0, T)
            if rel >= ws:
                # the attempt n whose window [ws, we) the click may fall in: (rel - ws) // T, at offset off
                if ws - T <= d < ws + T:
                    if d < ws:
                        n = a - 1
                        off = d + T
                    else:
                        n = a
                        off = d
                else:
                    n, off = _divmod_any(rel - ws, T, rel_lim)
                    off += ws  # rel - n * T
                if off < we:
                    # the window's sync reference exists: known for a photon in its own attempt's window
                    if photon and n == att:
                        ref_ok = True
                    elif every:
                        ref_ok = _emitted_b(n, blo, bhi, on, period_n)
                    else:
                        ref_ok = _emitted_b(n + 1, blo, bhi, on, period_n)
                    if ref_ok:
                        if g != n:
                            g = n
                            gend = t0 + g * T + we
                            gc = 0
                        g_tl = tn
                        if gc == 0:
                            g_t1 = tn
                            g_ch1 = ch
                            g_src1 = src
                        elif gc == 1:
                            g_t2 = tn
                            g_ch2 = ch
                            g_src2 = src
                        gc += 1
            # clicks are sparse, so the pending sync tick is usually the very next event: emit it here exactly as
            # the next pass would (which also closes a one-click group the tick has left), saving that pass
            if cond and sync_pend >= 0 and nout + 3 < cap and nhall < hall_cap:
                ts = tsync
                nxt = ts < block_end and ts < tc and ts < td and ts < tr and ts < ta
                if nxt and ts >= gend:
                    if gc >= 2:
                        nxt = False  # a coincidence to close: the next pass does it
                    else:
                        g = -1
                        gend = NO_GROUP
                if nxt:
                    _put(out_t, out_ch, out_src, nout, ts, sync_ch, SRC_SYNC)
                    nout += 1
                    sync_pend = -1
                    tsync = BIG


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
