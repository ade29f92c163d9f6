# cython: language_level=3
"""Herald-stage kernels: delay correction + canonical reordering, and the herald scan.

Pure functions over (parameters, state, chunk arrays, preallocated outputs).  The
state is a small int64 array (a view of the structured record owned by
``timetag.engine.herald``); indices into it are the ``S_*`` constants below, which
the Python side mirrors in ``HERALD_STATE_FIELDS`` (same order).

Channel roles are looked up through a *slot* table: slot = index of the channel in
the lab's sorted channel list; per slot a role bit mask, a sort-key offset (delay and
rank), the setting index and the BSM detector index.

Speed notes (measured on the dense benchmark stream, cachegrind + wall clock): the
channel sequence is random, so branch mispredictions matter.  The reorder pass is
branch-free up to the insertion walk; the scan branches on the role (cheaper than a
fully branch-free body, which executed twice the instructions and ran slower) but
splits outputs and accepts clicks with selects.  A fused single-pass variant (small
sorted ring, scanned in batches) was tried and measured slower than these two passes.
Also tried for 'previous' and dropped (cachegrind, 1 M bench tags): selects for the role
with only the herald emission branching (mispredicts 0.46 -> 0.16 per tag, instructions
57 -> 102 per tag, slower); splitting the clicks out first with their sync's time and
attempt number, then grouping them by a select (mispredicts -> 0.12, instructions -> 70,
no faster on this machine).  The scan's cost is instructions, not just mispredictions.
"""
from libc.stdint cimport int8_t, int32_t, int64_t, intptr_t, uint64_t
from libc.stdlib cimport calloc, free

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

# Matches timetag.records.HERALD_DTYPE (an unaligned numpy dtype = a packed struct): records
# are written in place instead of int64 rows converted field by field in Python.
cdef packed struct HeraldRec:
    int64_t time
    int64_t sync_time
    int8_t pattern
    int32_t det1
    int32_t det2
    int64_t dt1
    int64_t dt2
    int32_t nclicks


cdef void _insert_back(int64_t* BK, int32_t* BS, Py_ssize_t j, int64_t key, int32_t s) noexcept nogil:
    """Insert key (and its slot) at the end of the sorted buffer [0, j), walking back."""
    while j > 0 and BK[j - 1] > key:
        BK[j] = BK[j - 1]
        BS[j] = BS[j - 1]
        j -= 1
    BK[j] = key
    BS[j] = s


def reorder(const int64_t[::1] time, const int32_t[::1] channel, int64_t chan_lo,
            const int32_t[::1] slot_of, const int64_t[::1] slot_kofs,
            int64_t[::1] buf_key, int32_t[::1] buf_slot, Py_ssize_t n_buf, int64_t[::1] singles):
    """Append the lab's tags of a raw chunk to the sorted buffer, delay-corrected.

    The buffer holds sort keys 4 * corrected time + rank (times stay inside +-2**61 ps)
    and slots, in canonical order (time, rank, stream position), kept by insertion from
    the back: delays move a tag by at most (max delay - min delay), so the walk is short
    and the pass is O(n) for realistic streams.  ``slot_of[channel - chan_lo]`` = slot,
    nslots for channels the lab does not use, and a last extra entry (nslots) for
    channels outside the table; ``slot_kofs[s]`` = 4 * delay - rank (nslots + 1 entries).
    ``singles[s]`` gets one count per tag (last element: the other channels).
    Returns the new buffer length; the caller guarantees capacity n_buf + len(time) + 1.
    """
    cdef Py_ssize_t i, j, n = time.shape[0], nspan = slot_of.shape[0] - 1
    cdef Py_ssize_t nslots = singles.shape[0] - 1
    cdef uint64_t c
    cdef int64_t key, is_lab
    cdef int64_t BIG = 0x7FFFFFFFFFFFFFFF
    cdef int32_t s
    if buf_key.shape[0] < n_buf + n + 1 or buf_slot.shape[0] < n_buf + n + 1:
        raise ValueError("reorder buffer too small")
    if slot_kofs.shape[0] != nslots + 1 or nspan < 0:
        raise ValueError("per-slot tables disagree in length")
    if n == 0:
        return n_buf
    cdef const int64_t* T = &time[0]
    cdef const int32_t* C = &channel[0]
    cdef const int32_t* SLOT = &slot_of[0]
    cdef const int64_t* KOFS = &slot_kofs[0]
    cdef int64_t* BK = &buf_key[0]
    cdef int32_t* BS = &buf_slot[0]
    # singles counted in 4 interleaved copies: a few hot channels (syncs, the other channels)
    # would otherwise chain every count through one memory cell (store -> load forwarding)
    cdef Py_ssize_t width = nslots + 1
    cdef int64_t* SNG = <int64_t*>calloc(4 * width, sizeof(int64_t))
    if SNG == NULL:
        raise MemoryError()
    # per slot: keep the key (lab channels) or replace it by BIG (the other channels' slot)
    cdef int64_t* KEEP = <int64_t*>calloc(2 * width, sizeof(int64_t))
    if KEEP == NULL:
        free(SNG)
        raise MemoryError()
    cdef int64_t* FILL = KEEP + width
    for i in range(nslots):
        KEEP[i] = -1
    FILL[nslots] = BIG
    with nogil:
        for i in range(n):
            # no branch on the (random) channel: other channels count as slot nslots and get
            # a key above everything, so they are written past the end and not kept
            c = <uint64_t>(C[i] - chan_lo)
            c = c if c < <uint64_t>nspan else <uint64_t>nspan
            s = SLOT[c]
            SNG[(s << 2) | (i & 3)] += 1
            is_lab = s != nslots
            key = ((T[i] * 4 - KOFS[s]) & KEEP[s]) | FILL[s]
            # the walk back (a delay moved the tag before buffered ones: ~8% of bench tags) on
            # its own path: with the walk loop as the only path gcc spilled the common case's
            # values (~20% more instructions per tag, cachegrind)
            if n_buf > 0 and BK[n_buf - 1] > key:
                _insert_back(BK, BS, n_buf, key, s)
            else:
                BK[n_buf] = key
                BS[n_buf] = s
            n_buf += is_lab
        for i in range(4 * width):
            singles[i >> 2] += SNG[i]
    free(SNG)
    free(KEEP)
    return n_buf


cdef Py_ssize_t _put_herald(HeraldRec* out, Py_ssize_t nh, int64_t n, int64_t sync, int64_t t1, int64_t d1,
                            int64_t t2, int64_t d2, int64_t coincidence, const int8_t* det_arm,
                            const int8_t* det_pol, const int32_t* det_chan) noexcept nogil:
    """A herald record for a closed attempt with n >= 2 accepted clicks.  Values, not a state
    pointer: the caller keeps its state in registers."""
    cdef int64_t pattern = PAT_OTHER
    if n == 2 and d1 != d2 and t2 - t1 <= coincidence and det_pol[d1] != det_pol[d2]:
        pattern = PAT_PSI_PLUS if det_arm[d1] == det_arm[d2] else PAT_PSI_MINUS
    out += nh
    out.time = t2
    out.sync_time = sync
    out.pattern = <int8_t>pattern
    out.det1 = det_chan[d1]
    out.det2 = det_chan[d2]
    out.dt1 = t1 - sync
    out.dt2 = t2 - sync
    out.nclicks = <int32_t>n
    return nh + 1


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
                             HeraldRec* out, Py_ssize_t nh) noexcept nogil:
    """Close the current attempt; write a herald row when it had >= 2 accepted clicks."""
    cdef int64_t n = st[S_ATT_N], d1 = st[S_D1], d2 = st[S_D2], pattern = PAT_OTHER
    cdef int64_t sync = st[S_SYNC_TIME]
    st[S_ATT_N] = 0
    if n < 2:
        return nh
    if n == 2 and d1 != d2 and st[S_T2] - st[S_T1] <= coincidence and det_pol[d1] != det_pol[d2]:
        pattern = PAT_PSI_PLUS if det_arm[d1] == det_arm[d2] else PAT_PSI_MINUS
    out += nh
    out.time = st[S_T2]
    out.sync_time = sync
    out.pattern = <int8_t>pattern
    out.det1 = det_chan[d1]
    out.det2 = det_chan[d2]
    out.dt1 = st[S_T1] - sync
    out.dt2 = st[S_T2] - sync
    out.nclicks = <int32_t>n
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
                const int64_t[::1] keys, const int32_t[::1] slot, int64_t horizon, bint flush,
                HeraldRec[::1] heralds, int64_t[::1] ready, int64_t[::1] set_time, int8_t[::1] set_idx,
                int64_t[::1] fluo, int64_t[:, ::1] arrival, int64_t[::1] pend_time, int8_t[::1] pend_det):
    """Scan final, canonically ordered tags: associate clicks with syncs, group, classify.

    ``par`` = [sync_next (0/1), window_start, window_stop, coincidence, hist_lo, hist_hi, hist_bin].
    Also splits the round stage's inputs (ready times, setting tags, fluorescence
    times) into their output arrays in the same pass.  ``horizon``: no tag earlier
    than it will come any more (closes 'previous' attempts whose window has passed).
    Returns (n_heralds, n_ready, n_setting, n_fluo, herald_watermark): every herald
    with time < watermark has been written by this or an earlier call.
    """
    cdef Py_ssize_t i, k, n = keys.shape[0], nh = 0, nr = 0, ns = 0, nf = 0
    cdef Py_ssize_t cap = pend_time.shape[0], head, pn
    cdef bint sync_next = par[0] != 0
    cdef int64_t w0 = par[1], w1 = par[2], coin = par[3], hlo = par[4], hhi = par[5], hbin = par[6]
    cdef int64_t lower = w0 if w0 < hlo else hlo
    cdef int64_t t, dt, sync, ct, watermark
    cdef int8_t role, det
    cdef int32_t s
    cdef Py_ssize_t nbins = arrival.shape[1]
    cdef double inv_bin = 1.0 / hbin
    if heralds.shape[0] == 0:
        raise ValueError("heralds output needs >= 1 record")
    if ready.shape[0] < n or set_time.shape[0] < n or set_idx.shape[0] < n or fluo.shape[0] < n:
        raise ValueError("ready/setting/fluorescence outputs need room for every tag")
    if cap < 1 or cap & (cap - 1):
        raise ValueError(f"pending click capacity must be a power of two (got {cap})")
    # empty detector tables (Bob) are never indexed: any valid address will do
    cdef int64_t* S = &st[0]
    cdef HeraldRec* HO = &heralds[0]
    cdef int64_t* AR = &arrival[0, 0] if arrival.shape[0] > 0 else S
    cdef const int8_t* ARM = &det_arm[0] if det_arm.shape[0] > 0 else <const int8_t*>&slot_role[0]
    cdef const int8_t* POL = &det_pol[0] if det_pol.shape[0] > 0 else <const int8_t*>&slot_role[0]
    cdef const int32_t* DCH = &det_chan[0] if det_chan.shape[0] > 0 else <const int32_t*>&slot[0]
    # hot state in locals (the compiler cannot keep values behind S in registers: outputs may alias)
    cdef int64_t sync_time = S[S_SYNC_TIME], have_sync = S[S_HAVE_SYNC], att_open = S[S_ATT_OPEN]
    cdef int64_t n_syncs = 0, n_clicks = 0, n_nosync = 0
    cdef int64_t att_n = S[S_ATT_N], t1 = S[S_T1], d1 = S[S_D1], t2 = S[S_T2], d2 = S[S_D2], n_acc = 0
    cdef int64_t rl, is_sync, is_bsm, dl, hv, acc, x, q, first
    cdef int64_t wspan = w1 - w0 if w1 > w0 else 0, hspan = hhi - hlo if hhi > hlo else 0
    cdef intptr_t pa, pj
    cdef int64_t junk[8]
    cdef Py_ssize_t mask = cap - 1  # cap is a power of two
    with nogil:
        if sync_next:
            for i in range(n):
                t = keys[i] >> 2
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
        else:
            # sync_reference 'previous', state in locals.  Measured here: a fully branch-free
            # body (selects instead of role branches) executes twice the instructions and is
            # slower than the mispredictions it saves; only the outputs are branch-free.
            for i in range(n):
                t = keys[i] >> 2
                s = slot[i]
                rl = slot_role[s]
                # unconditional store, conditional advance
                ready[nr] = t
                nr += (rl >> 2) & 1
                set_time[ns] = t
                set_idx[ns] = slot_setting[s]
                ns += (rl >> 3) & 1
                fluo[nf] = t
                nf += (rl >> 4) & 1
                if rl & R_SYNC:
                    n_syncs += 1
                    if att_n >= 2:
                        nh = _put_herald(HO, nh, att_n, sync_time, t1, d1, t2, d2, coin, ARM, POL, DCH)
                    att_n = 0
                    sync_time = t
                    have_sync = 1
                    att_open = 1
                if rl & R_BSM:
                    n_clicks += 1
                    if have_sync:
                        dt = t - sync_time
                        dl = slot_det[s]
                        if <uint64_t>(dt - hlo) < <uint64_t>hspan:
                            x = dt - hlo
                            q = <int64_t>(x * inv_bin)
                            q -= q * hbin > x
                            q += (q + 1) * hbin <= x
                            AR[dl * nbins + q] += 1
                        # accepting a click: selects, not branches (whether a click falls in the
                        # window is as random as the channel sequence)
                        acc = att_open & (<uint64_t>(dt - w0) < <uint64_t>wspan)
                        first = acc & (att_n == 0)
                        t1 += (t - t1) & -first
                        d1 += (dl - d1) & -first
                        t2 += (t - t2) & -acc
                        d2 += (dl - d2) & -acc
                        att_n += acc
                        n_acc += acc
                    else:
                        n_nosync += 1
            S[S_ATT_N] = att_n
            S[S_T1] = t1
            S[S_D1] = d1
            S[S_T2] = t2
            S[S_D2] = d2
            S[S_N_ACCEPTED] += n_acc
            S[S_SYNC_TIME] = sync_time
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
