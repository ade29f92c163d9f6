"""Expected statistics implied by the simulation parameters (closed form, first order in small rates).

Chain from the heralded state to the recorded output bits:

1. Herald purity.  Signal psi+ heralds (both atoms' last photons in the
   acceptance window, orthogonal polarisations, same arm) occur with
   probability ``p_sig = entanglement_efficiency * speedup`` per attempt.
   Noise heralds with the same click pattern come from (i) one atom photon in
   the window plus a dark count on the psi+ partner detector, (ii) two dark
   counts, (iii) an atom's *first* photon of a double emission (emitted in the
   pulse; the atom re-emits, so that photon no longer carries the atom's state)
   when it reaches the window.  A noise herald leaves the atoms uncorrelated.
   ``f_noise = p_noise / (p_sig + p_noise)``.
2. Atom state.  A signal psi+ herald gives a state of visibility V_s:
   E(alpha, beta) = -V_s cos 2(alpha + beta) for the projective outcomes.
3. Read-out.  Projective outcome up -> atom stays (unless lost, ``atom_loss_prob``);
   down -> ionised with ``ionisation_efficiency``.  Fluorescence counts in the
   window are Poisson: mean ``fluo_mean * (1 + afterpulse_prob) + background``
   with the atom, ``background`` without (background = stray light + dark counts
   of the counting detectors over the window).  Output up = count >= threshold.
   Per lab this is a binary channel with e1 = P(down | up), e0 = P(up | down);
   o = m + c q in expectation with c = 1 - e0 - e1, m = e0 - e1.
4. With uniform marginals, E_out = m_A m_B + c_A c_B (1 - f_noise) E_q, so
   S = 2 sqrt 2 c_A c_B (1 - f_noise) V_s - 2 m_A m_B and
   Q = (1 + m_A m_B - c_A c_B (1 - f_noise) V_s) / 2;
   the effective visibility is V_eff = c_A c_B (1 - f_noise) V_s.
"""
from __future__ import annotations

import math

import numpy as np

from .params import ALICE_BSM, ALPHA_DEG, BETA_DEG, BOB_SPD, SimParams, derived

_PARTNER = {2: 3, 3: 2, 4: 5, 5: 4}


def _counts(p: SimParams) -> dict:
    f0, f1 = p.fluorescence_window_ps
    w_s = (f1 - f0) * 1e-12
    alive = [c for c in ALICE_BSM if c not in p.dead_channels_alice]
    frac = len(alive) / 4
    dark_a = sum(r for c, r in zip(ALICE_BSM, p.dark_rate_hz_alice) if c in alive) * w_s
    bob_alive = BOB_SPD not in p.dead_channels_bob
    dark_b = p.dark_rate_hz_bob * w_s if bob_alive else 0.0
    ap = 1 + p.afterpulse_prob + p.afterpulse_burst_prob * p.afterpulse_burst_size
    bg_a = (p.alice_fluo_background * frac + dark_a) * ap
    bg_b = (p.bob_fluo_background + dark_b) * ap if bob_alive else 0.0
    sig_a = p.alice_fluo_mean * frac * ap
    sig_b = p.bob_fluo_mean * ap if bob_alive else 0.0
    return {"alice": (sig_a + bg_a, bg_a), "bob": (sig_b + bg_b, bg_b)}


def poisson_at_least(thr, mu):
    """P(count >= thr) of a Poisson count of mean ``mu``, for integer thresholds ``thr`` (what
    ``scipy.special.gammainc(thr, mu)`` and ``scipy.stats.poisson.sf(thr - 1, mu)`` compute, without importing
    scipy: a fifth of a second or more of every ``simulate``).  Summed from the probabilities of the counts:
    the upper tail for thresholds above the mean (full relative precision where it is tiny), one minus the
    lower part below it."""
    thr = np.asarray(thr)
    t = np.maximum(thr, 0).astype(np.int64)
    mu = float(mu)
    if mu <= 0.0:
        return np.where(thr <= 0, 1.0, 0.0)
    k_max = int(max(int(t.max(initial=0)), mu) + 40 * math.sqrt(mu + 1) + 100)
    k = np.arange(k_max + 1)
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, k_max + 1)))])
    pmf = np.exp(k * math.log(mu) - mu - log_fact)
    upper = np.cumsum(pmf[::-1])[::-1]           # P(N >= k)
    lower = np.concatenate([[0.0], np.cumsum(pmf)[:-1]])  # P(N < k)
    at_least = np.where(k > mu, upper, 1.0 - lower)
    return np.where(thr <= 0, 1.0, at_least[np.minimum(t, k_max)])


def _channel(p: SimParams, mu_atom: float, mu_bg: float, thr: int) -> tuple[float, float]:
    up_atom = poisson_at_least(thr, mu_atom)
    up_bg = poisson_at_least(thr, mu_bg)
    loss = p.atom_loss_prob
    up_present = (1 - loss) * up_atom + loss * up_bg
    e1 = 1 - up_present
    e0 = (1 - p.ionisation_efficiency) * up_present + p.ionisation_efficiency * up_bg
    return e0, e1


def min_error_threshold(thresholds, e_dark, e_bright, w_dark: float = 1.0, w_bright: float = 1.0) -> int:
    """The read-out threshold rule, one for the simulator and for calibration.

    Read-out 'up' means count >= t.  For each candidate ``thresholds[i]`` the caller gives the two error
    probabilities its count distributions imply -- ``e_dark[i]`` = P(up | dark state) and ``e_bright[i]`` =
    P(down | bright state) -- whatever model they come from (Poisson, negative binomial, ionisation and atom
    loss mixed in).  The threshold minimises ``w_dark e_dark + w_bright e_bright`` (weights: the states'
    priors; only their ratio matters).  Ties go to the lowest threshold, and so do gains below 1e-15:
    rounding must not move a threshold between runs or machines.
    """
    err = (w_dark * np.asarray(e_dark, np.float64) + w_bright * np.asarray(e_bright, np.float64)).tolist()
    thrs = np.asarray(thresholds).tolist()
    best, best_err = int(thrs[0]), w_dark + w_bright  # no error exceeds it: the first candidate stands until beaten
    for thr, e in zip(thrs, err):
        if e < best_err - 1e-15:
            best, best_err = int(thr), e
    return best


def best_threshold(p: SimParams, mu_atom: float, mu_bg: float) -> int:
    """The simulator's threshold: :func:`min_error_threshold` of its read-out channel, equal priors."""
    thrs = np.arange(1, max(3, int(mu_atom + 10 * math.sqrt(mu_atom + 1)) + 2))
    e0, e1 = _channel(p, mu_atom, mu_bg, thrs)  # one vectorised call: scipy's per-call overhead dominates
    return min_error_threshold(thrs, e0, e1)


def expected_stats(p: SimParams) -> dict:
    d = derived(p)
    eta = d["eta"]
    ws, we = p.acceptance_window_ps
    L = (we - ws) * 1e-12
    rates = dict(zip(ALICE_BSM, p.dark_rate_hz_alice))
    alive = [c for c in ALICE_BSM if c not in p.dead_channels_alice]
    for c in p.dead_channels_alice:
        rates[c] = 0.0
    a_win = (1 - p.double_emission_prob) * d["time_filter_acceptance"] + \
        p.double_emission_prob * d["time_filter_acceptance_double"]
    per_det_photon = 2 * eta * a_win / 4  # an atom's last photon in the window on one given detector
    p_acc = sum(per_det_photon * rates[_PARTNER[c]] * L for c in alive)
    p_dd = rates[2] * L * rates[3] * L + rates[4] * L * rates[5] * L
    early = p.double_emission_prob * eta * d["early_photon_in_window"]
    # early photon + the other atom's last photon, or + the same atom's last photon (both in the window);
    # random detectors give the psi+ pattern (same arm, orthogonal polarisation) with probability 1/4
    p_early = 2 * early * eta * a_win / 4 + 2 * p.double_emission_prob * eta ** 2 * d["early_pair_in_window"] / 4
    p_sig = d["p_signal_herald"] * (len(alive) == 4)
    if len(alive) < 4:  # a psi+ needs both detectors of one arm
        arms_ok = sum(1 for pair in ((2, 3), (4, 5)) if all(c in alive for c in pair))
        p_sig = d["p_signal_herald"] * arms_ok / 2
    p_noise = p_acc + p_dd + p_early
    f_noise = p_noise / (p_sig + p_noise) if p_sig + p_noise > 0 else 1.0
    counts = _counts(p)
    thr_a = p.threshold_alice or best_threshold(p, *counts["alice"])
    thr_b = p.threshold_bob or best_threshold(p, *counts["bob"])
    e0a, e1a = _channel(p, *counts["alice"], thr_a)
    e0b, e1b = _channel(p, *counts["bob"], thr_b)
    ca, ma = 1 - e0a - e1a, e0a - e1a
    cb, mb = 1 - e0b - e1b, e0b - e1b
    v_eff = ca * cb * (1 - f_noise) * p.state_visibility
    S = 2 * math.sqrt(2) * v_eff - 2 * ma * mb
    Q = (1 + ma * mb - v_eff) / 2
    p_herald = p_sig + p_noise
    rate = p_herald * d["attempt_rate_hz"] * d["duty"]
    return {
        "eta": eta,
        "time_filter_acceptance": d["time_filter_acceptance"],
        "time_filter_rate_cost": d["time_filter_rate_cost"],
        "p_signal_herald": p_sig,
        "p_noise_herald": p_noise,
        "noise_fraction": f_noise,
        "threshold_alice": int(thr_a),
        "threshold_bob": int(thr_b),
        "mean_count_alice": counts["alice"],
        "mean_count_bob": counts["bob"],
        "readout_error_alice": (e0a, e1a),
        "readout_error_bob": (e0b, e1b),
        "visibility_eff": v_eff,
        "expected_S": S,
        "expected_Q": Q,
        "herald_rate_hz": rate,
        "seconds_per_round": (1.0 / rate if rate > 0 else math.inf) + p.readout_pause_ps * 1e-12,
        "correlator": {"m_alice": ma, "c_alice": ca, "m_bob": mb, "c_bob": cb},
    }


def expected_correlator(p: SimParams, x: int, y: int, stats: dict | None = None) -> float:
    """E_xy of the output bits (+1 when equal) for psi+ rounds."""
    s = stats or expected_stats(p)
    c = s["correlator"]
    eq = -p.state_visibility * (1 - s["noise_fraction"]) * math.cos(2 * math.radians(ALPHA_DEG[x] + BETA_DEG[y]))
    return c["m_alice"] * c["m_bob"] + c["c_alice"] * c["c_bob"] * eq
