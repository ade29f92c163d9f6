"""Small synthetic tag streams with known truth, for tests and examples (numpy only, seeded).

Not the physics simulator (:mod:`timetag.simulator`): just enough structure for the
calibration to have something with a known answer — periodic syncs, pulse photons
(Gaussian pulse + exponential decay + jitter) on the BSM detectors with per-channel
cable delays (raw = true + delay), flat dark counts, and 'ready' triggers followed by
a fluorescence burst (atom present or absent) in both labs, Bob on his own clock.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from timetag.chunk import TagChunk
from timetag.setupfile import setup_from_dict


@dataclass
class SynthParams:
    duration_ps: int = 2_000_000_000_000     # 2 s
    period_ps: int = 19_230_769
    sync_mode: str = "every"                 # or 'conditional' (only the first sync after a click)
    pulse_center_ps: float = 12_000.0
    pulse_sigma_ps: float = 21_000.0 / 2.3548
    tau_ps: float = 26_200.0
    jitter_ps: float = 500.0
    photon_prob: float = 0.01                # per attempt and detector
    dark_hz: float = 2_000.0                 # per detector (large so that tests see it)
    delays: dict = field(default_factory=lambda: {1: 4_000, 2: 61_230, 3: 62_870, 4: 60_450, 5: 63_910, 6: 2_100})
    ready_rate_hz: float = 40.0              # 'ready' triggers per second
    fluo_window_ps: tuple = (5_000_000, 25_000_000)
    p_bright: float = 0.5
    mean_dark: float = 1.0                   # Alice (all 4 detectors together)
    mean_bright: float = 14.0
    bob_mean_dark: float = 0.5
    bob_mean_bright: float = 9.0
    bob_offset_ps: int = 1_234_567_890
    bob_drift: float = 3e-8                  # t_bob = t_alice (1 + drift) + offset
    link_ps: int = 3_500_000                 # Bob's ready after Alice's
    ready_jitter_ps: float = 1_000.0
    bob_delays: dict = field(default_factory=lambda: {1: 1_600, 2: 2_650})
    seed: int = 1


BSM = (2, 3, 4, 5)


def make_streams(p: SynthParams) -> tuple[TagChunk, TagChunk, dict]:
    rng = np.random.default_rng(p.seed)
    n_att = int(p.duration_ps // p.period_ps)
    syncs = 1_000_000 + np.arange(n_att, dtype=np.int64) * p.period_ps
    at_t, at_c = [], []
    clicked = np.zeros(n_att, bool)   # sync recorded in 'conditional' mode
    for ch in BSM:
        hit = rng.random(n_att) < p.photon_prob
        k = np.flatnonzero(hit)
        t = syncs[k] + p.pulse_center_ps + rng.normal(0, p.pulse_sigma_ps, k.size) + rng.exponential(p.tau_ps, k.size) \
            + rng.normal(0, p.jitter_ps, k.size)
        nd = rng.poisson(p.dark_hz * p.duration_ps * 1e-12)
        d = rng.uniform(0, syncs[-1], nd)
        # conditional recording: a click makes the tagger keep the first sync after it
        clicked[np.minimum(k + 1, n_att - 1)] = True
        clicked[np.clip(np.searchsorted(syncs, d, "right"), 0, n_att - 1)] = True
        at_t += [np.round(t).astype(np.int64), np.round(d).astype(np.int64)]
        at_c += [np.full(k.size + nd, ch, np.int32)]
    # readies (away from the ends), fluorescence bursts on the BSM detectors
    n_r = rng.poisson(p.ready_rate_hz * p.duration_ps * 1e-12)
    margin = 2 * p.fluo_window_ps[1] + p.link_ps
    ready = np.sort(rng.uniform(margin, p.duration_ps - margin, n_r)).astype(np.int64)
    bright = rng.random(n_r) < p.p_bright
    na = np.where(bright, rng.poisson(p.mean_bright, n_r), rng.poisson(p.mean_dark, n_r))
    f0, f1 = p.fluo_window_ps
    ft = np.repeat(ready, na) + rng.uniform(f0, f1, na.sum()).astype(np.int64)
    fc = rng.choice(np.array(BSM, np.int32), na.sum())
    at_t += [ready, ft]
    at_c += [np.full(n_r, 6, np.int32), fc]
    sync_sel = clicked if p.sync_mode == "conditional" else np.ones(n_att, bool)
    at_t.append(syncs[sync_sel])
    at_c.append(np.full(int(sync_sel.sum()), 1, np.int32))
    t = np.concatenate(at_t)
    c = np.concatenate(at_c)
    t = t + np.array([p.delays.get(int(x), 0) for x in range(int(c.max()) + 1)], np.int64)[c]
    o = np.argsort(t, kind="stable")
    alice = TagChunk(t[o], c[o])
    # Bob
    tb_ready = ready + p.link_ps + np.round(rng.normal(0, p.ready_jitter_ps, n_r)).astype(np.int64)
    nb = np.where(bright, rng.poisson(p.bob_mean_bright, n_r), rng.poisson(p.bob_mean_dark, n_r))
    tb_f = np.repeat(tb_ready, nb) + rng.uniform(f0, f1, nb.sum()).astype(np.int64)
    tb = np.concatenate([tb_ready, tb_f])
    cb = np.concatenate([np.full(n_r, 2, np.int32), np.full(nb.sum(), 1, np.int32)])
    nbd = rng.poisson(p.dark_hz * p.duration_ps * 1e-12)
    tb = np.concatenate([tb, rng.uniform(0, p.duration_ps, nbd).astype(np.int64)])
    cb = np.concatenate([cb, np.full(nbd, 1, np.int32)])
    tb = tb + np.round(p.bob_drift * tb).astype(np.int64) + p.bob_offset_ps
    tb = tb + np.array([0, p.bob_delays.get(1, 0), p.bob_delays.get(2, 0)], np.int64)[cb]
    o = np.argsort(tb, kind="stable")
    bob = TagChunk(tb[o], cb[o])
    truth = {"bright": bright, "alice_counts": na, "bob_counts": nb, "ready": ready, "n_attempts": n_att}
    return alice, bob, truth


def make_setup(p: SynthParams, *, delays=None, window=None, thresholds=(4, 3)):
    """A setup for the synthetic streams (delays default to the true ones)."""
    delays = {**{c: 0 for c in range(1, 11)}, **dict(p.delays if delays is None else delays)}
    ref = "previous" if p.sync_mode == "every" else "next"
    if window is None:
        window = (32_000, 122_000) if ref == "previous" else (32_000 - p.period_ps, 122_000 - p.period_ps)
    rng_ = (0, 200_000) if ref == "previous" else (-p.period_ps + 0 - 50_000, -p.period_ps + 200_000)
    d = {
        "meta": {"name": "synthetic", "schema": 1},
        "labs": {
            "alice": {
                "role": "alice", "sync_channel": 1, "ready_channel": 6, "setting_channels": [7, 8, 9, 10],
                "fluorescence_channels": list(BSM), "delays_ps": {str(k): int(v) for k, v in delays.items()},
                "bsm": [{"channel": 2, "arm": "a", "pol": "H"}, {"channel": 3, "arm": "a", "pol": "V"},
                        {"channel": 4, "arm": "b", "pol": "H"}, {"channel": 5, "arm": "b", "pol": "V"}],
                "herald": {"sync_reference": ref, "window_start_ps": int(window[0]), "window_stop_ps": int(window[1]),
                           "coincidence_ps": 100_000},
                "round": {"trigger": "ready", "setting_window_ps": [0, 2_000_000], "fluorescence_window_ps": list(p.fluo_window_ps),
                          "threshold": int(thresholds[0])},
                "histograms": {"arrival_bin_ps": 500, "arrival_range_ps": list(rng_)},
            },
            "bob": {
                "role": "bob", "ready_channel": 2, "setting_channels": [3, 4], "fluorescence_channels": [1],
                "delays_ps": {str(k): int(v) for k, v in {1: 0, 2: 0, 3: 0, 4: 0, **p.bob_delays}.items()},
                "round": {"trigger": "ready", "setting_window_ps": [0, 2_000_000], "fluorescence_window_ps": list(p.fluo_window_ps),
                          "threshold": int(thresholds[1])},
            },
        },
    }
    return setup_from_dict(d)
