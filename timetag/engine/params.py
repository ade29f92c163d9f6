"""Compile a :class:`~timetag.setupfile.LabSetup` into the tables and records the kernels read.

The setup's own rules (windows, sync_reference, thresholds, ...) are the setup file's
(:func:`~timetag.setupfile.validate_lab`, run here again for setups built in Python); what is
checked here are the kernels' limits, once, up front, with messages naming the stage and the setup
key.  Channels are mapped to *slots* (index in the lab's sorted channel list) through a dense table
``slot_of[channel - chan_lo]``.  The parameters go to the kernels as named records
(:mod:`.records`): e.g. the setup key ``herald.window_start_ps`` is
``HeraldConfig.window_start_ps``, then the field ``window_start_ps`` of :attr:`LabParams.herald_params`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..constants import INF, MAX_BSM_DETECTORS, MAX_LAB_CHANNELS, Role, TriggerMode
from ..errors import SetupError
from ..setupfile import LabSetup, validate_lab
from .records import HERALD_PARAMS_DTYPE, ROUND_PARAMS_DTYPE, TRIGGER_PARAMS_DTYPE, record

MAX_CHANNEL_SPAN = 1 << 16    # dense channel table; Swabian/PicoQuant channel numbers are small
MAX_ARRIVAL_BINS = 1 << 22
MAX_TIME_PS = 1 << 50         # delays and windows: t + delay + window stays far inside +-INF


def clamp(x: int) -> int:
    return int(max(-INF, min(INF, x)))


@dataclass
class LabParams:
    lab: LabSetup
    chan_lo: int
    slot_of: np.ndarray        # int32 [span]: slot or -1
    slot_channel: np.ndarray   # int32 [nslots]
    slot_delay: np.ndarray     # int64 [nslots]
    slot_role: np.ndarray      # int8 [nslots]: Role bit mask
    slot_setting: np.ndarray   # int8 [nslots]: setting index or -1
    slot_det: np.ndarray       # int8 [nslots]: BSM detector index or -1
    det_arm: np.ndarray        # int8 [ndet]
    det_pol: np.ndarray        # int8 [ndet]
    det_chan: np.ndarray       # int32 [ndet]
    max_delay: int             # max(0, largest delay): the horizon lags the raw time by this
    herald_params: np.ndarray  # one HERALD_PARAMS_DTYPE record (tt_herald_params)
    trigger_params: np.ndarray  # one TRIGGER_PARAMS_DTYPE record (tt_trigger_params)
    round_params: np.ndarray   # one ROUND_PARAMS_DTYPE record (tt_round_params)
    arrival_edges: np.ndarray  # int64 [nbins + 1]
    pattern_codes: np.ndarray  # int8: herald patterns that make rounds

    @property
    def nslots(self) -> int:
        return int(self.slot_channel.size)

    def slots(self, role: int) -> np.ndarray:
        """The slots having any of the ``role`` bits (ascending = channel order)."""
        return np.flatnonzero(self.slot_role.astype(np.int64) & role).astype(np.int64)


def compile_lab(lab: LabSetup, stage: str = "engine") -> LabParams:
    validate_lab(lab)

    def fail(key, value, why):
        raise SetupError(f"{stage}: {why} (got {value!r})", key=f"labs.{lab.name}.{key}")

    chans = lab.channels
    if not chans:
        fail("channels", [], "the lab uses no channels")
    lo, hi = min(chans), max(chans)
    if hi - lo >= MAX_CHANNEL_SPAN:
        fail("channels", [lo, hi], f"channel numbers span more than {MAX_CHANNEL_SPAN}")
    if len(lab.bsm) > MAX_BSM_DETECTORS:
        fail("bsm", len(lab.bsm), f"at most {MAX_BSM_DETECTORS} BSM detectors")
    for key, d in lab.delays_ps.items():
        if abs(d) >= MAX_TIME_PS:
            fail(f"delays_ps.{key}", d, "delay out of range (|delay| < 2**50 ps)")
    hc, rc, hg = lab.herald, lab.round, lab.histograms
    for key, val in (("round.ready_delay_ps", rc.ready_delay_ps), ("round.ready_tolerance_ps", rc.ready_tolerance_ps),
                     ("round.setting_window_ps", rc.setting_window_ps[0]), ("round.setting_window_ps", rc.setting_window_ps[1]),
                     ("round.fluorescence_window_ps", rc.fluorescence_window_ps[0]),
                     ("round.fluorescence_window_ps", rc.fluorescence_window_ps[1])):
        if abs(val) >= MAX_TIME_PS:
            fail(key, val, "time out of range (|t| < 2**50 ps)")
    if len(chans) > MAX_LAB_CHANNELS:
        fail("channels", len(chans), f"at most {MAX_LAB_CHANNELS} channels per lab")
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
        slot_role[idx[lab.sync_channel]] |= Role.SYNC
    if lab.ready_channel is not None:
        slot_role[idx[lab.ready_channel]] |= Role.READY
    for i, c in enumerate(lab.setting_channels):
        slot_role[idx[c]] |= Role.SETTING
        slot_setting[idx[c]] = i
    for c in lab.fluorescence_channels:
        slot_role[idx[c]] |= Role.FLUORESCENCE
    for i, d in enumerate(lab.bsm):
        slot_role[idx[d.channel]] |= Role.BSM
        slot_det[idx[d.channel]] = i
    det_arm = np.array([0 if d.arm == "a" else 1 for d in lab.bsm], np.int8)
    det_pol = np.array([0 if d.pol == "H" else 1 for d in lab.bsm], np.int8)
    det_chan = np.array([d.channel for d in lab.bsm], np.int32)
    herald_params = record(HERALD_PARAMS_DTYPE, sync_next=int(hc.sync_reference == "next"),
                           window_start_ps=hc.window_start_ps, window_stop_ps=hc.window_stop_ps,
                           coincidence_ps=hc.coincidence_ps, arrival_start_ps=a0, arrival_stop_ps=a1,
                           arrival_bin_ps=hg.arrival_bin_ps)
    trigger_params = record(TRIGGER_PARAMS_DTYPE, mode=TriggerMode[rc.trigger.upper()],
                            ready_delay_ps=rc.ready_delay_ps, ready_tolerance_ps=rc.ready_tolerance_ps,
                            window_start_ps=hc.window_start_ps, window_stop_ps=hc.window_stop_ps)
    round_params = record(ROUND_PARAMS_DTYPE, setting_start_ps=rc.setting_window_ps[0],
                          setting_stop_ps=rc.setting_window_ps[1], fluorescence_start_ps=rc.fluorescence_window_ps[0],
                          fluorescence_stop_ps=rc.fluorescence_window_ps[1], threshold=rc.threshold)
    return LabParams(lab=lab, chan_lo=lo, slot_of=slot_of, slot_channel=slot_channel, slot_delay=slot_delay,
                     slot_role=slot_role, slot_setting=slot_setting, slot_det=slot_det,
                     det_arm=det_arm, det_pol=det_pol, det_chan=det_chan,
                     max_delay=max(0, int(slot_delay.max())),
                     herald_params=herald_params, trigger_params=trigger_params, round_params=round_params,
                     arrival_edges=a0 + hg.arrival_bin_ps * np.arange(nbins + 1, dtype=np.int64),
                     pattern_codes=np.array(hc.pattern_codes, np.int8))
