"""Rounds-only simulation: both labs' rounds files straight from the physical model, without raw tags.

``timetag simulate --rounds-only --rounds N --out DIR`` writes ``DIR/alice_rounds.h5`` and ``DIR/bob_rounds.h5``
(timetag rounds files, as ``timetag process`` would make from the raw tags) for runs far too long for the tag-level
simulator (1e7 rounds of the lmu2022 link are 25 years of data).  The model per round is the one whose
expectation :func:`timetag.simulator.analytic.expected_stats` gives in closed form, drawn round by round:

1. herald: signal (the atoms in the heralded Bell state of the announced pattern; psi+ and psi- equally likely when
   both are announced) or noise (dark counts, accidental and early photons: uncorrelated atoms) with the noise
   fraction ``f_noise = p_noise / (p_sig + p_noise)`` of the parameters (``speedup`` included);
2. inputs x in 0..3, y in 0..1 uniform; projective outcomes with E = -V cos 2(alpha + beta) (psi+),
   -V cos 2(alpha - beta) (psi-), 0 (noise);
3. read-out: 'down' is ionised with ``ionisation_efficiency``, a present atom is lost with ``atom_loss_prob``;
   the fluorescence count is Poisson with the mean of an atom (signal photons on live channels + background, times
   the afterpulse factor) or of the background alone; output = count >= the threshold (the setup's, or the
   minimum-error one); missing / double setting tags with ``setting_missing_prob`` / ``setting_double_prob`` give
   SETTING_NONE and the flag; a missing ready tag drops Bob's round, flags Alice's (herald without ready).

What it leaves out (the tag-level simulator has them): detector dead time and jitter within the herald window,
afterpulse bursts beyond their mean count, lost-data intervals, the herald pattern 'other'.

Trigger times: heralds at Poisson times of the herald rate plus the read-out pause after each (Alice's ready after
``ready_latency_ps``, Bob's after ``link_delay_ps``, both with ``ready_jitter_ps``; Bob's clock offset and drift
applied).  A rounds file holds int64 picoseconds (2^63 ps = 107 days): a run longer than ``MAX_SPAN_PS`` (2^62 ps)
is compressed uniformly by ``time_scale`` < 1, recorded in the provenance and the summary.  Only the join uses the
times; S and Q do not depend on them.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..constants import Pattern, RoundFlag
from ..custody import AtomicOutputs
from ..errors import SetupError
from ..provenance import provenance
from ..records import ROUND_DTYPE, SETTING_NONE
from ..roundsfile import RoundsWriter
from .analytic import _counts, expected_stats
from .params import ALPHA_DEG, BETA_DEG, SimParams
from .run import build_setup, check_targets

OUTPUT_NAMES = ("alice_rounds.h5", "bob_rounds.h5")
MAX_SPAN_PS = 2 ** 62
CHUNK = 1 << 20
STREAM = 0x524F4E4C  # the generator's stream id ('RONL'): never the tag-level simulator's numbers


@dataclass
class RoundsOnlyResult:
    out_dir: Path
    alice: Path
    bob: Path
    stats: dict


def check_outputs(out_dir, *, force: bool = False) -> list[Path]:
    """The two rounds files in ``out_dir``, refused up front as the full simulation's outputs are."""
    return check_targets(out_dir, OUTPUT_NAMES, force=force)


class RoundsModel:
    """The per-round model of a parameter set (see the module docstring); ``draw(rng, n, t0)`` -> chunk."""

    def __init__(self, p: SimParams):
        self.p = p
        self.exp = expected_stats(p)
        counts = _counts(p)
        self.mu_a, self.mu_b = counts["alice"], counts["bob"]
        self.thr_a, self.thr_b = int(self.exp["threshold_alice"]), int(self.exp["threshold_bob"])
        self.f_noise = float(self.exp["noise_fraction"])
        codes = {"psi+": int(Pattern.PSI_PLUS), "psi-": int(Pattern.PSI_MINUS)}
        pats = [codes[n] for n in p.herald_patterns if n in codes]
        if not pats:
            raise SetupError(f"rounds-only simulation needs psi+ or psi- among herald_patterns, got "
                             f"{list(p.herald_patterns)}", key="herald_patterns")
        self.patterns = np.array(pats, np.int8)
        al = np.radians(np.asarray(ALPHA_DEG))[:, None]
        be = np.radians(np.asarray(BETA_DEG))[None, :]
        V = p.state_visibility
        self.E = {int(Pattern.PSI_PLUS): -V * np.cos(2 * (al + be)), int(Pattern.PSI_MINUS): -V * np.cos(2 * (al - be))}
        self.rate = float(self.exp["herald_rate_hz"])
        self.mean_gap_ps = (1e12 / self.rate if self.rate > 0 else math.inf)
        self.pause_ps = float(p.readout_pause_ps)

    def span_ps(self, n: int) -> float:
        return n * (self.mean_gap_ps + self.pause_ps) + self.p.link_delay_ps + 1e12

    def _presence(self, rng, q, n):
        p = self.p
        present = q | (rng.random(n) >= p.ionisation_efficiency)
        return present & ~(rng.random(n) < p.atom_loss_prob)

    def _settings(self, rng, value, n):
        p = self.p
        s = value.astype(np.int8)
        flags = np.zeros(n, np.uint32)
        if p.setting_missing_prob > 0:
            miss = rng.random(n) < p.setting_missing_prob
            s[miss] = SETTING_NONE
            flags[miss] |= np.uint32(RoundFlag.SETTING_MISSING)
        else:
            miss = np.zeros(n, bool)
        if p.setting_double_prob > 0:
            dbl = ~miss & (rng.random(n) < p.setting_double_prob)
            s[dbl] = SETTING_NONE
            flags[dbl] |= np.uint32(RoundFlag.SETTING_AMBIGUOUS)
        return s, flags

    def draw(self, rng, n: int, t_last: float, time_scale: float):
        """(alice rounds, bob rounds (ready present only), Bob's kept mask, last herald time) of ``n`` rounds."""
        p = self.p
        gaps = (self.pause_ps + rng.exponential(self.mean_gap_ps, n)) * time_scale
        th_f = t_last + np.cumsum(gaps)
        th = np.rint(th_f).astype(np.int64)
        signal = rng.random(n) >= self.f_noise
        pat = self.patterns[rng.integers(0, len(self.patterns), n)] if len(self.patterns) > 1 else \
            np.full(n, self.patterns[0], np.int8)
        x = rng.integers(0, 4, n)
        y = rng.integers(0, 2, n)
        E = np.where(pat == int(Pattern.PSI_PLUS), self.E[int(Pattern.PSI_PLUS)][x, y],
                     self.E[int(Pattern.PSI_MINUS)][x, y])
        E = np.where(signal, E, 0.0)
        qa = rng.random(n) < 0.5
        qb = np.where(rng.random(n) < (1 + E) / 2, qa, ~qa)
        a = self._presence(rng, qa, n)
        b = self._presence(rng, qb, n)
        ca = rng.poisson(np.where(a, self.mu_a[0], self.mu_a[1])).astype(np.int32)
        cb = rng.poisson(np.where(b, self.mu_b[0], self.mu_b[1])).astype(np.int32)
        jit = p.ready_jitter_ps
        ta = th + p.ready_latency_ps + np.rint(jit * rng.standard_normal(n)).astype(np.int64)
        tb_alice = th + p.link_delay_ps + np.rint(jit * rng.standard_normal(n)).astype(np.int64)
        drift = p.bob_clock_drift_ppm * 1e-6
        tb = tb_alice + np.rint(p.bob_clock_offset_ps + drift * tb_alice.astype(float)).astype(np.int64)
        A = np.zeros(n, ROUND_DTYPE)
        B = np.zeros(n, ROUND_DTYPE)
        A["trigger_time"], A["herald_time"], A["pattern"] = ta, th, pat
        A["setting"], A["flags"] = self._settings(rng, x, n)
        A["count"], A["output"] = ca, ca >= self.thr_a
        B["trigger_time"], B["herald_time"], B["pattern"] = tb, -1, int(Pattern.NONE)
        B["setting"], B["flags"] = self._settings(rng, y, n)
        B["count"], B["output"] = cb, cb >= self.thr_b
        keep_b = np.ones(n, bool)
        if p.alice_ready_missing_prob > 0:
            A["flags"][rng.random(n) < p.alice_ready_missing_prob] |= np.uint32(RoundFlag.HERALD_WITHOUT_READY)
        if p.bob_ready_missing_prob > 0:
            keep_b = rng.random(n) >= p.bob_ready_missing_prob
        return A, B[keep_b], float(th_f[-1]) if n else t_last


def simulate_rounds(params: SimParams, n_rounds: int, seed: int, out_dir, *, force: bool = False,
                    progress=None) -> RoundsOnlyResult:
    """Write ``alice_rounds.h5`` and ``bob_rounds.h5`` of ``n_rounds`` rounds into ``out_dir`` (both appear
    together, through custody, when complete).  Same seed -> the same rounds."""
    if n_rounds < 1:
        raise SetupError(f"--rounds must be >= 1 (got {n_rounds})", key="rounds")
    targets = check_outputs(out_dir, force=force)
    model = RoundsModel(params)
    span = model.span_ps(n_rounds)
    time_scale = min(1.0, MAX_SPAN_PS / span)
    setup = replace(build_setup(params, (model.thr_a, model.thr_b)),
                    run=f"simulate {params.name} seed {seed} rounds {n_rounds} speedup {params.speedup:g} rounds-only")
    exp = model.exp
    prov = provenance(setup=setup, command="simulate --rounds-only", preset=params.name, seed=int(seed),
                      n_rounds=int(n_rounds), rounds_only=True, time_scale=time_scale,
                      expected_S=float(exp["expected_S"]), expected_Q=float(exp["expected_Q"]),
                      params=params.to_dict())
    rng = np.random.default_rng([int(seed), STREAM])
    t0 = time.perf_counter()
    n_b = 0
    t_last = 1e12  # the first herald ~1 s after the taggers started
    with AtomicOutputs(targets, force=force) as outs:
        wa = RoundsWriter(outs[0].partial, lab="alice", role="alice", provenance=prov, with_heralds=False)
        wb = RoundsWriter(outs[1].partial, lab="bob", role="bob", provenance=prov, with_heralds=False)
        with wa, wb:
            done = 0
            while done < n_rounds:
                m = min(CHUNK, n_rounds - done)
                A, B, t_last = model.draw(rng, m, t_last, time_scale)
                A["index"] = np.arange(done, done + m)
                B["index"] = np.arange(n_b, n_b + len(B))
                n_b += len(B)
                wa.append(A)
                wb.append(B)
                done += m
                if progress is not None:
                    progress(done, n_rounds)
            summary = {"rounds_only": True, "rounds": int(n_rounds), "time_scale": time_scale,
                       "expected_S": float(exp["expected_S"]), "expected_Q": float(exp["expected_Q"])}
            wa.close(summary=summary)
            wb.close(summary={**summary, "rounds": int(n_b)})
    seconds = time.perf_counter() - t0
    stats = {"rounds": int(n_rounds), "rounds_bob": int(n_b), "seconds": seconds, "time_scale": time_scale,
             "simulated_seconds": (t_last - 1e12) * 1e-12 / time_scale, "run": setup.run,
             "expected_S": float(exp["expected_S"]), "expected_Q": float(exp["expected_Q"]),
             "visibility_eff": float(exp["visibility_eff"])}
    out = Path(out_dir)
    return RoundsOnlyResult(out, targets[0], targets[1], stats)
