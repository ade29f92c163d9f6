# cython: language_level=3
"""Swabian dump records: one-pass split into contiguous tag arrays, with type and order checks, and the one
encoder of tags and lost events into records."""
from libc.stdint cimport uint8_t, uint16_t, int32_t, int64_t, uint64_t

from tt_constants cimport TT_DUMP_MISSED, TT_DUMP_TAG
from tt_records cimport record_layouts_of_all, tt_dump_record

ctypedef tt_dump_record DumpRec


def record_layouts():
    """The records of ``tt_records.h`` as this module was compiled with them (tests/engine/test_kernel_records.py)."""
    return record_layouts_of_all()


cdef enum:
    _SUB = 2048   # records per step of the fast path: its outputs are re-read for the order check while in L1


cdef bint _all_tags_in_order(const int64_t* q, Py_ssize_t n, int64_t* last, int64_t* out_time,
                             int32_t* out_channel, uint64_t head_mask) noexcept nogil:
    """Fast path for a block of tags only, non-negative and non-decreasing in time (almost every block).

    False, with the outputs garbage, when the block is not like that: the caller then runs the general loop.
    Written so that the compiler vectorises it with plain SSE2: a record is read as two little-endian int64
    words (type in the low byte, the reserved byte next, channel in the high half of the first, time the
    second); ``head_mask`` picks the bytes that must be 0 (the type, and the reserved byte if checked); the checks are
    OR-reductions, and with times >= 0 the step t[i] - t[i-1] cannot overflow, so its sign bit says "goes
    backwards".  (The general loop's branches are well predicted, but its loop-carried running maximum
    keeps it scalar.)
    """
    cdef Py_ssize_t i, j = 0, m
    cdef uint64_t head = 0, times = 0, steps = 0
    if n == 0:
        return True
    if q[1] < last[0]:
        return False
    while j < n:
        m = n - j if n - j < _SUB else _SUB
        for i in range(j, j + m):
            out_time[i] = q[2 * i + 1]
            out_channel[i] = <int32_t> (q[2 * i] >> 32)
            head |= <uint64_t> q[2 * i]
            times |= <uint64_t> q[2 * i + 1]
        for i in range(j + 1 if j == 0 else j, j + m):
            steps |= <uint64_t> out_time[i] - <uint64_t> out_time[i - 1]
        if (head & head_mask) or (times >> 63) or (steps >> 63):
            return False
        j += m
    last[0] = out_time[n - 1]
    return True


def split_records(const DumpRec[::1] rec, int64_t previous, bint check_order,
                  int64_t[::1] out_time, int32_t[::1] out_channel, int64_t[::1] lost_index,
                  bint check_reserved=False):
    """Tags go to out_time/out_channel, indices of non-tag records to lost_index.

    Returns (n_tags, n_lost, first record with an unknown type (or, with ``check_reserved``, a nonzero reserved
    byte) or -1, first tag record going backwards or -1, running maximum time).  Stops at the first problem so
    the caller can name it; the running maximum returned then is the one just before that record.
    """
    cdef Py_ssize_t i, n = rec.shape[0], w = 0, m = 0, bad = -1, back = -1
    cdef int64_t last = previous, t
    cdef uint8_t ty
    cdef uint64_t head_mask = 0xFFFF if check_reserved else 0xFF
    if out_time.shape[0] < n or out_channel.shape[0] < n or lost_index.shape[0] < n:
        raise ValueError(f"output arrays shorter than the {n} records")
    if n == 0:
        return 0, 0, -1, -1, last
    with nogil:
        if check_order and _all_tags_in_order(<const int64_t*> &rec[0], n, &last, &out_time[0], &out_channel[0],
                                              head_mask):
            w = n
            n = 0   # done: skip the general loop
        for i in range(n):
            ty = rec[i].type
            if check_reserved and rec[i].reserved != 0:
                bad = i
                break
            if ty == TT_DUMP_TAG:
                t = rec[i].time
                if check_order and t < last:
                    back = i
                    break
                if t > last:
                    last = t
                out_time[w] = t
                out_channel[w] = rec[i].channel
                w += 1
            elif ty <= TT_DUMP_MISSED:
                lost_index[m] = i
                m += 1
            else:
                bad = i
                break
    return w, m, bad, back, last


def encode_records(const int64_t[::1] time, const int32_t[::1] channel, const int64_t[::1] lost_time,
                   const uint8_t[::1] lost_type, const int32_t[::1] lost_channel, const int64_t[::1] lost_count,
                   DumpRec[::1] out):
    """Tags and lost events (record types ``lost_type``) as dump records in ``out``, merged in time order: a lost
    event goes after the tags of equal time.  ``missed_events`` is the count, at most 65535.  Returns the number
    of records."""
    cdef Py_ssize_t i = 0, j = 0, k = 0, n = time.shape[0], m = lost_time.shape[0]
    cdef int64_t cnt
    if channel.shape[0] != n or lost_type.shape[0] != m or lost_channel.shape[0] != m or lost_count.shape[0] != m:
        raise ValueError("tag or lost-event columns of unequal length")
    if out.shape[0] < n + m:
        raise ValueError(f"output shorter than the {n + m} records")
    with nogil:
        while i < n or j < m:
            if j >= m or (i < n and time[i] <= lost_time[j]):
                out[k].type = TT_DUMP_TAG
                out[k].reserved = 0
                out[k].missed_events = 0
                out[k].channel = channel[i]
                out[k].time = time[i]
                i += 1
            else:
                cnt = lost_count[j]
                out[k].type = lost_type[j]
                out[k].reserved = 0
                out[k].missed_events = <uint16_t>(cnt if cnt < 65535 else 65535)
                out[k].channel = lost_channel[j]
                out[k].time = lost_time[j]
                j += 1
            k += 1
    return k
