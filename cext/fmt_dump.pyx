# cython: language_level=3
"""One-pass split of Swabian dump records into contiguous tag arrays, with type and order checks."""
from libc.stdint cimport uint8_t, uint16_t, int32_t, int64_t


cdef packed struct DumpRec:
    uint8_t type
    uint8_t reserved
    uint16_t missed_events
    int32_t channel
    int64_t time


def split_records(const DumpRec[::1] rec, int64_t previous, bint check_order,
                  int64_t[::1] out_time, int32_t[::1] out_channel, int64_t[::1] lost_index):
    """Tags go to out_time/out_channel, indices of non-tag records to lost_index.

    Returns (n_tags, n_lost, first record with an unknown type or -1, first tag record going backwards or -1,
    running maximum time).  Stops at the first problem so the caller can name it.
    """
    cdef Py_ssize_t i, n = rec.shape[0], w = 0, m = 0, bad = -1, back = -1
    cdef int64_t last = previous, t
    cdef uint8_t ty
    with nogil:
        for i in range(n):
            ty = rec[i].type
            if ty == 0:
                t = rec[i].time
                if check_order and t < last:
                    back = i
                    break
                if t > last:
                    last = t
                out_time[w] = t
                out_channel[w] = rec[i].channel
                w += 1
            elif ty <= 4:
                lost_index[m] = i
                m += 1
            else:
                bad = i
                break
    return w, m, bad, back, last
