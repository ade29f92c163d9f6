"""Round stage: triggers (software herald, hardware 'ready', or both cross-checked) -> round records.

``RoundStage(lab).process(herald_output)`` consumes the :class:`HeraldOutput` of the
herald stage and returns the rounds whose windows are closed.  Semantics:

* trigger 'herald': one round per heralding herald at herald_time + ready_delay_ps;
  'ready': one round per ready tag (pattern NONE); 'both': ready tags, in time order,
  each take the earliest still-unmatched heralding herald with
  |ready - herald_time - ready_delay_ps| <= ready_tolerance_ps -> round at the ready
  time with the herald's pattern; unmatched ready -> FLAG_READY_WITHOUT_HERALD;
  unmatched herald -> round at herald_time + ready_delay_ps, FLAG_HERALD_WITHOUT_READY.
  Every heralding herald and every ready gives exactly one round.
* setting: tags on setting_channels[i] in [trigger + setting_window): exactly one ->
  i; none -> SETTING_NONE + FLAG_SETTING_MISSING; several -> SETTING_NONE +
  FLAG_SETTING_AMBIGUOUS.  count = fluorescence tags in [trigger + fluorescence_window);
  output = count >= threshold.
* FLAG_LOST_DATA: the setting window, the fluorescence window or the herald's acceptance
  window [sync + start, sync + stop) overlaps an overflow interval [begin, end) or contains
  a MISSED/ERROR event (lost-event times are the device's raw times).  An OVERFLOW_END
  with no open BEGIN counts as a point event (causal: an END cannot flag rounds already emitted).
* FLAG_TRUNCATED: a window stops after the data end (the last horizon of the herald stage).
* rounds are numbered 0, 1, 2, ... in (trigger time, herald time) order and emitted as
  soon as no earlier trigger can appear and every window is closed.
"""
from __future__ import annotations

import numpy as np

from ..lost import LostLog
from ..constants import INF, Role
from ..records import ROUND_DTYPE
from .herald import HeraldOutput
from .params import LabParams, clamp, compile_lab
from .records import TRIGGER_DTYPE
from .slots import READY, ROUND
from .slots import _k as _rows_k

try:
    from .._cext import engine_rounds as _k
    from .._cext.engine_rounds import RoundTables
except ImportError as exc:  # pragma: no cover - build problem
    raise ImportError("timetag._cext.engine_rounds is not built: run `pip install -e .`") from exc

_E64 = np.zeros(0, np.int64)


class RoundStage:
    name = "round stage"

    def __init__(self, lab, params: LabParams | None = None):
        self.params = params or compile_lab(lab, self.name)
        p = self.params
        rc, hc = p.lab.round, p.lab.herald
        self._heralds = False if rc.trigger == "ready" else True
        self._readies = rc.trigger in ("ready", "both")
        self._h_time, self._h_sync, self._h_pat = _E64, _E64, np.zeros(0, np.int8)
        self._ready = _E64
        self._trig = np.zeros(0, TRIGGER_DTYPE)  # made, waiting for their windows to close
        fl_row, set_row = p.slots(Role.FLUORESCENCE), p.slots(Role.SETTING)
        self._tables = RoundTables(p.round_params, fluorescence_rows=fl_row, fluorescence_delay=p.slot_delay[fl_row],
                                   setting_rows=set_row, setting_index=p.slot_setting[set_row],
                                   setting_delay=p.slot_delay[set_row])
        self._win_rows = np.concatenate([fl_row, set_row])
        ready = p.slots(Role.READY)
        self._ready_slot = int(ready[0]) if ready.size else -1
        self._ready_which = ready[:1].astype(np.int64)
        self.lost = LostLog()
        self.next_index = 0
        w_s, w_f = rc.setting_window_ps, rc.fluorescence_window_ps
        self._min_start = min(w_s[0], w_f[0], 0)
        self._herald_margin = rc.ready_delay_ps + rc.ready_tolerance_ps + (hc.window_stop_ps - hc.window_start_ps)
        self.finished = False

    # --- processing -------------------------------------------------------
    def process(self, h: HeraldOutput) -> np.ndarray:
        if self.finished:
            raise RuntimeError(f"{self.name}: process() after flush()")
        p = self.params
        self.lost.add(h.lost)
        if self._heralds and h.trig_time.size:
            self._h_time = np.concatenate([self._h_time, h.trig_time])
            self._h_sync = np.concatenate([self._h_sync, h.trig_sync])
            self._h_pat = np.concatenate([self._h_pat, h.trig_pat])
        rows = h.rows
        if self._ready_slot >= 0:
            # ready tags become triggers once every tag before them is known
            s, lo = self._ready_slot, int(rows.ptr[READY, self._ready_slot])
            if h.final:
                rows.ptr[READY, s] = rows.hi[s]
            else:
                _rows_k.release_before(rows.rows, rows.hi, rows.ptr[READY], rows.delay, self._ready_which,
                                       clamp(h.horizon))
            new = int(rows.ptr[READY, s])
            if self._readies and new > lo:
                self._ready = np.concatenate([self._ready, rows.rows[s, lo:new] - int(rows.delay[s])])
        final = h.final
        herald_known = INF if final else clamp(h.watermark)
        ready_known = INF if final else clamp(h.horizon)
        out = np.empty(self._h_time.size + self._ready.size, TRIGGER_DTYPE)
        n, used_h, used_r, wm = _k.make_triggers(p.trigger_params, self._h_time, self._h_sync, self._h_pat,
                                                 self._ready, herald_known, ready_known, out)
        self._h_time, self._h_sync, self._h_pat = self._h_time[used_h:], self._h_sync[used_h:], self._h_pat[used_h:]
        self._ready = self._ready[used_r:]
        if n:
            trig = np.concatenate([self._trig, out[:n]])
            # usually already in order (always with trigger 'herald'): skip the sort then
            if not _k.triggers_in_order(trig):
                trig = trig[np.lexsort((trig["herald_time"], trig["time"]))]
            self._trig = np.ascontiguousarray(trig)

        horizon = clamp(h.data_end) if final else clamp(h.horizon)
        iv_lo, iv_hi, pts = self.lost.arrays()
        out = np.empty(self._trig.size, ROUND_DTYPE)
        k = _k.eval_rounds(self._tables, self._trig, clamp(wm), horizon, final, rows.rows, rows.hi, rows.ptr[ROUND],
                           iv_lo, iv_hi, pts, self.next_index, out)
        self._trig = self._trig[k:]
        self.next_index += k
        self._prune(clamp(wm), rows)
        if final:
            self.finished = True
        return out[:k]

    def flush(self, h: HeraldOutput) -> np.ndarray:
        """The herald stage's flush output: decide everything, flag windows cut by the data end."""
        if not h.final:
            raise ValueError(f"{self.name}: flush() needs the herald stage's flush() output")
        return self.process(h)

    def _prune(self, watermark: int, rows) -> None:
        """Release tags and forget lost events that no open or future window can reach."""
        first = int(self._trig["time"][0]) if self._trig.size else INF
        keep = clamp(min(first, watermark) + self._min_start)
        _rows_k.release_before(rows.rows, rows.hi, rows.ptr[ROUND], rows.delay, self._win_rows, keep)
        self.lost.forget_before(keep - self._herald_margin)

    @property
    def lost_counts(self) -> dict[str, int]:
        """Lost-data events seen so far, by kind (and the tags the MISSED records say were lost)."""
        return self.lost.counts

    @property
    def pending(self) -> int:
        """Triggers made but not yet emitted as rounds."""
        return int(self._trig.size)
