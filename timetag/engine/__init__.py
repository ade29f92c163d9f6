"""The streaming engine: raw tags -> heralds -> rounds, for one lab.

Stages (each with ``process`` / ``flush``; state crosses chunk boundaries, so the
output never depends on where chunks were cut):

* :class:`HeraldStage` (:mod:`.herald`): the raw stream split into per-channel rows
  (:mod:`.slots`; corrected = raw - delays_ps[channel], each row already in time
  order, so nothing is re-sorted); the post-excitation-pulse
  time filter relative to the attempt's sync (``sync_reference`` 'previous': the
  latest sync at or before the click; 'next': the first sync at or after it, clicks
  wait for it); grouping per attempt and classification (2 clicks on different
  detectors within coincidence_ps: same arm, orthogonal pol -> psi+; different arms,
  orthogonal pol -> psi-; anything else with >= 2 clicks -> other).  Herald time = the
  later click; equal times are ordered by channel.  Side products: per-channel singles, arrival-time histograms of
  click - sync per BSM detector (all clicks, not only accepted ones).
* :class:`RoundStage` (:mod:`.rounds`): triggers, settings, fluorescence counts,
  output bits and flags (see that module for the exact rules).
* :class:`LabPipeline` (:mod:`.pipeline`): both, plus the run summary and the
  fluorescence count histogram.

The hot loops are Cython kernels (``cext/engine_slots.pyx`` with its C loops in
``cext/engine_slots_kernels.h``, ``cext/engine_rounds.pyx``).
"""
from __future__ import annotations

from .herald import HeraldOutput, HeraldStage
from .params import LabParams, compile_lab
from .pipeline import LabPipeline
from .rounds import RoundStage

__all__ = ["HeraldOutput", "HeraldStage", "LabParams", "LabPipeline", "RoundStage", "compile_lab"]
