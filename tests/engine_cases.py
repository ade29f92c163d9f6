"""Shared small setups and stream builders for the engine tests (times in ps, tiny on purpose)."""
from __future__ import annotations

import numpy as np

from reference_engine import reference_process
from timetag.chunk import LOST_DTYPE, TagChunk, split
from timetag.engine import LabPipeline
from timetag.setupfile import setup_from_dict

SYNC, A_H, A_V, B_H, B_V, READY, S0, S1, S2, S3, UNUSED = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
BOB_READY, BOB_S0, BOB_S1, BOB_FLUO = 6, 7, 8, 2


def alice_dict(ref="previous", trigger="both", delays=None, **round_over):
    window = (10, 50) if ref == "previous" else (-50, -10)
    rnd = {"trigger": trigger, "ready_delay_ps": 100, "ready_tolerance_ps": 10, "setting_window_ps": [0, 40],
           "fluorescence_window_ps": [50, 150], "threshold": 2}
    rnd.update(round_over)
    return {"role": "alice", "sync_channel": SYNC, "ready_channel": READY,
            "setting_channels": [S0, S1, S2, S3], "fluorescence_channels": [A_H, A_V, B_H, B_V],
            "delays_ps": {str(k): v for k, v in {**{c: 0 for c in range(SYNC, S3 + 1)},
                                                  **(delays if delays is not None else {A_H: 3, A_V: -2, READY: 5})}.items()},
            "bsm": [{"channel": A_H, "arm": "a", "pol": "H"}, {"channel": A_V, "arm": "a", "pol": "V"},
                    {"channel": B_H, "arm": "b", "pol": "H"}, {"channel": B_V, "arm": "b", "pol": "V"}],
            "herald": {"sync_reference": ref, "window_start_ps": window[0], "window_stop_ps": window[1],
                       "coincidence_ps": 30, "patterns": ["psi+", "psi-"] if trigger == "herald" else ["psi+"]},
            "round": rnd,
            "histograms": {"arrival_bin_ps": 7, "arrival_range_ps": [-100, 100], "max_count": 5}}


def bob_dict():
    return {"role": "bob", "ready_channel": BOB_READY, "setting_channels": [BOB_S0, BOB_S1],
            "fluorescence_channels": [BOB_FLUO], "delays_ps": {str(BOB_FLUO): 4, str(BOB_READY): 0, str(BOB_S0): 0, str(BOB_S1): 0},
            "round": {"trigger": "ready", "setting_window_ps": [0, 40], "fluorescence_window_ps": [-20, 100],
                      "threshold": 2}}


def alice(**kw):
    return setup_from_dict({"labs": {"alice": alice_dict(**kw)}}).lab("alice")


def bob():
    return setup_from_dict({"labs": {"bob": bob_dict()}}).lab("bob")


def stream(tags, lost=()):
    """TagChunk from (raw time, channel) pairs (sorted here) and (time, kind[, channel, count]) lost events."""
    tags = sorted(tags, key=lambda x: x[0])
    t = np.array([x[0] for x in tags], np.int64)
    c = np.array([x[1] for x in tags], np.int32)
    ev = np.zeros(len(lost), LOST_DTYPE)
    for i, e in enumerate(sorted(lost, key=lambda x: x[0])):
        ev[i]["time"], ev[i]["kind"] = e[0], e[1]
        if len(e) > 2:
            ev[i]["channel"], ev[i]["count"] = e[2], e[3]
    return TagChunk(t, c, ev)


def random_stream(rng: np.random.Generator, n: int, channels=(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11),
                  max_step=12, n_lost=0):
    steps = rng.integers(0, max_step, n)
    t = np.cumsum(steps) + 1000
    p = np.array([3, 4, 4, 4, 4, 1, 0.4, 0.4, 0.4, 0.4, 0.5])[: len(channels)]
    c = rng.choice(np.array(channels), size=n, p=p / p.sum())
    lost = []
    if n_lost and n:
        for tt in sorted(rng.integers(int(t[0]), int(t[-1]) + 1, n_lost)):
            lost.append((int(tt), int(rng.integers(1, 5)), 2, 1))
    return stream(list(zip(t.tolist(), c.tolist())), lost)


def herald_ready_stream(rng: np.random.Generator, n_attempts: int):
    """Dense psi+ heralds with ready tags near herald + 100 (+-15, some missing, some doubled), for 'both'."""
    tags, t = [], 1000
    for _ in range(n_attempts):
        tags += [(t, SYNC), (t + 20 + 3 + int(rng.integers(0, 5)), A_H), (t + 30 - 2 + int(rng.integers(0, 5)), A_V)]
        for _ in range(int(rng.choice([0, 1, 1, 1, 2]))):
            tags.append((t + 130 + 5 + int(rng.integers(-15, 16)), READY))
        if rng.random() < 0.7:
            tags.append((t + 140 + int(rng.integers(0, 40)), S0 + int(rng.integers(0, 4))))
        t += int(rng.integers(20, 200))
    return stream(tags)


# --- shared by tests/engine/test_*.py ----------------------------------------------------

END = (5000, UNUSED)  # a late tag on an unused channel: closes every window below



def run(lab, tags, lost=(), cuts=None):
    s = stream(tags, lost)
    pl = LabPipeline(lab)
    chunks = [s] if cuts is None else list(split(s, cuts))
    rounds, heralds = pl.run(chunks)
    return rounds, heralds, pl



def psi_plus_round_tags():
    return [(1000, SYNC), (1023, A_H), (1028, A_V),  # corrected 1020 and 1030: dt 20, 30
            (1135, READY),                             # corrected 1130 = herald + 100
            (1140, S2),
            (1190, B_H), (1200, B_H), (1250, B_V),     # in [1180, 1280)
            (1283, A_H),                               # corrected 1280: just outside
            END]



def herald_tags(t0):
    """A psi+ herald at t0 + 30 (corrected) with the default delays."""
    return [(t0, SYNC), (t0 + 23, A_H), (t0 + 28, A_V)]



CONFIGS = [dict(ref=r, trigger=t) for r in ("previous", "next") for t in ("herald", "ready", "both")]



def assert_same(lab, s, chunks):
    r0, h0, extra = reference_process(s, lab)
    pl = LabPipeline(lab)
    r1, h1 = pl.run(chunks)
    assert h1.tolist() == h0.tolist()
    assert r1.tolist() == r0.tolist()
    np.testing.assert_array_equal(pl.histograms["arrival"], extra["arrival"])
    assert pl.summary["clicks_accepted"] == extra["clicks_accepted"]
    singles = {c: n for c, n in pl.summary["singles"].items() if n}
    assert singles == {c: n for c, n in extra["singles"].items() if c in lab.channels}
    return r1, h1, pl

