# cython: language_level=3
"""Round-stage kernels: trigger generation (herald / ready / both) and round evaluation.

Pure functions over parameter arrays, the pending inputs and preallocated outputs;
the Python wrapper (``timetag.engine.rounds``) keeps what a call did not consume.
Trigger rows are int64 ``[time, herald_time, pattern, flags, herald_window_lo,
herald_window_hi]``; rounds are written as ROUND_DTYPE records.
"""
from libc.stdint cimport INT64_MAX, int8_t, int32_t, int64_t, uint32_t
from libc.stdlib cimport free, malloc

cdef enum:
    MODE_HERALD = 0
    MODE_READY = 1
    MODE_BOTH = 2
    PAT_NONE = 0
    F_LOST = 1
    F_SET_MISSING = 2
    F_SET_AMBIGUOUS = 4
    F_HERALD_NO_READY = 8
    F_READY_NO_HERALD = 16
    F_TRUNCATED = 32

cdef int64_t INF = 1LL << 62
cdef int PAD = 8  # padding columns (INT64_MAX) after each row's tags: see engine_slots_kernels.h


cdef inline Py_ssize_t _first_at_or_after(const int64_t* R, Py_ssize_t p, int64_t lim) noexcept nogil:
    """First index >= p with R[index] >= lim, R sorted and padded (8 columns past its end, and
    the search never goes past the first of them): a branch-free search over the next 15, then
    a loop for longer jumps (trip counts vary per trigger: branches missed).  First a look at
    R[p] alone: on a sparse row (settings) the next tag is usually past the limit already."""
    if R[p] >= lim:
        return p
    while True:
        p += 8 * (R[p + 7] < lim)
        p += 4 * (R[p + 3] < lim)
        p += 2 * (R[p + 1] < lim)
        p += R[p] < lim
        if R[p] >= lim:
            return p
        p += 1

# Matches timetag.records.ROUND_DTYPE (unaligned numpy dtype = packed struct): rounds are
# written as records in place, not as int64 rows converted field by field in Python.
cdef packed struct RoundRec:
    int64_t index
    int64_t trigger_time
    int64_t herald_time
    int8_t pattern
    int8_t setting
    int32_t count
    int8_t output
    uint32_t flags


cdef inline Py_ssize_t _put(int64_t[:, ::1] out, Py_ssize_t n, int64_t x, int64_t htime, int64_t pattern,
                            int64_t flags, int64_t lo, int64_t hi) noexcept nogil:
    out[n, 0] = x
    out[n, 1] = htime
    out[n, 2] = pattern
    out[n, 3] = flags
    out[n, 4] = lo
    out[n, 5] = hi
    return n + 1


def make_triggers(const int64_t[::1] par, const int64_t[::1] her_time, const int64_t[::1] her_sync,
                  const int8_t[::1] her_pat, const int64_t[::1] ready, int64_t herald_known,
                  int64_t ready_known, int64_t[:, ::1] out):
    """Turn heralding heralds and ready tags (both sorted) into triggers.

    ``par`` = [mode, ready_delay, ready_tolerance, window_start, window_stop].
    ``herald_known``: every herald with time < it is in ``her_*`` (or was consumed
    before); ``ready_known``: the same for ready tags.  'both' matches greedily:
    readies in time order each take the earliest unmatched herald with
    |ready - (herald + delay)| <= tolerance.  Returns (n_triggers, heralds used,
    readies used, watermark): no trigger made later will be earlier than watermark.
    Triggers come out nearly, not strictly, sorted (the caller sorts).
    """
    cdef int64_t mode = par[0], delay = par[1], tol = par[2], w0 = par[3], w1 = par[4]
    cdef Py_ssize_t i = 0, j = 0, n = 0, nh = her_time.shape[0], nr = ready.shape[0]
    cdef int64_t r, e, wm, known_e
    known_e = INF if herald_known >= INF else herald_known + delay
    with nogil:
        if mode == MODE_HERALD:
            for i in range(nh):
                n = _put(out, n, her_time[i] + delay, her_time[i], her_pat[i], 0,
                         her_sync[i] + w0, her_sync[i] + w1)
            i = nh
            wm = known_e
        elif mode == MODE_READY:
            for j in range(nr):
                n = _put(out, n, ready[j], -1, PAT_NONE, 0, INF, -INF)
            j = nr
            wm = ready_known
        else:
            while True:
                if j < nr:
                    r = ready[j]
                    # heralds no remaining ready can reach (all readies < r are done)
                    while i < nh and her_time[i] + delay + tol < r:
                        n = _put(out, n, her_time[i] + delay, her_time[i], her_pat[i], F_HERALD_NO_READY,
                                 her_sync[i] + w0, her_sync[i] + w1)
                        i += 1
                    if r + tol >= known_e:
                        break  # a herald that matches r may still come
                    if i < nh and her_time[i] + delay <= r + tol:
                        n = _put(out, n, r, her_time[i], her_pat[i], 0, her_sync[i] + w0, her_sync[i] + w1)
                        i += 1
                    else:
                        n = _put(out, n, r, -1, PAT_NONE, F_READY_NO_HERALD, INF, -INF)
                    j += 1
                else:
                    while i < nh and (ready_known >= INF or her_time[i] + delay + tol < ready_known):
                        n = _put(out, n, her_time[i] + delay, her_time[i], her_pat[i], F_HERALD_NO_READY,
                                 her_sync[i] + w0, her_sync[i] + w1)
                        i += 1
                    break
            wm = ready_known
            if j < nr and ready[j] < wm:
                wm = ready[j]
            if i < nh and her_time[i] + delay - tol < wm:
                wm = her_time[i] + delay - tol
            if known_e < INF and known_e - tol < wm:
                wm = known_e - tol
    return n, i, j, wm


cdef inline bint _touched(int64_t a, int64_t b, const int64_t[::1] iv_lo, const int64_t[::1] iv_hi,
                          const int64_t[::1] pts) noexcept nogil:
    """Does [a, b) overlap an overflow interval [lo, hi) or contain a point event?"""
    cdef Py_ssize_t k, lo_i, hi_i, mid
    if a >= b:
        return False
    for k in range(iv_lo.shape[0]):
        if iv_lo[k] < b and iv_hi[k] > a:
            return True
    lo_i = 0
    hi_i = pts.shape[0]
    while lo_i < hi_i:
        mid = (lo_i + hi_i) // 2
        if pts[mid] < a:
            lo_i = mid + 1
        else:
            hi_i = mid
    return lo_i < pts.shape[0] and pts[lo_i] < b


def _check_rows(const int64_t[:, ::1] rows, const int64_t[::1] row, const int64_t[::1] lo,
                const int64_t[::1] hi, str what):
    """Each range rows[row[r], lo[r]:hi[r]] lies in the buffer, followed by its padding."""
    cdef Py_ssize_t r, j
    for r in range(row.shape[0]):
        if row[r] < 0 or row[r] >= rows.shape[0] or lo[r] < 0 or hi[r] + PAD > rows.shape[1] or lo[r] > hi[r]:
            raise ValueError(f"{what} row range out of the buffer")
        for j in range(PAD):
            if rows[row[r], hi[r] + j] != INT64_MAX:
                raise ValueError(f"{what} row without its padding")


def eval_rounds(const int64_t[::1] par, const int64_t[:, ::1] trig, int64_t watermark, int64_t horizon,
                bint flush, const int64_t[:, ::1] rows, const int64_t[::1] fl_row, const int64_t[::1] fl_del,
                const int64_t[::1] fl_lo, const int64_t[::1] fl_hi, const int64_t[::1] set_row,
                const int8_t[::1] set_idx, const int64_t[::1] set_del, const int64_t[::1] set_lo,
                const int64_t[::1] set_hi,
                const int64_t[::1] iv_lo, const int64_t[::1] iv_hi, const int64_t[::1] pts,
                int64_t index0, RoundRec[::1] out):
    """Evaluate sorted triggers, in order, while their windows are closed.

    ``par`` = [setting_start, setting_stop, fluo_start, fluo_stop, threshold].
    A round is done when no earlier trigger can come (time < watermark) and every
    window stops at or before ``horizon`` (all tags and lost events before it are
    known).  With ``flush`` every trigger is done and rounds whose windows reach past
    ``horizon`` (the data end) get FLAG_TRUNCATED.  Fluorescence tags: the sorted rows of raw
    times ``rows[fl_row[r], fl_lo[r]:fl_hi[r]]`` (one per fluorescence channel, delay
    ``fl_del[r]``); setting tags: ``rows[set_row[r], set_lo[r]:set_hi[r]]`` meaning setting
    ``set_idx[r]`` (delay ``set_del[r]``).  They hold
    every tag any of these windows can contain.  Returns the number of rounds written
    (= triggers consumed).
    """
    cdef int64_t s0 = par[0], s1 = par[1], f0 = par[2], f1 = par[3], thr = par[4]
    cdef Py_ssize_t nfr = fl_row.shape[0], nsr = set_row.shape[0], r
    if out.shape[0] < trig.shape[0]:
        raise ValueError("round output needs a record per trigger")
    if fl_lo.shape[0] != nfr or fl_hi.shape[0] != nfr or set_idx.shape[0] != nsr or set_lo.shape[0] != nsr \
            or set_hi.shape[0] != nsr or fl_del.shape[0] != nfr or set_del.shape[0] != nsr:
        raise ValueError("per-row tables disagree in length")
    _check_rows(rows, fl_row, fl_lo, fl_hi, "fluorescence")
    _check_rows(rows, set_row, set_lo, set_hi, "setting")
    cdef Py_ssize_t k, q, n = trig.shape[0]
    cdef int64_t x, close, flags, count, nset, setting
    # per row: first tag >= window start, first tag >= window stop (triggers come in time order)
    cdef Py_ssize_t* FP = <Py_ssize_t*>malloc((2 * nfr + nsr + 1) * sizeof(Py_ssize_t))
    if FP == NULL:
        raise MemoryError()
    cdef Py_ssize_t* FQ = FP + nfr
    cdef Py_ssize_t* SP = FP + 2 * nfr
    cdef const int64_t* R
    for r in range(nfr):
        FP[r] = fl_lo[r]
        FQ[r] = fl_lo[r]
    for r in range(nsr):
        SP[r] = set_lo[r]
    with nogil:
        for k in range(n):
            x = trig[k, 0]
            flags = trig[k, 3]
            close = x + s1 if s1 > f1 else x + f1
            if trig[k, 5] > close:
                close = trig[k, 5]
            if not flush and (x >= watermark or close > horizon):
                break
            nset = 0
            setting = -1
            for r in range(nsr):
                R = &rows[set_row[r], 0]
                SP[r] = _first_at_or_after(R, SP[r], x + s0 + set_del[r])
                q = _first_at_or_after(R, SP[r], x + s1 + set_del[r])
                nset += q - SP[r]
                setting = set_idx[r] if q > SP[r] else setting
            if nset == 0:
                flags |= F_SET_MISSING
            elif nset > 1:
                flags |= F_SET_AMBIGUOUS
                setting = -1
            count = 0
            for r in range(nfr):
                R = &rows[fl_row[r], 0]
                FP[r] = _first_at_or_after(R, FP[r], x + f0 + fl_del[r])
                FQ[r] = _first_at_or_after(R, FQ[r] if FQ[r] > FP[r] else FP[r], x + f1 + fl_del[r])
                count += FQ[r] - FP[r]
            if (_touched(x + s0, x + s1, iv_lo, iv_hi, pts) or _touched(x + f0, x + f1, iv_lo, iv_hi, pts)
                    or _touched(trig[k, 4], trig[k, 5], iv_lo, iv_hi, pts)):
                flags |= F_LOST
            if close > horizon:
                flags |= F_TRUNCATED
            out[k].index = index0 + k
            out[k].trigger_time = x
            out[k].herald_time = trig[k, 1]
            out[k].pattern = <int8_t>trig[k, 2]
            out[k].setting = <int8_t>setting
            out[k].count = <int32_t>count
            out[k].output = 1 if count >= thr else 0
            out[k].flags = <uint32_t>flags
        else:
            k = n
    free(FP)
    return k


def triggers_in_order(const int64_t[:, ::1] trig):
    """Whether the trigger rows are ordered by (time, herald time) (they usually are: the
    caller sorts only when not)."""
    cdef Py_ssize_t i
    if trig.shape[0] > 1 and trig.shape[1] < 2:
        raise ValueError("trigger rows need a time and a herald time")
    for i in range(1, trig.shape[0]):
        if trig[i, 0] < trig[i - 1, 0] or (trig[i, 0] == trig[i - 1, 0] and trig[i, 1] < trig[i - 1, 1]):
            return False
    return True


def tally_rounds(const RoundRec[::1] rounds, int64_t[::1] flag_bits, int64_t[::1] settings):
    """Counts for the run summary, in one pass: ``flag_bits[b]`` += rounds with flag bit b,
    ``settings[setting + 1]`` += rounds with that setting (-1 = none).  Returns (rounds with
    output 1, rounds with any flag).  In numpy this was a dozen calls per chunk."""
    cdef Py_ssize_t i, b, nb = flag_bits.shape[0]
    cdef int64_t up = 0, flagged = 0, st
    cdef uint32_t f
    if nb > 32 or settings.shape[0] < 129:
        raise ValueError("tally arrays: at most 32 flag bits, 129 settings (-1 .. 127)")
    for i in range(rounds.shape[0]):
        f = rounds[i].flags
        up += rounds[i].output != 0
        flagged += f != 0
        for b in range(nb):
            flag_bits[b] += (f >> b) & 1
        st = rounds[i].setting
        settings[st + 1] += 1 if st >= -1 else 0
    return up, flagged
