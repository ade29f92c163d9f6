"""Re-cut the block-wise generator output into fixed slices of Alice's time (for the live mode)."""
from __future__ import annotations

import numpy as np

from ..chunk import TagChunk, concat


def _cut(buf: list[TagChunk], bound: int) -> tuple[TagChunk, list[TagChunk]]:
    whole = concat(buf) if buf else TagChunk(np.zeros(0, np.int64), np.zeros(0, np.int32))
    n = int(np.searchsorted(whole.time, bound, side="left"))
    m = int(np.searchsorted(whole.lost["time"], bound, side="left"))
    head = TagChunk(whole.time[:n], whole.channel[:n], whole.lost[:m])
    tail = TagChunk(whole.time[n:], whole.channel[n:], whole.lost[m:])
    return head, [tail]


def Slicer(sim, slice_ps: int):
    """Yield (alice_chunk, bob_chunk, truth_rows) for consecutive slices [k S, (k+1) S) of Alice's time.

    Slice boundaries are mapped to each lab's raw time (clock and smallest cable delay), the same bound the
    generator uses when it releases tags, so every slice is complete when it is yielded.
    """
    bufA: list[TagChunk] = []
    bufB: list[TagChunk] = []
    rows: list = []
    edge = sim.t0
    while True:
        if sim.finished:
            bound_true = None
        else:
            ca, cb, r = sim.step()
            bufA.append(ca)
            bufB.append(cb)
            rows.extend(r)
            bound_true = sim.t_block
            if sim.finished:
                bound_true = None
        while bound_true is None or edge + slice_ps <= bound_true:
            edge += slice_ps
            if bound_true is None and not any(len(c) or c.lost.size for c in bufA + bufB):
                if rows:
                    yield (TagChunk(np.zeros(0, np.int64), np.zeros(0, np.int32)),
                           TagChunk(np.zeros(0, np.int64), np.zeros(0, np.int32)), rows)
                return
            a, bufA = _cut(bufA, edge + sim.outA.min_delay)
            b, bufB = _cut(bufB, sim.outB.local_scalar(edge) + sim.outB.min_delay)
            yield a, b, rows
            rows = []
