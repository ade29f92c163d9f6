"""The independent draws of a generation block (numba, nogil): the attempts that had a detection, their photon
clicks, and the dark counts.  None of them depends on the sequential kernel (:mod:`timetag.simulator.kernel`),
so :mod:`timetag.simulator.generate` makes them one block ahead on a worker thread."""
from __future__ import annotations

import numba as nb
import numpy as np

from .fastrng import emg as _emg, exponential as _rexp, next_u64 as _ru64, normal as _rnorm, uniform as _runi
from .kernel import SRC_A_EARLY, SRC_A_LAST, _divmod


@nb.njit(cache=True, nogil=True)
def attempt_photons(att, p_a_given_any, p_atom, frac_double, p_both, pulse_center, sigma, pulse_end, tau,
                    hom_v, jitter, t0, T, alive, out_t, out_ch, out_src, out_att, rs, emg_tab):
    """Photon clicks of attempts known to have >= 1 detection, time-ordered within each attempt.

    Per atom: single emission at t_exc + Exp(tau) (t_exc ~ the Gaussian pulse), or, with ``frac_double``
    (given a detection), a first photon uniform between t_exc and the pulse end followed by the last photon
    Exp(tau) later; detection pattern conditioned on at least one detection.  When both atoms' last photons
    are detected their polarisations decide the BSM pattern: orthogonal -> independent arms, parallel ->
    the same detector with (1 + hom_v)/2 (two-photon interference), else the other arm.
    ``emg_tab``: quantile table of Gaussian(pulse, jitter) + Exp(tau) for the single emissions
    (:func:`timetag.simulator.fastrng.emg_table`; size <= 1: draw the three parts directly).
    """
    n = 0
    bt = np.empty(4, np.int64)
    bc = np.empty(4, np.int32)
    bs = np.empty(4, np.int8)
    # a single emission's click is t_exc + Exp(tau) + jitter with Gaussian t_exc and jitter: draw their sum
    sigma_tot = np.sqrt(sigma * sigma + jitter * jitter)
    for i in range(att.size):
        a_any = _runi(rs) < p_a_given_any
        b_any = (_runi(rs) < p_atom) if a_any else True
        m = 0
        last_pol = -1
        last_arm = -1
        for atom in range(2):
            if (atom == 0 and not a_any) or (atom == 1 and not b_any):
                continue
            r64 = _ru64(rs)
            u = np.float64(r64 >> np.uint64(11)) * (1.0 / 9007199254740992.0)
            bits = np.int64((r64 >> np.uint64(1)) & np.uint64(15))  # pol, arm, early pol, early arm
            dbl = u < frac_double
            early_det = False
            last_det = True
            if dbl:
                t_exc = pulse_center + sigma * _rnorm(rs)
                t1 = t_exc
                v = _runi(rs)
                if v < p_both:
                    early_det = True
                elif v < p_both + (1.0 - p_both) / 2:
                    early_det = True
                    last_det = False
                span = pulse_end - t_exc
                if span > 0:
                    t1 = t_exc + _runi(rs) * span
                if early_det:
                    bt[m] = np.int64(np.rint(t1 + jitter * _rnorm(rs)))
                    bc[m] = 2 + 2 * np.int32((bits >> 2) & 1) + np.int32((bits >> 3) & 1)
                    bs[m] = SRC_A_EARLY + atom
                    m += 1
                tl = t1 + _rexp(rs, tau) + jitter * _rnorm(rs)
            else:
                if emg_tab.size > 1:
                    tl = pulse_center + _emg(rs, emg_tab, sigma_tot, tau)
                else:
                    tl = pulse_center + sigma_tot * _rnorm(rs) + _rexp(rs, tau)
            if last_det:
                pol = np.int32(bits & 1)
                arm = np.int32((bits >> 1) & 1)
                if atom == 1 and last_pol >= 0 and pol == last_pol:
                    arm = last_arm if _runi(rs) < (1.0 + hom_v) / 2 else 1 - last_arm
                if atom == 0:
                    last_pol = pol
                    last_arm = arm
                bt[m] = np.int64(np.rint(tl))
                bc[m] = 2 + 2 * arm + pol
                bs[m] = SRC_A_LAST + atom
                m += 1
        # insertion sort of the (at most 4) clicks of this attempt
        for j in range(1, m):
            k = j
            while k > 0 and bt[k - 1] > bt[k]:
                bt[k - 1], bt[k] = bt[k], bt[k - 1]
                bc[k - 1], bc[k] = bc[k], bc[k - 1]
                bs[k - 1], bs[k] = bs[k], bs[k - 1]
                k -= 1
        base = t0 + att[i] * T
        for j in range(m):
            if alive[bc[j]]:
                out_t[n] = base + bt[j]
                out_ch[n] = bc[j]
                out_src[n] = bs[j]
                out_att[n] = att[i]
                n += 1
    return n


@nb.njit(cache=True, nogil=True)
def detection_attempts(n0, n_act, on, period_n, p_any, rs, out):
    """Attempt indices (from n0, burst-mapped) with >= 1 detection: geometric gaps between them.

    Written into ``out`` (reused across blocks: fresh memory is slow to first-touch); returns
    ``(out, k)``, ``out`` replaced by a larger array if it was too small.
    """
    lq = np.log1p(-p_any)
    inv = -1.0 / lq if lq < 0 else 0.0
    k = 0
    pos = -1
    while True:
        # geometric gap: floor(E / -ln(1 - p)) with E ~ Exp(1)
        pos += 1 + np.int64(_rexp(rs, inv)) if lq < 0 else 1
        if pos >= n_act:
            break
        if k == out.size:
            bigger = np.empty(2 * out.size + 16, np.int64)
            bigger[:k] = out[:k]
            out = bigger
        q, r = _divmod(pos, on)
        out[k] = n0 + q * period_n + r
        k += 1
    return out, k


@nb.njit(cache=True, nogil=True)
def dark_counts(t_lo, t_hi, rate_ps, cum, chans, rs, out_t, out_ch):
    """Dark counts on [t_lo, t_hi), already in time order.

    Dark counts of all channels form one Poisson process of rate ``rate_ps`` (per ps) whose events pick a
    channel with probabilities ``cum`` (cumulative): exponential gaps give sorted times, so no sort is needed.
    Returns the count, or -1 when ``out_*`` is too small (the caller grows them and retries from a copy of
    ``rs``).
    """
    if rate_ps <= 0.0:
        return 0
    cap = out_t.size
    span = float(t_hi - t_lo)
    scale = 1.0 / rate_ps
    k = 0
    x = _rexp(rs, scale)
    while x < span:
        if k >= cap:
            return -1
        u = _runi(rs)
        c = 0
        while c < cum.size - 1 and u >= cum[c]:
            c += 1
        out_t[k] = t_lo + np.int64(x)
        out_ch[k] = chans[c]
        k += 1
        x += _rexp(rs, scale)
    return k
