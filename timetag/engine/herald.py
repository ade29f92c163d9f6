"""Herald stage: delay correction, the post-excitation time filter, BSM coincidences.

``HeraldStage(lab).process(chunk)`` takes raw :class:`~timetag.chunk.TagChunk`\\ s in
stream order and returns a :class:`HeraldOutput`: the herald records that became
final, plus the round stage's inputs split out in the same pass (ready times,
setting tags, fluorescence times, the chunk's lost-data events) and two clocks:

* ``horizon``: every tag with corrected time < horizon has been seen (the raw time of
  the last tag minus the largest positive channel delay, because a delay can move a
  later raw tag to an earlier corrected time);
* ``watermark``: every herald with time < watermark has been emitted.

Tags at or after the horizon wait in a sorted buffer (canonical order: time, then
the sync before other tags for ``sync_reference = "previous"`` and after them for
``"next"``, then stream position), so results never depend on chunk boundaries.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..chunk import LOST_DTYPE, TagChunk
from ..records import HERALD_DTYPE
from .params import INF, LabParams, compile_lab

try:
    from .._cext import engine_herald as _k
except ImportError as exc:  # pragma: no cover - build problem
    raise ImportError("timetag._cext.engine_herald is not built: run `pip install -e .` "
                      "(or setup.py build_ext --inplace)") from exc

HERALD_STATE_FIELDS = ("sync_time", "have_sync", "attempt_open", "attempt_clicks", "t1", "det1", "t2", "det2",
                       "pending_head", "pending_n", "syncs", "clicks", "clicks_accepted", "clicks_without_sync",
                       "pending_dropped", "ring_head", "ring_n")
HERALD_STATE_DTYPE = np.dtype([(name, "<i8") for name in HERALD_STATE_FIELDS])
PENDING_CAPACITY = 4096  # clicks awaiting their sync ('next'); older ones are dropped and counted


def rows_to_records(rows: np.ndarray, dtype: np.dtype) -> np.ndarray:
    out = np.empty(rows.shape[0], dtype)
    for i, name in enumerate(dtype.names):
        out[name] = rows[:, i]
    return out


class _Scratch:
    """Grow-only arrays reused across calls: fresh large allocations cost a page fault per
    4 KiB on first touch, which on some machines is slower than the kernels themselves.
    The ring is sized for the worst case (every tag of a chunk pending) but the kernel
    only touches its first few KiB in practice."""

    def __init__(self):
        self.cap = -1
        self.her_cap = -1

    def ensure(self, k: int, her_rows: int, ring: tuple[np.ndarray, np.ndarray, int] | None = None) -> None:
        if k > self.cap:
            cap = max(k, 2 * max(self.cap, 0), 1024)
            self.ready = np.empty(cap, np.int64)
            self.set_time = np.empty(cap, np.int64)
            self.set_idx = np.empty(cap, np.int8)
            self.fluo = np.empty(cap, np.int64)
            self.cap = cap
        if her_rows > self.her_cap:
            self.her_cap = max(her_rows, 2 * max(self.her_cap, 0), 256)
            self.her = np.empty(self.her_cap, HERALD_DTYPE)


@dataclass
class HeraldOutput:
    """What one herald-stage call produced.  ``ready``, ``set_*`` and ``fluo`` are views of
    reused buffers, valid until the stage's next call (copy them to keep them)."""

    heralds: np.ndarray
    ready: np.ndarray
    set_time: np.ndarray
    set_idx: np.ndarray
    fluo: np.ndarray
    lost: np.ndarray
    horizon: int
    watermark: int
    data_end: int = -INF  # horizon at the end of the data (set by flush)
    final: bool = False


class _Ring:
    """Tags waiting until no later tag can sort before them (live range in the kernel state)."""

    def __init__(self):
        self.key = np.empty(8192, np.int64)
        self.slot = np.empty(8192, np.int32)

    def reserve(self, need: int) -> None:
        if need > self.key.size:
            cap = max(need, 2 * self.key.size)
            k, s = np.empty(cap, np.int64), np.empty(cap, np.int32)
            k[: self.key.size], s[: self.slot.size] = self.key, self.slot
            self.key, self.slot = k, s


class HeraldStage:
    """Streaming herald stage of one lab (works for Bob too: no sync/BSM -> no heralds)."""

    name = "herald stage"

    def __init__(self, lab, params: LabParams | None = None, pending_capacity: int = PENDING_CAPACITY):
        self.params = params or compile_lab(lab, self.name)
        p = self.params
        if pending_capacity < 1 or pending_capacity & (pending_capacity - 1):
            raise ValueError(f"{self.name}: pending_capacity must be a power of two (got {pending_capacity})")
        self.state = np.zeros(1, HERALD_STATE_DTYPE)
        self._st = self.state.view(np.int64)
        self._buf = _Buffer()
        self.singles = np.zeros(p.nslots + 1, np.int64)  # last = channels the lab does not use
        self.arrival = np.zeros((len(p.det_chan), p.arrival_edges.size - 1), np.int64)
        self._pend_time = np.zeros(pending_capacity, np.int64)
        self._pend_det = np.zeros(pending_capacity, np.int8)
        self._scratch = _Scratch()
        self.horizon = -INF
        self.first_raw: int | None = None
        self.last_raw: int | None = None
        self.n_tags = 0
        self.finished = False

    def process(self, chunk: TagChunk) -> HeraldOutput:
        if self.finished:
            raise RuntimeError(f"{self.name}: process() after flush()")
        p, b = self.params, self._buf
        n = len(chunk)
        if n:
            b.reserve(n)
            b.n = _k.reorder(chunk.time, chunk.channel, p.chan_lo, p.slot_of, p.slot_delay, p.slot_rank,
                             b.time, b.slot, b.n, self.singles)
            if self.first_raw is None:
                self.first_raw = int(chunk.time[0])
            self.last_raw = int(chunk.time[-1])
            self.n_tags += n
            # monotonic even if a reader lets time step back a little (PTU markers)
            self.horizon = max(self.horizon, self.last_raw - p.max_delay)
        k = int(np.searchsorted(b.time[: b.n], self.horizon, side="left"))
        out = self._scan(k, flush=False)
        out.lost = chunk.lost if chunk.lost.dtype == LOST_DTYPE else chunk.lost.astype(LOST_DTYPE)
        return out

    def flush(self) -> HeraldOutput:
        if self.finished:
            raise RuntimeError(f"{self.name}: flush() called twice")
        data_end = self.horizon
        self.horizon = INF
        out = self._scan(self._buf.n, flush=True)
        out.data_end = data_end
        out.final = True
        self.finished = True
        return out

    def _scan(self, k: int, flush: bool) -> HeraldOutput:
        p, b = self.params, self._buf
        time, slot = b.time[:k], b.slot[:k]
        # a herald uses >= 2 accepted clicks: from this slice, the pending ring or the open attempt
        carried = int(self.state["pending_n"][0] + self.state["attempt_clicks"][0])
        sc = self._scratch
        sc.ensure(k, (k + carried) // 2 + 2)
        her, ready, set_time, set_idx, fluo = sc.her, sc.ready, sc.set_time, sc.set_idx, sc.fluo
        nh, nr, ns, nf, wm = _k.herald_scan(self._st, p.herald_par, p.slot_role, p.slot_setting, p.slot_det,
                                            p.det_arm, p.det_pol, p.det_chan, time, slot, self.horizon, flush,
                                            her, ready, set_time, set_idx, fluo, self.arrival,
                                            self._pend_time, self._pend_det)
        rest = b.n - k
        if k and rest:
            b.time[:rest] = b.time[k:b.n]
            b.slot[:rest] = b.slot[k:b.n]
        b.n = rest
        return HeraldOutput(heralds=rows_to_records(her[:nh], HERALD_DTYPE), ready=ready[:nr],
                            set_time=set_time[:ns], set_idx=set_idx[:ns], fluo=fluo[:nf],
                            lost=np.zeros(0, LOST_DTYPE), horizon=self.horizon, watermark=int(wm))

    @property
    def counters(self) -> dict:
        return {name: int(self.state[name][0]) for name in ("syncs", "clicks", "clicks_accepted",
                                                            "clicks_without_sync", "pending_dropped")}
