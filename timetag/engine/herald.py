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
from ..errors import DataValidationError
from ..records import HERALD_DTYPE
from .params import INF, LabParams, compile_lab

try:
    from .._cext import engine_herald as _k
except ImportError as exc:  # pragma: no cover - build problem
    raise ImportError("timetag._cext.engine_herald is not built: run `pip install -e .` "
                      "(or setup.py build_ext --inplace)") from exc

HERALD_STATE_FIELDS = ("sync_time", "have_sync", "attempt_open", "attempt_clicks", "t1", "det1", "t2", "det2",
                       "pending_head", "pending_n", "syncs", "clicks", "clicks_accepted", "clicks_without_sync",
                       "pending_dropped")
HERALD_STATE_DTYPE = np.dtype([(name, "<i8") for name in HERALD_STATE_FIELDS])
PENDING_CAPACITY = 4096  # clicks awaiting their sync ('next'); older ones are dropped and counted
KEY_LIMIT = 1 << 61  # |time| bound that keeps the sort key 4 * time + rank inside int64
RAW_LIMIT = KEY_LIMIT - (1 << 51)  # raw times: room for any delay (|delay| < 2**50, see params)


def copy_records(a: np.ndarray) -> np.ndarray:
    """Copy of a contiguous structured array as one block: numpy copies packed (unaligned)
    record dtypes element by element, which measured ~1 GB/s here."""
    out = np.empty(a.shape[0], a.dtype)
    out.view(np.uint8)[:] = a.view(np.uint8)
    return out


class _Scratch:
    """Grow-only output arrays reused across calls: fresh large allocations cost a page fault per
    4 KiB on first touch, which on some machines is slower than the kernels themselves."""

    def __init__(self):
        self.cap = -1
        self.her_cap = -1

    def ensure(self, k: int, her_rows: int) -> None:
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


@dataclass
class _Buffer:
    key: np.ndarray = field(default_factory=lambda: np.empty(1024, np.int64))
    slot: np.ndarray = field(default_factory=lambda: np.empty(1024, np.int32))
    n: int = 0

    def reserve(self, extra: int) -> None:
        need = self.n + extra
        if need > self.key.size:
            cap = max(need, 2 * self.key.size)
            t, s = np.empty(cap, np.int64), np.empty(cap, np.int32)
            t[: self.n], s[: self.n] = self.key[: self.n], self.slot[: self.n]
            self.key, self.slot = t, s


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
        # sort key of a tag = 4 * raw - kofs = 4 * corrected time + rank: one compare orders both
        self._kofs = np.append(4 * p.slot_delay - p.slot_rank.astype(np.int64), 0)
        # other channels -> slot nslots (their singles counter); last entry: outside the table
        self._slot_of = np.append(np.where(p.slot_of < 0, p.nslots, p.slot_of), p.nslots).astype(np.int32)
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
            t0, t1 = int(chunk.time[0]), int(chunk.time[-1])
            if not (-RAW_LIMIT < t0 and t1 < RAW_LIMIT):
                raise DataValidationError(f"{self.name}: tag times must stay inside +-{RAW_LIMIT} ps "
                                          f"(~26 days); got a chunk spanning [{t0}, {t1}]")
            b.reserve(n + 1)
            b.n = _k.reorder(chunk.time, chunk.channel, p.chan_lo, self._slot_of, self._kofs,
                             b.key, b.slot, b.n, self.singles)
            if self.first_raw is None:
                self.first_raw = int(chunk.time[0])
            self.last_raw = int(chunk.time[-1])
            self.n_tags += n
            # monotonic even if a reader lets time step back a little (PTU markers)
            self.horizon = max(self.horizon, self.last_raw - p.max_delay)
        # keys are 4 * time + rank: key < 4 * horizon <=> time < horizon
        k = 0 if self.horizon <= -KEY_LIMIT else int(np.searchsorted(b.key[: b.n], 4 * self.horizon, side="left"))
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
        keys, slot = b.key[:k], b.slot[:k]
        # a herald uses >= 2 accepted clicks: from this slice, the pending ring or the open attempt
        carried = int(self.state["pending_n"][0] + self.state["attempt_clicks"][0])
        sc = self._scratch
        sc.ensure(k, (k + carried) // 2 + 2)
        her, ready, set_time, set_idx, fluo = sc.her, sc.ready, sc.set_time, sc.set_idx, sc.fluo
        nh, nr, ns, nf, wm = _k.herald_scan(self._st, p.herald_par, p.slot_role, p.slot_setting, p.slot_det,
                                            p.det_arm, p.det_pol, p.det_chan, keys, slot, self.horizon, flush,
                                            her, ready, set_time, set_idx, fluo, self.arrival,
                                            self._pend_time, self._pend_det)
        rest = b.n - k
        if k and rest:
            b.key[:rest] = b.key[k:b.n]
            b.slot[:rest] = b.slot[k:b.n]
        b.n = rest
        return HeraldOutput(heralds=copy_records(her[:nh]), ready=ready[:nr],
                            set_time=set_time[:ns], set_idx=set_idx[:ns], fluo=fluo[:nf],
                            lost=np.zeros(0, LOST_DTYPE), horizon=self.horizon, watermark=int(wm))

    @property
    def counters(self) -> dict:
        return {name: int(self.state[name][0]) for name in ("syncs", "clicks", "clicks_accepted",
                                                            "clicks_without_sync", "pending_dropped")}
