"""Simulated round pairs written as rounds files, and the CLI run in-process (tests of estimate and its results)."""
from __future__ import annotations

import numpy as np

from timetag.cli import main
from timetag.estimators.model import sample_pairs
from timetag.records import ROUND_DTYPE
from timetag.roundsfile import write_rounds


def labs(n=3000, V=0.9, seed=0, drop_b=(), x_allowed=None):
    rng = np.random.default_rng(seed)
    x, y, a, b = sample_pairs(n, V, rng)
    if x_allowed is not None:
        x = np.asarray(x_allowed)[x % len(x_allowed)]
    t = 10**12 + np.cumsum(rng.exponential(1e9, n)).astype(np.int64)
    A = np.zeros(n, ROUND_DTYPE)
    B = np.zeros(n, ROUND_DTYPE)
    A["trigger_time"], A["setting"], A["output"] = t, x, a
    B["trigger_time"], B["setting"], B["output"] = t + 1_234_567_890_123 + np.rint(5e-7 * t).astype(np.int64), y, b
    B = np.delete(B, list(drop_b))
    A["index"], B["index"] = np.arange(len(A)), np.arange(len(B))
    return A, B


def write_pair(tmp_path, A, B, hash_a="h1", hash_b="h1", role_a="alice", role_b="bob"):
    pa = write_rounds(tmp_path / "alice.h5", A, lab="lab1", role=role_a, setup_hash=hash_a)
    pb = write_rounds(tmp_path / "bob.h5", B, lab="lab2", role=role_b, setup_hash=hash_b)
    return pa, pb


def run(argv, capsys):
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err
