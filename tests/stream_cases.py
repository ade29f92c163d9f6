"""Small streams for the processors' contract tests."""
from __future__ import annotations

import numpy as np

from timetag.chunk import LOST_DTYPE, TagChunk


def chunk(times, channels, offset: int = 0, lost=None) -> TagChunk:
    return TagChunk(np.asarray(times, np.int64), np.asarray(channels, np.int32),
                    np.zeros(0, LOST_DTYPE) if lost is None else lost, offset)


def rounds_of(collect) -> np.ndarray:
    from timetag.stream import RoundsEvent

    parts = [e.rounds for e in collect.of_type(RoundsEvent)]
    return np.concatenate(parts) if parts else np.zeros(0)


def small_alice_run(tmp_path_factory, name: str, seed: int) -> dict:
    """A 120-round lmu2022 simulation at speedup 2000 (``dir``, Alice's dump ``alice``, her ``lab`` setup): the
    small real-shaped stream of the partition tests."""
    from timetag.setupfile import load_setup
    from timetag.simulator import load_preset, simulate

    d = tmp_path_factory.mktemp(name)
    res = simulate(load_preset("lmu2022").with_overrides(speedup=2000), 120, seed, d / "sim")
    return {"dir": d, "alice": res.alice, "lab": load_setup(res.setup).lab("alice")}
