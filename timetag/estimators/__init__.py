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

from .._lazy import lazy_names

# eager: the function chsh shares its name with its module, so it must be bound after the module is imported
from .chsh import chsh, correlation_probabilities, correlators, qber

# public name -> module; resolved by __getattr__ on first use, so that importing one estimator (or the plots, or
# the join) does not import them all (scipy.optimize, scipy.special: a quarter of a second per command)
_LAZY = {
    "tally": "counts", "n_pairs": "counts", "counts_from_correlators": "counts",
    "finite_key_length": "finitekey", "min_block_length": "finitekey",
    "fidelity_bound": "fidelity", "fit_visibilities": "fidelity",
    "binary_entropy": "keyrate", "entropy_bound": "keyrate", "key_rate": "keyrate",
    "threshold_depolarising": "keyrate",
    "JoinResult": "join", "SiftResult": "join", "estimate_clock": "join", "join_rounds": "join", "sift": "join",
    "pattern_counts": "patterns", "to_psi_plus_frame": "patterns",
    "check_pair": "pipeline", "estimate": "pipeline",
    "estimate_from_counts": "report", "estimate_from_pairs": "report",
    "Estimate": "result",
    "compact_estimate": "running", "running_estimate": "running",
    "beta_samples": "uncertainty", "binomial_errors": "uncertainty", "posterior_summary": "uncertainty",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)

__all__ = ["chsh", "correlation_probabilities", "correlators", "qber", *_LAZY]

