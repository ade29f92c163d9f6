# cython: language_level=3
"""Decode loops for PicoQuant TTTR records (PTU and legacy HT3).

Pure functions over (parameters, state, records, preallocated output); the loops are in ``fmt_ptu_kernels.h``,
one per (family, T2/T3, integer or fractional ps unit), picked once per call.  HydraHarp-family T2 with an
integer ps unit also has an AVX2 loop, taken when the CPU has AVX2 (``kernel="auto"``); the scalar loop is the
fallback and the reference, and gives the same result bit for bit (``kernel="scalar"`` forces it).  The state is
a small int64 array (see ``timetag.formats.ptu.STATE_FIELDS``) that carries the overflow sum and counters across
chunk boundaries, so any chunking of the records gives the same tags.

Output channels (documented in ``timetag.formats.ptu``): photon channel as ptufile numbers it, T2 sync -> 64,
marker bit m -> 100 + m (one tag per set bit, at the record's time).
"""
from libc.stdint cimport uint32_t, int64_t, int32_t

from tt_constants cimport TT_PTU_FAMILY_PICOHARP, TT_PTU_FAMILY_HYDRAHARP2


cdef extern from "fmt_ptu_kernels.h":
    ctypedef struct tt_ptu_io:
        const uint32_t *rec
        Py_ssize_t n
        int64_t *time
        int32_t *channel
        int32_t *dtime
        Py_ssize_t cap
        int64_t g_int, r_int
        double g_frac, r_frac
        int64_t *state
        Py_ssize_t used, written
    ctypedef void (*tt_ptu_decoder)(tt_ptu_io *io) noexcept nogil
    tt_ptu_decoder tt_ptu_pick(int t3, int family, int exact, int vector) noexcept nogil
    int tt_ptu_vector_loop(int t3, int family, int exact) noexcept nogil
    enum: TT_PTU_N_STATE


KERNELS = ("auto", "scalar", "avx2")


def vector_loop(bint t3, int family, bint exact_unit):
    """True when ``kernel="auto"`` takes the AVX2 loop for these records on this CPU."""
    return bool(tt_ptu_vector_loop(t3, family, exact_unit))


cdef tuple _run(bint t3, const uint32_t[::1] rec, int family, int64_t g_int, double g_frac, int64_t r_int,
                double r_frac, int64_t[::1] state, int64_t[::1] out_time, int32_t[::1] out_channel,
                int32_t[::1] out_dtime, str kernel):
    if not TT_PTU_FAMILY_PICOHARP <= family <= TT_PTU_FAMILY_HYDRAHARP2:
        raise ValueError(f"PTU decode: unknown record family {family}")
    if kernel not in KERNELS:
        raise ValueError(f"PTU decode: kernel must be one of {KERNELS}, got {kernel!r}")
    cdef bint exact = g_frac == 0.0 and r_frac == 0.0
    if kernel == "avx2" and not tt_ptu_vector_loop(t3, family, exact):
        raise ValueError("PTU decode: no AVX2 loop for these records on this CPU (HydraHarp-family T2 with an "
                         "integer ps unit, on a CPU with AVX2)")
    if state.shape[0] < TT_PTU_N_STATE:
        raise ValueError(f"PTU decode: state needs {TT_PTU_N_STATE} slots, got {state.shape[0]}")
    if out_channel.shape[0] < out_time.shape[0] or (t3 and out_dtime.shape[0] < out_time.shape[0]):
        raise ValueError("PTU decode: output arrays shorter than out_time")
    cdef tt_ptu_io io
    cdef tt_ptu_decoder fn = tt_ptu_pick(t3, family, exact, kernel != "scalar")
    io.n = rec.shape[0]
    io.cap = out_time.shape[0]
    io.rec = &rec[0] if io.n else NULL
    io.time = &out_time[0] if io.cap else NULL
    io.channel = &out_channel[0] if io.cap else NULL
    io.dtime = &out_dtime[0] if t3 and io.cap else NULL
    io.g_int, io.g_frac, io.r_int, io.r_frac = g_int, g_frac, r_int, r_frac
    io.state = &state[0]
    io.used = io.written = 0
    if io.n and io.cap:
        with nogil:
            fn(&io)
    return io.used, io.written


def decode_t2(const uint32_t[::1] rec, int family, int64_t unit_int, double unit_frac,
              int64_t[::1] state, int64_t[::1] out_time, int32_t[::1] out_channel, str kernel="auto"):
    """Decode T2 records; returns (records consumed, tags written).

    Stops early when the output is full; call again with the rest.  A marker record yields up to 4 tags: with
    fewer than 4 output slots a call may consume nothing.  ``kernel``: "auto" (the AVX2 loop where there is one),
    "scalar", or "avx2" (ValueError where there is none); all give the same result.  Output slots past the tags
    written are scratch.
    """
    return _run(False, rec, family, unit_int, unit_frac, 0, 0.0, state, out_time, out_channel, None, kernel)


def decode_t3(const uint32_t[::1] rec, int family, int64_t sync_int, double sync_frac,
              int64_t res_int, double res_frac,
              int64_t[::1] state, int64_t[::1] out_time, int32_t[::1] out_channel, int32_t[::1] out_dtime):
    """Decode T3 records; time = (overflow + nsync) * sync period + dtime * resolution (ps).

    ``out_dtime`` receives the raw dtime bin of each tag (-1 for markers).  Returns (records consumed, tags written).
    """
    return _run(True, rec, family, sync_int, sync_frac, res_int, res_frac, state, out_time, out_channel, out_dtime,
                "scalar")
