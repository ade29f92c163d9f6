"""A block's independent draws (timetag.simulator.draws) against the distributions they claim: which attempts
had a detection (geometric gaps, inside the bursts), which atoms and detectors, the click times of single and
double emissions (scipy, and a plain numpy model of the double emission), and the dark counts."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from timetag.simulator import draws
from timetag.simulator.kernel import SRC_A_EARLY, SRC_A_LAST

N0, ON, PERIOD = 1000, 10, 25           # attempt numbering: bursts of 10 attempts every 25
T0, T = 10**9, 19_230_769
CENTER, SIGMA, PULSE_END, TAU, JITTER = 12_000.0, 8_918.0, 22_500.0, 26_200.0, 350.0
SIGMA_TOT = math.hypot(SIGMA, JITTER)


def _photons(p_atom, frac_double=0.07, p_both=0.3, hom_v=0.9, n_act=ON * 40_000, seed=(11, 22), alive=None,
             cap=None, sigma=SIGMA, tau=TAU):
    """Run the kernel; returns (n, k, t, ch, src, att, state after)."""
    p_any = 1 - (1 - p_atom) ** 2
    if alive is None:
        alive = np.ones(16, np.bool_)
    cap = cap if cap is not None else 4 * int(n_act * p_any + 10 * math.sqrt(n_act) + 64)
    out = (np.empty(cap, np.int64), np.empty(cap, np.int32), np.empty(cap, np.int8), np.empty(cap, np.int64))
    rs = np.array(seed, np.uint64)
    n, k = draws.attempt_photons(N0, n_act, ON, PERIOD, p_any, p_atom, frac_double, p_both, CENTER, sigma,
                                 PULSE_END, tau, hom_v, JITTER, T0, T, alive, *out, rs)
    return (n, k) + tuple(a[:max(n, 0)] for a in out) + (rs,)


def _per_attempt(att):
    """Start index and click count of each attempt's run of clicks."""
    starts = np.flatnonzero(np.diff(att, prepend=-1))
    return starts, np.diff(np.append(starts, att.size))


def test_detected_attempts_are_geometric_and_inside_the_bursts():
    p_atom = 0.1
    p_any = 1 - (1 - p_atom) ** 2
    n_act = ON * 40_000
    n, k, t, ch, src, att, _ = _photons(p_atom, n_act=n_act)
    u = np.unique(att)
    assert u.size == k and n >= k  # every detected attempt has a click (all detectors alive)
    off = u - N0
    assert np.all(off % PERIOD < ON)
    pos = off // PERIOD * ON + off % PERIOD  # the active attempts' own numbering
    assert pos.min() >= 0 and pos.max() < n_act
    assert abs(k - n_act * p_any) < 5 * math.sqrt(n_act * p_any * (1 - p_any))
    gaps = np.diff(np.concatenate([[-1], pos]))
    g = np.arange(1, 40)
    expect = np.append(p_any * (1 - p_any) ** (g - 1), (1 - p_any) ** g[-1]) * gaps.size
    counts = np.append(np.bincount(gaps, minlength=g[-1] + 1)[1:g[-1] + 1], np.sum(gaps > g[-1]))
    assert stats.chisquare(counts, expect).pvalue > 1e-3
    # time order, and every click belongs to its attempt
    assert np.all(np.diff(t) >= 0)
    rel = t - (T0 + att * T)
    assert rel.min() > CENTER - 8 * SIGMA_TOT and rel.max() < CENTER + 40 * TAU


def test_which_atoms_and_detectors():
    """Given a detection: one atom or both as the binomial says; equal polarisations bunch onto one detector with
    (1 + V)/2, orthogonal ones go to independent arms."""
    p_atom, hom_v = 0.3, 0.6
    p_any = 1 - (1 - p_atom) ** 2
    n, k, t, ch, src, att, _ = _photons(p_atom, frac_double=0.0, hom_v=hom_v)
    starts, m = _per_attempt(att)
    p2 = p_atom ** 2 / p_any
    assert abs(np.mean(m == 2) - p2) < 5 * math.sqrt(p2 * (1 - p2) / k)
    assert set(np.unique(m)) == {1, 2} and set(np.unique(src)) == {SRC_A_LAST, SRC_A_LAST + 1}
    n_a = np.sum(src == SRC_A_LAST)
    assert abs(n_a - k * p_atom / p_any) < 5 * math.sqrt(k * 0.25)
    assert set(np.unique(ch)) == {2, 3, 4, 5}
    two = starts[m == 2]
    c1, c2 = ch[two] - 2, ch[two + 1] - 2  # arm = c >> 1, pol = c & 1
    same_pol = (c1 & 1) == (c2 & 1)
    assert abs(np.mean(same_pol) - 0.5) < 5 * math.sqrt(0.25 / two.size)
    p_same = (1 + hom_v) / 2
    frac = np.mean(c1[same_pol] == c2[same_pol])
    assert abs(frac - p_same) < 5 * math.sqrt(p_same * (1 - p_same) / same_pol.sum())
    frac = np.mean((c1[~same_pol] >> 1) == (c2[~same_pol] >> 1))
    assert abs(frac - 0.5) < 5 * math.sqrt(0.25 / (~same_pol).sum())


@pytest.mark.parametrize("sigma, tau", [(SIGMA, TAU), (300.0, 300.0)])  # (narrow: the jitter's share shows)
def test_single_emission_click_times_are_gaussian_plus_exponential(sigma, tau):
    n, k, t, ch, src, att, _ = _photons(0.1, frac_double=0.0, sigma=sigma, tau=tau)
    x = t - (T0 + att * T) - CENTER
    s = math.hypot(sigma, JITTER)
    assert stats.kstest(x, stats.exponnorm(tau / s, scale=s).cdf).pvalue > 1e-3


def _double_emission_model(rng, size, p_both):
    """Plain model of one double-emitting atom: (early time or nan, last time or nan)."""
    t_exc = CENTER + SIGMA * rng.standard_normal(size)
    t1 = np.where(t_exc < PULSE_END, t_exc + rng.random(size) * (PULSE_END - t_exc), t_exc)
    w = rng.random(size)
    early = t1 + JITTER * rng.standard_normal(size)
    last = t1 + rng.exponential(TAU, size) + JITTER * rng.standard_normal(size)
    early[w >= p_both + (1 - p_both) / 2] = np.nan
    last[(w >= p_both) & (w < p_both + (1 - p_both) / 2)] = np.nan
    return early, last


def test_double_emission_clicks_match_a_plain_model():
    p_both = 0.3
    n, k, t, ch, src, att, _ = _photons(0.02, frac_double=1.0, p_both=p_both)
    starts, m = _per_attempt(att)
    rel = t - (T0 + att * T)
    is_a = (src == SRC_A_EARLY) | (src == SRC_A_LAST)
    one_atom = np.add.reduceat(is_a.astype(int), starts) % m == 0  # all of an attempt's clicks from one atom
    s1 = starts[one_atom & (m == 1)]
    s2 = starts[one_atom & (m == 2)]
    n1 = s1.size + s2.size
    assert abs(s2.size / n1 - p_both) < 5 * math.sqrt(p_both * (1 - p_both) / n1)
    only_early = np.isin(src[s1], (SRC_A_EARLY, SRC_A_EARLY + 1))
    assert abs(np.mean(only_early) - 0.5) < 5 * math.sqrt(0.25 / s1.size)
    early_first = np.isin(src[s2], (SRC_A_EARLY, SRC_A_EARLY + 1))
    early = np.where(early_first, rel[s2], rel[s2 + 1])
    last = np.where(early_first, rel[s2 + 1], rel[s2])
    ref_e, ref_l = _double_emission_model(np.random.default_rng(7), 200_000, p_both)
    both = ~np.isnan(ref_e) & ~np.isnan(ref_l)
    assert stats.ks_2samp(early, ref_e[both]).pvalue > 1e-3
    assert stats.ks_2samp(last, ref_l[both]).pvalue > 1e-3
    lone_early = rel[s1[only_early]]
    lone_last = rel[s1[~only_early]]
    assert stats.ks_2samp(lone_early, ref_e[np.isnan(ref_l)]).pvalue > 1e-3
    assert stats.ks_2samp(lone_last, ref_l[np.isnan(ref_e)]).pvalue > 1e-3


def test_dead_detector_records_nothing():
    alive = np.ones(16, np.bool_)
    alive[3] = False
    n, k, t, ch, src, att, _ = _photons(0.1, alive=alive)
    n_all, k_all, _, ch_all, *_ = _photons(0.1)
    assert k == k_all and 3 not in ch and n == n_all - np.sum(ch_all == 3)


def test_too_small_output_is_reported_and_the_state_decides_everything():
    first = _photons(0.1, seed=(5, 9))
    again = _photons(0.1, seed=(5, 9))
    assert all(np.array_equal(a, b) for a, b in zip(first[2:], again[2:]))
    assert _photons(0.1, seed=(5, 9), cap=100)[0] == -1
    other = _photons(0.1, seed=(5, 10))
    assert not np.array_equal(first[2], other[2])
    assert not np.array_equal(first[-1], np.array((5, 9), np.uint64))  # the state moved on


@pytest.mark.parametrize("rates", [(0.1, 0.2, 0.3, 0.4), (1.0,)])
def test_dark_counts_are_poisson_with_the_channel_shares(rates):
    rate_ps = 2e-9
    t_lo, t_hi = 10**12, 10**12 + 10**14
    cum = np.cumsum(rates) / sum(rates)
    chans = np.arange(2, 2 + len(rates), dtype=np.int32)
    cap = 300_000
    out_t, out_ch = np.empty(cap, np.int64), np.empty(cap, np.int32)
    n = draws.dark_counts(t_lo, t_hi, rate_ps, cum, chans, np.array([3, 4], np.uint64), out_t, out_ch)
    t, ch = out_t[:n], out_ch[:n]
    expect = rate_ps * (t_hi - t_lo)
    assert abs(n - expect) < 5 * math.sqrt(expect)
    assert t[0] >= t_lo and t[-1] < t_hi and np.all(np.diff(t) >= 0)
    assert stats.kstest(np.diff(t) * rate_ps, "expon").pvalue > 1e-3
    counts = np.bincount(ch - 2, minlength=len(rates))
    if len(rates) > 1:
        assert stats.chisquare(counts, np.array(rates) / sum(rates) * n).pvalue > 1e-3
    else:
        assert counts[0] == n
