# cython: language_level=3
"""Small stream checks shared by readers and the live status: monotonicity of time stamps,
tags per channel."""
from libc.stdint cimport INT64_MIN, int32_t, int64_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free


def first_backward_step(const int64_t[::1] time, int64_t tolerance=0, int64_t previous=INT64_MIN):
    """Index of the first tag whose time is earlier than its predecessor by more than ``tolerance``.

    ``previous`` is the last time of the preceding chunk (so the check carries
    across chunk boundaries).  Returns -1 when the times never go backwards.
    """
    if tolerance < 0:
        raise ValueError("the tolerance cannot be negative")
    cdef Py_ssize_t i, n = time.shape[0], found = -1
    cdef int64_t last = previous
    with nogil:
        for i in range(n):
            # the gap in uint64: ``last - tolerance`` would overflow for the default ``previous``
            if time[i] < last and <uint64_t>last - <uint64_t>time[i] > <uint64_t>tolerance:
                found = i
                break
            if time[i] > last:
                last = time[i]
    return found


def count_channels(const int32_t[::1] channel, int64_t[::1] counts, int64_t offset):
    """``counts[c + offset] += 1`` for each channel c inside the table; returns how many were
    outside.  One pass, in four interleaved tables: consecutive tags on one channel would
    otherwise chain their increments through memory (numpy's min, max and bincount took
    about 3 ns per tag, the live status's largest cost)."""
    cdef Py_ssize_t i, j, n = channel.shape[0], size = counts.shape[0], done = 0, stop
    cdef int64_t outside = 0
    cdef uint64_t x
    cdef uint32_t* tab
    if size == 0:
        return n
    tab = <uint32_t*>calloc(4 * size + 1, sizeof(uint32_t))  # 4 tables, then one cell for "outside"
    if tab == NULL:
        raise MemoryError()
    with nogil:
        while done < n:
            stop = done + (1 << 30) if n - done > (1 << 30) else n  # uint32 cells cannot overflow
            i = done
            while i < stop:
                j = i & 3
                x = <uint64_t>(<int64_t>channel[i] + offset)
                tab[j * size + <Py_ssize_t>x if x < <uint64_t>size else 4 * size] += 1
                i += 1
            for j in range(size):
                counts[j] += tab[j] + tab[size + j] + tab[2 * size + j] + tab[3 * size + j]
                tab[j] = 0
                tab[size + j] = 0
                tab[2 * size + j] = 0
                tab[3 * size + j] = 0
            outside += tab[4 * size]
            tab[4 * size] = 0
            done = stop
    free(tab)
    return outside
