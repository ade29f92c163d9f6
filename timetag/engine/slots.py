"""Per-channel rows of raw times: the herald and round stages' shared input buffer.

A raw chunk is split by channel (``engine_slots.process_chunk``): row s holds the raw
times of the lab's s-th channel (slot), in time order because a channel's raw times are;
its corrected times are ``rows[s] - delay[s]``, applied by the reader.  Each consumer
(the herald stage for sync and BSM rows, the round stage for setting and fluorescence
rows, and for the ready row) keeps a read pointer per row; a row is compacted to what
some consumer still needs before the next chunk is split, so the memory held is the
unread tails plus one chunk, whatever the length of the run.
"""
from __future__ import annotations

import numpy as np

from ..constants import PAD, Role
from .params import LabParams

try:
    from .._cext import engine_slots as _k
except ImportError as exc:  # pragma: no cover - build problem
    raise ImportError("timetag._cext.engine_slots is not built: run `pip install -e .` "
                      "(or setup.py build_ext --inplace)") from exc

HERALD, ROUND, READY = 0, 1, 2  # consumers (rows of ``ptr``): attempts, round windows, trigger source


def with_headroom(need: int) -> int:
    """The size to grow a per-chunk buffer to: a quarter more than needed, as the next chunk is usually
    as long and its unread tails a little longer (growing again on the next chunk would touch fresh
    pages in the middle of a run)."""
    return need + need // 4


def _split_tables(p: LabParams, slot_of: np.ndarray):
    """The vector split's tables (engine_slots.HeraldTables): 7 slots get a vector lane, by
    role in the order of their usual rates (sync, BSM, fluorescence, ready, settings); the
    others are counted behind a branch."""
    order = []
    for role in (Role.SYNC, Role.BSM, Role.FLUORESCENCE, Role.READY, Role.SETTING):
        order += [int(s) for s in p.slots(role) if int(s) not in order]
    order += [s for s in range(p.nslots) if s not in order]
    lanes, rest = order[:7], order[7:]
    code = np.empty(slot_of.size, np.uint8)
    for k, s in enumerate(slot_of.tolist()):
        code[k] = 7 if s == p.nslots else (lanes.index(s) if s in lanes else 8 + rest.index(s))
    return np.array(lanes, np.int64), np.array(rest, np.int64), code


class SlotRows:
    """``rows[s, :hi[s]]``: raw times of slot s (the last row: channels the lab does not use,
    scratch); ``delay[s]``: subtract for corrected times; ``ptr[consumer, s]``: the consumer's
    read position in row s."""

    def __init__(self, p: LabParams):
        ns = p.nslots
        self.nrows = ns + 1
        self.uses = np.zeros((3, self.nrows), bool)  # the junk row (last) has no reader
        for consumer, roles in ((HERALD, Role.SYNC | Role.BSM), (ROUND, Role.SETTING | Role.FLUORESCENCE),
                                (READY, Role.READY)):
            self.uses[consumer, p.slots(roles)] = True
        self._uses8 = self.uses.view(np.uint8)
        self.bsm_slots = p.slots(Role.BSM)
        sync = p.slots(Role.SYNC)
        self.sync_slot = int(sync[0]) if sync.size else -1
        self.delay = np.append(p.slot_delay, 0).astype(np.int64)
        self.slot_of = np.append(np.where(p.slot_of < 0, ns, p.slot_of), ns).astype(np.int32)
        self.chan_lo = p.chan_lo
        self.lane_slot, self.scal_slot, self.split_code = _split_tables(p, self.slot_of)
        self.cap = 0
        self.rows = np.empty((self.nrows, 1), np.int64)
        self.hi = np.zeros(self.nrows, np.int64)
        self.ptr = np.zeros((3, self.nrows), np.int64)
        self.last_raw: int | None = None

    def row(self, s: int, consumer: int) -> np.ndarray:
        """The raw times of row s not yet read by ``consumer`` (a view)."""
        return self.rows[s, self.ptr[consumer, s]:self.hi[s]]

    def make_room(self, incoming: int) -> None:
        """Drop what every consumer has read; grow the buffer when a row would not fit
        ``incoming`` more tags and the padding."""
        need = _k.longest_unread(self.hi, self.ptr, self._uses8) + incoming + PAD
        dst = self.rows
        if need > self.cap:
            self.cap = max(with_headroom(need), 1024)
            dst = np.empty((self.nrows, self.cap), np.int64)
        _k.compact_rows(self.rows, dst, self.hi, self.ptr, self._uses8)
        self.rows = dst

    def sort_unread(self) -> None:
        """The rare path for a raw stream that steps back in time (some readers, PTU markers):
        re-sort the unread part of each row."""
        for s, lo in enumerate(_k.unread_start(self.hi, self.ptr, self._uses8)[:-1].tolist()):
            seg = self.rows[s, lo:self.hi[s]]
            if seg.size > 1 and np.any(seg[1:] < seg[:-1]):
                seg.sort(kind="stable")
