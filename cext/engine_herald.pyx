# cython: language_level=3
"""Herald-stage kernels: delay correction + canonical reordering, and the herald scan.

Pure functions over (parameters, state, chunk arrays, preallocated outputs).  The
state is a small int64 array (a view of the structured record owned by
``timetag.engine.herald``); indices into it are the ``S_*`` constants below, which
the Python side mirrors in ``HERALD_STATE_FIELDS`` (same order).

Channel roles are looked up through a *slot* table: slot = index of the channel in
the lab's sorted channel list; per slot a role bit mask, a delay, a sort rank, the
setting index and the BSM detector index.
"""
from libc.stdint cimport int8_t, int32_t, int64_t, uint64_t

# role bits (mirrored in timetag/engine/params.py)
cdef enum: R_SYNC = 1
cdef enum: R_BSM = 2
cdef enum: R_READY = 4
cdef enum: R_SETTING = 8
cdef enum: R_FLUO = 16

# state indices (mirrored in timetag/engine/herald.py HERALD_STATE_FIELDS)
cdef enum: S_SYNC_TIME = 0
cdef enum: S_HAVE_SYNC = 1
cdef enum: S_ATT_OPEN = 2
cdef enum: S_ATT_N = 3
cdef enum: S_T1 = 4
cdef enum: S_D1 = 5
cdef enum: S_T2 = 6
cdef enum: S_D2 = 7
cdef enum: S_PEND_HEAD = 8
cdef enum: S_PEND_N = 9
cdef enum: S_N_SYNCS = 10
cdef enum: S_N_CLICKS = 11
cdef enum: S_N_ACCEPTED = 12
cdef enum: S_N_NOSYNC = 13
cdef enum: S_N_PEND_DROPPED = 14

cdef enum: PAT_PSI_PLUS = 1
cdef enum: PAT_PSI_MINUS = 2
cdef enum: PAT_OTHER = 3

cdef enum: HERALD_COLS = 8


def reorder(const int64_t[::1] time, const int32_t[::1] channel, int64_t chan_lo,
            const int32_t[::1] slot_of, const int64_t[::1] slot_delay, const int8_t[::1] slot_rank,
            int64_t[::1] buf_time, int32_t[::1] buf_slot, Py_ssize_t n_buf, int64_t[::1] singles):
    """Append the lab's tags of a raw chunk to the sorted buffer, delay-corrected.

    The buffer is kept in canonical order (time, rank, stream position) by insertion
    from the back: delays move a tag by at most (max delay - min delay), so the
    walk is short and the whole pass is O(n) for realistic streams.  ``singles``
    gets one count per tag: index = slot, last element = channels the lab does not use.
    Returns the new buffer length; the caller guarantees capacity n_buf + len(time).
    """
    cdef Py_ssize_t i, j, n = time.shape[0], nslots = slot_of.shape[0], n0 = n_buf
    cdef Py_ssize_t other = singles.shape[0] - 1
    cdef uint64_t c
    cdef int64_t t
    cdef int32_t s
    cdef int8_t r
    with nogil:
        for i in range(n):
            # one unsigned compare covers both ends of the table
            c = <uint64_t>(channel[i] - chan_lo)
            if c >= <uint64_t>nslots:
                continue
            s = slot_of[c]
            if s < 0:
                continue
            singles[s] += 1
            t = time[i] - slot_delay[s]
            r = slot_rank[s]
            j = n_buf
            while j > 0 and (buf_time[j - 1] > t or (buf_time[j - 1] == t and slot_rank[buf_slot[j - 1]] > r)):
                buf_time[j] = buf_time[j - 1]
                buf_slot[j] = buf_slot[j - 1]
                j -= 1
            buf_time[j] = t
            buf_slot[j] = s
            n_buf += 1
        singles[other] += n - (n_buf - n0)  # the lab's channels are counted above, the rest here
    return n_buf


# The helpers take raw pointers: passing a typed memoryview to a function costs an atomic
# reference count per call, which dominated the scan.
cdef inline void _add_click(int64_t* st, int64_t t, int64_t det) noexcept nogil:
    st[S_ATT_N] += 1
    st[S_N_ACCEPTED] += 1
    if st[S_ATT_N] == 1:
        st[S_T1] = t
        st[S_D1] = det
    st[S_T2] = t
    st[S_D2] = det


cdef inline Py_ssize_t _emit(int64_t* st, int64_t coincidence, const int8_t* det_arm,
                             const int8_t* det_pol, const int32_t* det_chan,
                             int64_t* out, Py_ssize_t nh) noexcept nogil:
    """Close the current attempt; write a herald row when it had >= 2 accepted clicks."""
    cdef int64_t n = st[S_ATT_N], d1 = st[S_D1], d2 = st[S_D2], pattern = PAT_OTHER
    cdef int64_t sync = st[S_SYNC_TIME]
    st[S_ATT_N] = 0
    if n < 2:
        return nh
    if n == 2 and d1 != d2 and st[S_T2] - st[S_T1] <= coincidence and det_pol[d1] != det_pol[d2]:
        pattern = PAT_PSI_PLUS if det_arm[d1] == det_arm[d2] else PAT_PSI_MINUS
    out += nh * HERALD_COLS
    out[0] = st[S_T2]
    out[1] = sync
    out[2] = pattern
    out[3] = det_chan[d1]
    out[4] = det_chan[d2]
    out[5] = st[S_T1] - sync
    out[6] = st[S_T2] - sync
    out[7] = n
    return nh + 1


cdef inline void _histogram(int64_t dt, int64_t det, int64_t lo, int64_t hi, int64_t width, double inv_width,
                            int64_t* hist, Py_ssize_t nbins) noexcept nogil:
    # a 64-bit division per click costs more than the rest of the scan: multiply by the
    # reciprocal, then correct the (at most one-off) rounding
    cdef int64_t x, q
    if lo <= dt < hi:
        x = dt - lo
        q = <int64_t>(x * inv_width)
        if q * width > x:
            q -= 1
        elif (q + 1) * width <= x:
            q += 1
        hist[det * nbins + q] += 1


def herald_scan(int64_t[::1] st, const int64_t[::1] par,
                const int8_t[::1] slot_role, const int8_t[::1] slot_setting, const int8_t[::1] slot_det,
                const int8_t[::1] det_arm, const int8_t[::1] det_pol, const int32_t[::1] det_chan,
                const int64_t[::1] time, const int32_t[::1] slot, int64_t horizon, bint flush,
                int64_t[:, ::1] heralds, int64_t[::1] ready, int64_t[::1] set_time, int8_t[::1] set_idx,
                int64_t[::1] fluo, int64_t[:, ::1] arrival, int64_t[::1] pend_time, int8_t[::1] pend_det):
    """Scan final, canonically ordered tags: associate clicks with syncs, group, classify.

    ``par`` = [sync_next (0/1), window_start, window_stop, coincidence, hist_lo, hist_hi, hist_bin].
    Also splits the round stage's inputs (ready times, setting tags, fluorescence
    times) into their output arrays in the same pass.  ``horizon``: no tag earlier
    than it will come any more (closes 'previous' attempts whose window has passed).
    Returns (n_heralds, n_ready, n_setting, n_fluo, herald_watermark): every herald
    with time < watermark has been written by this or an earlier call.
    """
    cdef Py_ssize_t i, k, n = time.shape[0], nh = 0, nr = 0, ns = 0, nf = 0
    cdef Py_ssize_t cap = pend_time.shape[0], head, pn
    cdef bint sync_next = par[0] != 0
    cdef int64_t w0 = par[1], w1 = par[2], coin = par[3], hlo = par[4], hhi = par[5], hbin = par[6]
    cdef int64_t lower = w0 if w0 < hlo else hlo
    cdef int64_t t, dt, sync, ct, watermark
    cdef int8_t role, det
    cdef int32_t s
    cdef Py_ssize_t nbins = arrival.shape[1]
    cdef double inv_bin = 1.0 / hbin
    if heralds.shape[0] == 0 or heralds.shape[1] != HERALD_COLS:
        raise ValueError("heralds output needs >= 1 row of 8 columns")
    if ready.shape[0] < n or set_time.shape[0] < n or set_idx.shape[0] < n or fluo.shape[0] < n:
        raise ValueError("ready/setting/fluorescence outputs need room for every tag")
    if cap < 1 or cap & (cap - 1):
        raise ValueError(f"pending click capacity must be a power of two (got {cap})")
    # empty detector tables (Bob) are never indexed: any valid address will do
    cdef int64_t* S = &st[0]
    cdef int64_t* HO = &heralds[0, 0]
    cdef int64_t* AR = &arrival[0, 0] if arrival.shape[0] > 0 else S
    cdef const int8_t* ARM = &det_arm[0] if det_arm.shape[0] > 0 else <const int8_t*>&slot_role[0]
    cdef const int8_t* POL = &det_pol[0] if det_pol.shape[0] > 0 else <const int8_t*>&slot_role[0]
    cdef const int32_t* DCH = &det_chan[0] if det_chan.shape[0] > 0 else <const int32_t*>&slot[0]
    # hot state in locals (the compiler cannot keep values behind S in registers: outputs may alias)
    cdef int64_t sync_time = S[S_SYNC_TIME], have_sync = S[S_HAVE_SYNC], att_open = S[S_ATT_OPEN]
    cdef int64_t n_syncs = 0, n_clicks = 0, n_nosync = 0
    cdef Py_ssize_t mask = cap - 1  # cap is a power of two
    with nogil:
        for i in range(n):
            t = time[i]
            s = slot[i]
            role = slot_role[s]
            if role & R_SYNC:
                n_syncs += 1
                if sync_next:
                    # every pending click belongs to this sync (the first sync at or after it)
                    head = S[S_PEND_HEAD]
                    pn = S[S_PEND_N]
                    S[S_SYNC_TIME] = t
                    for k in range(pn):
                        ct = pend_time[(head + k) & mask]
                        det = pend_det[(head + k) & mask]
                        dt = ct - t
                        _histogram(dt, det, hlo, hhi, hbin, inv_bin, AR, nbins)
                        if w0 <= dt < w1:
                            _add_click(S, ct, det)
                    S[S_PEND_N] = 0
                    S[S_PEND_HEAD] = 0
                    nh = _emit(S, coin, ARM, POL, DCH, HO, nh)
                else:
                    if att_open:
                        nh = _emit(S, coin, ARM, POL, DCH, HO, nh)
                    sync_time = t
                    S[S_SYNC_TIME] = t
                    have_sync = 1
                    att_open = 1
            if role & R_BSM:
                n_clicks += 1
                det = slot_det[s]
                if sync_next:
                    head = S[S_PEND_HEAD]
                    pn = S[S_PEND_N]
                    # a pending click older than t + lower can only get dt < lower: useless
                    while pn > 0 and pend_time[head] < t + lower:
                        head = (head + 1) & mask
                        pn -= 1
                    if pn == cap:
                        head = (head + 1) & mask
                        pn -= 1
                        S[S_N_PEND_DROPPED] += 1
                    pend_time[(head + pn) & mask] = t
                    pend_det[(head + pn) & mask] = det
                    S[S_PEND_HEAD] = head
                    S[S_PEND_N] = pn + 1
                elif have_sync:
                    dt = t - sync_time
                    _histogram(dt, det, hlo, hhi, hbin, inv_bin, AR, nbins)
                    if att_open and w0 <= dt < w1:
                        _add_click(S, t, det)
                else:
                    n_nosync += 1
            if role & R_READY:
                ready[nr] = t
                nr += 1
            if role & R_SETTING:
                set_time[ns] = t
                set_idx[ns] = slot_setting[s]
                ns += 1
            if role & R_FLUO:
                fluo[nf] = t
                nf += 1
        S[S_HAVE_SYNC] = have_sync
        S[S_N_SYNCS] += n_syncs
        S[S_N_CLICKS] += n_clicks
        S[S_N_NOSYNC] += n_nosync
        if sync_next:
            if flush:
                S[S_N_NOSYNC] += S[S_PEND_N]
                S[S_PEND_N] = 0
                S[S_PEND_HEAD] = 0
            watermark = horizon
            if S[S_PEND_N] > 0 and pend_time[S[S_PEND_HEAD]] < watermark:
                watermark = pend_time[S[S_PEND_HEAD]]
        else:
            if att_open and (flush or sync_time + w1 <= horizon):
                nh = _emit(S, coin, ARM, POL, DCH, HO, nh)
                att_open = 0
            watermark = horizon
            if att_open and sync_time + w0 < watermark:
                watermark = sync_time + w0
        S[S_ATT_OPEN] = att_open
    return nh, nr, ns, nf, watermark
