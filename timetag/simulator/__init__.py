"""Physics simulator of the two-lab DIQKD link (Zhang et al. 2022), with ground truth.

Physics (all parameters in :class:`SimParams`, presets in ``timetag/presets``):

* Alice's lab fires excitation attempts every ``attempt_period_ps`` in bursts
  (``burst_attempts`` on, ``gap_attempts`` off).  Per attempt each atom emits a
  photon at (Gaussian excitation pulse time) + Exp(lifetime); with
  ``double_emission_prob`` the atom first emits inside the pulse and is
  re-excited (that early photon no longer carries the atom's state).  Each photon
  is detected with probability eta, derived from ``entanglement_efficiency`` x
  ``speedup`` (= eta^2 a^2 / 4, a = acceptance of the post-pulse time filter).
* BSM: 4 detectors (arm a/b, H/V).  Orthogonally polarised photons go to
  independent arms (same arm: psi+, different arms: psi-); equal polarisations
  bunch onto one detector with (1 + hom_visibility)/2.  Detectors add Gaussian
  jitter, dark counts (Poisson), non-paralysable dead time and afterpulses.
* The sync clock ticks for every fired attempt and once after it; it is recorded
  for every tick (``sync_mode='every'``) or only for the first tick after a BSM
  click (``'conditional'``, hardware conditional filter).
* The hardware BSM logic groups the clicks in the acceptance window of an
  attempt (exactly the engine's rule: 2 clicks on 2 detectors with orthogonal
  polarisation -> psi+ same arm / psi- different arms, else 'other').  An
  announced pattern (``herald_patterns``) makes a round: 'ready' tags (Alice
  after ``ready_latency_ps``, Bob after ``link_delay_ps``), one setting tag per lab,
  the joint atomic outcome (E = -V cos 2(alpha + beta) for psi+, -V cos 2(alpha -
  beta) for psi-, 0 for noise heralds), state-selective ionisation, and Poisson
  fluorescence photons in the read-out window.  Attempts pause for
  ``readout_pause_ps``.
* Bob's clock: t_bob = offset + t_alice (1 + drift_ppm 1e-6).  Raw tag time =
  local time + cable delay of the channel.
* Expected S and Q: :func:`timetag.simulator.analytic.expected_stats`.

Channel map -- Alice: sync 1; BSM 2 (a,H) 3 (a,V) 4 (b,H) 5 (b,V), also the
fluorescence channels; ready 6; settings 7..10 for X = 0..3.  Bob: SPD 1
(fluorescence), ready 2, settings 3, 4 for Y = 0, 1.

``truth.h5`` schema
-------------------
``/rounds`` (one row per round = per announced herald; dtype
:data:`timetag.simulator.truth.TRUTH_DTYPE`): index, attempt, alice_time (Alice's
ready, Alice's clock, raw ps), bob_time (Bob's ready, Bob's clock, raw ps),
herald_time / herald_t1 (later / earlier herald click, Alice, corrected ps),
pattern (1 psi+, 2 psi-), bell_state (1 psi+, 2 psi-, 0 noise), signal, x, y,
a_quantum / b_quantum (projective outcome, 1 = up), a / b (atom present after
ionisation and loss: 1 = up), alice/bob_signal_photons (atom fluorescence photons
emitted into live channels), alice/bob_count (recorded fluorescence-channel tags
in the read-out window relative to the recorded ready -- exactly what the engine
should count), alice/bob_output (count >= setup threshold),
alice/bob_ready_present, alice/bob_setting_tags (0 missing, 1, 2 double),
alice/bob_lost (a lost-data interval overlaps the round).

``/heralds_all`` (every coincidence group of >= 2 clicks the engine will see;
:data:`~timetag.simulator.truth.HERALD_ALL_DTYPE`): attempt, time, t1, t2, ch1,
ch2, src1, src2 (source codes in the dataset attribute ``src_codes``: dark, atom
last/early photon, afterpulse, fluorescence, ...), nclicks, pattern, gated
(hardware did not announce: read-out pause or after the last round), signal.

File attributes: params (JSON), seed, expected_S, expected_Q, expected (JSON of
:func:`expected_stats`), bob_clock_offset_ps, bob_clock_drift_ppm, sync_mode,
thresholds, format, provenance, overflow intervals per lab (raw ps), stats.
"""
from __future__ import annotations

from .._lazy import lazy_names

# the public names and their modules: loaded on first use, so that importing one light module of the package
# (``timetag.simulator.analytic``, ``.params``: what calibration and the estimators use) does not compile or load
# the event kernel, the writers and h5py
_WHERE = {"SimParams": "params", "load_preset": "params", "preset_names": "params", "derived": "params",
          "expected_stats": "analytic", "expected_correlator": "analytic", "LinkSimulator": "generate",
          "simulate": "run", "SimResult": "run", "build_setup": "run", "read_truth": "truth",
          "TRUTH_DTYPE": "truth", "HERALD_ALL_DTYPE": "truth"}

__all__ = ["SimParams", "load_preset", "preset_names", "derived", "expected_stats", "expected_correlator",
           "LinkSimulator", "simulate", "SimResult", "build_setup", "read_truth", "TRUTH_DTYPE", "HERALD_ALL_DTYPE"]

__getattr__, __dir__ = lazy_names(__name__, globals(), _WHERE)
