# cython: language_level=3
"""One-pass split of Swabian dump records into contiguous tag arrays, with type and order checks."""
from libc.stdint cimport uint8_t, uint16_t, int32_t, int64_t


cdef packed struct DumpRec:
    uint8_t type
    uint8_t reserved
    uint16_t missed_events
    int32_t channel
    int64_t time


cdef inline bint _all_tags(const DumpRec* rec, Py_ssize_t n, int64_t* last, bint check_order,
                           int64_t* out_time, int32_t* out_channel) noexcept nogil:
    """Branch-free copy of a block assumed to hold only in-order tags; False when the assumption fails.

    Almost every block of a real file is like this, and without data-dependent branches the loop runs at the
    speed of the memory; a block holding lost-data records or a problem is redone by the general loop.
    """
    cdef Py_ssize_t i
    cdef int64_t t, mx = last[0]
    cdef uint8_t types = 0
    cdef bint back = 0
    for i in range(n):
        t = rec[i].time
        out_time[i] = t
        out_channel[i] = rec[i].channel
        types |= rec[i].type
        back |= t < mx
        mx = t if t > mx else mx
    if types != 0 or (check_order and back):
        return False
    last[0] = mx
    return True


def split_records(const DumpRec[::1] rec, int64_t previous, bint check_order,
                  int64_t[::1] out_time, int32_t[::1] out_channel, int64_t[::1] lost_index):
    """Tags go to out_time/out_channel, indices of non-tag records to lost_index.

    Returns (n_tags, n_lost, first record with an unknown type or -1, first tag record going backwards or -1,
    running maximum time).  Stops at the first problem so the caller can name it; the running maximum returned
    then is the one just before that record.
    """
    cdef Py_ssize_t i, n = rec.shape[0], w = 0, m = 0, bad = -1, back = -1
    cdef int64_t last = previous, t
    cdef uint8_t ty
    if n == 0:
        return 0, 0, -1, -1, last
    if out_time.shape[0] < n or out_channel.shape[0] < n or lost_index.shape[0] < n:
        raise ValueError(f"output arrays shorter than the {n} records")
    with nogil:
        if _all_tags(&rec[0], n, &last, check_order, &out_time[0], &out_channel[0]):
            w = n
        else:
            last = previous
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
