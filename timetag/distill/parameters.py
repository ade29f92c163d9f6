"""Parameter estimation and the final key length, with the project's finite-key bound and the measured leak.

The bound is :func:`timetag.estimators.finitekey.finite_key_length` (the paper's analysis after Tan et al.,
Quantum 2022, collective attacks; one epsilon ``eps_sec`` for smoothing, parameter estimation and privacy
amplification), called with the run's own numbers -- N = n_k key rounds, p_key = 1, p_test = n_t / n_k -- and
f_EC = 0, and the measured leak subtracted instead:

    l = n_k H(S - dS) - leak - sqrt(n_k) 2 log2(5) sqrt(1 - 2 log2 eps) - 3 log2(1/eps) + 2

with leak = every public bit about the key (syndromes minus credited punctured bits, frame status bits,
verification tags and result, disclosed sample bits of both parties) + the key bits dropped from the string
(failed frames, the tail that fits no frame, disclosed sample positions): dropping d bits of a string lowers its
smooth min-entropy by at most d (chain rule), so they are charged too.  The final length is floor(l) if positive.
"""
from __future__ import annotations

import math

from ..estimators.finitekey import finite_key_length, min_block_length


def bound(n_key: int, n_test: int, S: float, Q: float, leak_bits: int, eps_sec: float,
          ds_method: str = "hoeffding") -> float:
    """l (may be <= 0) for n_key key rounds, n_test test rounds, CHSH S and ``leak_bits`` charged."""
    if n_key <= 0 or n_test <= 0:
        return float("-inf")
    base = finite_key_length(n_key, S, Q, eps=eps_sec, f_ec=0.0, p_key=1.0, p_test=n_test / n_key,
                             ds_method=ds_method)
    return float(base) - leak_bits


def expected_length(n_key, n_test, S, Q, f, eps_sec, ds_method="hoeffding") -> float:
    """l with the leak predicted as f n_k h(Q) (before error correction)."""
    from .reconcile import h2
    return bound(n_key, n_test, S, Q, int(math.ceil(f * n_key * h2(Q))), eps_sec, ds_method)


def rounds_needed(S, Q, f, eps_sec, p_key, p_test, ds_method="hoeffding") -> float:
    """Rounds (pairs used) for a positive key at these S, Q and efficiency f, with the run's key/test fractions."""
    return min_block_length(S, Q, eps=eps_sec, f_ec=f, p_key=p_key, p_test=p_test, ds_method=ds_method)
