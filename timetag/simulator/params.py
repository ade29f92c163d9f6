"""Simulation parameters: one flat dataclass, presets in TOML, overrides by name.

All times are integer picoseconds unless the name says otherwise.  Every
parameter is a physical or instrumental quantity of the two-lab link; the
preset file ``timetag/presets/<name>.toml`` groups them in sections for
reading, but the names are unique so that ``--set key=value`` needs no section.
"""
from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SetupError

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"

# Channel map (fixed convention shared with the engine and the setup file).
ALICE_SYNC = 1
ALICE_BSM = (2, 3, 4, 5)  # arm a H, arm a V, arm b H, arm b V
ALICE_BSM_ARM = (0, 0, 1, 1)
ALICE_BSM_POL = (0, 1, 0, 1)
ALICE_READY = 6
ALICE_SETTINGS = (7, 8, 9, 10)
BOB_SPD = 1
BOB_READY = 2
BOB_SETTINGS = (3, 4)

ALPHA_DEG = (-22.5, 22.5, -45.0, 0.0)  # Alice's read-out angle for X = 0..3 (paper)
BETA_DEG = (22.5, -22.5)               # Bob's read-out angle for Y = 0, 1


@dataclass(frozen=True)
class SimParams:
    """Physical and instrumental parameters of the simulated link (defaults = lmu2022 preset)."""

    name: str = "custom"
    # --- excitation schedule (Alice's clock) ---
    attempt_period_ps: int = 19_230_769          # 1/52 kHz
    burst_attempts: int = 960                    # attempts per burst (placeholder)
    gap_attempts: int = 1040                     # attempts' worth of time between bursts (duty 0.48)
    sync_mode: str = "conditional"               # 'every' sync recorded, or only the first sync after a click
    start_time_ps: int = 1_000_000_000           # first attempt (keeps all times positive)
    # --- atom-photon emission ---
    pulse_center_ps: int = 12_000                # excitation pulse centre after the sync
    pulse_fwhm_ps: int = 21_000                  # literature
    lifetime_ps: int = 26_200                    # 5P3/2 lifetime, literature
    double_emission_prob: float = 0.07           # per atom and attempt: re-excitation after a photon emitted in the pulse
    # --- entanglement / BSM ---
    entanglement_efficiency: float = 0.49e-6     # signal psi+ heralds per attempt after the time filter (paper)
    hom_visibility: float = 0.9                  # two-photon interference: equal-polarisation photons bunch
    state_visibility: float = 0.942              # atom-atom state visibility (Werner weight) of a true herald
    herald_patterns: tuple = ("psi+",)           # patterns that the hardware announces with 'ready'
    acceptance_window_ps: tuple = (32_000, 122_000)  # post-pulse time filter, relative to the attempt's sync
    # --- detectors ---
    dark_rate_hz_alice: tuple = (25.0, 25.0, 25.0, 25.0)
    dark_rate_hz_bob: float = 25.0
    jitter_ps: float = 350.0                     # Gaussian sigma of every detector
    dead_time_ps: int = 22_000
    afterpulse_prob: float = 0.005
    afterpulse_tau_ps: float = 300_000.0         # afterpulse delay beyond the dead time (exponential)
    afterpulse_burst_prob: float = 0.0           # scenario: a click starts a burst of afterpulses
    afterpulse_burst_size: int = 20
    afterpulse_burst_tau_ps: float = 50_000.0
    dead_channels_alice: tuple = ()              # scenario: detectors that never click
    dead_channels_bob: tuple = ()
    # --- cable delays (raw = true + delay) ---
    delays_alice: tuple = (4_000, 61_230, 62_870, 60_450, 63_910, 2_100, 3_050, 3_100, 3_150, 3_200)  # ch 1..10
    delays_bob: tuple = (45_300, 1_600, 2_650, 2_700)                                                   # ch 1..4
    # --- event-ready signalling ---
    ready_latency_ps: int = 1_000_000            # Alice's 'ready' after the herald
    link_delay_ps: int = 3_500_000               # Bob's 'ready' after the herald (700 m fibre + electronics)
    ready_jitter_ps: float = 1_000.0
    setting_delay_ps: int = 250_000              # QRNG setting tag after the 'ready'
    setting_jitter_ps: float = 2_000.0
    setting_double_gap_ps: int = 400_000         # a second (spurious) setting tag this long after the first
    # --- read-out ---
    ionisation_efficiency: float = 0.98          # literature > 98 %
    atom_loss_prob: float = 0.005                # atom lost during read-out although it should stay
    fluorescence_window_ps: tuple = (25_000_000, 10_025_000_000)  # relative to the 'ready' (both labs)
    readout_pause_ps: int = 12_000_000_000       # no excitation attempts for this long after a herald
    alice_fluo_mean: float = 35.0                # photons from a present atom, all 4 BSM detectors, in the window
    alice_fluo_background: float = 0.5           # stray-light photons in the window (plus dark counts)
    bob_fluo_mean: float = 11.0                  # 10 % arm of the 90:10 beam splitter
    bob_fluo_background: float = 0.3
    threshold_alice: int = 0                     # 0 = choose the threshold minimising misclassification
    threshold_bob: int = 0
    # --- Bob's clock relative to Alice's ---
    bob_clock_offset_ps: int = 1_234_567_890
    bob_clock_drift_ppm: float = 0.0
    # --- scenario switches ---
    bob_ready_missing_prob: float = 0.0
    alice_ready_missing_prob: float = 0.0
    setting_missing_prob: float = 0.0            # per lab and round
    setting_double_prob: float = 0.0
    overflow_rate_hz: float = 0.0                # lost-data intervals per second, each lab independently
    overflow_duration_ps: int = 5_000_000_000
    # --- speed ---
    speedup: float = 1.0                         # multiplies entanglement_efficiency (see derived())
    extra: dict = field(default_factory=dict)

    # ------------------------------------------------------------------
    def with_overrides(self, **kw) -> "SimParams":
        known = {f.name: f for f in fields(self)}
        for k, v in kw.items():
            if k not in known:
                raise SetupError(f"unknown simulation parameter {k!r} (known: {', '.join(sorted(known))})",
                                 key=k)
        new = dataclasses.replace(self, **{k: _coerce(known[k], k, v, getattr(self, k)) for k, v in kw.items()})
        new.validate()
        return new

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def validate(self) -> None:
        def bad(key, why):
            raise SetupError(f"{why} (got {getattr(self, key)!r})", key=key)

        if self.attempt_period_ps <= 0:
            bad("attempt_period_ps", "must be > 0")
        if self.burst_attempts < 1 or self.gap_attempts < 0:
            bad("burst_attempts", "bursts need >= 1 attempt and a gap >= 0")
        if self.sync_mode not in ("every", "conditional"):
            bad("sync_mode", "must be 'every' or 'conditional'")
        ws, we = self.acceptance_window_ps
        if not (0 <= ws < we < self.attempt_period_ps):
            bad("acceptance_window_ps", "must satisfy 0 <= start < stop < attempt period")
        for k in ("double_emission_prob", "hom_visibility", "state_visibility", "afterpulse_prob",
                  "afterpulse_burst_prob", "ionisation_efficiency", "atom_loss_prob", "bob_ready_missing_prob",
                  "alice_ready_missing_prob", "setting_missing_prob", "setting_double_prob"):
            if not 0.0 <= getattr(self, k) <= 1.0:
                bad(k, "must be a probability in [0, 1]")
        if not 0 < self.entanglement_efficiency < 1:
            bad("entanglement_efficiency", "must be in (0, 1)")
        if self.speedup <= 0:
            bad("speedup", "must be > 0")
        if len(self.dark_rate_hz_alice) != 4:
            bad("dark_rate_hz_alice", "needs one rate per BSM detector (4)")
        if len(self.delays_alice) != 10 or len(self.delays_bob) != 4:
            bad("delays_alice", "delays_alice needs 10 entries (channels 1..10), delays_bob 4 (channels 1..4)")
        if min(self.delays_alice) < 0 or min(self.delays_bob) < 0:
            bad("delays_alice", "cable delays must be >= 0")
        for p in self.herald_patterns:
            if p not in ("psi+", "psi-"):
                bad("herald_patterns", "patterns are 'psi+' and/or 'psi-'")
        if not self.herald_patterns:
            bad("herald_patterns", "at least one pattern")
        f0, f1 = self.fluorescence_window_ps
        if not 0 < f0 < f1:
            bad("fluorescence_window_ps", "must be 0 < start < stop")
        if f0 <= self.setting_delay_ps + self.setting_double_gap_ps + 5 * self.setting_jitter_ps:
            bad("fluorescence_window_ps", "must start after the setting tags")
        latest_end = max(self.ready_latency_ps, self.link_delay_ps) + f1 + 10 * self.ready_jitter_ps
        if self.readout_pause_ps < latest_end:
            bad("readout_pause_ps", f"must cover both labs' read-out windows (>= {int(latest_end)} ps)")
        if f0 + min(self.ready_latency_ps, self.link_delay_ps) < self.attempt_period_ps + we:
            bad("fluorescence_window_ps", "must start after the acceptance window of the sync following the herald")
        for c in self.dead_channels_alice:
            if c not in ALICE_BSM:
                bad("dead_channels_alice", f"dead detectors must be BSM channels {ALICE_BSM}")
        for c in self.dead_channels_bob:
            if c != BOB_SPD:
                bad("dead_channels_bob", f"Bob's only detector is channel {BOB_SPD}")
        if self.threshold_alice < 0 or self.threshold_bob < 0:
            bad("threshold_alice", "thresholds are >= 1, or 0 for automatic")
        if self.jitter_ps < 0 or self.dead_time_ps < 0:
            bad("jitter_ps", "jitter and dead time must be >= 0")
        if self.overflow_rate_hz < 0 or self.overflow_duration_ps <= 0:
            bad("overflow_rate_hz", "overflow rate >= 0 and duration > 0")
        d = derived(self)
        if d["eta"] >= 1.0:
            raise SetupError(
                f"speedup {self.speedup:g} asks for a photon detection probability {d['eta']:.3g} >= 1; the largest "
                f"possible speedup for these parameters is {self.speedup / d['eta'] ** 2:.3g}", key="speedup")


def _coerce(f, key, value, current):
    """Convert a --set string (TOML literal syntax) or a Python value to the field's type."""
    if isinstance(value, str) and isinstance(current, str):
        try:  # accept both sync_mode=every and sync_mode="every"
            parsed = tomllib.loads(f"v = {value}")["v"]
            return parsed if isinstance(parsed, str) else value
        except tomllib.TOMLDecodeError:
            return value
    if isinstance(value, str) and not isinstance(current, str):
        try:
            value = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            raise SetupError(f"cannot parse value {value!r} (use TOML syntax: 3, 0.5, \"every\", [1, 2])",
                             key=key) from None
    if isinstance(current, tuple):
        if not isinstance(value, (list, tuple)):
            raise SetupError(f"expects a list (got {value!r})", key=key)
        return tuple(value)
    if isinstance(current, bool):
        return bool(value)
    if isinstance(current, int) and not isinstance(current, bool):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise SetupError(f"expects an integer (got {value!r})", key=key)
        return value
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SetupError(f"expects a number (got {value!r})", key=key)
        if not math.isfinite(value):  # nan passes every range check below and would simulate nonsense
            raise SetupError(f"expects a finite number (got {value!r})", key=key)
        return float(value)
    if isinstance(current, dict):
        return dict(value)
    return value


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def load_preset(name: str) -> SimParams:
    """Load ``timetag/presets/<name>.toml`` (or a path to a TOML file)."""
    path = Path(name)
    if not path.suffix:
        path = PRESET_DIR / f"{name}.toml"
    if not path.is_file():
        raise SetupError(f"no simulator preset {name!r} (available: {', '.join(preset_names())})", path=path)
    with open(path, "rb") as fh:
        try:
            raw = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise SetupError(f"preset is not valid TOML: {exc}", path=path) from None
        except UnicodeDecodeError as exc:  # a tag file given as --preset, say
            raise SetupError(f"preset is not a text (TOML) file: byte {exc.start} is not UTF-8 text",
                             path=path) from None
    flat: dict[str, Any] = {}
    for key, val in raw.items():
        if isinstance(val, dict):
            for k, v in val.items():
                if k in flat:
                    raise SetupError("parameter given twice", key=f"{key}.{k}", path=path)
                flat[k] = v
        else:
            flat[key] = val
    flat.setdefault("name", path.stem)
    try:
        return SimParams().with_overrides(**flat)
    except SetupError as exc:
        raise SetupError(f"{path}: {exc}") from None


# --- derived quantities ------------------------------------------------------

def time_filter_acceptance(p: SimParams) -> tuple[float, float, float, float]:
    """Probability that the last photon of an atom lands in the acceptance window (single, double emission).

    Deterministic quadrature over the excitation time (Gaussian pulse) and, for a
    double emission, the first photon's emission time inside the pulse.
    """
    sigma = p.pulse_fwhm_ps / (2 * math.sqrt(2 * math.log(2)))
    tau = p.lifetime_ps
    ws, we = p.acceptance_window_ps
    n = 1201
    z = np.linspace(-7, 7, n)
    w = np.exp(-0.5 * z * z)
    w /= w.sum()
    t_exc = p.pulse_center_ps + sigma * z

    def p_exp_in(t0):  # P(t0 + Exp(tau) in [ws, we)), t0 array
        a = np.maximum(ws - t0, 0.0)
        b = np.maximum(we - t0, 0.0)
        return np.exp(-a / tau) - np.exp(-b / tau)

    f1 = float((w * p_exp_in(t_exc)).sum())
    # double: first photon uniform in [t_exc, pulse_end] (or at t_exc when the pulse is over), then Exp(tau)
    pulse_end = p.pulse_center_ps + p.pulse_fwhm_ps / 2
    u = (np.arange(48) + 0.5) / 48
    span = np.maximum(pulse_end - t_exc, 0.0)
    t1 = t_exc[:, None] + span[:, None] * u[None, :]
    f2 = float((w * p_exp_in(t1).mean(axis=1)).sum())
    # the first photon of a double emission lands in the window (it heralds a wrong state: noise)
    inw = (t1 >= ws) & (t1 < we)
    g = float((w * inw.mean(axis=1)).sum())
    # ... and the same atom's last photon follows it inside the window (a two-click pattern from one atom)
    g_pair = float((w * (inw * (1 - np.exp(-np.maximum(we - t1, 0.0) / tau))).mean(axis=1)).sum())
    return f1, f2, g, g_pair


def derived(p: SimParams) -> dict:
    """Quantities implied by the parameters: detection probability, rates, thresholds."""
    f1, f2, g, g_pair = time_filter_acceptance(p)
    pd = p.double_emission_prob
    a = (1 - pd) * f1 + pd * f2  # P(an atom's last photon is in the window | detected)
    p_ent = p.entanglement_efficiency * p.speedup
    # signal psi+ herald: both last photons detected in the window, orthogonal polarisation, same arm: 1/4
    eta = 2.0 * math.sqrt(p_ent) / a
    duty = p.burst_attempts / (p.burst_attempts + p.gap_attempts)
    attempt_rate = 1e12 / p.attempt_period_ps
    return {
        "time_filter_acceptance": f1,
        "time_filter_acceptance_double": f2,
        "early_photon_in_window": g,
        "early_pair_in_window": g_pair,
        "time_filter_rate_cost": 1.0 / a ** 2,
        "eta": eta,
        "duty": duty,
        "attempt_rate_hz": attempt_rate,
        "p_signal_herald": p_ent,
    }
