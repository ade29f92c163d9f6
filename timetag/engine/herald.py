"""Herald stage: delay correction, the post-excitation time filter, BSM coincidences.

``HeraldStage(lab).process(chunk)`` takes raw :class:`~timetag.chunk.TagChunk`\\ s in
stream order and returns a :class:`HeraldOutput`: the herald records that became
final, the heralding ones again as trigger columns, the per-channel rows the round
stage reads (:class:`~timetag.engine.slots.SlotRows`), the chunk's lost-data events,
and two clocks:

* ``horizon``: every tag with corrected time < horizon has been seen (the raw time of
  the last tag minus the largest positive channel delay, because a delay can move a
  later raw tag to an earlier corrected time);
* ``watermark``: every herald with time < watermark has been emitted.

Equal corrected times are ordered: the sync before other tags for ``sync_reference =
"previous"`` and after them for ``"next"``, then by channel, then by stream position,
so results never depend on chunk boundaries nor on how a reader interleaves equal times.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..chunk import LOST_DTYPE, TagChunk
from ..constants import INF, Pattern, Role
from ..errors import DataValidationError
from ..records import HERALD_DTYPE
from .params import LabParams, compile_lab
from .records import ATTEMPT_DTYPE, CLOSED_ATTEMPT_DTYPE, HERALD_IO_DTYPE, HERALD_STATE_DTYPE
from .slots import HERALD, SlotRows, _k, with_headroom

LUT_MAX_SPAN = 1 << 16  # arrival-histogram spans up to this many ps get a bin lookup table
RAW_LIMIT = (1 << 61) - (1 << 51)  # |raw time|: room for any delay and window (< 2**50) below INF = 2**62


@dataclass
class HeraldOutput:
    """What one herald-stage call produced.  ``rows`` is the stage's live buffer: read it
    before the stage's next call."""

    heralds: np.ndarray
    trig_time: np.ndarray   # heralding heralds (pattern in the lab's patterns): time,
    trig_sync: np.ndarray   # sync time
    trig_pat: np.ndarray    # and pattern
    pattern_counts: np.ndarray  # heralds per pattern code
    rows: SlotRows
    new_ready: int
    new_settings: int
    new_fluo: int
    lost: np.ndarray
    horizon: int
    watermark: int
    data_end: int = -INF  # horizon at the end of the data (set by flush)
    final: bool = False


class HeraldStage:
    """Streaming herald stage of one lab (works for Bob too: no sync/BSM -> no heralds)."""

    name = "herald stage"

    def __init__(self, lab, params: LabParams | None = None):
        self.params = p = params or compile_lab(lab, self.name)
        self.state = np.zeros(1, HERALD_STATE_DTYPE)
        self.rows = SlotRows(p)
        self.singles = np.zeros(p.nslots + 1, np.int64)  # last = channels the lab does not use
        self.arrival = np.zeros((len(p.det_chan), p.arrival_edges.size - 1), np.int64)
        r = self.rows
        self._heralds = r.sync_slot >= 0 and r.bsm_slots.size > 0
        self._bsm = r.bsm_slots if self._heralds else r.bsm_slots[:0]
        # new tags per role, as one product with the tags per row (a chunk's fixed cost counts)
        self._role_sel = np.zeros((p.nslots + 1, 3), np.int64)
        for col, role in enumerate((Role.READY, Role.SETTING, Role.FLUORESCENCE)):
            self._role_sel[p.slots(role), col] = 1
        self._agg = np.zeros(0, ATTEMPT_DTYPE)
        self._her = np.zeros(0, CLOSED_ATTEMPT_DTYPE)
        self._io = np.zeros(1, HERALD_IO_DTYPE)
        hp = p.herald_params[0]
        self._sync_next = bool(hp["sync_next"])
        self._window_start = int(hp["window_start_ps"])
        bin_h = int(hp["arrival_bin_ps"])
        span = int(hp["arrival_stop_ps"]) - int(hp["arrival_start_ps"])
        self._lut = ((np.arange(span) // bin_h).astype(np.int32) if 0 < span <= LUT_MAX_SPAN and self.arrival.shape[1]
                     else np.zeros(0, np.int32))
        self._tables = _k.HeraldTables(
            p.herald_params, chan_lo=r.chan_lo, slot_of=r.slot_of, slot_delay=r.delay, max_delay=p.max_delay,
            sync_slot=r.sync_slot if self._heralds else -1, bsm_slot=self._bsm, bsm_det=p.slot_det[self._bsm],
            det_arm=p.det_arm, det_pol=p.det_pol, det_chan=p.det_chan, patterns=p.pattern_codes, lut=self._lut,
            lane_slot=r.lane_slot, scal_slot=r.scal_slot, split_code=r.split_code)
        self.horizon = -INF
        self.first_raw: int | None = None
        self.last_raw: int | None = None
        self.n_tags = 0
        self.finished = False

    def process(self, chunk: TagChunk) -> HeraldOutput:
        if self.finished:
            raise RuntimeError(f"{self.name}: process() after flush()")
        n = len(chunk)
        if n:
            t0, t1 = int(chunk.time[0]), int(chunk.time[-1])
            if not (-RAW_LIMIT < t0 and t1 < RAW_LIMIT):
                raise DataValidationError(f"{self.name}: tag times must stay inside +-{RAW_LIMIT} ps "
                                          f"(~26 days); got a chunk spanning [{t0}, {t1}]")
            if self.first_raw is None:
                self.first_raw = t0
            self.n_tags += n
        out = self._run(chunk.time, chunk.channel, mode=1)
        out.lost = chunk.lost if chunk.lost.dtype == LOST_DTYPE else chunk.lost.astype(LOST_DTYPE)
        return out

    def flush(self) -> HeraldOutput:
        if self.finished:
            raise RuntimeError(f"{self.name}: flush() called twice")
        data_end = self.horizon
        out = self._run(np.zeros(0, np.int64), np.zeros(0, np.int32), mode=2)
        out.data_end = data_end
        out.final = True
        self.finished = True
        return out

    def _run(self, time: np.ndarray, channel: np.ndarray, mode: int) -> HeraldOutput:
        """Split the chunk into the rows and find the heralds it completes (mode 1), or close
        every attempt at the end of the data (mode 2)."""
        p, r = self.params, self.rows
        n = time.size
        r.make_room(n)
        hi0 = r.hi.copy()
        ss = r.sync_slot
        s_lo = int(r.ptr[HERALD, ss]) if self._heralds else 0
        n_s = int(r.hi[ss]) - s_lo if self._heralds else 0
        need = n_s + n + 1
        if self._agg.size < need:
            self._agg = np.empty(max(with_headroom(need), 2 * self._agg.size), ATTEMPT_DTYPE)
            self._her = np.empty(self._agg.size, CLOSED_ATTEMPT_DTYPE)
        bsm = self._bsm
        bsm_lo = r.ptr[HERALD, bsm].copy()
        io = self._io[0]
        io["last_raw"] = r.last_raw if r.last_raw is not None else np.iinfo(np.int64).min
        io["horizon"] = max(self.horizon, -INF)
        io["attempts"] = io["closed"] = io["heralds"] = 0
        io["sync_lo"] = s_lo
        bufs = dict(rows=r.rows, hi=r.hi, io=self._io, state=self.state, bsm_lo=bsm_lo, agg=self._agg, her=self._her,
                    arrival=self.arrival)
        taken = _k.process_chunk(self._tables, time, channel, mode, **bufs)
        if taken < n:
            # the raw times step back (some readers do, a little): sort the rest, split it, re-sort
            # the rows' unread tails, then carry on
            rest_t, rest_c = time[taken:], channel[taken:]
            order = np.argsort(rest_t, kind="stable")
            _k.process_chunk(self._tables, np.ascontiguousarray(rest_t[order]), np.ascontiguousarray(rest_c[order]), 0,
                             **bufs)
            r.sort_unread()
            io["horizon"] = max(int(io["horizon"]), int(io["last_raw"]) - p.max_delay)
            _k.process_chunk(self._tables, time[:0], channel[:0], 1, **bufs)
        if n:
            r.last_raw = self.last_raw = int(io["last_raw"])
        self.horizon = INF if mode == 2 else int(io["horizon"])
        got = r.hi - hi0
        got[-1] = n - int(got[:-1].sum())
        self.singles += got
        k, nh = int(io["attempts"]), int(io["heralds"])
        watermark = self.horizon
        her = np.empty(nh, HERALD_DTYPE)
        pattern_counts = np.zeros(len(Pattern), np.int64)
        trig_time, trig_sync, trig_pat = np.empty(nh, np.int64), np.empty(nh, np.int64), np.empty(nh, np.int8)
        nt = 0
        if self._heralds:
            r.ptr[HERALD, bsm] = bsm_lo
            syncs = r.rows[ss, s_lo:s_lo + k]
            d_sync = int(r.delay[ss])
            nt = _k.emit_heralds(self._tables, self._her[:nh], her, trig_time, trig_sync, trig_pat, pattern_counts)
            still_open = int(io["closed"]) < k
            if self._sync_next:  # every sync before the horizon is done with
                r.ptr[HERALD, ss] = s_lo + k
                if mode != 2:
                    firsts = [int(r.rows[s, r.ptr[HERALD, s]]) - int(r.delay[s])
                              for s in bsm if r.ptr[HERALD, s] < r.hi[s]]
                    watermark = min([self.horizon, *firsts])
            else:
                # keep the latest sync before the horizon: later clicks may still refer to it
                r.ptr[HERALD, ss] = s_lo + max(k - 1, 0)
                if k:
                    st = self.state[0]
                    st["carry"] = int(still_open)
                    if still_open:
                        g = self._agg[k - 1]
                        st["carry_n"], st["carry_k1"], st["carry_k2"] = int(g["n"]), int(g["k1"]), int(g["k2"])
                        watermark = min(self.horizon, int(syncs[-1]) - d_sync + self._window_start)
        else:
            r.ptr[HERALD, r.uses[HERALD]] = r.hi[r.uses[HERALD]]
        new_ready, new_settings, new_fluo = (got @ self._role_sel).tolist()
        return HeraldOutput(heralds=her, trig_time=trig_time[:nt], trig_sync=trig_sync[:nt], trig_pat=trig_pat[:nt],
                            pattern_counts=pattern_counts, rows=r, new_ready=new_ready,
                            new_settings=new_settings, new_fluo=new_fluo,
                            lost=np.zeros(0, LOST_DTYPE), horizon=self.horizon, watermark=int(watermark))

    @property
    def counters(self) -> dict:
        r = self.rows
        syncs = int(self.singles[r.sync_slot]) if r.sync_slot >= 0 else 0
        return {"syncs": syncs, "clicks": int(self.singles[r.bsm_slots].sum()),
                "clicks_accepted": int(self.state["clicks_accepted"][0]),
                "clicks_without_sync": int(self.state["clicks_without_sync"][0])}
