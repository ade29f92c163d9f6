"""The independent draws of a generation block (numba, nogil): the attempts that had a detection, their photon
clicks, and the dark counts.  None of them depends on the sequential kernel (:mod:`timetag.simulator.kernel`),
so :mod:`timetag.simulator.generate` makes them one block ahead on a worker thread.

The kernels keep the random state in two local integers for the whole loop (see
:mod:`timetag.simulator.fastrng`) and store it back into ``rs`` at the end."""
from __future__ import annotations

import numba as nb
import numpy as np

from .fastrng import draw_std_exponential, draw_std_normal, draw_u64, draw_uniform, unit
from .kernel import SRC_A_EARLY, SRC_A_LAST, _divmod

_S1 = np.uint64(1)
_M4 = np.uint64(15)


@nb.njit(cache=True, inline="always")
def _click(out_t, out_ch, out_src, out_att, n, t, ch, src, att):
    """One click written at ``n``; returns the next free place."""
    out_t[n] = t
    out_ch[n] = ch
    out_src[n] = src
    out_att[n] = att
    return n + 1


@nb.njit(cache=True, inline="always")
def _atom(s0, s1, u, frac_double, p_both, pulse_center, sigma, sigma_tot, pulse_end, tau, jitter):
    """One atom's photons, given that at least one of them was detected (``u`` uniform: the emission kind):
    ``(s0, s1, early detected, its time, last detected, its time)``."""
    if u >= frac_double:  # single emission: t_exc + jitter is one Gaussian of width sigma_tot
        s0, s1, z = draw_std_normal(s0, s1)
        s0, s1, e = draw_std_exponential(s0, s1)
        return s0, s1, False, 0.0, True, pulse_center + sigma_tot * z + tau * e
    s0, s1, z = draw_std_normal(s0, s1)
    t_exc = pulse_center + sigma * z
    s0, s1, w = draw_uniform(s0, s1)
    early_det = w < p_both + (1.0 - p_both) / 2
    last_det = w < p_both or not early_det
    t1 = t_exc
    span = pulse_end - t_exc
    if span > 0:
        s0, s1, w = draw_uniform(s0, s1)
        t1 = t_exc + w * span
    t_early = 0.0
    if early_det:
        s0, s1, z = draw_std_normal(s0, s1)
        t_early = t1 + jitter * z
    s0, s1, e = draw_std_exponential(s0, s1)
    s0, s1, z = draw_std_normal(s0, s1)
    return s0, s1, early_det, t_early, last_det, t1 + tau * e + jitter * z


@nb.njit(cache=True, nogil=True)
def attempt_photons(n0, n_act, on, period_n, p_any, p_atom, frac_double, p_both, pulse_center, sigma, pulse_end,
                    tau, hom_v, jitter, t0, T, alive, out_t, out_ch, out_src, out_att, rs):
    """Photon clicks of those of a block's ``n_act`` active attempts that had >= 1 detection, in time order.

    The active attempts are numbered without the gaps between bursts (``on`` attempts per burst, bursts
    ``period_n`` apart, the first at attempt ``n0``); the ones with a detection are ``p_any`` Bernoulli trials,
    drawn as geometric gaps.  Per atom: single emission at t_exc + Exp(tau) (t_exc ~ the Gaussian pulse), or,
    with ``frac_double`` (given a detection), a first photon uniform between t_exc and the pulse end followed by
    the last photon Exp(tau) later; detection pattern conditioned on at least one detection.  When both atoms'
    last photons are detected their polarisations decide the BSM pattern: orthogonal -> independent arms,
    parallel -> the same detector with (1 + hom_v)/2 (two-photon interference), else the other arm.

    Returns ``(n, k)``: clicks written, attempts with a detection; ``n = -1`` when ``out_*`` is too small (the
    caller grows them and retries from a copy of ``rs``).
    """
    s0, s1 = rs[0], rs[1]
    cap = out_t.size
    n = 0
    k = 0
    bt = np.empty(4, np.int64)
    bc = np.empty(4, np.int32)
    bs = np.empty(4, np.int8)
    # a single emission's click is t_exc + Exp(tau) + jitter with Gaussian t_exc and jitter: draw their sum
    sigma_tot = np.sqrt(sigma * sigma + jitter * jitter)
    # which atoms were detected, given one was: [0, p_one) one atom (a below p_one_a, else b), then both
    p_one_a = p_atom * (1.0 - p_atom) / p_any if p_any > 0.0 else 0.0
    p_one = 2.0 * p_one_a
    hom_same = (1.0 + hom_v) / 2
    lq = np.log1p(-p_any)
    inv = -1.0 / lq if lq < 0.0 else 0.0  # (p_any = 1: every attempt)
    limit = float(n_act)
    # pos: the active attempt; q, r: its burst and its place in the burst, kept up to date by additions (a
    # division only when a gap crosses into another burst)
    pos = -1
    q = 0
    r = -1
    while p_any > 0.0:
        # geometric gap: floor(E / -ln(1 - p)) with E ~ Exp(1)
        s0, s1, e = draw_std_exponential(s0, s1)
        g = e * inv
        if g >= limit:
            break
        gap = 1 + np.int64(g)
        pos += gap
        if pos >= n_act:
            break
        r += gap
        if r >= on:
            dq, r = _divmod(r, on)
            q += dq
        att = n0 + q * period_n + r
        k += 1
        if n + 4 > cap:
            return -1, k
        base = t0 + att * T
        s0, s1, r64 = draw_u64(s0, s1)
        v = unit(r64)
        bits = np.int32((r64 >> _S1) & _M4)  # last photon's pol, arm; early photon's pol, arm
        s0, s1, u = draw_uniform(s0, s1)
        s0, s1, e_det, te, l_det, tl = _atom(s0, s1, u, frac_double, p_both, pulse_center, sigma, sigma_tot,
                                             pulse_end, tau, jitter)
        if v < p_one:  # one atom: its (at most 2) clicks straight to the output, in time order
            atom = np.int8(v >= p_one_a)
            src_l = SRC_A_LAST + atom
            src_e = SRC_A_EARLY + atom
            ch_l = 2 + 2 * ((bits >> 1) & 1) + (bits & 1)
            ch_e = 2 + 2 * ((bits >> 2) & 1) + ((bits >> 3) & 1)
            it_l = np.int64(np.rint(tl))
            it_e = np.int64(np.rint(te))
            e_first = e_det and (not l_det or it_e <= it_l)
            if e_first and alive[ch_e]:
                n = _click(out_t, out_ch, out_src, out_att, n, base + it_e, ch_e, src_e, att)
            if l_det and alive[ch_l]:
                n = _click(out_t, out_ch, out_src, out_att, n, base + it_l, ch_l, src_l, att)
            if e_det and not e_first and alive[ch_e]:
                n = _click(out_t, out_ch, out_src, out_att, n, base + it_e, ch_e, src_e, att)
            continue
        # both atoms: up to 4 clicks, sorted here
        m = 0
        last_pol = -1
        last_arm = -1
        for atom in range(2):
            if atom == 1:
                s0, s1, r64 = draw_u64(s0, s1)
                bits = np.int32((r64 >> _S1) & _M4)
                s0, s1, u = draw_uniform(s0, s1)
                s0, s1, e_det, te, l_det, tl = _atom(s0, s1, u, frac_double, p_both, pulse_center, sigma, sigma_tot,
                                                     pulse_end, tau, jitter)
            if e_det:
                bt[m] = np.int64(np.rint(te))
                bc[m] = 2 + 2 * ((bits >> 2) & 1) + ((bits >> 3) & 1)
                bs[m] = SRC_A_EARLY + atom
                m += 1
            if l_det:
                pol = bits & 1
                arm = (bits >> 1) & 1
                if atom == 1 and last_pol >= 0 and pol == last_pol:
                    s0, s1, w = draw_uniform(s0, s1)
                    arm = last_arm if w < hom_same else 1 - last_arm
                if atom == 0:
                    last_pol = pol
                    last_arm = arm
                bt[m] = np.int64(np.rint(tl))
                bc[m] = 2 + 2 * arm + pol
                bs[m] = SRC_A_LAST + atom
                m += 1
        for j in range(1, m):  # insertion sort: stable, so equal times keep the order above
            i = j
            while i > 0 and bt[i - 1] > bt[i]:
                bt[i - 1], bt[i] = bt[i], bt[i - 1]
                bc[i - 1], bc[i] = bc[i], bc[i - 1]
                bs[i - 1], bs[i] = bs[i], bs[i - 1]
                i -= 1
        for j in range(m):
            if alive[bc[j]]:
                n = _click(out_t, out_ch, out_src, out_att, n, base + bt[j], bc[j], bs[j], att)
    rs[0], rs[1] = s0, s1
    return n, k


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
    s0, s1 = rs[0], rs[1]
    cap = out_t.size
    span = float(t_hi - t_lo)
    scale = 1.0 / rate_ps
    last = cum.size - 1
    k = 0
    s0, s1, e = draw_std_exponential(s0, s1)
    x = scale * e
    while x < span:
        if k >= cap:
            return -1
        s0, s1, u = draw_uniform(s0, s1)
        c = 0
        for j in range(last):  # branch-free: a random channel would mispredict a search's exit
            c += u >= cum[j]
        out_t[k] = t_lo + np.int64(x)
        out_ch[k] = chans[c]
        k += 1
        s0, s1, e = draw_std_exponential(s0, s1)
        x += scale * e
    rs[0], rs[1] = s0, s1
    return k
