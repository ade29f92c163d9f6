/* The streaming dark-count and afterpulse counter of calibrate.darkcounts, compiled ahead of time.
 *
 * Ahead of time, not numba: the calibration pass then needs no JIT at start (numba's first use costs a few
 * tenths of a second before the first kernel can run).  What the counter computes and why is documented in
 * calibrate/darkcounts.py (module doc and the comment above DarkCounter); the Python reference in
 * tests/calibrate/test_darkcounts.py checks these loops.
 *
 * All times are int64 ps.  Ticks of the attempt grid are placed with the same double arithmetic as the
 * Python reference (floor of a product, rint of j * T) so both agree to the picosecond.
 */
#ifndef CALIB_DARK_H
#define CALIB_DARK_H

#include <stdint.h>
#include <math.h>

#define TT_DC_UNSET INT64_MIN   /* first (and a detector's previous click) before there is one */
#define TT_DC_TMAX INT64_MAX    /* 'time' of the end of the stream */
#define TT_DC_SWEEP_RING 32     /* anchored + grid anchors held before the sweep catches up (and lets them go) */

enum { TT_DC_PH_EXCLUDED = 1, TT_DC_PH_CLEAR = 2 };

/* What a channel's tags are to the counter: the two common cases take short paths. */
enum {
    TT_DC_KIND_OTHER = 0,   /* none of the below: only the stream's first and last time */
    TT_DC_KIND_CLICK = 1,   /* a detector that anchors nothing */
    TT_DC_KIND_GRID = 2,    /* the grid channel, neither a detector nor anchored */
    TT_DC_KIND_MIXED = 3    /* anything else (anchored, or several roles) */
};

/* What the counter carries from one chunk to the next (held by timetag._cext.calib_dark.DarkKernel). */
typedef struct {
    int64_t ph, pt;        /* pending clicks: ring slots [ph, pt) */
    int64_t gh, gt;        /* grid anchors (recorded syncs): [gh, gt) */
    int64_t ah, at;        /* anchored tags ('ready', and syncs without a grid): [ah, at) */
    int64_t sweep;         /* anchored exclusions are measured up to here */
    int64_t first, last;   /* first and last tag time (first: TT_DC_UNSET before any) */
    int64_t excl;          /* excluded time measured so far (anchored part, less its overlap with the grid) */
    int64_t seeded;        /* the first grid anchor sits in the ring before the stream reaches it */
} tt_dc_state;

/* Configuration, fixed for a stream (DarkKernel's ``config``, by these names). */
typedef struct {
    int64_t grid_channel;  /* -1: no grid */
    int64_t ap_t0, ap_t1;  /* afterpulse near interval [t0, t1); the control is [t1, span) */
    int64_t span;          /* 2 t1 - t0 */
    int64_t lag;           /* a click is final once a tag later than it by more than this has come */
    int64_t o0, o1;        /* smallest start / largest stop of the anchored offsets */
    int64_t lx, lp;        /* excluded / pulse-region time per grid period */
} tt_dc_config;

/* Tables, rings and counters: arrays DarkKernel keeps (it points here again after growing a ring). */
typedef struct {
    const int64_t *lut; int64_t nlut;          /* channel -> detector index (-1: none) */
    const int64_t *prow; int64_t nrow;         /* channel -> anchored row (-1: none) */
    const uint8_t *kind; int64_t nkind;        /* channel -> TT_DC_KIND_* (beyond nkind: other) */
    /* Phase classes of a whole period: [cls_start[k], cls_start[k + 1]) has the flags cls_flags[k]
     * (TT_DC_PH_EXCLUDED: in the grid's excluded set; TT_DC_PH_CLEAR: [phase, phase + span) meets no pulse region
     * of the grid).  ncls = 0: none (a fractional period, or span <= 0): the plain arithmetic for every click. */
    const int64_t *cls_start; const uint8_t *cls_flags; int64_t ncls;
    const int64_t *x0, *x1, *nx; int64_t kx;   /* excluded offsets per row (kx per row) */
    const int64_t *y0, *y1, *ny; int64_t ky;   /* pulse-region offsets per row (afterpulse eligibility) */
    double period;
    const int64_t *xps, *xpe, *xcum; int64_t nxp;   /* excluded phases of the grid, cumulative measure */
    const int64_t *pps, *ppe, *pcum; int64_t npp;   /* pulse-region phases of the grid */
    int64_t *pend_t, *pend_d; int64_t npend;
    int64_t *anc_t, *anc_r; int64_t nanc;
    int64_t *grid_a, *grid_b; int64_t ngrid;
    int64_t *us, *vs;                         /* sweep scratch: nanc * kx */
    int64_t *clicks, *quiet, *near, *ctrl, *mingap, *apcl, *prev;
} tt_dc_arrays;

/* floor(v) as an integer, for finite |v| < 2**63 (inline: libm's floor is a call). */
static inline int64_t tt_dc_floor(double v)
{
    int64_t t = (int64_t)v;
    return t - ((double)t > v);
}

/* The attempt period, with what the tick arithmetic derives from it once. */
typedef struct {
    double T;
    double inv;      /* 1 / T */
    int64_t whole;   /* T when it is a whole number of ps (the usual case), else 0 */
} tt_dc_period;

static inline tt_dc_period tt_dc_period_of(double T)
{
    tt_dc_period P;
    int64_t Ti = (int64_t)T;
    P.T = T;
    P.inv = 1.0 / T;
    P.whole = (double)Ti == T ? Ti : 0;
    return P;
}

/* Index and time of the latest tick at or before x in the segment anchored at a. */
static inline void tt_dc_tick_p(int64_t x, int64_t a, const tt_dc_period *P, int64_t *j_out, int64_t *tick_out)
{
    int64_t j, tick;
    if (P->whole) {
        /* integers, with a multiplication instead of a division */
        const int64_t Ti = P->whole;
        j = tt_dc_floor((double)(x - a) * P->inv);
        tick = a + j * Ti;
        if (tick > x) {
            j -= 1;
            tick -= Ti;
        } else if (tick + Ti <= x) {
            j += 1;
            tick += Ti;
        }
    } else {
        const double T = P->T;
        j = tt_dc_floor((double)(x - a) / T);
        tick = a + (int64_t)rint((double)j * T);
        if (tick > x) {
            j -= 1;
            tick = a + (int64_t)rint((double)j * T);
        }
    }
    *j_out = j;
    *tick_out = tick;
}

static inline void tt_dc_tick(int64_t x, int64_t a, double T, int64_t *j_out, int64_t *tick_out)
{
    tt_dc_period P = tt_dc_period_of(T);
    tt_dc_tick_p(x, a, &P, j_out, tick_out);
}

/* Measure of the phase intervals [ps, pe) below phase ph. */
static inline int64_t tt_dc_part(int64_t ph, const int64_t *ps, const int64_t *pe, const int64_t *cum, int64_t n)
{
    int64_t k = -1;
    for (int64_t i = 0; i < n; i++) {
        if (ps[i] <= ph)
            k = i;
        else
            break;
    }
    if (k < 0)
        return 0;
    int64_t in = ph - ps[k], w = pe[k] - ps[k];
    return cum[k] + (in < w ? in : w);
}

static inline int tt_dc_in_phase(int64_t ph, const int64_t *ps, const int64_t *pe, int64_t n)
{
    for (int64_t m = 0; m < n; m++) {
        if (ps[m] > ph)
            return 0;
        if (ph < pe[m])
            return 1;
    }
    return 0;
}

/* Latest ring slot in [h, tl) whose anchor is at or before x (else h: ticks backwards from it). */
static inline int64_t tt_dc_gseg(const int64_t *ga, int64_t h, int64_t tl, int64_t x)
{
    int64_t q = tl - 1;
    while (q > h && ga[q] > x)
        q -= 1;
    return q;
}

/* The grid's cumulative excluded time G(x), counted from grid ring slot q. */
static inline int64_t tt_dc_gval(int64_t x, int64_t q, const tt_dc_arrays *A, const tt_dc_period *P, int64_t L)
{
    int64_t j, tick;
    tt_dc_tick_p(x, A->grid_a[q], P, &j, &tick);
    return A->grid_b[q] + j * L + tt_dc_part(x - tick, A->xps, A->xpe, A->xcum, A->nxp);
}

/* Measure of the anchored exclusions in [S, P) (all known; anchors in ring slots [ah, at), grid anchors in
 * [gh, gt)) less their overlap with the grid. */
static int64_t tt_dc_sweep(int64_t Pend, int64_t S, int64_t ah, int64_t at, int64_t gh, int64_t gt,
                           const tt_dc_config *c, const tt_dc_arrays *A, const tt_dc_period *P)
{
    int64_t n = 0;
    int64_t *us = A->us, *vs = A->vs;
    for (int64_t q = ah; q < at; q++) {
        int64_t a = A->anc_t[q], r = A->anc_r[q];
        for (int64_t m = 0; m < A->nx[r]; m++) {
            int64_t lo = a + A->x0[r * A->kx + m], hi = a + A->x1[r * A->kx + m];
            if (lo < S) lo = S;
            if (hi > Pend) hi = Pend;
            if (hi > lo) {
                /* insertion sort by start (nearly sorted already: the anchors come in time order) */
                int64_t k = n;
                while (k > 0 && us[k - 1] > lo) {
                    us[k] = us[k - 1];
                    vs[k] = vs[k - 1];
                    k -= 1;
                }
                us[k] = lo;
                vs[k] = hi;
                n += 1;
            }
        }
    }
    int64_t excl = 0;
    if (n) {
        int grid = c->grid_channel >= 0 && gt > gh;
        int64_t u = us[0], v = vs[0];
        for (int64_t k = 1; k <= n; k++) {
            if (k < n && us[k] <= v) {
                if (vs[k] > v)
                    v = vs[k];
                continue;
            }
            excl += v - u;
            if (grid) {
                int64_t qv = tt_dc_gseg(A->grid_a, gh, gt, v);
                int64_t qu = tt_dc_gseg(A->grid_a, gh, qv + 1, u);
                excl -= tt_dc_gval(v, qv, A, P, c->lx) - tt_dc_gval(u, qu, A, P, c->lx);
            }
            if (k < n) {
                u = us[k];
                v = vs[k];
            }
        }
    }
    return excl;
}

/* Gaps below this many ps: a tick found by tt_dc_tick_p is exact (its floor is off by at most one), so the tick
 * of a later time can be found by stepping on from it. */
#define TT_DC_EXACT_SPAN ((int64_t)1 << 50)

/* Classify and count the final click in pending slot k0 (its future is complete): quiet or excluded, eligible
 * for the afterpulse count or not, and its afterpulse partners among the pending clicks after it (up to pt). */
static __attribute__((noinline)) void tt_dc_final_click(int64_t k0, int64_t pt, int64_t ah, int64_t at, int64_t gh,
                                                       int64_t gt, const tt_dc_config *c, const tt_dc_arrays *A,
                                                       const tt_dc_period *P)
{
    int64_t t = A->pend_t[k0], d = A->pend_d[k0];
    int64_t te = t + c->span;
    int inx = 0, clear = 1;
    for (int64_t q = ah; q < at; q++) {
        int64_t a = A->anc_t[q], r = A->anc_r[q];
        for (int64_t m = 0; m < A->nx[r]; m++)
            if (a + A->x0[r * A->kx + m] <= t && t < a + A->x1[r * A->kx + m])
                inx = 1;
        for (int64_t m = 0; m < A->ny[r]; m++)
            if (a + A->y0[r * A->ky + m] < te && a + A->y1[r * A->ky + m] > t)
                clear = 0;
    }
    if (c->grid_channel >= 0 && gt > gh) {
        const int64_t *ga = A->grid_a;
        int64_t q = tt_dc_gseg(ga, gh, gt, t);
        int64_t j, tick;
        tt_dc_tick_p(t, ga[q], P, &j, &tick);
        int64_t phs = t - tick;
        if (A->ncls && (q + 1 >= gt || ga[q + 1] > te) && t - ga[q] > -TT_DC_EXACT_SPAN &&
                te - ga[q] < TT_DC_EXACT_SPAN) {
            /* no recorded sync in (anchor, te]: both answers are the phase's class (the pulse-region time in
             * [t, te) is the periodic pulse set's measure there, as the grid's G counts it) */
            int64_t k = 0;
            while (k + 1 < A->ncls && A->cls_start[k + 1] <= phs)
                k += 1;
            const int f = A->cls_flags[k];
            if (f & TT_DC_PH_EXCLUDED)
                inx = 1;
            if (!(f & TT_DC_PH_CLEAR))
                clear = 0;
            goto count;
        }
        if (tt_dc_in_phase(phs, A->xps, A->xpe, A->nxp))
            inx = 1;
        if (clear) {
            if (tt_dc_in_phase(phs, A->pps, A->ppe, A->npp)) {
                clear = 0;
            } else {
                /* pulse-region time in [t, te), counted from anchor q: its segment, then (rarely) the segments
                 * of the anchors up to te */
                const int64_t LP = c->lp;
                int64_t g0 = j * LP + tt_dc_part(phs, A->pps, A->ppe, A->pcum, A->npp);
                int64_t q2 = q, gq = 0;
                while (q2 + 1 < gt && ga[q2 + 1] <= te) {
                    q2 += 1;
                    int64_t jm, tm;
                    tt_dc_tick_p(ga[q2], ga[q2 - 1], P, &jm, &tm);
                    gq += jm * LP + tt_dc_part(ga[q2] - tm, A->pps, A->ppe, A->pcum, A->npp);
                }
                int64_t j2, tick2;
                if (q2 == q && P->whole && c->span >= 0 && t - ga[q] > -TT_DC_EXACT_SPAN && te - ga[q] < TT_DC_EXACT_SPAN) {
                    /* te's tick: whole periods on from t's */
                    int64_t ph2 = phs + c->span;
                    j2 = j;
                    tick2 = tick;
                    while (ph2 >= P->whole) {
                        ph2 -= P->whole;
                        j2 += 1;
                        tick2 += P->whole;
                    }
                } else {
                    tt_dc_tick_p(te, ga[q2], P, &j2, &tick2);
                }
                if (gq + j2 * LP + tt_dc_part(te - tick2, A->pps, A->ppe, A->pcum, A->npp) - g0 > 0)
                    clear = 0;
            }
        }
    }
count:
    if (!inx)
        A->quiet[d] += 1;
    if (clear) {
        A->apcl[d] += 1;
        for (int64_t k = k0 + 1; k < pt; k++) {
            int64_t dt = A->pend_t[k] - t;
            if (dt >= c->span)
                break;
            if (A->pend_d[k] == d) {
                if (dt >= c->ap_t1)
                    A->ctrl[d] += 1;
                else if (dt >= c->ap_t0)
                    A->near[d] += 1;
            }
        }
    }
}

/* Anchored intervals before tau + o0 are all known: sweep them (when the rings fill up; at once when there are
 * none), then drop what no pending click nor the sweep can ask for any more.  Both paths of tt_dc_run that see an
 * anchor (the grid sync's short one and the general one) do this. */
static inline void tt_dc_advance(int64_t tau, int64_t *sweep, int64_t *excl, int64_t *ah, int64_t at, int64_t *gh,
                                 int64_t gt, int64_t ph, int64_t pt, const int64_t *pend_t, const int64_t *anc_t,
                                 const int64_t *grid_a, const tt_dc_config *c, const tt_dc_arrays *A,
                                 const tt_dc_period *P)
{
    int64_t Pend = tau + c->o0;
    if (Pend > *sweep) {
        if (at == *ah) {
            *sweep = Pend;
        } else if (at - *ah + gt - *gh >= TT_DC_SWEEP_RING) {
            *excl += tt_dc_sweep(Pend, *sweep, *ah, at, *gh, gt, c, A, P);
            *sweep = Pend;
        }
    }
    int64_t low = *sweep;
    if (ph < pt && pend_t[ph] < low)
        low = pend_t[ph];
    while (*ah < at && anc_t[*ah] + c->o1 <= low)
        *ah += 1;
    while (*gh + 1 < gt && grid_a[*gh + 1] <= low)
        *gh += 1;
}

/* A recorded sync joins the grid's anchors, with the grid measure up to it (the first one sits in the ring
 * already when `seeded`: placed before the stream reached it). */
static inline void tt_dc_add_anchor(int64_t tau, int64_t *seeded, int64_t gh, int64_t *gt, int64_t *grid_a,
                                    int64_t *grid_b, const tt_dc_config *c, const tt_dc_arrays *A,
                                    const tt_dc_period *P)
{
    if (*seeded) {
        *seeded = 0;
        return;
    }
    if (*gt > gh) {
        int64_t j, tick;
        tt_dc_tick_p(tau, grid_a[*gt - 1], P, &j, &tick);
        grid_b[*gt] = grid_b[*gt - 1] + j * c->lx + tt_dc_part(tau - tick, A->xps, A->xpe, A->xcum, A->nxp);
    } else {
        grid_b[*gt] = 0;
    }
    grid_a[*gt] = tau;
    *gt += 1;
}

/* Make room at the end of a ring of pairs (a, b) by moving its live part [*h, *tl) to the front; 0: it is full
 * of what is still needed. */
static inline int tt_dc_room(int64_t *a, int64_t *b, int64_t *h, int64_t *tl, int64_t size)
{
    if (*tl < size)
        return 1;
    if (*h == 0)
        return 0;
    for (int64_t k = 0; k < *tl - *h; k++) {
        a[k] = a[*h + k];
        b[k] = b[*h + k];
    }
    *tl -= *h;
    *h = 0;
    return 1;
}

/* Feed tags i.. of a chunk; returns the index reached (n: all) -- less when a ring is full (the caller grows it
 * and calls again from there).  final: then finalise everything pending.
 *
 * The state lives in locals while the loop runs; the two common tags (a grid sync, a click of a detector that
 * anchors nothing) take their own short paths (the general one, for every other tag, does the same for them).  A click is final once a tag
 * more than `lag` after it has come: `due` is the first pending click's time + lag. */
static __attribute__((noinline)) int64_t tt_dc_run(const int64_t *time, const int32_t *chan, int64_t n, int64_t i,
                                                   int final, tt_dc_state *state, const tt_dc_config *config,
                                                   const tt_dc_arrays *arrays)
{
    const tt_dc_config cc = *config;
    const tt_dc_arrays AA = *arrays;
    const tt_dc_config *c = &cc;
    const tt_dc_arrays *A = &AA;
    int64_t ph = state->ph, pt = state->pt, gh = state->gh, gt = state->gt, ah = state->ah, at = state->at;
    int64_t sweep = state->sweep, first = state->first, last = state->last, excl = state->excl;
    int64_t seeded = state->seeded;
    const int64_t gch = c->grid_channel, lag = c->lag;
    const int64_t nlut = A->nlut, nrow = A->nrow, nkind = A->nkind, npend = A->npend, ngrid = A->ngrid;
    const int64_t *lut = A->lut, *prow = A->prow;
    const uint8_t *kind = A->kind;
    int64_t *clicks = A->clicks, *prev = A->prev, *mingap = A->mingap;
    int64_t *pend_t = A->pend_t, *pend_d = A->pend_d, *grid_a = A->grid_a, *grid_b = A->grid_b;
    int64_t *anc_t = A->anc_t, *anc_r = A->anc_r;
    const tt_dc_period P = tt_dc_period_of(A->period);
    int64_t due = ph < pt ? pend_t[ph] + lag : TT_DC_TMAX;
    for (; i < n; i++) {
        const int64_t tau = time[i];
        /* --- clicks whose futures are complete --- */
        if (tau > due) {
            do {
                tt_dc_final_click(ph, pt, ah, at, gh, gt, c, A, &P);
                ph += 1;
            } while (ph < pt && pend_t[ph] + lag < tau);
            due = ph < pt ? pend_t[ph] + lag : TT_DC_TMAX;
        }
        /* --- the tag itself --- */
        const int64_t ch = chan[i];
        const int kd = (uint64_t)ch < (uint64_t)nkind ? kind[ch] : TT_DC_KIND_OTHER;
        if (kd == TT_DC_KIND_CLICK) {
            if (pt == npend && !tt_dc_room(pend_t, pend_d, &ph, &pt, npend))
                break;
            if (first == TT_DC_UNSET)
                first = sweep = tau;
            last = tau;
            const int64_t d = lut[ch];
            clicks[d] += 1;
            if (prev[d] != TT_DC_UNSET && tau - prev[d] < mingap[d])
                mingap[d] = tau - prev[d];
            prev[d] = tau;
            if (ph == pt)
                due = tau + lag;
            pend_t[pt] = tau;
            pend_d[pt] = d;
            pt += 1;
            continue;
        }
        if (kd == TT_DC_KIND_GRID) {
            if (gt == ngrid && !tt_dc_room(grid_a, grid_b, &gh, &gt, ngrid))
                break;
            if (first == TT_DC_UNSET)
                first = sweep = tau;
            last = tau;
            tt_dc_advance(tau, &sweep, &excl, &ah, at, &gh, gt, ph, pt, pend_t, anc_t, grid_a, c, A, &P);
            tt_dc_add_anchor(tau, &seeded, gh, &gt, grid_a, grid_b, c, A, &P);
            continue;
        }
        const int64_t d = (0 <= ch && ch < nlut) ? lut[ch] : -1;
        const int64_t r = (0 <= ch && ch < nrow) ? prow[ch] : -1;
        const int is_g = ch == gch;
        if (!(d >= 0 || is_g || r >= 0)) {
            if (first == TT_DC_UNSET)
                first = sweep = tau;
            last = tau;
            continue;
        }
        /* room (compacting the rings first; when one is full of what is still needed the caller grows them) */
        if (d >= 0 && !tt_dc_room(pend_t, pend_d, &ph, &pt, npend))
            break;
        if (is_g && !tt_dc_room(grid_a, grid_b, &gh, &gt, ngrid))
            break;
        if (r >= 0 && !tt_dc_room(anc_t, anc_r, &ah, &at, A->nanc))
            break;
        if (first == TT_DC_UNSET)
            first = sweep = tau;
        last = tau;
        if (is_g || r >= 0) {
            tt_dc_advance(tau, &sweep, &excl, &ah, at, &gh, gt, ph, pt, pend_t, anc_t, grid_a, c, A, &P);
            if (is_g)
                tt_dc_add_anchor(tau, &seeded, gh, &gt, grid_a, grid_b, c, A, &P);
            if (r >= 0) {
                anc_t[at] = tau;
                anc_r[at] = r;
                at += 1;
            }
        }
        if (d >= 0) {
            A->clicks[d] += 1;
            if (A->prev[d] != TT_DC_UNSET && tau - A->prev[d] < A->mingap[d])
                A->mingap[d] = tau - A->prev[d];
            A->prev[d] = tau;
            if (ph == pt)
                due = tau + lag;
            pend_t[pt] = tau;
            pend_d[pt] = d;
            pt += 1;
        }
    }
    if (i >= n && final) {
        /* the end of the stream: every pending click is final, and the anchored exclusions are known to the end */
        while (ph < pt) {
            tt_dc_final_click(ph, pt, ah, at, gh, gt, c, A, &P);
            ph += 1;
        }
        if (first != TT_DC_UNSET && last + 1 > sweep) {
            excl += tt_dc_sweep(last + 1, sweep, ah, at, gh, gt, c, A, &P);
            sweep = last + 1;
        }
    }
    state->ph = ph, state->pt = pt, state->gh = gh, state->gt = gt, state->ah = ah, state->at = at;
    state->sweep = sweep, state->first = first, state->last = last, state->excl = excl, state->seeded = seeded;
    return i;
}

/* G(x) of the grid in the ring (0 without anchors). */
static inline int64_t tt_dc_grid_value(int64_t x, const tt_dc_state *s, const tt_dc_arrays *A, int64_t L)
{
    if (s->gt <= s->gh)
        return 0;
    tt_dc_period P = tt_dc_period_of(A->period);
    return tt_dc_gval(x, tt_dc_gseg(A->grid_a, s->gh, s->gt, x), A, &P, L);
}

#endif
