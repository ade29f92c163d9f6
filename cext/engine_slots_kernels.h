/* Hot loops of cext/engine_slots.pyx, in C: the per-slot tables are private to the loop
 * (restrict, locals), which the Cython version could not tell the compiler, and the selects
 * stay selects (gcc turned a conditional expression into a branch that missed on 40% of the
 * clicks).  Measured on the benchmark stream: 6.0 -> 3.6 ns per tag for the split alone. */
#ifndef TIMETAG_ENGINE_SLOTS_KERNELS_H
#define TIMETAG_ENGINE_SLOTS_KERNELS_H
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__GNUC__) && defined(__x86_64__) && !defined(TT_NO_X86)  /* TT_NO_X86: test the portable build */
#include <immintrin.h>
#define TT_X86 1
#else
#define TT_X86 0
#endif

#include "tt_constants.h"  /* TT_MAX_SLOTS, TT_PAD */
#include "tt_records.h"    /* tt_agg (an attempt), tt_her (a closed attempt with >= 2 accepted clicks) */

#define TT_SUB 8192    /* tags per sub-block: split, then attempts, while the sub-block is in cache */

/* Everything the chunk driver reads and updates: internal to engine_slots.pyx, which fills it from the
 * lab's tables (HeraldTables) and the call's buffers and records (tt_herald_io, tt_herald_state), and
 * copies the results back.  One flat struct, not the records themselves, so that the hot loops read
 * locals the compiler can keep in registers.  Rows hold raw times: a row's delay is applied by whoever
 * reads it (one subtraction per row, not per tag). */
typedef struct {
    /* split: per slot (ns of them, the last the junk slot for channels the lab does not use) */
    ptrdiff_t ns;
    int64_t chan_lo;
    uint64_t nspan;
    const int32_t *slot_of;
    int64_t *row[TT_MAX_SLOTS];
    int64_t hi[TT_MAX_SLOTS];        /* io */
    /* vector split (tt_split_avx2): vec 0 = scalar split, 1 = codes from a table, 2 = codes
     * by a byte shuffle (nspan < 16).  code[k] (k = clamped channel index, nspan + 1 entries):
     * 0..6 the lane of slot lane_slot[code], 7 the junk slot, 8 + q the slot scal_slot[q]
     * (counted in memory, behind a branch: give lanes to the busy slots). */
    int vec;
    int64_t *base;                   /* rows[0, 0]; row s starts at base + s * stride */
    ptrdiff_t stride, nlane;
    ptrdiff_t lane_slot[7];
    ptrdiff_t scal_slot[TT_MAX_SLOTS];
    const uint8_t *code;
    int64_t last_raw;                /* io */
    int64_t max_delay;               /* horizon = last raw time - max_delay (corrected times) */
    int64_t horizon;                 /* io */
    /* attempts (nb > 0) */
    int nxt;
    ptrdiff_t nb, sync_slot, s_lo;
    ptrdiff_t bsm_slot[TT_MAX_SLOTS], bsm_lo[TT_MAX_SLOTS];  /* bsm_lo: io */
    int64_t bsm_det[TT_MAX_SLOTS], bsm_off[TT_MAX_SLOTS];    /* off = click delay - sync delay */
    ptrdiff_t bsm_a[TT_MAX_SLOTS];   /* per row: syncs (before, or at-or-before) its last click */
    int64_t sync_delay, lower, w0, w1, hlo, hbin;
    uint64_t wspan, hspan;
    int64_t *hist;
    ptrdiff_t nbins;
    const int32_t *lut;              /* bin of each ps of the histogram span, or NULL (span too long) */
    tt_agg *AG;                      /* attempt j at AG[j - ag_base] (tt_attempts) */
    ptrdiff_t ag_base;               /* io */
    const tt_agg *carry;
    ptrdiff_t K, closed;             /* io: attempts initialised / scanned for heralds */
    tt_her *her;
    ptrdiff_t nidx;                  /* io: closed attempts with >= 2 accepted clicks, in her */
    int64_t n_acc, n_nosync;         /* io */
} tt_chunk;

/* Syncs at or before u ('previous', strict = 0) or before u ('next', strict = 1), counted on from
 * a (rows come in time order, so a only grows): a binary search over the next 16 syncs without
 * a branch, then a loop for longer gaps.  SY holds a sync at or after the horizon or padding
 * (INT64_MAX) past the last sync a click can reach, 8 of them at least (a never passes the
 * first padding cell, and the search reads at most 7 past a).  16 rather than 8: on the
 * benchmark stream a BSM row sees ~3 syncs per click, and 12% of the gaps were >= 8 syncs,
 * each a mispredicted loop (measured 0.4-0.5 ns per tag faster, A/B in one process). */
static inline ptrdiff_t tt_syncs_before(const int64_t *restrict SY, ptrdiff_t a, int64_t u, int strict)
{
    for (;;) {
        a += 8 * (strict ? SY[a + 7] < u : SY[a + 7] <= u);
        a += 4 * (strict ? SY[a + 3] < u : SY[a + 3] <= u);
        a += 2 * (strict ? SY[a + 1] < u : SY[a + 1] <= u);
        a += strict ? SY[a] < u : SY[a] <= u;
        if (__builtin_expect(strict ? SY[a] >= u : SY[a] > u, 1)) return a;
        a++;
    }
}

/* The arrival histogram as tt_hist_cell reads it (hspan 0: no bins, every click to the junk cell). */
typedef struct { int64_t hlo; uint64_t hspan, m; int64_t *junk; const int32_t *lut; } tt_hist;

/* The reciprocal of a bin width d >= 2 for tt_hist_cell: ceil(2**64 / d) (UINT64_MAX / d + 1 is
 * that for every d, powers of two included); 0 for d = 1, whose bin is x itself. */
static inline uint64_t tt_bin_reciprocal(int64_t d)
{
    return d > 1 ? UINT64_MAX / (uint64_t)d + 1 : 0;
}

/* The arrival-histogram cell of a click dt after its sync; clicks out of range count into a junk
 * cell.  Bin q = x // hbin (x = dt - hlo < 2**31 in range) is the high word of x * m, m =
 * ceil(2**64 / hbin), exact for every x < 2**32 (Lemire, Kaser & Kurz 2019, "Faster remainder by
 * direct computation"): one multiplication and no correction, short enough to stay inline. */
static inline int64_t *tt_hist_cell(int64_t dt, const tt_hist *h, int64_t *hrow)
{
    uint64_t x = (uint64_t)(dt - h->hlo);
    int64_t q;
    if (h->lut != NULL) {  /* the same for every click: predicted branches */
        q = h->lut[x < h->hspan ? x : 0];
    } else if (h->m != 0) {
        q = (int64_t)(((unsigned __int128)(uint32_t)x * h->m) >> 64);
    } else {
        q = (int64_t)(uint32_t)x;
    }
    /* a mask, not `in ? hrow + q : junk`, which gcc compiled to a branch: on the lmu2022 stream
     * 60% of the clicks are in range, in no order, and the branch missed on about every other one */
    uintptr_t in = -(uintptr_t)(x < h->hspan), miss = (uintptr_t)h->junk;
    uintptr_t hit = (uintptr_t)hrow + (uintptr_t)q * sizeof(int64_t);  /* integers: q may be out of range */
    return (int64_t *)(miss ^ ((hit ^ miss) & in));
}

/* Add a click dt after its sync, of BSM row r, to its attempt g if accepted.  Masks, not branches:
 * whether a click is accepted is as random as the stream.  Rows come in time order: on equal keys
 * (same row) the first click stays, the last is replaced; keys of different rows differ, so rows
 * may be visited in any order. */
static inline int64_t tt_click(int64_t dt, tt_agg *restrict g, int64_t r, int64_t w0, uint64_t wspan)
{
    uint64_t since = (uint64_t)(dt - w0);
    int64_t acc = since < wspan;
    uint64_t m = -(uint64_t)acc;
    uint64_t key = (since << 8) | (uint64_t)r;
    /* a rejected click: key1 all ones, key2 zero, neither can win */
    uint64_t key1 = key | ~m, key2 = key & m;
    uint64_t k1 = (uint64_t)g->k1, k2 = (uint64_t)g->k2;
    g->k1 = (int64_t)(key1 < k1 ? key1 : k1);
    g->k2 = (int64_t)(key2 >= k2 ? key2 : k2);
    g->n += acc;
    return acc;
}

/* The attempts, indexed by sync: tt_advance keeps only the attempts a click may still update at the
 * start of c->AG, so that the part in use stays in cache (indexed from the chunk's first sync, a
 * chunk's attempts stream through 32 bytes per sync, every new one a cache miss). */
static inline tt_agg *tt_attempts(const tt_chunk *c)
{
    return (tt_agg *)((uintptr_t)c->AG - (uintptr_t)c->ag_base * sizeof(tt_agg));
}

/* The clicks of BSM row r in [lo, hi) before the bound: attempt, histogram, accepted ones
 * into AG.  Times in the sync's raw frame: u = raw - off. */
static inline void tt_attempt_clicks(const int nxt, tt_chunk *c, ptrdiff_t r, const int64_t *restrict SY,
                                     ptrdiff_t K, int64_t bound_u, int64_t horizon_u, int flush, const tt_hist *h)
{
    int64_t *hrow = c->hist + c->bsm_det[r] * c->nbins;
    const int64_t *restrict T = c->row[c->bsm_slot[r]];
    ptrdiff_t i = c->bsm_lo[r], hi = c->hi[c->bsm_slot[r]], a = c->bsm_a[r];
    int64_t off = c->bsm_off[r], w0 = c->w0, lower = c->lower;
    uint64_t wspan = c->wspan;
    int64_t n_acc = 0, n_nosync = 0;
    tt_agg *restrict AG = tt_attempts(c);
    for (; i < hi; i++) {
        int64_t u = T[i] - off;
        if (u >= bound_u) break;
        a = tt_syncs_before(SY, a, u, nxt);
        ptrdiff_t j;
        if (nxt) {
            if (a >= K) {  /* its sync is not known yet (or, at the end, there is none) */
                if (flush) { n_nosync++; continue; }
                if (u >= horizon_u + lower) break;  /* the sync (at or after the horizon) may still come */
                continue;                           /* too early for any window of a later sync */
            }
            j = a;
        } else {
            if (a == 0) { n_nosync++; continue; }
            j = a - 1;
        }
        int64_t dt = u - SY[j];
        *tt_hist_cell(dt, h, hrow) += 1;
        n_acc += tt_click(dt, AG + j, r, w0, wspan);
    }
    c->bsm_lo[r] = i;
    c->bsm_a[r] = a;
    c->n_acc += n_acc;
    c->n_nosync += n_nosync;
}

/* x + y, saturated at the int64 limits (a raw bound from a bound in a row's frame). */
static inline int64_t tt_sat_add(int64_t x, int64_t y)
{
    int64_t z;
    if (__builtin_add_overflow(x, y, &z)) return y > 0 ? INT64_MAX : INT64_MIN;
    return z;
}

/* First index in [lo, hi) of sorted T with T[index] >= lim (hi if none): a plain binary search. */
static inline ptrdiff_t tt_first_at_or_after(const int64_t *T, ptrdiff_t lo, ptrdiff_t hi, int64_t lim)
{
    while (lo < hi) {
        ptrdiff_t mid = lo + ((hi - lo) >> 1);
        if (T[mid] < lim) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* How tt_attempt_pair bins an offset x into the arrival histogram (a constant per call, so that the
 * pair loop is compiled once per kind and tests nothing per click): a per-ps table, the high word of a
 * multiplication by ceil(2**64 / bin), or the offset itself (1 ps bins). */
enum { TT_BIN_LUT, TT_BIN_MUL, TT_BIN_ONE };

/* Rows r0 and r1 together while both have clicks with a known attempt before the bound: the
 * sync search of a row is a chain of dependent loads from click to click, and two chains run
 * side by side.  The single-row loop finishes what is left (and every special case).
 * The loop is short of registers, so what it reads per click is in locals: the histogram's
 * parameters by value (through a pointer gcc reloaded them after every histogram increment,
 * which might alias them), the way of binning fixed per call (kind), and no bound test per
 * click: the clicks it takes are counted first ('next': those up to the last known sync;
 * 'previous': a row's first click past the first sync means all its later ones are).  A
 * rejected click updates a spare attempt of its row instead of its own attempt with masked
 * keys: fewer instructions, and rejected clicks leave the attempts' cache lines alone; the
 * accepted count is the clicks less the spares' counts. */
static inline __attribute__((always_inline)) void
tt_attempt_pair(const int nxt, const int kind, tt_chunk *c, ptrdiff_t r0, ptrdiff_t r1, const int64_t *restrict SY,
                ptrdiff_t K, int64_t bound_u, const tt_hist *h)
{
    if (nxt && K == 0) return;
    int64_t *hrow0 = c->hist + c->bsm_det[r0] * c->nbins, *hrow1 = c->hist + c->bsm_det[r1] * c->nbins;
    const int64_t *T0 = c->row[c->bsm_slot[r0]], *T1 = c->row[c->bsm_slot[r1]];
    ptrdiff_t a0 = c->bsm_a[r0], a1 = c->bsm_a[r1];
    int64_t off0 = c->bsm_off[r0], off1 = c->bsm_off[r1], w0 = c->w0;
    ptrdiff_t lo0 = c->bsm_lo[r0], lo1 = c->bsm_lo[r1];
    /* 'next': a click after the last known sync, SY[K - 1] (a real sync, below INT64_MAX), has no attempt yet */
    int64_t lim = nxt && SY[K - 1] < bound_u ? SY[K - 1] + 1 : bound_u;
    ptrdiff_t e0 = tt_first_at_or_after(T0, lo0, c->hi[c->bsm_slot[r0]], tt_sat_add(lim, off0));
    ptrdiff_t e1 = tt_first_at_or_after(T1, lo1, c->hi[c->bsm_slot[r1]], tt_sat_add(lim, off1));
    ptrdiff_t n = e0 - lo0 < e1 - lo1 ? e0 - lo0 : e1 - lo1;
    if (n <= 0) return;
    /* 'previous': once a row's first click has a sync at or before it, so have all its later ones */
    if (!nxt && (T0[lo0] - off0 < SY[0] || T1[lo1] - off1 < SY[0])) return;
    const int64_t *p0 = T0 + lo0, *p1 = T1 + lo1;
    const int64_t hlo = h->hlo;
    const uint64_t hspan = h->hspan, m = h->m, wspan = c->wspan;
    const int32_t *lut = h->lut;
    int64_t hjunk[2] = {0, 0};
    tt_agg spare[2] = {{-1, 0, 0, 0}, {-1, 0, 0, 0}};
    tt_agg *AG = tt_attempts(c);
    const uintptr_t hj0 = (uintptr_t)&hjunk[0], hj1 = (uintptr_t)&hjunk[1];
    const uintptr_t gj0 = (uintptr_t)&spare[0], gj1 = (uintptr_t)&spare[1];
    for (ptrdiff_t k = 0; k < n; k++) {
        int64_t u0 = p0[k] - off0, u1 = p1[k] - off1;
        a0 = tt_syncs_before(SY, a0, u0, nxt);
        a1 = tt_syncs_before(SY, a1, u1, nxt);
        ptrdiff_t j0 = nxt ? a0 : a0 - 1, j1 = nxt ? a1 : a1 - 1;
        int64_t dt0 = u0 - SY[j0], dt1 = u1 - SY[j1];
        uint64_t x0 = (uint64_t)(dt0 - hlo), x1 = (uint64_t)(dt1 - hlo);
        int64_t q0, q1;
        if (kind == TT_BIN_LUT) {
            q0 = lut[x0 < hspan ? x0 : 0];
            q1 = lut[x1 < hspan ? x1 : 0];
        } else if (kind == TT_BIN_MUL) {
            q0 = (int64_t)(((unsigned __int128)(uint32_t)x0 * m) >> 64);
            q1 = (int64_t)(((unsigned __int128)(uint32_t)x1 * m) >> 64);
        } else {
            q0 = (int64_t)(uint32_t)x0;
            q1 = (int64_t)(uint32_t)x1;
        }
        /* masks, not `in ? cell : junk` (gcc makes a branch of that, and on this stream whether a
         * click is in range is a coin toss); integers, as q may be out of range */
        uintptr_t in0 = -(uintptr_t)(x0 < hspan), in1 = -(uintptr_t)(x1 < hspan);
        uintptr_t c0 = (uintptr_t)hrow0 + (uintptr_t)q0 * sizeof(int64_t);
        uintptr_t c1 = (uintptr_t)hrow1 + (uintptr_t)q1 * sizeof(int64_t);
        *(int64_t *)(hj0 ^ ((c0 ^ hj0) & in0)) += 1;
        *(int64_t *)(hj1 ^ ((c1 ^ hj1) & in1)) += 1;
        uint64_t s0 = (uint64_t)(dt0 - w0), s1 = (uint64_t)(dt1 - w0);
        uintptr_t ok0 = -(uintptr_t)(s0 < wspan), ok1 = -(uintptr_t)(s1 < wspan);
        uint64_t key0 = (s0 << 8) | (uint64_t)r0, key1 = (s1 << 8) | (uint64_t)r1;
        tt_agg *g0 = (tt_agg *)(gj0 ^ (((uintptr_t)(AG + j0) ^ gj0) & ok0));
        uint64_t k1 = (uint64_t)g0->k1, k2 = (uint64_t)g0->k2;
        g0->k1 = (int64_t)(key0 < k1 ? key0 : k1);
        g0->k2 = (int64_t)(key0 > k2 ? key0 : k2);
        g0->n += 1;
        /* after g0's update: both clicks may be of one attempt */
        tt_agg *g1 = (tt_agg *)(gj1 ^ (((uintptr_t)(AG + j1) ^ gj1) & ok1));
        k1 = (uint64_t)g1->k1;
        k2 = (uint64_t)g1->k2;
        g1->k1 = (int64_t)(key1 < k1 ? key1 : k1);
        g1->k2 = (int64_t)(key1 > k2 ? key1 : k2);
        g1->n += 1;
    }
    c->bsm_lo[r0] = lo0 + n;
    c->bsm_a[r0] = a0;
    c->bsm_lo[r1] = lo1 + n;
    c->bsm_a[r1] = a1;
    c->n_acc += 2 * n - spare[0].n - spare[1].n;
}

/* Attempts up to the horizon h (corrected time; everything with flush): new syncs get their
 * attempt, clicks before h are added, attempts that can get no more clicks are scanned for
 * heralds. */
static void tt_advance(tt_chunk *c, int64_t h, int flush)
{
    if (c->nb == 0) return;
    int64_t *srow = c->row[c->sync_slot];
    ptrdiff_t end = c->hi[c->sync_slot];
    for (int j = 0; j < TT_PAD; j++) srow[end + j] = INT64_MAX;
    const int64_t *SY = srow + c->s_lo;
    ptrdiff_t n_s = end - c->s_lo, K = c->K;
    int64_t h_u = h + c->sync_delay;  /* the horizon in the sync's raw frame */
    tt_agg *AG = tt_attempts(c);
    /* the syncs before h (sorted, padded) get their attempts: no click yet */
    ptrdiff_t K1 = flush ? n_s : tt_first_at_or_after(SY, K, n_s, h_u);
    const tt_agg none = {-1, 0, 0, 0};  /* k1 = UINT64_MAX */
    for (ptrdiff_t j = K; j < K1; j++) AG[j] = none;
    if (K == 0 && K1 > 0 && c->carry != NULL) AG[0] = *c->carry;
    K = c->K = K1;
    int64_t bound_u = flush ? INT64_MAX : h_u;
    int64_t junk = 0;
    tt_hist hs = {c->hlo, c->nbins > 0 ? c->hspan : 0, tt_bin_reciprocal(c->hbin), &junk, c->lut};
    ptrdiff_t nb = c->nb;
    int kind = hs.lut != NULL ? TT_BIN_LUT : hs.m != 0 ? TT_BIN_MUL : TT_BIN_ONE;
    for (ptrdiff_t r = 0; r < nb; r += 2) {
        if (r + 1 < nb) {
            if (c->nxt) {
                if (kind == TT_BIN_LUT) tt_attempt_pair(1, TT_BIN_LUT, c, r, r + 1, SY, K, bound_u, &hs);
                else if (kind == TT_BIN_MUL) tt_attempt_pair(1, TT_BIN_MUL, c, r, r + 1, SY, K, bound_u, &hs);
                else tt_attempt_pair(1, TT_BIN_ONE, c, r, r + 1, SY, K, bound_u, &hs);
            } else {
                if (kind == TT_BIN_LUT) tt_attempt_pair(0, TT_BIN_LUT, c, r, r + 1, SY, K, bound_u, &hs);
                else if (kind == TT_BIN_MUL) tt_attempt_pair(0, TT_BIN_MUL, c, r, r + 1, SY, K, bound_u, &hs);
                else tt_attempt_pair(0, TT_BIN_ONE, c, r, r + 1, SY, K, bound_u, &hs);
            }
        }
        for (ptrdiff_t q = r; q < r + 2 && q < nb; q++) {
            if (c->nxt) tt_attempt_clicks(1, c, q, SY, K, bound_u, h_u, flush, &hs);
            else tt_attempt_clicks(0, c, q, SY, K, bound_u, h_u, flush, &hs);
        }
    }
    /* 'previous': attempt j is closed once the next sync or its window stop is before h */
    ptrdiff_t upto = K;
    if (!c->nxt && !flush && K > 0 && SY[K - 1] + c->w1 > h_u) upto = K - 1;
    ptrdiff_t nidx = c->nidx;
    tt_her *restrict H = c->her;
    /* a branch, not a store per attempt: on real streams few attempts have two accepted clicks
     * (lmu2022: one in ~2700), so it is nearly always predicted */
    for (ptrdiff_t j = c->closed; j < upto; j++) {
        if (__builtin_expect(AG[j].n >= 2, 0)) {
            H[nidx].k1 = AG[j].k1;
            H[nidx].k2 = AG[j].k2;
            H[nidx].n = AG[j].n;
            H[nidx].sync = SY[j];
            nidx++;
        }
    }
    c->nidx = nidx;
    if (upto > c->closed) c->closed = upto;
    /* a later click may update attempt K - 1 ('previous', the open one or a closed one's
     * rejected click) or none before K ('next'): the ones before are dropped */
    ptrdiff_t keep = c->closed < K - 1 ? c->closed : K - 1;
    if (keep > c->ag_base) {
        memmove(c->AG, c->AG + (keep - c->ag_base), (size_t)(K - keep) * sizeof(tt_agg));
        c->ag_base = keep;
    }
}

/* Does any raw time step back (the first one against prev)?  The sign bit of the differences,
 * two at a time with SSE2 (which has 64-bit subtraction but no 64-bit comparison). */
static inline int tt_steps_back(const int64_t *restrict T, ptrdiff_t m, int64_t prev)
{
    int64_t steps = T[0] < prev ? -1 : 0;
    ptrdiff_t i = 1;
#if defined(__SSE2__)
    __m128i acc = _mm_setzero_si128();
    for (; i + 2 <= m; i += 2) {
        __m128i a = _mm_loadu_si128((const __m128i *)(T + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(T + i - 1));
        acc = _mm_or_si128(acc, _mm_sub_epi64(a, b));
    }
    int64_t lanes[2];
    _mm_storeu_si128((__m128i *)lanes, acc);
    steps |= lanes[0] | lanes[1];
#endif
    for (; i < m; i++) steps |= T[i] - T[i - 1];
    return steps < 0;
}

/* Split one sub-block with the slots' write positions in a vector register.  The scalar loop
 * keeps them in a table, HI[s]++, and on this machine (Zen 3) every load from a small table
 * that is also stored to in the loop stalls: 3.0 ns per tag, against 1.4-1.9 ns here, where
 * a tag's slot code comes from a byte shuffle (or a read-only table) and its position from
 * a lane of A (an index from base: row * stride + position, below 2**31).  Lane 7 is the
 * junk slot's first cell: other channels' tags all land there, as they are never read. */
#if TT_X86
__attribute__((target("avx2")))
static void tt_split_avx2(const tt_chunk *c, int64_t *HI, const int64_t *restrict Tb, const int32_t *restrict Cb,
                          ptrdiff_t m, int shuf)
{
    int64_t *restrict B = c->base;
    const uint8_t *restrict code = c->code;
    ptrdiff_t stride = c->stride, nl = c->nlane;
    uint64_t nspan = c->nspan;
    int64_t chan_lo = c->chan_lo;
    int32_t init[8], lanes[8];
    uint8_t tab[16];
    for (int l = 0; l < 8; l++) {
        init[l] = 0;
        lanes[l] = -1;
    }
    for (ptrdiff_t l = 0; l < nl; l++) {
        init[l] = (int32_t)(c->lane_slot[l] * stride + HI[c->lane_slot[l]]);
        lanes[l] = (int32_t)l;
    }
    init[7] = (int32_t)((c->ns - 1) * stride);
    for (int k = 0; k < 16; k++) tab[k] = code[(uint64_t)k < nspan ? (uint64_t)k : nspan];
    __m256i A = _mm256_loadu_si256((const __m256i *)init), L = _mm256_loadu_si256((const __m256i *)lanes);
    __m128i TB = _mm_loadu_si128((const __m128i *)tab);
    __m128i HIGH = _mm_set_epi8(-128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128,
                                -128, 0);  /* shuffle index bytes 1-15 give zero */
    for (ptrdiff_t i = 0; i < m; i++) {
        uint64_t ch = (uint64_t)((int64_t)Cb[i] - chan_lo);
        ch = ch < nspan ? ch : nspan;
        int k;
        __m256i bs;
        if (shuf) {
            __m128i x = _mm_shuffle_epi8(TB, _mm_or_si128(_mm_cvtsi32_si128((int)ch), HIGH));
            k = _mm_cvtsi128_si32(x);
            bs = _mm256_broadcastd_epi32(x);
        } else {
            k = code[ch];
            bs = _mm256_set1_epi32(k);
        }
        int64_t pos;
        if (__builtin_expect(k < 8, 1)) {
            pos = (uint32_t)_mm256_cvtsi256_si32(_mm256_permutevar8x32_epi32(A, bs));
            A = _mm256_sub_epi32(A, _mm256_cmpeq_epi32(L, bs));
        } else {
            ptrdiff_t s = c->scal_slot[k - 8];
            pos = s * stride + HI[s]++;
        }
        B[pos] = Tb[i];
    }
    int32_t out[8];
    _mm256_storeu_si256((__m256i *)out, A);
    for (ptrdiff_t l = 0; l < nl; l++) HI[c->lane_slot[l]] = out[l] - c->lane_slot[l] * stride;
}
#endif

static int tt_have_avx2(void)
{
#if TT_X86
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

/* Split tags [0, n) sub-block by sub-block, advancing the attempts after each one.  Stops
 * before a sub-block whose raw times step back (the caller sorts); returns the tags taken.
 * With check = 0: split only, no check, no attempts (the caller's sorting path). */
static ptrdiff_t tt_process(tt_chunk *c, const int64_t *restrict T, const int32_t *restrict C, ptrdiff_t n,
                            int check)
{
    int64_t *ROW[TT_MAX_SLOTS];
    int64_t HI[TT_MAX_SLOTS];
    ptrdiff_t ns = c->ns, junk = ns - 1;
    const int32_t *restrict slot_of = c->slot_of;
    uint64_t nspan = c->nspan;
    int64_t chan_lo = c->chan_lo;
    for (ptrdiff_t s = 0; s < ns; s++) {
        ROW[s] = c->row[s];
        HI[s] = c->hi[s];
    }
    ptrdiff_t p = 0;
    while (p < n) {
        ptrdiff_t m = n - p < TT_SUB ? n - p : TT_SUB;
        const int64_t *Tb = T + p;
        const int32_t *Cb = C + p;
        if (check) {
            if (tt_steps_back(Tb, m, c->last_raw)) break;
        }
        /* the junk row collects the other channels' tags of one sub-block, then starts over */
        HI[junk] = 0;
#if TT_X86
        if (c->vec) tt_split_avx2(c, HI, Tb, Cb, m, c->vec == 2);
        else
#endif
        for (ptrdiff_t i = 0; i < m; i++) {
            uint64_t ch = (uint64_t)((int64_t)Cb[i] - chan_lo);
            ch = ch < nspan ? ch : nspan;
            int32_t s = slot_of[ch];
            int64_t pos = HI[s];
            ROW[s][pos] = Tb[i];
            HI[s] = pos + 1;
        }
        p += m;
        int64_t last = Tb[m - 1];
        if (last > c->last_raw) c->last_raw = last;
        if (check) {
            for (ptrdiff_t s = 0; s < ns; s++) c->hi[s] = HI[s];
            int64_t h = c->last_raw - c->max_delay;
            if (h > c->horizon) c->horizon = h;
            tt_advance(c, c->horizon, 0);
        }
    }
    for (ptrdiff_t s = 0; s < ns; s++) c->hi[s] = HI[s];
    return p;
}
#endif
