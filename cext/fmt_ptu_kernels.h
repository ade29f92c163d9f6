/* Decode loops of cext/fmt_ptu.pyx, in C: one loop per (family, T2/T3, exact unit), picked once per call from
 * a table, so that no per-record test depends on the header.  In a T2 file with sparse photons about a third
 * of the records are overflow records, interleaved at random with the photons: a branch on the record kind
 * misses on a large share of them.  Here the common kinds (photon, sync, overflow) go through one branch-free
 * path: every such record writes a tag at the output cursor, and the cursor only moves on when the record is
 * a tag; the overflow sum moves on by a masked increment.  Only markers and invalid records (rare) take a
 * branch.  The output bound is checked once per block of records (a common record writes at most one tag),
 * not once per record.  HydraHarp-family T2 with an integer ps unit also has an AVX2 loop (8 records per step),
 * picked at run time when the CPU has AVX2; the scalar loop stays the fallback and the reference.  See
 * docs/performance.md. */
#ifndef TIMETAG_FMT_PTU_KERNELS_H
#define TIMETAG_FMT_PTU_KERNELS_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#if defined(__GNUC__) && defined(__x86_64__) && !defined(TT_NO_X86)  /* TT_NO_X86: test the portable build */
#include <immintrin.h>
#define TT_PTU_X86 1
#else
#define TT_PTU_X86 0
#endif

#include "tt_constants.h"  /* families, wrap-around periods, sync and marker channels */

/* the HydraHarp T2 loop writes (special bit << 6 | channel) as the tag channel: a sync record is 64 */
_Static_assert(TT_PTU_SYNC_CHANNEL == 64, "T2 sync channel must equal the special bit's value above the channel");

#if defined(__GNUC__)
#define TT_PTU_RARE(x) __builtin_expect(!!(x), 0)
#define TT_PTU_INLINE static inline __attribute__((always_inline))
#else
#define TT_PTU_RARE(x) (x)
#define TT_PTU_INLINE static inline
#endif

/* slots of the state array (timetag.formats.ptu.STATE_FIELDS) */
enum { TT_PTU_S_OVERFLOW = 0, TT_PTU_S_N_OVERFLOW, TT_PTU_S_N_MARKER, TT_PTU_S_N_SYNC, TT_PTU_S_N_INVALID,
       TT_PTU_S_N_PHOTON, TT_PTU_N_STATE };

/* One call: records in, tags out.  T2: time unit = g (global resolution).  T3: g = sync period, r = dtime
 * bin.  A unit in ps is split into integer and fractional parts (a double alone loses ps past 2**53 ps). */
typedef struct {
    const uint32_t *rec;
    ptrdiff_t n;
    int64_t *time;
    int32_t *channel;
    int32_t *dtime;      /* T3 only */
    ptrdiff_t cap;       /* output slots */
    int64_t g_int, r_int;
    double g_frac, r_frac;
    int64_t *state;      /* TT_PTU_N_STATE slots, carried across calls */
    ptrdiff_t used, written;
} tt_ptu_io;

typedef void (*tt_ptu_decoder)(tt_ptu_io *io);

TT_PTU_INLINE int64_t tt_ptu_ps(int64_t units, int64_t unit_int, double unit_frac, const int exact)
{
    if (exact)
        return units * unit_int;
    return units * unit_int + (int64_t)floor((double)units * unit_frac + 0.5);
}

/* One tag per set marker bit (bits 0..3) at time t; the caller has checked there is room for 4. */
TT_PTU_INLINE ptrdiff_t tt_ptu_markers(uint32_t bits, int64_t t, int64_t *ot, int32_t *oc, int32_t *od,
                                       ptrdiff_t w)
{
    for (int m = 0; m < 4; m++) {
        if (bits & (1u << m)) {
            ot[w] = t;
            oc[w] = TT_PTU_MARKER_BASE + m;
            if (od)
                od[w] = -1;
            w++;
        }
    }
    return w;
}

/* The end of the next block of records whose common kinds cannot overrun the output. */
TT_PTU_INLINE ptrdiff_t tt_ptu_block_end(ptrdiff_t i, ptrdiff_t n, ptrdiff_t w, ptrdiff_t cap)
{
    ptrdiff_t room = cap - w;
    return (n - i < room) ? n : i + room;
}

/* Counters are derived at the end from what the loop counts anyway: common records = used - rare records;
 * photons = common records that are not special. */
TT_PTU_INLINE void tt_ptu_finish(tt_ptu_io *io, ptrdiff_t i, ptrdiff_t w, int64_t ofl, int64_t n_ofl,
                                 int64_t n_special, int64_t n_mark, int64_t n_inv)
{
    int64_t *s = io->state;
    int64_t n_common = (int64_t)i - n_mark - n_inv;
    s[TT_PTU_S_OVERFLOW] = ofl;
    s[TT_PTU_S_N_OVERFLOW] += n_ofl;
    s[TT_PTU_S_N_MARKER] += n_mark;
    s[TT_PTU_S_N_SYNC] += n_special - n_ofl;
    s[TT_PTU_S_N_INVALID] += n_inv;
    s[TT_PTU_S_N_PHOTON] += n_common - n_special;
    io->used = i;
    io->written = w;
}

/* HydraHarp family T2: special bit 31, channel 30..25, time 24..0.  Special channel 63 = overflow (v1: one
 * wrap of TT_PTU_T2_WRAP_HYDRAHARP1; v2: time field = number of wraps of TT_PTU_T2_WRAP_HYDRAHARP2, 0 written
 * by some firmware meaning one), 0 = sync, 1..15 = marker bits, 16..62 = invalid. */
TT_PTU_INLINE void tt_ptu_t2_hh(tt_ptu_io *io, const int hh1, const int exact)
{
    const uint32_t *rec = io->rec;
    int64_t *ot = io->time;
    int32_t *oc = io->channel;
    const ptrdiff_t n = io->n, cap = io->cap;
    const int64_t ui = io->g_int;
    const double uf = io->g_frac;
    ptrdiff_t i = 0, w = 0;
    int64_t ofl = io->state[TT_PTU_S_OVERFLOW], n_ofl = 0, n_sp = 0, n_mark = 0, n_inv = 0;
    while (i < n && w < cap) {
        const ptrdiff_t end = tt_ptu_block_end(i, n, w, cap);
        for (; i < end; i++) {
            /* k = special bit and channel: 0..63 photon, 64 sync (= its tag channel), 65..126 marker or
             * invalid, 127 overflow */
            const uint32_t r = rec[i], k = r >> 25, tf = r & 0x1FFFFFF;
            if (TT_PTU_RARE(k - 65u < 62u)) {
                const uint32_t ch = k & 63;
                if (ch <= 15) {
                    if (w + 4 > cap)
                        goto done;
                    w = tt_ptu_markers(ch, tt_ptu_ps(ofl + tf, ui, uf, exact), ot, oc, NULL, w);
                    n_mark++;
                } else {
                    n_inv++;
                }
                i++;
                break;      /* up to 4 tags written: the block's bound no longer holds */
            }
            const int64_t is_ofl = k == 127;
            const int64_t wraps = hh1 ? TT_PTU_T2_WRAP_HYDRAHARP1
                                      : (int64_t)TT_PTU_T2_WRAP_HYDRAHARP2 * (int64_t)(tf + (tf == 0));
            ot[w] = tt_ptu_ps(ofl + tf, ui, uf, exact);
            oc[w] = (int32_t)k;
            w += 1 - is_ofl;
            ofl += wraps & -is_ofl;
            n_ofl += is_ofl;
            n_sp += k >> 6;
        }
    }
done:
    tt_ptu_finish(io, i, w, ofl, n_ofl, n_sp, n_mark, n_inv);
}

/* PicoHarp 300 T2: channel 31..28, time 27..0.  Channel 15 = special: marker bits 3..0 of the time field, all
 * four 0 = overflow (one wrap of TT_PTU_T2_WRAP_PICOHARP).  Inputs 0..4 are photons, 5..14 invalid. */
TT_PTU_INLINE void tt_ptu_t2_ph(tt_ptu_io *io, const int exact)
{
    const uint32_t *rec = io->rec;
    int64_t *ot = io->time;
    int32_t *oc = io->channel;
    const ptrdiff_t n = io->n, cap = io->cap;
    const int64_t ui = io->g_int;
    const double uf = io->g_frac;
    ptrdiff_t i = 0, w = 0;
    int64_t ofl = io->state[TT_PTU_S_OVERFLOW], n_ofl = 0, n_mark = 0, n_inv = 0;
    while (i < n && w < cap) {
        const ptrdiff_t end = tt_ptu_block_end(i, n, w, cap);
        for (; i < end; i++) {
            const uint32_t r = rec[i], ch = r >> 28, tf = r & 0x0FFFFFFF;
            const int64_t is_ofl = (r & 0xF000000Fu) == 0xF0000000u;
            if (TT_PTU_RARE((ch > 4) & !is_ofl)) {
                if (ch == 15) {
                    if (w + 4 > cap)
                        goto done;
                    w = tt_ptu_markers(tf & 0xF, tt_ptu_ps(ofl + tf, ui, uf, exact), ot, oc, NULL, w);
                    n_mark++;
                } else {
                    n_inv++;
                }
                i++;
                break;
            }
            ot[w] = tt_ptu_ps(ofl + tf, ui, uf, exact);
            oc[w] = (int32_t)ch;
            w += 1 - is_ofl;
            ofl += (int64_t)TT_PTU_T2_WRAP_PICOHARP & -is_ofl;
            n_ofl += is_ofl;
        }
    }
done:
    /* every common special record is an overflow: no sync in PicoHarp T2 */
    tt_ptu_finish(io, i, w, ofl, n_ofl, n_ofl, n_mark, n_inv);
}

/* HydraHarp family T3: special bit 31, channel 30..25, dtime 24..10, nsync 9..0.  Special channel 63 =
 * overflow (v1: one wrap of 1024 syncs; v2: nsync = number of wraps, 0 meaning one), 1..15 marker bits,
 * 0 and 16..62 invalid.  time = (overflow + nsync) x sync period + dtime x bin. */
TT_PTU_INLINE void tt_ptu_t3_hh(tt_ptu_io *io, const int hh1, const int exact)
{
    const uint32_t *rec = io->rec;
    int64_t *ot = io->time;
    int32_t *oc = io->channel, *od = io->dtime;
    const ptrdiff_t n = io->n, cap = io->cap;
    const int64_t gi = io->g_int, ri = io->r_int;
    const double gf = io->g_frac, rf = io->r_frac;
    ptrdiff_t i = 0, w = 0;
    int64_t ofl = io->state[TT_PTU_S_OVERFLOW], n_ofl = 0, n_mark = 0, n_inv = 0;
    while (i < n && w < cap) {
        const ptrdiff_t end = tt_ptu_block_end(i, n, w, cap);
        for (; i < end; i++) {
            const uint32_t r = rec[i], sp = r >> 31, ch = (r >> 25) & 63, dt = (r >> 10) & 0x7FFF, ns = r & 0x3FF;
            if (TT_PTU_RARE(sp & (ch != 63))) {
                if (ch >= 1 && ch <= 15) {
                    if (w + 4 > cap)
                        goto done;
                    w = tt_ptu_markers(ch, tt_ptu_ps(ofl + ns, gi, gf, exact), ot, oc, od, w);
                    n_mark++;
                } else {
                    n_inv++;
                }
                i++;
                break;
            }
            const int64_t is_ofl = sp;
            const int64_t wraps = hh1 ? TT_PTU_T3_WRAP_HYDRAHARP
                                      : (int64_t)TT_PTU_T3_WRAP_HYDRAHARP * (int64_t)(ns + (ns == 0));
            ot[w] = tt_ptu_ps(ofl + ns, gi, gf, exact) + tt_ptu_ps(dt, ri, rf, exact);
            oc[w] = (int32_t)ch;
            od[w] = (int32_t)dt;
            w += 1 - is_ofl;
            ofl += wraps & -is_ofl;
            n_ofl += is_ofl;
        }
    }
done:
    tt_ptu_finish(io, i, w, ofl, n_ofl, n_ofl, n_mark, n_inv);
}

/* PicoHarp 300 T3: channel 31..28, dtime 27..16, nsync 15..0.  Channel 15 = special: dtime 0 = overflow (one
 * wrap of 65536 syncs), else marker bits 3..0 of dtime.  Inputs 1..4 are photons (-> channels 0..3), 0 and
 * 5..14 invalid. */
TT_PTU_INLINE void tt_ptu_t3_ph(tt_ptu_io *io, const int exact)
{
    const uint32_t *rec = io->rec;
    int64_t *ot = io->time;
    int32_t *oc = io->channel, *od = io->dtime;
    const ptrdiff_t n = io->n, cap = io->cap;
    const int64_t gi = io->g_int, ri = io->r_int;
    const double gf = io->g_frac, rf = io->r_frac;
    ptrdiff_t i = 0, w = 0;
    int64_t ofl = io->state[TT_PTU_S_OVERFLOW], n_ofl = 0, n_mark = 0, n_inv = 0;
    while (i < n && w < cap) {
        const ptrdiff_t end = tt_ptu_block_end(i, n, w, cap);
        for (; i < end; i++) {
            const uint32_t r = rec[i], ch = r >> 28, dt = (r >> 16) & 0xFFF, ns = r & 0xFFFF;
            const int64_t is_ofl = (r & 0xFFFF0000u) == 0xF0000000u;
            if (TT_PTU_RARE(((ch - 1u) >= 4u) & !is_ofl)) {
                if (ch == 15) {
                    if (w + 4 > cap)
                        goto done;
                    w = tt_ptu_markers(dt & 0xF, tt_ptu_ps(ofl + ns, gi, gf, exact), ot, oc, od, w);
                    n_mark++;
                } else {
                    n_inv++;
                }
                i++;
                break;
            }
            ot[w] = tt_ptu_ps(ofl + ns, gi, gf, exact) + tt_ptu_ps(dt, ri, rf, exact);
            oc[w] = (int32_t)ch - 1;
            od[w] = (int32_t)dt;
            w += 1 - is_ofl;
            ofl += (int64_t)TT_PTU_T3_WRAP_PICOHARP & -is_ofl;
            n_ofl += is_ofl;
        }
    }
done:
    tt_ptu_finish(io, i, w, ofl, n_ofl, n_ofl, n_mark, n_inv);
}

static void tt_ptu_t2_ph_exact(tt_ptu_io *io) { tt_ptu_t2_ph(io, 1); }
static void tt_ptu_t2_ph_frac(tt_ptu_io *io) { tt_ptu_t2_ph(io, 0); }
static void tt_ptu_t2_hh1_exact(tt_ptu_io *io) { tt_ptu_t2_hh(io, 1, 1); }
static void tt_ptu_t2_hh1_frac(tt_ptu_io *io) { tt_ptu_t2_hh(io, 1, 0); }
static void tt_ptu_t2_hh2_exact(tt_ptu_io *io) { tt_ptu_t2_hh(io, 0, 1); }
static void tt_ptu_t2_hh2_frac(tt_ptu_io *io) { tt_ptu_t2_hh(io, 0, 0); }
static void tt_ptu_t3_ph_exact(tt_ptu_io *io) { tt_ptu_t3_ph(io, 1); }
static void tt_ptu_t3_ph_frac(tt_ptu_io *io) { tt_ptu_t3_ph(io, 0); }
static void tt_ptu_t3_hh1_exact(tt_ptu_io *io) { tt_ptu_t3_hh(io, 1, 1); }
static void tt_ptu_t3_hh1_frac(tt_ptu_io *io) { tt_ptu_t3_hh(io, 1, 0); }
static void tt_ptu_t3_hh2_exact(tt_ptu_io *io) { tt_ptu_t3_hh(io, 0, 1); }
static void tt_ptu_t3_hh2_frac(tt_ptu_io *io) { tt_ptu_t3_hh(io, 0, 0); }

#if TT_PTU_X86
/* HydraHarp T2, exact unit, 8 records per step.  In a file with sparse photons the overflow records are a third
 * of the stream: the scalar loop spends one dependent add per record on the overflow sum and one store per record.
 * Here the overflow wraps of 8 records are summed as an inclusive prefix over the lanes (a lane that is a tag has
 * no wraps of its own, so inclusive = the wraps before it), and the tags are packed by a permutation per half
 * (4 int64 times; 4 int32 channels) looked up by the half's keep mask.  A group holding a marker or invalid
 * record, and the records after the last whole group that fits the output, go through the scalar loop, which
 * stays the reference: the result is the same bit for bit, including where a call stops when the output is full.
 * Lanes past the packed tags are scratch: a group is only taken when 8 output slots are free. */
static const int32_t tt_ptu_pack64[16][8] __attribute__((aligned(32))) = {
    {0, 0, 0, 0, 0, 0, 0, 0}, {0, 1, 0, 0, 0, 0, 0, 0}, {2, 3, 0, 0, 0, 0, 0, 0}, {0, 1, 2, 3, 0, 0, 0, 0},
    {4, 5, 0, 0, 0, 0, 0, 0}, {0, 1, 4, 5, 0, 0, 0, 0}, {2, 3, 4, 5, 0, 0, 0, 0}, {0, 1, 2, 3, 4, 5, 0, 0},
    {6, 7, 0, 0, 0, 0, 0, 0}, {0, 1, 6, 7, 0, 0, 0, 0}, {2, 3, 6, 7, 0, 0, 0, 0}, {0, 1, 2, 3, 6, 7, 0, 0},
    {4, 5, 6, 7, 0, 0, 0, 0}, {0, 1, 4, 5, 6, 7, 0, 0}, {2, 3, 4, 5, 6, 7, 0, 0}, {0, 1, 2, 3, 4, 5, 6, 7},
};
static const int32_t tt_ptu_pack32[16][4] __attribute__((aligned(16))) = {
    {0, 0, 0, 0}, {0, 0, 0, 0}, {1, 0, 0, 0}, {0, 1, 0, 0},
    {2, 0, 0, 0}, {0, 2, 0, 0}, {1, 2, 0, 0}, {0, 1, 2, 0},
    {3, 0, 0, 0}, {0, 3, 0, 0}, {1, 3, 0, 0}, {0, 1, 3, 0},
    {2, 3, 0, 0}, {0, 2, 3, 0}, {1, 2, 3, 0}, {0, 1, 2, 3},
};

/* units x unit modulo 2**64 (as the scalar int64 product), for a unit below 2**32 */
__attribute__((target("avx2"))) static inline __m256i tt_ptu_mul64x32(__m256i units, __m256i unit)
{
    __m256i lo = _mm256_mul_epu32(units, unit);
    __m256i hi = _mm256_mul_epu32(_mm256_srli_epi64(units, 32), unit);
    return _mm256_add_epi64(lo, _mm256_slli_epi64(hi, 32));
}

/* Pack the tag lanes (keep mask bits) of one half: 4 times, 4 channels; returns the tags written. */
__attribute__((target("avx2"))) static inline int tt_ptu_pack_half(int64_t *ot, int32_t *oc, __m256i t,
                                                                    __m128i ch, unsigned keep)
{
    __m256i p64 = _mm256_load_si256((const __m256i *)tt_ptu_pack64[keep]);
    __m128i p32 = _mm_load_si128((const __m128i *)tt_ptu_pack32[keep]);
    _mm256_storeu_si256((__m256i *)ot, _mm256_permutevar8x32_epi32(t, p64));
    _mm_storeu_si128((__m128i *)oc, _mm_castps_si128(_mm_permutevar_ps(_mm_castsi128_ps(ch), p32)));
    return __builtin_popcount(keep);
}

__attribute__((target("avx2"))) static void tt_ptu_t2_hh_exact_avx2(tt_ptu_io *io, const int hh1)
{
    const tt_ptu_decoder scalar = hh1 ? tt_ptu_t2_hh1_exact : tt_ptu_t2_hh2_exact;
    if ((uint64_t)io->g_int >> 32) {     /* the lane product below needs a unit under 2**32 ps */
        scalar(io);
        return;
    }
    const uint32_t *rec = io->rec;
    int64_t *ot = io->time, *s = io->state;
    int32_t *oc = io->channel;
    const ptrdiff_t n = io->n, cap = io->cap;
    const __m256i unit = _mm256_set1_epi64x(io->g_int);
    const __m256i wrap = _mm256_set1_epi64x(hh1 ? TT_PTU_T2_WRAP_HYDRAHARP1 : TT_PTU_T2_WRAP_HYDRAHARP2);
    const __m256i k_sync = _mm256_set1_epi32(64), k_ofl = _mm256_set1_epi32(127), k_sp = _mm256_set1_epi32(63);
    const __m256i tmask = _mm256_set1_epi32(0x1FFFFFF), one = _mm256_set1_epi32(1), zero = _mm256_setzero_si256();
    ptrdiff_t i = 0, w = 0;
    for (;;) {
        const ptrdiff_t i0 = i;
        int64_t ofl = s[TT_PTU_S_OVERFLOW], n_ofl = 0, n_sp = 0;
        while (i + 8 <= n && w + 8 <= cap) {
            const __m256i r = _mm256_loadu_si256((const __m256i *)(rec + i));
            const __m256i k = _mm256_srli_epi32(r, 25), tf = _mm256_and_si256(r, tmask);
            /* 65..126: marker or invalid */
            const __m256i rare = _mm256_and_si256(_mm256_cmpgt_epi32(k, k_sync), _mm256_cmpgt_epi32(k_ofl, k));
            if (TT_PTU_RARE(!_mm256_testz_si256(rare, rare)))
                break;
            const __m256i is_ofl = _mm256_cmpeq_epi32(k, k_ofl);
            /* wraps per record, in units of the wrap period: v1 one, v2 the time field (0 meaning one) */
            __m256i x = hh1 ? one : _mm256_sub_epi32(tf, _mm256_cmpeq_epi32(tf, zero));
            x = _mm256_and_si256(x, is_ofl);
            x = _mm256_add_epi32(x, _mm256_slli_si256(x, 4));
            x = _mm256_add_epi32(x, _mm256_slli_si256(x, 8));
            x = _mm256_add_epi32(x, _mm256_shuffle_epi32(_mm256_permute2x128_si256(x, x, 0x08), 0xFF));
            const __m256i base = _mm256_set1_epi64x(ofl);
            const __m256i u_lo = _mm256_add_epi64(
                _mm256_add_epi64(base, _mm256_mul_epu32(_mm256_cvtepu32_epi64(_mm256_castsi256_si128(x)), wrap)),
                _mm256_cvtepu32_epi64(_mm256_castsi256_si128(tf)));
            const __m256i u_hi = _mm256_add_epi64(
                _mm256_add_epi64(base, _mm256_mul_epu32(_mm256_cvtepu32_epi64(_mm256_extracti128_si256(x, 1)), wrap)),
                _mm256_cvtepu32_epi64(_mm256_extracti128_si256(tf, 1)));
            const unsigned m_ofl = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(is_ofl));
            const unsigned m_sp = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(k, k_sp)));
            const unsigned keep = ~m_ofl & 0xFFu;
            w += tt_ptu_pack_half(ot + w, oc + w, tt_ptu_mul64x32(u_lo, unit), _mm256_castsi256_si128(k), keep & 15u);
            w += tt_ptu_pack_half(ot + w, oc + w, tt_ptu_mul64x32(u_hi, unit), _mm256_extracti128_si256(k, 1),
                                  keep >> 4);
            ofl += (int64_t)(uint32_t)_mm256_extract_epi32(x, 7) *
                   (hh1 ? (int64_t)TT_PTU_T2_WRAP_HYDRAHARP1 : (int64_t)TT_PTU_T2_WRAP_HYDRAHARP2);
            n_ofl += __builtin_popcount(m_ofl);
            n_sp += __builtin_popcount(m_sp);
            i += 8;
        }
        s[TT_PTU_S_OVERFLOW] = ofl;
        s[TT_PTU_S_N_OVERFLOW] += n_ofl;
        s[TT_PTU_S_N_SYNC] += n_sp - n_ofl;
        s[TT_PTU_S_N_PHOTON] += (int64_t)(i - i0) - n_sp;
        /* the scalar loop takes a group with a rare record, or the rest (fewer than 8 records or output slots) */
        const int rest = !(i + 8 <= n && w + 8 <= cap);
        tt_ptu_io sub = *io;
        sub.rec = rec + i;
        sub.n = rest ? n - i : 8;
        sub.time = ot + w;
        sub.channel = oc + w;
        sub.cap = cap - w;
        scalar(&sub);
        i += sub.used;
        w += sub.written;
        if (rest || sub.used < 8)   /* done, or the output filled inside the group: the scalar loop stops there too */
            break;
    }
    io->used = i;
    io->written = w;
}

static void tt_ptu_t2_hh1_exact_avx2(tt_ptu_io *io) { tt_ptu_t2_hh_exact_avx2(io, 1); }
static void tt_ptu_t2_hh2_exact_avx2(tt_ptu_io *io) { tt_ptu_t2_hh_exact_avx2(io, 0); }

static int tt_ptu_have_avx2(void) { return __builtin_cpu_supports("avx2"); }
#else
static int tt_ptu_have_avx2(void) { return 0; }
#endif

/* [t3][family][exact]; family: TT_PTU_FAMILY_PICOHARP, _HYDRAHARP1, _HYDRAHARP2 */
static const tt_ptu_decoder tt_ptu_decoders[2][3][2] = {
    {{tt_ptu_t2_ph_frac, tt_ptu_t2_ph_exact}, {tt_ptu_t2_hh1_frac, tt_ptu_t2_hh1_exact},
     {tt_ptu_t2_hh2_frac, tt_ptu_t2_hh2_exact}},
    {{tt_ptu_t3_ph_frac, tt_ptu_t3_ph_exact}, {tt_ptu_t3_hh1_frac, tt_ptu_t3_hh1_exact},
     {tt_ptu_t3_hh2_frac, tt_ptu_t3_hh2_exact}},
};

/* NULL for a family outside the table (the Python wrapper validates first).  vector: take the AVX2 loop where
 * there is one (HydraHarp T2, exact unit) and the CPU has AVX2; 0 = the scalar loops only. */
static inline tt_ptu_decoder tt_ptu_pick(int t3, int family, int exact, int vector)
{
    if (family < 0 || family > 2)
        return NULL;
#if TT_PTU_X86
    if (vector && !t3 && exact && family != TT_PTU_FAMILY_PICOHARP && tt_ptu_have_avx2())
        return family == TT_PTU_FAMILY_HYDRAHARP1 ? tt_ptu_t2_hh1_exact_avx2 : tt_ptu_t2_hh2_exact_avx2;
#else
    (void)vector;
#endif
    return tt_ptu_decoders[t3 != 0][family][exact != 0];
}

/* 1 when tt_ptu_pick(t3, family, exact, 1) returns an AVX2 loop */
static inline int tt_ptu_vector_loop(int t3, int family, int exact)
{
    return !t3 && exact && (family == TT_PTU_FAMILY_HYDRAHARP1 || family == TT_PTU_FAMILY_HYDRAHARP2) &&
           tt_ptu_have_avx2();
}

#endif
