# cython: language_level=3
"""Round-stage kernels: trigger generation (herald / ready / both) and round evaluation.

Functions over the lab's parameters and tables, the pending inputs and preallocated outputs;
the Python wrapper (``timetag.engine.rounds``) keeps what a call did not consume.  Triggers
are ``tt_trigger`` records, rounds ``tt_round_record`` ones (ROUND_DTYPE), both declared in
``tt_records.h`` and read and written by field name.
"""
from libc.stdint cimport INT64_MAX, int8_t, int32_t, int64_t, uint32_t
from libc.stdlib cimport free, malloc

import numpy as np

from tt_constants cimport TT_FLAG_HERALD_WITHOUT_READY, TT_FLAG_LOST_DATA, TT_FLAG_READY_WITHOUT_HERALD, \
    TT_FLAG_SETTING_AMBIGUOUS, TT_FLAG_SETTING_MISSING, TT_FLAG_TRUNCATED, TT_INF, TT_PAD, TT_PATTERN_NONE, \
    TT_SETTING_NONE, TT_TRIGGER_HERALD, TT_TRIGGER_READY
from tt_records cimport record_layouts_of_all, tt_round_params, tt_round_record, tt_trigger, tt_trigger_params



def record_layouts():
    """The records of ``tt_records.h`` as this module was compiled with them (tests/engine/test_kernel_records.py)."""
    return record_layouts_of_all()


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


cdef inline Py_ssize_t _put(tt_trigger[::1] out, Py_ssize_t n, int64_t x, int64_t htime, int64_t pattern,
                            int64_t flags, int64_t lo, int64_t hi) noexcept nogil:
    out[n].time = x
    out[n].herald_time = htime
    out[n].pattern = pattern
    out[n].flags = flags
    out[n].herald_window_start = lo
    out[n].herald_window_stop = hi
    return n + 1


def make_triggers(const tt_trigger_params[::1] params, const int64_t[::1] her_time, const int64_t[::1] her_sync,
                  const int8_t[::1] her_pat, const int64_t[::1] ready, int64_t herald_known,
                  int64_t ready_known, tt_trigger[::1] out):
    """Turn heralding heralds and ready tags (both sorted) into triggers.

    ``params``: one ``tt_trigger_params`` record.  ``herald_known``: every herald with time < it
    is in ``her_*`` (or was consumed before); ``ready_known``: the same for ready tags.  'both'
    matches greedily: readies in time order each take the earliest unmatched herald with
    |ready - (herald + delay)| <= tolerance.  ``out``: room for a trigger per herald and ready.
    Returns (n_triggers, heralds used, readies used, watermark): no trigger made later will be
    earlier than watermark.  Triggers come out nearly, not strictly, sorted (the caller sorts).
    """
    if params.shape[0] != 1:
        raise ValueError("params is one record")
    cdef tt_trigger_params par = params[0]
    cdef int64_t mode = par.mode, delay = par.ready_delay_ps, tol = par.ready_tolerance_ps
    cdef int64_t w0 = par.window_start_ps, w1 = par.window_stop_ps
    cdef Py_ssize_t i = 0, j = 0, n = 0, nh = her_time.shape[0], nr = ready.shape[0]
    cdef int64_t r, e, wm, known_e
    if her_sync.shape[0] != nh or her_pat.shape[0] != nh or out.shape[0] < nh + nr:
        raise ValueError("herald columns of unequal length, or no room for the triggers")
    known_e = TT_INF if herald_known >= TT_INF else herald_known + delay
    with nogil:
        if mode == TT_TRIGGER_HERALD:
            for i in range(nh):
                n = _put(out, n, her_time[i] + delay, her_time[i], her_pat[i], 0,
                         her_sync[i] + w0, her_sync[i] + w1)
            i = nh
            wm = known_e
        elif mode == TT_TRIGGER_READY:
            for j in range(nr):
                n = _put(out, n, ready[j], -1, TT_PATTERN_NONE, 0, TT_INF, -TT_INF)
            j = nr
            wm = ready_known
        else:
            while True:
                if j < nr:
                    r = ready[j]
                    # heralds no remaining ready can reach (all readies < r are done)
                    while i < nh and her_time[i] + delay + tol < r:
                        n = _put(out, n, her_time[i] + delay, her_time[i], her_pat[i], TT_FLAG_HERALD_WITHOUT_READY,
                                 her_sync[i] + w0, her_sync[i] + w1)
                        i += 1
                    if r + tol >= known_e:
                        break  # a herald that matches r may still come
                    if i < nh and her_time[i] + delay <= r + tol:
                        n = _put(out, n, r, her_time[i], her_pat[i], 0, her_sync[i] + w0, her_sync[i] + w1)
                        i += 1
                    else:
                        n = _put(out, n, r, -1, TT_PATTERN_NONE, TT_FLAG_READY_WITHOUT_HERALD, TT_INF, -TT_INF)
                    j += 1
                else:
                    while i < nh and (ready_known >= TT_INF or her_time[i] + delay + tol < ready_known):
                        n = _put(out, n, her_time[i] + delay, her_time[i], her_pat[i], TT_FLAG_HERALD_WITHOUT_READY,
                                 her_sync[i] + w0, her_sync[i] + w1)
                        i += 1
                    break
            wm = ready_known
            if j < nr and ready[j] < wm:
                wm = ready[j]
            if i < nh and her_time[i] + delay - tol < wm:
                wm = her_time[i] + delay - tol
            if known_e < TT_INF and known_e - tol < wm:
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


cdef class RoundTables:
    """One lab's round-stage tables, checked here once (each call then checks only its buffers).

    Taken by keyword, copied: ``params``, one ``tt_round_params`` record; the fluorescence rows
    (``fluorescence_rows``, each row's ``fluorescence_delay``) and the setting rows
    (``setting_rows``, the ``setting_index`` each stands for, ``setting_delay``), as rows of the
    slot rows (``slots.SlotRows``).
    """
    cdef tt_round_params par
    cdef const int64_t[::1] fl_row
    cdef const int64_t[::1] fl_del
    cdef const int64_t[::1] set_row
    cdef const int8_t[::1] set_idx
    cdef const int64_t[::1] set_del

    def __init__(self, const tt_round_params[::1] params, *, fluorescence_rows, fluorescence_delay, setting_rows,
                 setting_index, setting_delay):
        cdef Py_ssize_t r
        if params.shape[0] != 1:
            raise ValueError("params is one record")
        self.par = params[0]
        self.fl_row = np.array(fluorescence_rows, np.int64)
        self.fl_del = np.array(fluorescence_delay, np.int64)
        self.set_row = np.array(setting_rows, np.int64)
        self.set_idx = np.array(setting_index, np.int8)
        self.set_del = np.array(setting_delay, np.int64)
        if self.fl_del.shape[0] != self.fl_row.shape[0] or self.set_idx.shape[0] != self.set_row.shape[0] \
                or self.set_del.shape[0] != self.set_row.shape[0]:
            raise ValueError("per-row tables disagree in length")
        for r in range(self.fl_row.shape[0]):
            if self.fl_row[r] < 0:
                raise ValueError("fluorescence row out of range")
        for r in range(self.set_row.shape[0]):
            if self.set_row[r] < 0:
                raise ValueError("setting row out of range")


cdef _check_rows(const int64_t[:, ::1] rows, const int64_t[::1] hi, const int64_t[::1] ptr,
                 const int64_t[::1] which, str what):
    """Each row ``which[r]``'s unread range ptr:hi lies in the buffer, followed by its padding."""
    cdef Py_ssize_t r, j, s
    for r in range(which.shape[0]):
        s = which[r]
        if s >= rows.shape[0] or s >= hi.shape[0] or s >= ptr.shape[0] or ptr[s] < 0 or ptr[s] > hi[s] \
                or hi[s] + TT_PAD > rows.shape[1]:
            raise ValueError(f"{what} row range out of the buffer")
        for j in range(TT_PAD):
            if rows[s, hi[s] + j] != INT64_MAX:
                raise ValueError(f"{what} row without its padding")


def eval_rounds(RoundTables t not None, const tt_trigger[::1] trig, int64_t watermark, int64_t horizon, bint flush,
                const int64_t[:, ::1] rows, const int64_t[::1] hi, const int64_t[::1] ptr,
                const int64_t[::1] iv_lo, const int64_t[::1] iv_hi, const int64_t[::1] pts,
                int64_t index0, tt_round_record[::1] out):
    """Evaluate sorted triggers, in order, while their windows are closed.

    A round is done when no earlier trigger can come (time < watermark) and every
    window stops at or before ``horizon`` (all tags and lost events before it are
    known).  With ``flush`` every trigger is done and rounds whose windows reach past
    ``horizon`` (the data end) get FLAG_TRUNCATED.  Tags: the slot rows of raw times,
    ``rows[s, ptr[s]:hi[s]]`` for the rows of ``t`` (corrected by each row's delay); they hold
    every tag any of these windows can contain.  Lost data: overflow intervals
    [``iv_lo``, ``iv_hi``) and point events ``pts`` (sorted).  Returns the number of rounds
    written (= triggers consumed).
    """
    cdef int64_t s0 = t.par.setting_start_ps, s1 = t.par.setting_stop_ps
    cdef int64_t f0 = t.par.fluorescence_start_ps, f1 = t.par.fluorescence_stop_ps, thr = t.par.threshold
    cdef const int64_t[::1] fl_row = t.fl_row
    cdef const int64_t[::1] fl_del = t.fl_del
    cdef const int64_t[::1] set_row = t.set_row
    cdef const int8_t[::1] set_idx = t.set_idx
    cdef const int64_t[::1] set_del = t.set_del
    cdef Py_ssize_t nfr = fl_row.shape[0], nsr = set_row.shape[0], r
    if out.shape[0] < trig.shape[0]:
        raise ValueError("round output needs a record per trigger")
    if iv_hi.shape[0] != iv_lo.shape[0]:
        raise ValueError("overflow interval bounds of unequal length")
    _check_rows(rows, hi, ptr, fl_row, "fluorescence")
    _check_rows(rows, hi, ptr, set_row, "setting")
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
        FP[r] = ptr[fl_row[r]]
        FQ[r] = ptr[fl_row[r]]
    for r in range(nsr):
        SP[r] = ptr[set_row[r]]
    with nogil:
        for k in range(n):
            x = trig[k].time
            flags = trig[k].flags
            close = x + s1 if s1 > f1 else x + f1
            if trig[k].herald_window_stop > close:
                close = trig[k].herald_window_stop
            if not flush and (x >= watermark or close > horizon):
                break
            nset = 0
            setting = TT_SETTING_NONE
            for r in range(nsr):
                R = &rows[set_row[r], 0]
                SP[r] = _first_at_or_after(R, SP[r], x + s0 + set_del[r])
                q = _first_at_or_after(R, SP[r], x + s1 + set_del[r])
                nset += q - SP[r]
                setting = set_idx[r] if q > SP[r] else setting
            if nset == 0:
                flags |= TT_FLAG_SETTING_MISSING
            elif nset > 1:
                flags |= TT_FLAG_SETTING_AMBIGUOUS
                setting = TT_SETTING_NONE
            count = 0
            for r in range(nfr):
                R = &rows[fl_row[r], 0]
                FP[r] = _first_at_or_after(R, FP[r], x + f0 + fl_del[r])
                FQ[r] = _first_at_or_after(R, FQ[r] if FQ[r] > FP[r] else FP[r], x + f1 + fl_del[r])
                count += FQ[r] - FP[r]
            if (_touched(x + s0, x + s1, iv_lo, iv_hi, pts) or _touched(x + f0, x + f1, iv_lo, iv_hi, pts)
                    or _touched(trig[k].herald_window_start, trig[k].herald_window_stop, iv_lo, iv_hi, pts)):
                flags |= TT_FLAG_LOST_DATA
            if close > horizon:
                flags |= TT_FLAG_TRUNCATED
            out[k].index = index0 + k
            out[k].trigger_time = x
            out[k].herald_time = trig[k].herald_time
            out[k].pattern = <int8_t>trig[k].pattern
            out[k].setting = <int8_t>setting
            out[k].count = <int32_t>count
            out[k].output = 1 if count >= thr else 0
            out[k].flags = <uint32_t>flags
        else:
            k = n
    free(FP)
    return k


def triggers_in_order(const tt_trigger[::1] trig):
    """Whether the triggers are ordered by (time, herald time) (they usually are: the caller
    sorts only when not)."""
    cdef Py_ssize_t i
    for i in range(1, trig.shape[0]):
        if trig[i].time < trig[i - 1].time or (trig[i].time == trig[i - 1].time
                                               and trig[i].herald_time < trig[i - 1].herald_time):
            return False
    return True


def tally_rounds(const tt_round_record[::1] rounds, int64_t[::1] flag_bits, int64_t[::1] settings):
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
