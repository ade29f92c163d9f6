"""Downstream estimators for the DIQKD protocol: pure functions over counts.

Usable on their own (no rounds file, no engine needed)::

    from timetag.estimators import tally, correlators, chsh, qber, key_rate
    n = tally(x, y, a, b)            # (4, 2, 2, 2) counts n[x, y, a, b]
    S = chsh(correlators(n))

Conventions (see ``../shared/reference/estimators.md``): Alice X in 0..3, Bob Y in 0..1, outputs 1 = 'up';
E_xy = (N_same - N_diff)/N_xy; S = E21 - E20 - E30 - E31; key rounds X = Y in {0, 1}, where the Psi+
state is anti-correlated so a key *error* is A == B.  Psi- heralded rounds enter in the Psi+ frame, with Bob's
input relabelled y -> 1 - y (derivation in :mod:`timetag.estimators.patterns`).

From rounds to numbers: :func:`join_rounds` pairs both labs' rounds, :func:`sift` makes key and test rounds of
them, :func:`estimate` does both for two rounds files and returns an :class:`Estimate`; :func:`running_estimate`
is the same on the rounds live mode has seen so far.  Figures are in :mod:`timetag.estimators.plots` (matplotlib,
not imported here).
"""
from __future__ import annotations

from .chsh import chsh, correlation_probabilities, correlators, qber
from .counts import counts_from_correlators, n_pairs, tally
from .finitekey import finite_key_length, min_block_length
from .fidelity import fidelity_bound, fit_visibilities
from .keyrate import (
    binary_entropy,
    entropy_bound,
    key_rate,
    threshold_depolarising,
)
from .join import JoinResult, SiftResult, estimate_clock, join_rounds, sift
from .patterns import pattern_counts, to_psi_plus_frame
from .pipeline import check_pair, estimate
from .report import estimate_from_counts, estimate_from_pairs
from .result import Estimate
from .running import compact_estimate, running_estimate
from .uncertainty import beta_samples, binomial_errors, posterior_summary

__all__ = [
    "tally", "n_pairs", "counts_from_correlators",
    "correlators", "correlation_probabilities", "chsh", "qber",
    "binomial_errors", "beta_samples", "posterior_summary",
    "binary_entropy", "entropy_bound", "key_rate", "threshold_depolarising",
    "finite_key_length", "min_block_length",
    "fit_visibilities", "fidelity_bound",
    "estimate_from_counts", "estimate_from_pairs",
    "to_psi_plus_frame", "pattern_counts",
    "join_rounds", "sift", "estimate_clock", "JoinResult", "SiftResult",
    "estimate", "check_pair", "Estimate",
    "running_estimate", "compact_estimate",
]

