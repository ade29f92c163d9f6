# cython: language_level=3
"""Herald-stage kernel: delay correction, canonical reordering and the herald scan in one pass.

A pure function over (parameters, state, chunk arrays, preallocated outputs).  The
state is a small int64 array (a view of the structured record owned by
``timetag.engine.herald``); indices into it are the ``S_*`` constants below, which
the Python side mirrors in ``HERALD_STATE_FIELDS`` (same order).

Channel roles are looked up through a *slot* table: slot = index of the channel in
the lab's sorted channel list; per slot a role bit mask, a sort-key offset, the
setting index and the BSM detector index.

Reordering: corrected = raw - delay moves a tag back by at most ``max_delay``, so a
tag is final (no later tag can sort before it) once the raw clock has passed its
corrected time + max_delay.  Tags wait in a small sorted ring (insertion from the
back, usually zero or one step) and are scanned as soon as they are final: the ring
stays in L1 and no intermediate array of the whole chunk is written or re-read.
"""
from libc.stdint cimport int8_t, int32_t, int64_t, uint64_t
from libc.string cimport memmove

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
cdef enum: S_RING_HEAD = 15
cdef enum: S_RING_N = 16
cdef enum: S_FIELDS = 17

cdef enum: PAT_PSI_PLUS = 1
cdef enum: PAT_PSI_MINUS = 2
cdef enum: PAT_OTHER = 3

# Times stay inside +-2**61 ps (params.INF = 2**62 is the 'never' sentinel), so a sort key
# 4 * time + rank fits an int64 and one compare orders (time, rank).
cdef int64_t KEY_LIMIT = 1LL << 61
cdef Py_ssize_t RING_SOFT = 4096

# Matches timetag.records.HERALD_DTYPE (unaligned numpy dtype = packed struct): records
# are written in place, no int64 rows converted field by field in Python.
cdef packed struct HeraldRec:
    int64_t time
    int64_t sync_time
    int8_t pattern
    int32_t det1
    int32_t det2
    int64_t dt1
    int64_t dt2
    int32_t nclicks


cdef struct Scan:
    # hot state in a local struct, so the compiler keeps it in registers (outputs may alias
    # the state array, which would force a reload after every store)
    int64_t sync_time, have_sync, att_open, att_n, t1, d1, t2, d2
    int64_t pend_head, pend_n, pend_dropped
    int64_t n_syncs, n_clicks, n_accepted, n_nosync
    Py_ssize_t nh, nr, ns, nf


cdef struct Tab:
    const int8_t* role
    const int8_t* setting
    const int8_t* det
    const int8_t* arm
    const int8_t* pol
    const int32_t* chan
    HeraldRec* her
    int64_t* ready
    int64_t* set_time
    int8_t* set_idx
    int64_t* fluo
    int64_t* hist
    int64_t* pend_time
    int8_t* pend_det
    Py_ssize_t nbins, pmask
    int64_t w0, wspan, coin, hlo, hspan, hbin, lower
    double inv_bin


cdef Py_ssize_t _emit(Scan* c, const Tab* T) noexcept nogil:
    """Close the current attempt; write a herald record when it had >= 2 accepted clicks.
    Out of line on purpose: it runs for a few percent of the tags."""
    cdef int64_t n = c.att_n, d1 = c.d1, d2 = c.d2, pattern = PAT_OTHER, sync = c.sync_time
    cdef HeraldRec* r
    c.att_n = 0
    if n < 2:
        return c.nh
    if n == 2 and d1 != d2 and c.t2 - c.t1 <= T.coin and T.pol[d1] != T.pol[d2]:
        pattern = PAT_PSI_PLUS if T.arm[d1] == T.arm[d2] else PAT_PSI_MINUS
    r = T.her + c.nh
    r.time = c.t2
    r.sync_time = sync
    r.pattern = <int8_t>pattern
    r.det1 = T.chan[d1]
    r.det2 = T.chan[d2]
    r.dt1 = c.t1 - sync
    r.dt2 = c.t2 - sync
    r.nclicks = <int32_t>n
    c.nh += 1
    return c.nh


cdef inline Py_ssize_t _bin(const Tab* T, int64_t x) noexcept nogil:
    # a 64-bit division per click costs more than the rest of the scan: multiply by the
    # reciprocal, then correct the (at most one-off) rounding
    cdef int64_t q = <int64_t>(x * T.inv_bin)
    if q * T.hbin > x:
        q -= 1
    elif (q + 1) * T.hbin <= x:
        q += 1
    return q


cdef inline void _outputs(Scan* c, const Tab* T, int64_t t, int32_t s, int64_t role) noexcept nogil:
    # unconditional store, conditional advance: no branch on the (random) channel
    T.ready[c.nr] = t
    c.nr += (role >> 2) & 1
    T.set_time[c.ns] = t
    T.set_idx[c.ns] = T.setting[s]
    c.ns += (role >> 3) & 1
    T.fluo[c.nf] = t
    c.nf += (role >> 4) & 1


cdef inline void _tag_previous(Scan* c, const Tab* T, int64_t t, int32_t s) noexcept nogil:
    """One final tag, sync_reference 'previous', written branch-light: the channel sequence is
    random, so every data-dependent branch would mispredict a large fraction of the time."""
    cdef int64_t role = T.role[s]
    cdef int64_t is_sync = role & R_SYNC
    cdef int64_t is_bsm = (role >> 1) & 1
    cdef int64_t det, dt, hv, acc, first, x
    cdef Py_ssize_t idx
    _outputs(c, T, t, s, role)
    if is_sync & (c.att_n >= 2):
        _emit(c, T)
    c.att_n = 0 if is_sync else c.att_n
    c.sync_time = t if is_sync else c.sync_time
    c.have_sync |= is_sync
    c.att_open |= is_sync
    c.n_syncs += is_sync
    # BSM click: histogram (all clicks after a sync) and the acceptance window
    det = T.det[s]
    dt = t - c.sync_time
    hv = is_bsm & c.have_sync
    c.n_clicks += is_bsm
    c.n_nosync += is_bsm ^ hv
    acc = hv & c.att_open & (<uint64_t>(dt - T.w0) < <uint64_t>T.wspan)
    hv &= <uint64_t>(dt - T.hlo) < <uint64_t>T.hspan
    x = (dt - T.hlo) if hv else 0
    idx = (det * T.nbins + _bin(T, x)) if hv else 0
    T.hist[idx] += hv
    first = acc & (c.att_n == 0)
    c.t1 = t if first else c.t1
    c.d1 = det if first else c.d1
    c.t2 = t if acc else c.t2
    c.d2 = det if acc else c.d2
    c.att_n += acc
    c.n_accepted += acc


cdef inline void _add_click(Scan* c, int64_t t, int64_t det) noexcept nogil:
    c.att_n += 1
    c.n_accepted += 1
    if c.att_n == 1:
        c.t1 = t
        c.d1 = det
    c.t2 = t
    c.d2 = det


cdef inline void _tag_next(Scan* c, const Tab* T, int64_t t, int32_t s) noexcept nogil:
    """One final tag, sync_reference 'next': clicks wait in a ring until their sync comes."""
    cdef int64_t role = T.role[s], ct, dt
    cdef int64_t det
    cdef Py_ssize_t k, head, pn, mask = T.pmask
    _outputs(c, T, t, s, role)
    if role & R_SYNC:
        c.n_syncs += 1
        # every pending click belongs to this sync (the first sync at or after it)
        head = c.pend_head
        pn = c.pend_n
        c.sync_time = t
        for k in range(pn):
            ct = T.pend_time[(head + k) & mask]
            det = T.pend_det[(head + k) & mask]
            dt = ct - t
            if <uint64_t>(dt - T.hlo) < <uint64_t>T.hspan:
                T.hist[det * T.nbins + _bin(T, dt - T.hlo)] += 1
            if <uint64_t>(dt - T.w0) < <uint64_t>T.wspan:
                _add_click(c, ct, det)
        c.pend_n = 0
        c.pend_head = 0
        _emit(c, T)
    if role & R_BSM:
        c.n_clicks += 1
        det = T.det[s]
        head = c.pend_head
        pn = c.pend_n
        # a pending click older than t + lower can only get dt < lower: useless
        while pn > 0 and T.pend_time[head] < t + T.lower:
            head = (head + 1) & mask
            pn -= 1
        if pn == mask + 1:
            head = (head + 1) & mask
            pn -= 1
            c.pend_dropped += 1
        T.pend_time[(head + pn) & mask] = t
        T.pend_det[(head + pn) & mask] = <int8_t>det
        c.pend_head = head
        c.pend_n = pn + 1


def herald_pass(int64_t[::1] st, const int64_t[::1] par, int64_t chan_lo, int64_t max_delay,
                const int32_t[::1] slot_of, const int64_t[::1] slot_kofs,
                const int8_t[::1] slot_role, const int8_t[::1] slot_setting, const int8_t[::1] slot_det,
                const int8_t[::1] det_arm, const int8_t[::1] det_pol, const int32_t[::1] det_chan,
                const int64_t[::1] time, const int32_t[::1] channel,
                int64_t[::1] ring_key, int32_t[::1] ring_slot, int64_t horizon, bint flush,
                HeraldRec[::1] heralds, int64_t[::1] ready, int64_t[::1] set_time, int8_t[::1] set_idx,
                int64_t[::1] fluo, int64_t[:, ::1] arrival, int64_t[::1] pend_time, int8_t[::1] pend_det,
                int64_t[::1] singles):
    """Add a raw chunk (may be empty) to the stream and scan every tag that became final.

    ``par`` = [sync_next (0/1), window_start, window_stop, coincidence, hist_lo, hist_hi, hist_bin].
    ``slot_kofs[s]`` = 4 * delay - rank: the sort key of a tag is 4 * raw - kofs.
    ``horizon``: no tag with corrected time < horizon will come any more (the caller's
    max(raw end - max_delay)); tags below it are scanned before returning, the rest stay
    in the ring (``flush``: everything is scanned and open attempts are closed).
    The ring (``ring_key``/``ring_slot``, live range in the state) needs room for its
    current content + len(time); ``ready``/``set_*``/``fluo`` for that many + 1;
    ``heralds`` for half of that + the clicks carried in the state + 2.
    Also split out in the same pass: ready times, setting tags, fluorescence times,
    per-slot singles (last element: tags of channels the lab does not use) and the
    arrival histograms.  Returns (n_heralds, n_ready, n_setting, n_fluo, herald_watermark):
    every herald with time < watermark has been written by this or an earlier call.
    """
    cdef Py_ssize_t i, j, n = time.shape[0], nspan = slot_of.shape[0]
    cdef Py_ssize_t cap = ring_key.shape[0], head, tail, soft, live, n_lab = 0
    cdef Py_ssize_t pcap = pend_time.shape[0]
    cdef uint64_t cc
    cdef int32_t s
    cdef int64_t key, hk, ti, watermark
    cdef bint sync_next = par[0] != 0
    cdef Scan c
    cdef Tab T
    cdef int64_t dummy = 0
    if st.shape[0] < S_FIELDS or par.shape[0] < 7:
        raise ValueError("herald state / parameter arrays too short")
    live = st[S_RING_N]
    if cap < live + n + 1:
        raise ValueError(f"ring needs room for {live + n + 1} tags (has {cap})")
    if ready.shape[0] < live + n + 1 or set_time.shape[0] < live + n + 1 or set_idx.shape[0] < live + n + 1 \
            or fluo.shape[0] < live + n + 1:
        raise ValueError("ready/setting/fluorescence outputs need room for every tag + 1")
    if heralds.shape[0] < (live + n + st[S_PEND_N] + st[S_ATT_N]) // 2 + 2:
        raise ValueError("herald output too small")
    if pcap < 1 or pcap & (pcap - 1):
        raise ValueError(f"pending click capacity must be a power of two (got {pcap})")
    if singles.shape[0] < slot_role.shape[0] + 1 or slot_kofs.shape[0] < slot_role.shape[0]:
        raise ValueError("per-slot tables disagree in length")
    T.role = &slot_role[0]
    T.setting = &slot_setting[0]
    T.det = &slot_det[0]
    # empty detector tables (Bob) are never indexed: any valid address will do
    T.arm = &det_arm[0] if det_arm.shape[0] > 0 else &slot_role[0]
    T.pol = &det_pol[0] if det_pol.shape[0] > 0 else &slot_role[0]
    T.chan = &det_chan[0] if det_chan.shape[0] > 0 else &slot_of[0]
    T.hist = &arrival[0, 0] if arrival.shape[0] > 0 and arrival.shape[1] > 0 else &dummy
    T.her = &heralds[0]
    T.ready = &ready[0]
    T.set_time = &set_time[0]
    T.set_idx = &set_idx[0]
    T.fluo = &fluo[0]
    T.pend_time = &pend_time[0]
    T.pend_det = &pend_det[0]
    T.nbins = arrival.shape[1]
    T.pmask = pcap - 1
    T.w0 = par[1]
    T.wspan = par[2] - par[1] if par[2] > par[1] else 0
    T.coin = par[3]
    T.hlo = par[4]
    T.hspan = par[5] - par[4] if par[5] > par[4] else 0
    T.hbin = par[6] if par[6] > 0 else 1
    T.inv_bin = 1.0 / T.hbin
    T.lower = par[1] if par[1] < par[4] else par[4]

    c.sync_time = st[S_SYNC_TIME]
    c.have_sync = st[S_HAVE_SYNC]
    c.att_open = st[S_ATT_OPEN]
    c.att_n = st[S_ATT_N]
    c.t1 = st[S_T1]
    c.d1 = st[S_D1]
    c.t2 = st[S_T2]
    c.d2 = st[S_D2]
    c.pend_head = st[S_PEND_HEAD]
    c.pend_n = st[S_PEND_N]
    c.pend_dropped = 0
    c.n_syncs = c.n_clicks = c.n_accepted = c.n_nosync = 0
    c.nh = c.nr = c.ns = c.nf = 0

    cdef int64_t* RK = &ring_key[0]
    cdef int32_t* RS = &ring_slot[0]
    cdef const int32_t* SLOT = &slot_of[0]
    cdef const int64_t* KOFS = &slot_kofs[0]
    cdef int64_t* SNG = &singles[0]
    cdef int64_t hk_end
    cdef bint pop_all = flush or horizon >= KEY_LIMIT
    cdef bint pop_none = (not pop_all) and horizon <= -KEY_LIMIT
    hk_end = horizon * 4 if not (pop_all or pop_none) else 0
    with nogil:
        # the live ring goes to the front: it stays small and hot
        head = st[S_RING_HEAD]
        if head:
            memmove(RK, RK + head, live * sizeof(int64_t))
            memmove(RS, RS + head, live * sizeof(int32_t))
        head = 0
        tail = live
        soft = RING_SOFT if RING_SOFT > 2 * live else 2 * live
        if soft > cap:
            soft = cap
        for i in range(n):
            # one unsigned compare covers both ends of the table
            cc = <uint64_t>(channel[i] - chan_lo)
            if cc >= <uint64_t>nspan:
                continue
            s = SLOT[cc]
            if s < 0:
                continue
            SNG[s] += 1
            n_lab += 1
            ti = time[i]
            key = ti * 4 - KOFS[s]
            if tail == soft:
                live = tail - head
                memmove(RK, RK + head, live * sizeof(int64_t))
                memmove(RS, RS + head, live * sizeof(int32_t))
                head = 0
                tail = live
                while tail * 2 > soft and soft < cap:
                    soft = soft * 2 if soft * 2 < cap else cap
            j = tail
            while j > head and RK[j - 1] > key:
                RK[j] = RK[j - 1]
                RS[j] = RS[j - 1]
                j -= 1
            RK[j] = key
            RS[j] = s
            tail += 1
            # key >= hk for the tag just added (its delay <= max_delay): no bound check needed
            hk = (ti - max_delay) * 4
            if sync_next:
                while RK[head] < hk:
                    _tag_next(&c, &T, RK[head] >> 2, RS[head])
                    head += 1
            else:
                while RK[head] < hk:
                    _tag_previous(&c, &T, RK[head] >> 2, RS[head])
                    head += 1
        SNG[slot_role.shape[0]] += n - n_lab  # the lab's channels are counted above, the rest here
        # everything below the caller's horizon is final now
        if not pop_none:
            while head < tail and (pop_all or RK[head] < hk_end):
                if sync_next:
                    _tag_next(&c, &T, RK[head] >> 2, RS[head])
                else:
                    _tag_previous(&c, &T, RK[head] >> 2, RS[head])
                head += 1

        if sync_next:
            if flush:
                c.n_nosync += c.pend_n
                c.pend_n = 0
                c.pend_head = 0
            watermark = horizon
            if c.pend_n > 0 and T.pend_time[c.pend_head] < watermark:
                watermark = T.pend_time[c.pend_head]
        else:
            if c.att_open and (flush or c.sync_time + par[2] <= horizon):
                _emit(&c, &T)
                c.att_open = 0
            watermark = horizon
            if c.att_open and c.sync_time + par[1] < watermark:
                watermark = c.sync_time + par[1]
        st[S_SYNC_TIME] = c.sync_time
        st[S_HAVE_SYNC] = c.have_sync
        st[S_ATT_OPEN] = c.att_open
        st[S_ATT_N] = c.att_n
        st[S_T1] = c.t1
        st[S_D1] = c.d1
        st[S_T2] = c.t2
        st[S_D2] = c.d2
        st[S_PEND_HEAD] = c.pend_head
        st[S_PEND_N] = c.pend_n
        st[S_N_SYNCS] += c.n_syncs
        st[S_N_CLICKS] += c.n_clicks
        st[S_N_ACCEPTED] += c.n_accepted
        st[S_N_NOSYNC] += c.n_nosync
        st[S_N_PEND_DROPPED] += c.pend_dropped
        st[S_RING_HEAD] = head
        st[S_RING_N] = tail - head
    return c.nh, c.nr, c.ns, c.nf, watermark
