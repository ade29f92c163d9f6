/* The guarded conditional-sync edge histogram and the sync-period measure of calibrate.histograms, compiled
 * ahead of time (no JIT start-up in the calibration pass).  What they compute and why: calibrate/histograms.py
 * (GuardedArrivalHistogram, SyncPeriod); the Python references in tests/calibrate/test_histograms.py check them.
 */
#ifndef CALIB_EDGE_H
#define CALIB_EDGE_H

#include <stdint.h>

/* Carried from one chunk to the next (held by timetag._cext.calib_edge.EdgeKernel). */
typedef struct {
    int64_t sh, st;        /* corrected syncs a later click can still need: ring slots [sh, st) */
    int64_t npend;         /* clicks waiting for the first sync after them */
    int64_t nsync;         /* syncs seen */
    int64_t last_raw;      /* the latest raw sync time */
    int64_t best;          /* smallest positive gap between consecutive syncs (-1: none yet) */
} tt_edge_state;

/* Fixed for a stream (EdgeKernel's ``config``, by these names). */
typedef struct {
    int64_t sync_channel, sync_delay;
    int64_t lo, hi, bin_ps;   /* histogram range [lo, hi) in bins of bin_ps */
    int64_t guard;            /* leave out clicks this close after the latest sync (0: none) */
    int64_t dmax;             /* largest detector delay: how far back a click can reach */
    int64_t hopeless;         /* a waiting click older than tag + hopeless can land in no bin any more */
} tt_edge_config;

typedef struct {
    const int64_t *lut; int64_t nlut;   /* channel -> detector (-1: none) */
    const int64_t *delays;              /* per detector */
    int64_t *out; int64_t nbins;        /* [detector, bin] */
    int64_t *sr; int64_t nsr;           /* corrected syncs */
    int64_t *pend_t, *pend_d; int64_t npend_cap;
} tt_edge_arrays;

/* x // bin_ps for 0 <= x < 2**52, by a multiplication (an integer division costs tens of cycles). */
static inline int64_t tt_edge_bin(int64_t x, int64_t bin_ps, double inv_bin)
{
    int64_t b = (int64_t)((double)x * inv_bin);
    if (b * bin_ps > x)
        b -= 1;
    else if ((b + 1) * bin_ps <= x)
        b += 1;
    return b;
}

static inline void tt_edge_count(const tt_edge_config *c, const tt_edge_arrays *A, int64_t d, int64_t dt,
                                 double inv_bin)
{
    if (c->lo <= dt && dt < c->hi) {
        int64_t b = tt_edge_bin(dt - c->lo, c->bin_ps, inv_bin);
        if (b < A->nbins)
            A->out[d * A->nbins + b] += 1;
    }
}

/* The 'next' rule over one chunk, streaming: a click is binned against the first corrected sync strictly after
 * it (it waits in pend_t/pend_d until that sync comes), unless the latest sync at or before it lies less than
 * guard before it.  Beside it, the syncs' count and smallest positive raw gap (the attempt period).  Returns the
 * index reached (less than n: a ring is full; the caller grows it and calls again from there).  The state lives
 * in locals while the loop runs (the histogram's stores cannot alias them). */
static int64_t tt_edge_run(const int64_t *t, const int32_t *ch, int64_t n, int64_t i, tt_edge_state *state,
                           const tt_edge_config *config, const tt_edge_arrays *arrays)
{
    const tt_edge_config cc = *config;
    const tt_edge_arrays A = *arrays;
    const tt_edge_config *c = &cc;
    int64_t sh = state->sh, st = state->st, npend = state->npend, nsync = state->nsync;
    int64_t last_raw = state->last_raw, best = state->best;
    const int64_t sync_channel = c->sync_channel, sync_delay = c->sync_delay, guard = c->guard, dmax = c->dmax;
    const int64_t nlut = A.nlut;
    const int64_t *lut = A.lut, *delays = A.delays;
    int64_t *sr = A.sr, *pend_t = A.pend_t, *pend_d = A.pend_d;
    const double inv_bin = 1.0 / (double)c->bin_ps;
    for (; i < n; i++) {
        const int64_t cch = ch[i];
        const int64_t tau = t[i];
        if (cch == sync_channel) {
            const int64_t sy = tau - sync_delay;
            if (st == A.nsr) {
                if (sh == 0)
                    break;
                for (int64_t k = 0; k < st - sh; k++)
                    sr[k] = sr[sh + k];
                st -= sh;
                sh = 0;
            }
            if (nsync > 0) {
                const int64_t dd = tau - last_raw;
                if (dd > 0 && (best < 0 || dd < best))
                    best = dd;
            }
            nsync += 1;
            last_raw = tau;
            /* the clicks waiting for a sync after them: this is theirs when it is after them */
            if (npend) {
                const int has_prev = st > sh;
                const int64_t prev = has_prev ? sr[st - 1] : 0;
                int64_t m = 0;
                for (int64_t k = 0; k < npend; k++) {
                    const int64_t x = pend_t[k];
                    if (x < sy) {
                        if (!(guard > 0 && has_prev && x - prev < guard))
                            tt_edge_count(c, &A, pend_d[k], x - sy, inv_bin);
                    } else {
                        pend_t[m] = x;
                        pend_d[m] = pend_d[k];
                        m += 1;
                    }
                }
                npend = m;
            }
            sr[st] = sy;
            st += 1;
            const int64_t lim = tau - dmax;
            while (sh + 1 < st && sr[sh + 1] <= lim)
                sh += 1;
        } else if ((uint64_t)cch < (uint64_t)nlut && lut[cch] >= 0) {
            const int64_t d = lut[cch];
            const int64_t x = tau - delays[d];
            if (st > sh && x < sr[st - 1]) {
                /* its sync has come already: the first one after it (a step or two back) */
                int64_t q = st - 1;
                while (q > sh && sr[q - 1] > x)
                    q -= 1;
                if (!(guard > 0 && q > sh && x - sr[q - 1] < guard))
                    tt_edge_count(c, &A, d, x - sr[q], inv_bin);
            } else {
                if (npend == A.npend_cap) {
                    /* clicks that can no longer land in range (the next sync is too late for them) go */
                    int64_t m = 0;
                    for (int64_t k = 0; k < npend; k++) {
                        if (pend_t[k] > tau + c->hopeless) {
                            pend_t[m] = pend_t[k];
                            pend_d[m] = pend_d[k];
                            m += 1;
                        }
                    }
                    npend = m;
                    if (npend == A.npend_cap)
                        break;
                }
                pend_t[npend] = x;
                pend_d[npend] = d;
                npend += 1;
            }
        }
    }
    state->sh = sh, state->st = st, state->npend = npend, state->nsync = nsync;
    state->last_raw = last_raw, state->best = best;
    return i;
}

/* Count of the syncs and their smallest positive gap (state held by PeriodKernel). */
typedef struct {
    int64_t nsync, last, best, have_last;
} tt_period_state;

static void tt_sync_gaps(const int64_t *t, const int32_t *ch, int64_t n, int64_t sync_channel,
                         tt_period_state *state)
{
    tt_period_state s = *state;
    for (int64_t i = 0; i < n; i++) {
        if (ch[i] != sync_channel)
            continue;
        int64_t x = t[i];
        s.nsync += 1;
        if (s.have_last) {
            int64_t dd = x - s.last;
            if (dd > 0 && (s.best < 0 || dd < s.best))
                s.best = dd;
        }
        s.last = x;
        s.have_last = 1;
    }
    *state = s;
}

#endif
