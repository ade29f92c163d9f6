"""Compile a :class:`~timetag.setupfile.LabSetup` into the flat tables the kernels read.

Validated once, up front; messages name the stage and the setup key.  Channels are
mapped to *slots* (index in the lab's sorted channel list) through a dense table
``slot_of[channel - chan_lo]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SetupError
from ..setupfile import LabSetup

R_SYNC, R_BSM, R_READY, R_SETTING, R_FLUO = 1, 2, 4, 8, 16
MODES = {"herald": 0, "ready": 1, "both": 2}
INF = 1 << 62                 # sentinel "never"; all times must stay well inside +-2**61 ps (~ 27 days)
MAX_CHANNEL_SPAN = 1 << 16    # dense channel table; Swabian/PicoQuant channel numbers are small
MAX_ARRIVAL_BINS = 1 << 22


def clamp(x: int) -> int:
    return int(max(-INF, min(INF, x)))


@dataclass
class LabParams:
    lab: LabSetup
    chan_lo: int
    slot_of: np.ndarray        # int32 [span]: slot or -1
    slot_channel: np.ndarray   # int32 [nslots]
    slot_delay: np.ndarray     # int64 [nslots]
    slot_role: np.ndarray      # int8 [nslots]: R_* bit mask
    slot_setting: np.ndarray   # int8 [nslots]: setting index or -1
    slot_det: np.ndarray       # int8 [nslots]: BSM detector index or -1
    det_arm: np.ndarray        # int8 [ndet]
    det_pol: np.ndarray        # int8 [ndet]
    det_chan: np.ndarray       # int32 [ndet]
    max_delay: int             # max(0, largest delay): the horizon lags the raw time by this
    herald_par: np.ndarray     # int64 [7], see engine_slots.attempts
    trigger_par: np.ndarray    # int64 [5], see engine_rounds.make_triggers
    round_par: np.ndarray      # int64 [5], see engine_rounds.eval_rounds
    arrival_edges: np.ndarray  # int64 [nbins + 1]
    pattern_codes: np.ndarray  # int8: herald patterns that make rounds

    @property
    def nslots(self) -> int:
        return int(self.slot_channel.size)

    def slots(self, role: int) -> np.ndarray:
        """The slots having any of the ``role`` bits (ascending = channel order)."""
        return np.flatnonzero(self.slot_role.astype(np.int64) & role).astype(np.int64)


def compile_lab(lab: LabSetup, stage: str = "engine") -> LabParams:
    def fail(key, value, why):
        raise SetupError(f"{stage}: {why} (got {value!r})", key=f"labs.{lab.name}.{key}")

    chans = lab.channels
    if not chans:
        fail("channels", [], "the lab uses no channels")
    lo, hi = min(chans), max(chans)
    if hi - lo >= MAX_CHANNEL_SPAN:
        fail("channels", [lo, hi], f"channel numbers span more than {MAX_CHANNEL_SPAN}")
    if len(lab.bsm) > 64:
        fail("bsm", len(lab.bsm), "at most 64 BSM detectors")
    for key, d in lab.delays_ps.items():
        if abs(d) >= 1 << 50:
            fail(f"delays_ps.{key}", d, "delay out of range (|delay| < 2**50 ps)")
    hc, rc, hg = lab.herald, lab.round, lab.histograms
    for key, val in (("herald.window_start_ps", hc.window_start_ps), ("herald.window_stop_ps", hc.window_stop_ps),
                     ("round.ready_delay_ps", rc.ready_delay_ps), ("round.ready_tolerance_ps", rc.ready_tolerance_ps),
                     ("round.setting_window_ps", rc.setting_window_ps[0]), ("round.setting_window_ps", rc.setting_window_ps[1]),
                     ("round.fluorescence_window_ps", rc.fluorescence_window_ps[0]),
                     ("round.fluorescence_window_ps", rc.fluorescence_window_ps[1])):
        if abs(val) >= 1 << 50:
            fail(key, val, "time out of range (|t| < 2**50 ps)")
    for key, val in (("herald.window_start_ps", hc.window_start_ps), ("herald.window_stop_ps", hc.window_stop_ps)):
        if abs(val) >= 1 << 31:
            fail(key, val, "the acceptance window must lie within +-2**31 ps (2.1 ms) of the sync")
    if len(chans) >= 255:
        fail("channels", len(chans), "at most 254 channels per lab")
    if hc.sync_reference == "previous" and hc.window_start_ps < 0:
        fail("herald.window_start_ps", hc.window_start_ps, "with sync_reference 'previous' the window must start >= 0")
    if hc.sync_reference == "next" and hc.window_stop_ps > 0:
        fail("herald.window_stop_ps", hc.window_stop_ps, "with sync_reference 'next' the window must stop <= 0")
    a0, a1 = hg.arrival_range_ps
    if a1 - a0 >= 1 << 31:
        fail("histograms.arrival_range_ps", [a0, a1], "the arrival histogram must span less than 2**31 ps (2.1 ms)")
    nbins = -(-(a1 - a0) // hg.arrival_bin_ps)
    if nbins > MAX_ARRIVAL_BINS:
        fail("histograms.arrival_bin_ps", hg.arrival_bin_ps, f"arrival histogram would have {nbins} bins (max {MAX_ARRIVAL_BINS})")

    slot_channel = np.array(chans, np.int32)
    slot_of = np.full(hi - lo + 1, -1, np.int32)
    slot_of[slot_channel - lo] = np.arange(len(chans), dtype=np.int32)
    n = len(chans)
    slot_delay = np.array([lab.delay(c) for c in chans], np.int64)
    slot_role = np.zeros(n, np.int8)
    slot_setting = np.full(n, -1, np.int8)
    slot_det = np.full(n, -1, np.int8)
    idx = {c: i for i, c in enumerate(chans)}
    if lab.sync_channel is not None:
        slot_role[idx[lab.sync_channel]] |= R_SYNC
    if lab.ready_channel is not None:
        slot_role[idx[lab.ready_channel]] |= R_READY
    for i, c in enumerate(lab.setting_channels):
        slot_role[idx[c]] |= R_SETTING
        slot_setting[idx[c]] = i
    for c in lab.fluorescence_channels:
        slot_role[idx[c]] |= R_FLUO
    for i, d in enumerate(lab.bsm):
        slot_role[idx[d.channel]] |= R_BSM
        slot_det[idx[d.channel]] = i
    det_arm = np.array([0 if d.arm == "a" else 1 for d in lab.bsm], np.int8)
    det_pol = np.array([0 if d.pol == "H" else 1 for d in lab.bsm], np.int8)
    det_chan = np.array([d.channel for d in lab.bsm], np.int32)
    herald_par = np.array([int(hc.sync_reference == "next"), hc.window_start_ps, hc.window_stop_ps,
                           hc.coincidence_ps, a0, a1, hg.arrival_bin_ps], np.int64)
    trigger_par = np.array([MODES[rc.trigger], rc.ready_delay_ps, rc.ready_tolerance_ps,
                            hc.window_start_ps, hc.window_stop_ps], np.int64)
    round_par = np.array([*rc.setting_window_ps, *rc.fluorescence_window_ps, rc.threshold], np.int64)
    return LabParams(lab=lab, chan_lo=lo, slot_of=slot_of, slot_channel=slot_channel, slot_delay=slot_delay,
                     slot_role=slot_role, slot_setting=slot_setting, slot_det=slot_det,
                     det_arm=det_arm, det_pol=det_pol, det_chan=det_chan,
                     max_delay=max(0, int(slot_delay.max())),
                     herald_par=herald_par, trigger_par=trigger_par, round_par=round_par,
                     arrival_edges=a0 + hg.arrival_bin_ps * np.arange(nbins + 1, dtype=np.int64),
                     pattern_codes=np.array(hc.pattern_codes, np.int8))
