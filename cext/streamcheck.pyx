# cython: language_level=3
"""Small stream checks shared by readers: monotonicity of time stamps."""
from libc.stdint cimport int64_t


def first_backward_step(const int64_t[::1] time, int64_t tolerance=0, int64_t previous=-9223372036854775807 - 1):
    """Index of the first tag whose time is earlier than its predecessor by more than ``tolerance``.

    ``previous`` is the last time of the preceding chunk (so the check carries
    across chunk boundaries).  Returns -1 when the times never go backwards.
    """
    cdef Py_ssize_t i, n = time.shape[0], found = -1
    cdef int64_t last = previous
    with nogil:
        for i in range(n):
            if time[i] < last - tolerance:
                found = i
                break
            if time[i] > last:
                last = time[i]
    return found
