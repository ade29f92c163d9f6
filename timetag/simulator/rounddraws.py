"""The random variates of heralded rounds, drawn in batches from the rounds' own stream.

A herald interrupts the sequential kernel; drawing its round one numpy call per variate cost ~0.2 ms of the
main thread per round (a numpy ``Generator`` call costs microseconds whatever its size).  Here every variate a
round may need is drawn for :data:`BATCH` rounds at once into a named record, whether the round uses it or not
(a variate a round does not need is skipped, so the distribution of each is unchanged), and the read-out
photons' times and channels come from a pool of uniforms consumed in order.  The stream is the rounds' own, so
the rounds stay a pure function of the seed whatever else draws from the main stream.
"""
from __future__ import annotations

import numpy as np

from .params import SimParams

BATCH = 256
POOL = 1 << 16

_UNIFORMS = ("x", "y", "qa", "qb", "ion_a", "loss_a", "ion_b", "loss_b", "ready_a", "ready_b",
             "set_miss_a", "set_double_a", "set_other_a", "set_miss_b", "set_double_b", "set_other_b")
_NORMALS = ("ready_jitter_a", "ready_jitter_b", "set_jitter_a", "set_jitter_b")
_COUNTS = ("fluo_atom_a", "fluo_stray_a", "fluo_atom_b", "fluo_stray_b")

ROUND_DRAWS_DTYPE = np.dtype([(n, np.float64) for n in _UNIFORMS + _NORMALS] + [(n, np.int64) for n in _COUNTS])
"""One round's variates: uniforms on [0, 1), standard normals, and Poisson photon counts (the atom's photons
as if it were present: the caller keeps them only if it is)."""


class RoundDraws:
    """``next()``: the next round's :data:`ROUND_DRAWS_DTYPE` record (as a dict); ``uniforms(n)``: the next
    ``n`` uniforms of the photon pool."""

    def __init__(self, params: SimParams, rng: np.random.Generator, bob_alive: bool):
        self.rng = rng
        self._means = np.array([params.alice_fluo_mean, params.alice_fluo_background,
                                params.bob_fluo_mean if bob_alive else 0.0,
                                params.bob_fluo_background if bob_alive else 0.0])
        self._batch: list[dict] = []
        self._pool = np.zeros(0)
        self._pos = 0

    def next(self) -> dict:
        if not self._batch:
            rec = np.zeros(BATCH, ROUND_DRAWS_DTYPE)
            for name in _UNIFORMS:
                rec[name] = self.rng.random(BATCH)
            for name in _NORMALS:
                rec[name] = self.rng.standard_normal(BATCH)
            counts = self.rng.poisson(self._means, (BATCH, len(_COUNTS)))
            for i, name in enumerate(_COUNTS):
                rec[name] = counts[:, i]
            names = rec.dtype.names
            self._batch = [dict(zip(names, row)) for row in rec.tolist()][::-1]
        return self._batch.pop()

    def uniforms(self, n: int) -> np.ndarray:
        if self._pos + n > self._pool.size:
            self._pool = np.concatenate([self._pool[self._pos:], self.rng.random(max(POOL, n))])
            self._pos = 0
        out = self._pool[self._pos:self._pos + n]
        self._pos += n
        return out
