"""Rounds of both labs -> raw keys and the public data of the sift, with the join and sift of ``timetag estimate``.

Nothing is re-implemented: the inputs are loaded and paired by :func:`timetag.estimators.pipeline.check_pair`,
:func:`~timetag.estimators.join.join_rounds` (clock from the arguments, the setup's ``[clock]`` table or the
trigger times, as ``estimate`` resolves it) and :func:`~timetag.estimators.join.sift` (the same flag policy and
herald-pattern selection; psi- rounds relabelled into the psi+ frame).  Key rounds are X = Y in {0, 1} in the
psi+ frame, anti-correlated: Alice's key bit is her output a, Bob's is 1 - b.  Key bits are in the order of the
pairs (Alice's trigger time).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import EstimationError
from ..estimators.chsh import chsh, correlators, qber
from ..estimators.counts import tally
from ..estimators.join import join_rounds, sift
from ..estimators.pipeline import _load, check_pair, clock_from_setup, resolve_clock


@dataclass
class Sifted:
    alice_key: np.ndarray      # uint8 0/1, Alice's raw key (private)
    bob_key: np.ndarray        # uint8 0/1, Bob's raw key (private)
    public: dict               # the announced data: pairing, inputs, test outputs
    n_pairs: int
    n_used: int
    n_key: int
    n_test: int
    S: float
    qber_true: tuple           # (Q0, Q1, Q) of the key rounds: known only to an observer of both labs
    stats: dict


def sift_rounds(alice, bob, *, flagged: str = "keep", patterns=None, offset_ps=None, drift=None, setup=None,
                accept_incomplete: bool = False) -> Sifted:
    a, b = check_pair(_load(alice, "alice", accept_incomplete), _load(bob, "bob", accept_incomplete))
    clock, clock_name = None, ""
    if setup is not None:
        clock, clock_name, _ = clock_from_setup(setup)
    offset_ps, drift, _ = resolve_clock(offset_ps, drift, clock, clock_name)
    j = join_rounds(a, b, offset_ps=offset_ps, drift=drift)
    if j.n_pairs == 0:
        raise EstimationError("no rounds of Alice and Bob could be paired in time")
    sf = sift(a, b, j, flagged, patterns)
    if sf.stats["test"] == 0 or sf.stats["key"] == 0:
        raise EstimationError(f"{sf.stats['key']} key rounds and {sf.stats['test']} test rounds among "
                              f"{j.n_pairs} joined rounds: both are needed to distil a key")
    n = tally(sf.x, sf.y, sf.a, sf.b)
    S = chsh(correlators(n))
    ka = sf.a[sf.key].astype(np.uint8)
    kb = (1 - sf.b[sf.key]).astype(np.uint8)
    public = {"alice_index": j.ia.astype(np.int64), "bob_index": j.ib.astype(np.int64),
              "x": sf.x.astype(np.int8), "y": sf.y.astype(np.int8),
              "test_a": sf.a[sf.test].astype(np.uint8), "test_b": sf.b[sf.test].astype(np.uint8)}
    return Sifted(ka, kb, public, j.n_pairs, int(sf.stats["used"]), int(len(ka)), int(sf.stats["test"]),
                  float(S), qber(n), {**sf.stats, "join": j.summary(), "rounds_alice": int(len(a.rounds)),
                   "rounds_bob": int(len(b.rounds))})
