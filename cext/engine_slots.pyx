# cython: language_level=3
"""Herald-stage kernels over per-channel rows: split a raw chunk by channel, then find heralds.

Pure functions over (parameters, state, chunk arrays, preallocated outputs).

Why rows and not one re-sorted stream: a channel's tags are already in time order and a
delay shifts all of them alike, so splitting the chunk by channel gives every channel's
times sorted without comparing any two tags (rows keep raw times; a row's delay is
applied by its reader).  Each BSM row then walks the sync row once to find every
click's attempt, and attempts are aggregated by index, so the clicks of one attempt may
be visited in any order: the herald's first and last click are the minimum and maximum
of (time, channel), which is the canonical order of equal-time tags.  The hot loops
(C, ``engine_slots_kernels.h``) have no branch on the (random) channel sequence.

Rows live in one 2-D buffer ``rows[slot, :]`` (slot = index of the channel in the lab's
sorted channel list; one extra row collects the channels the lab does not use, reused
for every sub-block).
"""
from libc.stdint cimport INT64_MAX, int8_t, int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memmove

import numpy as np

cdef extern from "engine_slots_kernels.h":
    enum: TT_MAX_SLOTS
    enum: TT_PAD
    ctypedef struct tt_agg:
        int64_t k1
        int64_t k2
        int64_t n
        int64_t pad
    ctypedef struct tt_her:
        int64_t k1
        int64_t k2
        int64_t n
        int64_t sync
    ctypedef struct tt_chunk:
        Py_ssize_t ns
        int64_t chan_lo
        uint64_t nspan
        const int32_t* slot_of
        int64_t* row[256]
        int64_t hi[256]
        int vec
        int64_t* base
        Py_ssize_t stride
        Py_ssize_t nlane
        Py_ssize_t lane_slot[7]
        Py_ssize_t scal_slot[256]
        const uint8_t* code
        int64_t last_raw
        int64_t max_delay
        int64_t horizon
        int nxt
        Py_ssize_t nb
        Py_ssize_t sync_slot
        Py_ssize_t s_lo
        Py_ssize_t bsm_slot[256]
        Py_ssize_t bsm_lo[256]
        int64_t bsm_det[256]
        int64_t bsm_off[256]
        Py_ssize_t bsm_a[256]
        int64_t sync_delay
        int64_t lower
        int64_t w0
        int64_t w1
        int64_t hlo
        int64_t hbin
        uint64_t wspan
        uint64_t hspan
        int64_t* hist
        Py_ssize_t nbins
        const int32_t* lut
        tt_agg* AG
        const tt_agg* carry
        Py_ssize_t K
        Py_ssize_t closed
        tt_her* her
        Py_ssize_t nidx
        int64_t n_acc
        int64_t n_nosync
    Py_ssize_t tt_process(tt_chunk* c, const int64_t* T, const int32_t* C, Py_ssize_t n, int check) nogil
    void tt_advance(tt_chunk* c, int64_t h, int flush) nogil
    int tt_have_avx2() nogil
    Py_ssize_t tt_first_at_or_after(const int64_t* T, Py_ssize_t lo, Py_ssize_t hi, int64_t lim) nogil

cdef bint _vector_split = True


def vector_split_available():
    """Whether this CPU runs the vector split (x86-64 with AVX2)."""
    return bool(tt_have_avx2())


def set_vector_split(bint on):
    """Use the vector split where the CPU has it (the default), or always the scalar one
    (tests compare the two; benchmarks measure both).  Returns the previous setting."""
    global _vector_split
    prev = _vector_split
    _vector_split = on
    return prev

ctypedef tt_agg Agg  # one attempt: accepted clicks, keys of the first and last one
ctypedef tt_her Her  # a herald-to-be: an Agg and its sync's raw time

# herald state (int64 record; mirrored in timetag/engine/herald.py HERALD_STATE_FIELDS)
cdef enum: S_CARRY = 0       # 1: the attempt of the first sync of the row is open, aggregate below
cdef enum: S_CN = 1
cdef enum: S_CK1 = 2
cdef enum: S_CK2 = 3
cdef enum: S_N_ACCEPTED = 4
cdef enum: S_N_NOSYNC = 5

# io slots of process_chunk (mirrored in timetag/engine/herald.py)
cdef enum: IO_LAST_RAW = 0
cdef enum: IO_HORIZON = 1
cdef enum: IO_K = 2
cdef enum: IO_CLOSED = 3
cdef enum: IO_NIDX = 4
cdef enum: IO_S_LO = 5

cdef enum: PAT_PSI_PLUS = 1
cdef enum: PAT_PSI_MINUS = 2
cdef enum: PAT_OTHER = 3

# Matches timetag.records.HERALD_DTYPE (an unaligned numpy dtype = a packed struct)
cdef packed struct HeraldRec:
    int64_t time
    int64_t sync_time
    int8_t pattern
    int32_t det1
    int32_t det2
    int64_t dt1
    int64_t dt2
    int32_t nclicks


def process_chunk(const int64_t[::1] time, const int32_t[::1] channel, int mode,
                  int64_t chan_lo, const int32_t[::1] slot_of, const int64_t[::1] slot_delay,
                  int64_t[:, ::1] rows, int64_t[::1] hi, int64_t max_delay, int64_t[::1] io, int64_t[::1] st,
                  const int64_t[::1] par, Py_ssize_t sync_slot, const int64_t[::1] bsm_slot,
                  const int64_t[::1] bsm_det, int64_t[::1] bsm_lo, Agg[::1] agg, Her[::1] her,
                  int64_t[:, ::1] arrival, const int32_t[::1] lut, const int64_t[::1] lane_slot,
                  const int64_t[::1] scal_slot, const uint8_t[::1] split_code):
    """Split a raw chunk into the rows and advance the attempts, sub-block by sub-block (each
    sub-block is split and its clicks added while it is in cache).

    ``mode`` 1: the normal path; stops before a sub-block whose raw times step back and
    returns the tags taken (the caller sorts the rest and comes back with mode 0, then 1
    with no tags).  Mode 0: split only.  Mode 2: no tags, the end of the data: every
    attempt is closed.  Per slot (nslots + 1, the last the junk slot for channels the lab
    does not use): ``slot_of[channel - chan_lo]`` = slot (one last entry for channels
    outside the table), ``slot_delay``, ``rows[s, :hi[s]]`` its raw times (room for the
    chunk and TT_PAD more columns, set to INT64_MAX on return).  ``io`` = [last raw time, horizon, attempts
    initialised, attempts closed, heralds found, first sync of the call]; attempt j is
    the sync ``rows[sync_slot, io[5] + j]``; ``agg[j]``: its clicks, keys (dt - window
    start) * 256 + BSM row, unsigned; ``her[:io[4]]``: the closed attempts with >= 2 accepted clicks.  ``par`` =
    [sync_next, window_start, window_stop, coincidence, hist_lo, hist_hi, hist_bin].  A lab
    without sync or BSM rows passes ``sync_slot`` = -1 and empty BSM tables.  ``lut``: the
    arrival-histogram bin of every ps of its span (hist_hi - hist_lo entries), or empty to
    compute bins by a reciprocal multiplication.  ``lane_slot`` (<= 7 slots), ``scal_slot``,
    ``split_code`` (one per ``slot_of`` entry: 0-6 lane, 7 junk, 8 + q ``scal_slot[q]``): the
    vector split's tables (``slots.SlotRows``), checked against ``slot_of``.
    """
    cdef tt_chunk c
    cdef Py_ssize_t i, s, n = time.shape[0], ns = hi.shape[0], nb = bsm_slot.shape[0], taken
    cdef Py_ssize_t cap = rows.shape[1], nbins = arrival.shape[1], n_s
    cdef int64_t w0 = par[1], w1 = par[2], hlo = par[4], hhi = par[5], hbin = par[6], no_bins = 0
    cdef Agg carry
    if channel.shape[0] != n or io.shape[0] < 6 or st.shape[0] < 6 or par.shape[0] < 7:
        raise ValueError("chunk, io, state or parameter arrays of the wrong length")
    if mode == 2 and n:
        raise ValueError("mode 2 takes no tags")
    if slot_delay.shape[0] != ns or rows.shape[0] != ns or ns > TT_MAX_SLOTS or ns < 1 or slot_of.shape[0] < 1:
        raise ValueError("per-slot tables disagree in length")
    for s in range(ns):
        if hi[s] < 0 or hi[s] + n + TT_PAD > cap:
            raise ValueError(f"row {s} has no room for {n} tags and the padding")
    for i in range(slot_of.shape[0]):
        if slot_of[i] < 0 or slot_of[i] >= ns:
            raise ValueError("slot table out of range")
    if lane_slot.shape[0] > 7 or scal_slot.shape[0] > TT_MAX_SLOTS or split_code.shape[0] != slot_of.shape[0]:
        raise ValueError("vector split tables of the wrong length")
    for i in range(split_code.shape[0]):
        s = split_code[i]
        if not ((s < lane_slot.shape[0] and lane_slot[s] == slot_of[i]) or (s == 7 and slot_of[i] == ns - 1)
                or (8 <= s < 8 + scal_slot.shape[0] and scal_slot[s - 8] == slot_of[i])):
            raise ValueError("vector split code disagrees with the slot table")
    c.ns = ns
    c.chan_lo = chan_lo
    c.nspan = slot_of.shape[0] - 1
    c.slot_of = &slot_of[0]
    for s in range(ns):
        c.row[s] = &rows[s, 0]
        c.hi[s] = hi[s]
    c.vec = 0
    if _vector_split and tt_have_avx2() and ns * cap < (1 << 31):
        c.vec = 2 if slot_of.shape[0] <= 16 else 1
        c.base = &rows[0, 0]
        c.stride = cap
        c.nlane = lane_slot.shape[0]
        for i in range(lane_slot.shape[0]):
            c.lane_slot[i] = lane_slot[i]
        for i in range(scal_slot.shape[0]):
            c.scal_slot[i] = scal_slot[i]
        c.code = &split_code[0]
    c.last_raw = io[IO_LAST_RAW]
    c.max_delay = max_delay
    c.horizon = io[IO_HORIZON]
    c.nb = 0
    c.nxt = par[0] != 0
    c.K = io[IO_K]
    c.closed = io[IO_CLOSED]
    c.nidx = io[IO_NIDX]
    c.s_lo = io[IO_S_LO]
    c.n_acc = 0
    c.n_nosync = 0
    c.carry = NULL
    if nb:
        if sync_slot < 0 or sync_slot >= ns - 1 or nb >= 256 or bsm_det.shape[0] != nb or bsm_lo.shape[0] != nb:
            raise ValueError("BSM tables disagree with the slots")
        if not (-(1 << 31) < w0 <= w1 < (1 << 31)):
            raise ValueError("the acceptance window must lie within +-2**31 ps of the sync")
        if hhi - hlo >= (1 << 31) or hbin < 1:
            raise ValueError("the arrival histogram must span < 2**31 ps in bins >= 1 ps")
        n_s = hi[sync_slot] - c.s_lo
        if c.s_lo < 0 or n_s < 0 or agg.shape[0] < n_s + n + 1 or her.shape[0] < n_s + n + 1 or c.K > n_s:
            raise ValueError("attempt arrays too small for the syncs")
        for i in range(nb):
            s = bsm_slot[i]
            if s < 0 or s >= ns - 1 or bsm_lo[i] < 0 or bsm_lo[i] > hi[s] or bsm_det[i] < 0 \
                    or bsm_det[i] >= arrival.shape[0]:
                raise ValueError("BSM row or detector out of range")
            c.bsm_slot[i] = s
            c.bsm_lo[i] = bsm_lo[i]
            c.bsm_det[i] = bsm_det[i]
            c.bsm_off[i] = slot_delay[s] - slot_delay[sync_slot]
            c.bsm_a[i] = 0
        c.nb = nb
        c.sync_slot = sync_slot
        c.sync_delay = slot_delay[sync_slot]
        c.w0 = w0
        c.w1 = w1
        c.lower = w0 if w0 < hlo else hlo
        c.wspan = <uint64_t>(w1 - w0) if w1 > w0 else 0
        c.hlo = hlo
        c.hbin = hbin
        c.hspan = <uint64_t>(hhi - hlo) if hhi > hlo else 0
        c.hist = &arrival[0, 0] if nbins > 0 else &no_bins
        c.nbins = nbins
        c.lut = NULL
        if lut.shape[0]:
            if lut.shape[0] != hhi - hlo:
                raise ValueError("histogram lookup table does not match the span")
            for i in range(lut.shape[0]):
                if lut[i] < 0 or lut[i] >= nbins:
                    raise ValueError("histogram lookup table out of the bins")
            c.lut = &lut[0]
        c.AG = &agg[0]
        c.her = &her[0]
        if not c.nxt and st[S_CARRY]:
            carry.n = st[S_CN]
            carry.k1 = st[S_CK1]
            carry.k2 = st[S_CK2]
            c.carry = &carry
    with nogil:
        if mode == 2:
            tt_advance(&c, 1LL << 62, 1)
            taken = 0
        else:
            taken = tt_process(&c, &time[0] if n else NULL, &channel[0] if n else NULL, n, mode == 1)
            if mode == 1 and taken == n:
                tt_advance(&c, c.horizon, 0)
    for s in range(ns):
        hi[s] = c.hi[s]
        # padding: readers search 8 tags at a time without checking the row's end
        for i in range(TT_PAD):
            rows[s, hi[s] + i] = INT64_MAX
    for i in range(c.nb):
        bsm_lo[i] = c.bsm_lo[i]
    io[IO_LAST_RAW] = c.last_raw
    io[IO_HORIZON] = c.horizon
    io[IO_K] = c.K
    io[IO_CLOSED] = c.closed
    io[IO_NIDX] = c.nidx
    st[S_N_ACCEPTED] += c.n_acc
    st[S_N_NOSYNC] += c.n_nosync
    return taken


def emit_heralds(const int64_t[::1] par, const Her[::1] her, int64_t sync_delay, const int64_t[::1] row_det,
                 const int8_t[::1] det_arm, const int8_t[::1] det_pol, const int32_t[::1] det_chan,
                 const int8_t[::1] pat_ok, HeraldRec[::1] out, int64_t[::1] trig_time, int64_t[::1] trig_sync,
                 int8_t[::1] trig_pat, int64_t[::1] pattern_counts):
    """Herald records of ``her`` (sync raw times corrected by ``sync_delay``; a key's low byte
    is a BSM row, ``row_det`` its detector); the heralding ones (``pat_ok[pattern]``) also as
    trigger columns; ``pattern_counts[pattern] += 1``.  Returns the number of heralding heralds."""
    cdef Py_ssize_t k, nt = 0, n = her.shape[0]
    cdef int64_t coin = par[3], w0 = par[1], sync, nn, d1, d2, pattern, dt1, dt2, ok
    cdef const Her* g
    if out.shape[0] < n or trig_time.shape[0] < n or trig_sync.shape[0] < n or trig_pat.shape[0] < n:
        raise ValueError("herald outputs too small")
    if pat_ok.shape[0] < 4 or row_det.shape[0] != 256 or pattern_counts.shape[0] < 4:
        raise ValueError("pattern tables too small, or row_det without 256 entries")
    for k in range(256):
        if row_det[k] < 0 or row_det[k] >= det_arm.shape[0] or row_det[k] >= det_pol.shape[0] \
                or row_det[k] >= det_chan.shape[0]:
            raise ValueError("row_det names a detector out of range")
    if n == 0:
        return 0
    cdef const int8_t* ARM = &det_arm[0]
    cdef const int8_t* POL = &det_pol[0]
    cdef const int32_t* DCH = &det_chan[0]
    with nogil:
        for k in range(n):
            g = &her[k]
            sync = g.sync - sync_delay
            nn = g.n
            dt1 = <int64_t>(<uint64_t>g.k1 >> 8) + w0
            dt2 = <int64_t>(<uint64_t>g.k2 >> 8) + w0
            d1 = row_det[g.k1 & 255]
            d2 = row_det[g.k2 & 255]
            # psi+/psi-: two clicks, different detectors, orthogonal polarisations, within the
            # coincidence time; same arm -> psi+.  Arithmetic, not branches (random per herald).
            ok = (nn == 2) & (d1 != d2) & (dt2 - dt1 <= coin) & (POL[d1] != POL[d2])
            pattern = PAT_OTHER - ok * (PAT_OTHER - PAT_PSI_MINUS + (ARM[d1] == ARM[d2]))
            out[k].time = sync + dt2
            out[k].sync_time = sync
            out[k].pattern = <int8_t>pattern
            out[k].det1 = DCH[d1]
            out[k].det2 = DCH[d2]
            out[k].dt1 = dt1
            out[k].dt2 = dt2
            out[k].nclicks = <int32_t>nn
            trig_time[nt] = sync + dt2
            trig_sync[nt] = sync
            trig_pat[nt] = <int8_t>pattern
            nt += pat_ok[pattern]
            pattern_counts[pattern] += 1
    return nt


cdef inline Py_ssize_t _first_unread(const int64_t[::1] hi, const int64_t[:, ::1] ptr, const uint8_t[:, ::1] uses,
                                     Py_ssize_t s) noexcept:
    """The first tag of row s some consumer (``uses[k, s]``, from ``ptr[k, s]``) has not read."""
    cdef Py_ssize_t k, lo = hi[s]
    for k in range(uses.shape[0]):
        if uses[k, s] and ptr[k, s] < lo:
            lo = ptr[k, s]
    return lo


def unread_start(const int64_t[::1] hi, const int64_t[:, ::1] ptr, const uint8_t[:, ::1] uses):
    """Per row, the first tag some consumer has not read (the last row, the junk row: 0)."""
    cdef Py_ssize_t s, ns = hi.shape[0]
    _check_row_tables(hi, ptr, uses)
    out = np.zeros(ns, np.int64)
    cdef int64_t[::1] o = out
    for s in range(ns - 1):
        o[s] = _first_unread(hi, ptr, uses, s)
    return out


def longest_unread(const int64_t[::1] hi, const int64_t[:, ::1] ptr, const uint8_t[:, ::1] uses):
    """The most tags any row (but the last, the junk row) still holds for some consumer: row s
    is read by consumer k where ``uses[k, s]``, from ``ptr[k, s]`` up to ``hi[s]``."""
    cdef Py_ssize_t s, ns = hi.shape[0], longest = 0
    _check_row_tables(hi, ptr, uses)
    for s in range(ns - 1):
        longest = max(longest, hi[s] - _first_unread(hi, ptr, uses, s))
    return longest


def compact_rows(const int64_t[:, ::1] src, int64_t[:, ::1] dst, int64_t[::1] hi, int64_t[:, ::1] ptr,
                 const uint8_t[:, ::1] uses):
    """Drop what every consumer has read: each row's unread tail moves from ``src`` to the
    start of the same row of ``dst`` (which may be ``src``: an overlapping move), ``hi`` and
    the pointers follow (a pointer below the tail, of a consumer not reading the row, becomes
    0); the last row, the junk row, is emptied.  The Python version was 11 small numpy steps
    per call (about 40 us, most of the fixed cost of a small chunk)."""
    cdef Py_ssize_t s, k, ns = hi.shape[0], lo, n
    _check_row_tables(hi, ptr, uses)
    if src.shape[0] != ns or dst.shape[0] != ns:
        raise ValueError("row buffers and row tables disagree")
    for s in range(ns - 1):
        lo = _first_unread(hi, ptr, uses, s)
        n = hi[s] - lo
        if lo < 0 or hi[s] > src.shape[1] or n > dst.shape[1]:
            raise ValueError(f"row {s} out of its buffer")
        if n and (lo or &dst[0, 0] != &src[0, 0]):
            memmove(&dst[s, 0], &src[s, lo], n * sizeof(int64_t))
        hi[s] = n
        for k in range(ptr.shape[0]):
            ptr[k, s] = ptr[k, s] - lo if ptr[k, s] > lo else 0
    hi[ns - 1] = 0


def release_before(const int64_t[:, ::1] rows, const int64_t[::1] hi, int64_t[::1] ptr, const int64_t[::1] delay,
                   const int64_t[::1] which, int64_t keep):
    """Advance ``ptr[s]`` of each row s in ``which`` past its tags with corrected time
    (raw - ``delay[s]``) < ``keep`` (a binary search; rows are sorted)."""
    cdef Py_ssize_t i, s
    for i in range(which.shape[0]):
        s = which[i]
        if s < 0 or s >= rows.shape[0] or s >= hi.shape[0] or s >= ptr.shape[0] or s >= delay.shape[0] \
                or hi[s] > rows.shape[1] or not 0 <= ptr[s] <= hi[s]:
            raise ValueError(f"row {s} out of its tables")
        ptr[s] = tt_first_at_or_after(&rows[s, 0], ptr[s], hi[s], keep + delay[s])


cdef _check_row_tables(const int64_t[::1] hi, const int64_t[:, ::1] ptr, const uint8_t[:, ::1] uses):
    if hi.shape[0] < 1 or ptr.shape[1] != hi.shape[0] or uses.shape[1] != hi.shape[0] or uses.shape[0] != ptr.shape[0]:
        raise ValueError("row tables disagree in shape")
