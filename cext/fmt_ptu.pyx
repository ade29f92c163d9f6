# cython: language_level=3
"""Decode loops for PicoQuant TTTR records (PTU and legacy HT3).

Pure functions over (parameters, state, records, preallocated output).  The state is a small int64 array
(see ``timetag.formats.ptu.STATE_FIELDS``) that carries the overflow sum and counters across chunk boundaries,
so any chunking of the records gives the same tags.

Output channels (documented in ``timetag.formats.ptu``): photon channel as ptufile numbers it, T2 sync -> 64,
marker bit m -> 100 + m (one tag per set bit, at the record's time).
"""
from libc.stdint cimport uint32_t, int64_t, int32_t
from libc.math cimport floor

from tt_constants cimport TT_PTU_FAMILY_HYDRAHARP1, TT_PTU_FAMILY_PICOHARP, TT_PTU_MARKER_BASE, TT_PTU_SYNC_CHANNEL, \
    TT_PTU_T2_WRAP_HYDRAHARP1, TT_PTU_T2_WRAP_HYDRAHARP2, TT_PTU_T2_WRAP_PICOHARP, TT_PTU_T3_WRAP_HYDRAHARP, \
    TT_PTU_T3_WRAP_PICOHARP

cdef enum:
    FAM_PICOHARP = TT_PTU_FAMILY_PICOHARP
    FAM_HH1 = TT_PTU_FAMILY_HYDRAHARP1   # else: the HydraHarp v2 family (TimeHarp 260 N/P, MultiHarp, PicoHarp 330)
    SYNC_CHANNEL = TT_PTU_SYNC_CHANNEL
    MARKER_BASE = TT_PTU_MARKER_BASE
    # state slots
    S_OVERFLOW = 0    # accumulated overflow, in time units (T2) or sync periods (T3)
    S_N_OVERFLOW = 1
    S_N_MARKER = 2
    S_N_SYNC = 3
    S_N_INVALID = 4
    S_N_PHOTON = 5


cdef inline int64_t to_ps(int64_t units, int64_t unit_int, double unit_frac) noexcept nogil:
    # Splitting the unit into integer and fractional ps keeps long runs exact: a double alone loses ps
    # beyond 2**53 ps (2.5 h).
    if unit_frac == 0.0:
        return units * unit_int
    return units * unit_int + <int64_t>floor(<double>units * unit_frac + 0.5)


cdef inline Py_ssize_t emit_markers(int bits, int64_t t, int64_t[::1] out_time, int32_t[::1] out_channel,
                                    Py_ssize_t w) noexcept nogil:
    cdef int m
    for m in range(4):
        if bits & (1 << m):
            out_time[w] = t
            out_channel[w] = MARKER_BASE + m
            w += 1
    return w


cdef inline void save_state(int64_t[::1] state, int64_t ofl, int64_t n_ofl, int64_t n_mark,
                            int64_t n_sync, int64_t n_inv, int64_t n_ph) noexcept:
    """Carry the overflow sum to the next chunk and add this chunk's record counts."""
    state[S_OVERFLOW] = ofl
    state[S_N_OVERFLOW] += n_ofl
    state[S_N_MARKER] += n_mark
    state[S_N_SYNC] += n_sync
    state[S_N_INVALID] += n_inv
    state[S_N_PHOTON] += n_ph


def decode_t2(const uint32_t[::1] rec, int family, int64_t unit_int, double unit_frac,
              int64_t[::1] state, int64_t[::1] out_time, int32_t[::1] out_channel):
    """Decode T2 records; returns (records consumed, tags written).

    Stops early when fewer than 4 output slots are left (a marker record may yield up to 4 tags).
    """
    cdef Py_ssize_t i = 0, n = rec.shape[0], w = 0, cap = out_time.shape[0]
    cdef uint32_t r, ch, tf
    cdef int64_t ofl = state[S_OVERFLOW]
    cdef int64_t n_ofl = 0, n_mark = 0, n_sync = 0, n_inv = 0, n_ph = 0
    with nogil:
        while i < n:
            if w + 4 > cap:
                break
            r = rec[i]
            if family == FAM_PICOHARP:
                ch = r >> 28
                tf = r & 0x0FFFFFFF
                if ch == 15:
                    if (tf & 0xF) == 0:
                        ofl += TT_PTU_T2_WRAP_PICOHARP
                        n_ofl += 1
                    else:
                        w = emit_markers(tf & 0xF, to_ps(ofl + tf, unit_int, unit_frac), out_time, out_channel, w)
                        n_mark += 1
                elif ch <= 4:
                    out_time[w] = to_ps(ofl + tf, unit_int, unit_frac)
                    out_channel[w] = ch
                    w += 1
                    n_ph += 1
                else:
                    n_inv += 1     # the PicoHarp 300 has inputs 0..4 only
            else:
                ch = (r >> 25) & 0x3F
                tf = r & 0x1FFFFFF
                if r >> 31:
                    if ch == 63:
                        if family == FAM_HH1:
                            ofl += TT_PTU_T2_WRAP_HYDRAHARP1
                        elif tf == 0:
                            ofl += TT_PTU_T2_WRAP_HYDRAHARP2   # count 0 is written by some firmware: one wrap
                        else:
                            ofl += TT_PTU_T2_WRAP_HYDRAHARP2 * <int64_t>tf
                        n_ofl += 1
                    elif ch == 0:
                        out_time[w] = to_ps(ofl + tf, unit_int, unit_frac)
                        out_channel[w] = SYNC_CHANNEL
                        w += 1
                        n_sync += 1
                    elif ch <= 15:
                        w = emit_markers(ch, to_ps(ofl + tf, unit_int, unit_frac), out_time, out_channel, w)
                        n_mark += 1
                    else:
                        n_inv += 1
                else:
                    out_time[w] = to_ps(ofl + tf, unit_int, unit_frac)
                    out_channel[w] = ch
                    w += 1
                    n_ph += 1
            i += 1
    save_state(state, ofl, n_ofl, n_mark, n_sync, n_inv, n_ph)
    return i, w


def decode_t3(const uint32_t[::1] rec, int family, int64_t sync_int, double sync_frac,
              int64_t res_int, double res_frac,
              int64_t[::1] state, int64_t[::1] out_time, int32_t[::1] out_channel, int32_t[::1] out_dtime):
    """Decode T3 records; time = (overflow + nsync) * sync period + dtime * resolution (ps).

    ``out_dtime`` receives the raw dtime bin of each tag (-1 for markers).  Returns (records consumed, tags written).
    """
    cdef Py_ssize_t i = 0, n = rec.shape[0], w = 0, w0, k, cap = out_time.shape[0]
    cdef uint32_t r, ch, dt, ns
    cdef int64_t ofl = state[S_OVERFLOW]
    cdef int64_t n_ofl = 0, n_mark = 0, n_inv = 0, n_ph = 0
    with nogil:
        while i < n:
            if w + 4 > cap:
                break
            r = rec[i]
            if family == FAM_PICOHARP:
                ch = r >> 28
                dt = (r >> 16) & 0xFFF
                ns = r & 0xFFFF
                if ch == 15:
                    if dt == 0:
                        ofl += TT_PTU_T3_WRAP_PICOHARP
                        n_ofl += 1
                    else:
                        w0 = w
                        w = emit_markers(dt & 0xF, to_ps(ofl + ns, sync_int, sync_frac), out_time, out_channel, w)
                        for k in range(w0, w):
                            out_dtime[k] = -1
                        n_mark += 1
                elif ch == 0 or ch > 4:
                    n_inv += 1     # PicoHarp T3 photon channels are 1..4
                else:
                    out_time[w] = to_ps(ofl + ns, sync_int, sync_frac) + to_ps(dt, res_int, res_frac)
                    out_channel[w] = ch - 1
                    out_dtime[w] = dt
                    w += 1
                    n_ph += 1
            else:
                ch = (r >> 25) & 0x3F
                dt = (r >> 10) & 0x7FFF
                ns = r & 0x3FF
                if r >> 31:
                    if ch == 63:
                        if family == FAM_HH1 or ns == 0:
                            ofl += TT_PTU_T3_WRAP_HYDRAHARP
                        else:
                            ofl += TT_PTU_T3_WRAP_HYDRAHARP * <int64_t>ns
                        n_ofl += 1
                    elif 1 <= ch <= 15:
                        w0 = w
                        w = emit_markers(ch, to_ps(ofl + ns, sync_int, sync_frac), out_time, out_channel, w)
                        for k in range(w0, w):
                            out_dtime[k] = -1
                        n_mark += 1
                    else:
                        n_inv += 1
                else:
                    out_time[w] = to_ps(ofl + ns, sync_int, sync_frac) + to_ps(dt, res_int, res_frac)
                    out_channel[w] = ch
                    out_dtime[w] = dt
                    w += 1
                    n_ph += 1
            i += 1
    save_state(state, ofl, n_ofl, n_mark, 0, n_inv, n_ph)
    return i, w
