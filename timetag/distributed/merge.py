"""Merging partition outputs into one rounds file, as if the run had been processed in one piece.

Partition files hold the rounds and heralds each partition owns, with partition-local round indices
0..n-1.  The merge appends them in partition (= time) order, renumbers the indices into one gap-free
sequence, and combines the summaries (counts add up) and histograms (bin contents add up).  The merged
file goes through custody (:class:`~timetag.custody.AtomicOutput`): written as ``<out>.partial`` and renamed
into place only when complete, so a reader never sees a partial merge under the final name; a failed merge
leaves nothing; an existing ``out`` is replaced only with ``force``, an input never.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np

from ..custody import DEFAULT_RESERVE_BYTES, AtomicOutput, Completion
from ..errors import DataValidationError
from ..records import ROUND_DTYPE
from ..roundsfile import RoundsWriter, read_rounds

# Summary keys that are not counts: how to combine them across partitions.
_MIN_WORDS = ("first", "start", "min")
_MAX_WORDS = ("last", "stop", "end", "max")
# Histogram datasets that describe bins rather than count into them: equal in every partition.
_AXIS_WORDS = ("edges", "bins", "centers", "channels")


def _combine_rule(key: str) -> str:
    tokens = key.lower().split("_")
    if any(w in tokens for w in _AXIS_WORDS):
        return "same"
    timeish = bool({"time", "ps", "s", "t"} & set(tokens))
    if tokens[0] in _MIN_WORDS or (timeish and set(_MIN_WORDS) & set(tokens)):
        return "min"
    if tokens[0] in _MAX_WORDS or (timeish and set(_MAX_WORDS) & set(tokens)):
        return "max"
    return "sum"


def merge_summaries(summaries: Sequence[dict]) -> dict:
    """Combine partition summaries: counts add, first/start/min keys take the minimum, last/stop/max the
    maximum, nested dicts recurse, equal non-numeric values are kept (unequal ones become a list)."""
    out: dict[str, Any] = {}
    keys: list[str] = []
    for s in summaries:
        keys.extend(k for k in s if k not in keys)
    for k in keys:
        vals = [s[k] for s in summaries if k in s]
        out[k] = _merge_value(k, vals)
    return out


def _merge_value(key: str, vals: list):
    if all(isinstance(v, dict) for v in vals):
        return merge_summaries(vals)
    nums = [v for v in vals if v is not None]
    if nums and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in nums):
        rule = _combine_rule(key)
        if rule == "min":
            return min(nums)
        if rule == "max":
            return max(nums)
        if rule == "same":
            return nums[0]
        return sum(nums)
    if nums and all(isinstance(v, list) for v in nums) and len({len(v) for v in nums}) == 1 and \
            all(isinstance(x, (int, float)) for v in nums for x in v):
        if _combine_rule(key) == "same":
            return nums[0]
        return [sum(xs) for xs in zip(*nums)]
    first = vals[0]
    return first if all(v == first for v in vals) else vals


def subtract_summary(total: dict, part: dict, template: dict | None = None) -> dict:
    """``total`` minus the counts of ``part`` (min/max/axis keys keep ``total``'s value).

    Used to remove a partition's lookahead records, counted by the partition that owns them.  Keeping the
    max of a lookahead-contaminated partition is harmless: the owner of those records reports a larger one.
    ``template`` (the summary of a pipeline that saw no data) tells which keys always exist: a key that
    only the lookahead created (e.g. a setting value seen only there) is removed when it drops to zero.
    """
    out = dict(total)
    for k, b in part.items():
        if k not in total:
            continue
        a = total[k]
        sub = template.get(k) if isinstance(template, dict) else None
        if isinstance(a, dict) and isinstance(b, dict):
            out[k] = subtract_summary(a, b, sub if isinstance(sub, dict) else {})
        elif _combine_rule(k) != "sum":
            continue
        elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            out[k] = a - b
            if out[k] == 0 and b != 0 and template is not None and k not in template:
                del out[k]
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and \
                all(isinstance(x, (int, float)) for x in a + b):
            out[k] = [x - y for x, y in zip(a, b)]
    return out


def subtract_histograms(total: dict, part: dict) -> dict:
    out = dict(total)
    for k, v in part.items():
        if k in out and _combine_rule(k) == "sum" and np.shape(out[k]) == np.shape(v):
            out[k] = np.asarray(out[k]) - np.asarray(v)
    return out


def fix_boundary_counters(summaries: list[dict], sync_reference: str | None) -> list[dict]:
    """Counters that depend on what lies beyond a partition's edge, corrected with the neighbours' counts.

    ``clicks_without_sync`` counts clicks with no sync to refer to: before the first sync of the stream
    ('previous') or after its last ('next').  A fresh partition counts its own leading (trailing) clicks,
    which in the whole run do have a (distant) sync when any earlier (later) partition holds one.
    """
    if sync_reference not in ("previous", "next"):
        return summaries
    out = [dict(s) for s in summaries]
    order = range(len(out)) if sync_reference == "previous" else range(len(out) - 1, -1, -1)
    seen_sync = False
    for i in order:
        s = out[i]
        if seen_sync and "clicks_without_sync" in s:
            s["clicks_without_sync"] = 0
        seen_sync |= bool(s.get("syncs", 0))
    return out


def fix_derived(summary: dict) -> dict:
    """Quantities computed from others, recomputed after the merge (a sum of durations is not a duration)."""
    first, last = summary.get("first_time_ps"), summary.get("last_time_ps")
    if "duration_ps" in summary and isinstance(first, int) and isinstance(last, int):
        summary["duration_ps"] = last - first
    return summary


def sync_reference_of(lab) -> str | None:
    """The lab's sync reference for :func:`fix_boundary_counters` (None: the lab has no sync channel)."""
    return lab.herald.sync_reference if lab.sync_channel is not None else None


def run_summary(summaries: Sequence[dict], sync_reference: str | None) -> dict:
    """The whole run's summary from its partitions' summaries, in stream order: counts added, the counters that
    depend on what lies beyond a partition's edge corrected, derived quantities recomputed."""
    return fix_derived(merge_summaries(fix_boundary_counters(list(summaries), sync_reference)))


def merge_histograms(hists: Sequence[dict], names: Sequence[str] = ()) -> dict:
    """Sum bin contents by name; axis datasets (edges, bins, ...) must agree and are kept once."""
    out: dict[str, np.ndarray] = {}
    for i, h in enumerate(hists):
        label = names[i] if i < len(names) else f"partition {i}"
        for k, v in h.items():
            v = np.asarray(v)
            if k not in out:
                out[k] = v.copy()
                continue
            if out[k].shape != v.shape:
                raise DataValidationError(f"histogram {k!r} of {label} has shape {v.shape}, "
                                          f"other partitions {out[k].shape}: cannot merge")
            if _combine_rule(k) == "same":
                if not np.array_equal(out[k], v):
                    raise DataValidationError(f"histogram axis {k!r} of {label} differs from the other partitions")
            else:
                out[k] = out[k] + v
    return out


def merge_partition_files(part_files: Sequence, out, *, lab: str, role: str, setup_hash: str = "",
                          provenance: dict | None = None, names: Sequence[str] = (),
                          extra_summary: dict | None = None, sync_reference: str | None = None,
                          inputs: Sequence = (), force: bool = False) -> dict:
    """Merge partition rounds files (given in time order) into ``out``; returns the merged summary.

    ``out`` is written through custody; neither a partition file nor one of ``inputs`` (the run's tag files)
    can be it, and an existing ``out`` is replaced only with ``force``.
    """

    with AtomicOutput(out, inputs=[*part_files, *inputs], force=force, reserve_bytes=DEFAULT_RESERVE_BYTES) as slot:
        return merge_into(part_files, slot.partial, lab=lab, role=role, setup_hash=setup_hash,
                          provenance=provenance, names=names, extra_summary=extra_summary,
                          sync_reference=sync_reference, on_storage_error=slot.release_reserve)


def merge_into(part_files: Sequence, dest, *, lab: str, role: str, setup_hash: str = "",
               provenance: dict | None = None, names: Sequence[str] = (), extra_summary: dict | None = None,
               sync_reference: str | None = None, on_storage_error=None) -> dict:
    """The merge itself, into ``dest``: a new file (the partial file of an open
    :class:`~timetag.custody.AtomicOutput`, which the caller commits or discards)."""
    with_heralds = True
    for p in part_files:
        with h5py.File(p, "r") as f:
            with_heralds &= "heralds" in f
    with MergeWriter(dest, lab=lab, role=role, setup_hash=setup_hash, provenance=provenance,
                     with_heralds=with_heralds, on_storage_error=on_storage_error) as w:
        for i, p in enumerate(part_files):
            w.append(read_rounds(p), names[i] if i < len(names) else str(p), path=p)
        return w.close(sync_reference=sync_reference, extra_summary=extra_summary)


@dataclass
class PartitionOutput:
    """What one partition made, held in memory: its own rounds (indices 0..n-1) and heralds, summary and
    histograms -- the fields a partition's rounds file holds (:class:`~timetag.roundsfile.RoundsData`)."""

    rounds: np.ndarray
    heralds: np.ndarray | None
    summary: dict
    histograms: dict


class MergeWriter:
    """Partition outputs appended in time order into a new rounds file, each as soon as it is known (while later
    partitions still run); the summary and histograms are combined at :meth:`close`.  Use as a context manager:
    an error marks the file failed (the caller's :class:`~timetag.custody.AtomicOutput` discards it).  The file is
    created with the first output (the client creates it while the partitions run, not before they start).

    Appended outputs have the fields of :class:`PartitionOutput` (a partition file read back is one too).
    """

    def __init__(self, dest, *, lab: str, role: str, setup_hash: str = "", provenance: dict | None = None,
                 with_heralds: bool = True, on_storage_error=None):
        self._open = lambda: RoundsWriter(Path(dest), lab=lab, role=role, provenance=provenance,
                                          setup_hash=setup_hash, with_heralds=with_heralds,
                                          on_storage_error=on_storage_error)
        self._w: RoundsWriter | None = None
        self.with_heralds = with_heralds
        self.summaries: list[dict] = []
        self.histograms: list[dict] = []
        self.names: list[str] = []
        self._offset = 0
        self._last_time: int | None = None

    def append(self, data, label: str, path=None) -> None:
        r = data.rounds
        if r.size:
            expected = np.arange(r.size)
            if not np.array_equal(r["index"], expected):
                bad = int(np.flatnonzero(r["index"] != expected)[0])
                raise DataValidationError(f"round indices of {label} are not 0..n-1 "
                                          f"(record {bad} has {int(r['index'][bad])})", path=path)
            if self._last_time is not None and int(r["trigger_time"][0]) < self._last_time:
                raise DataValidationError(f"{label} starts at trigger time {int(r['trigger_time'][0])} ps, "
                                          f"before the end of the previous partition ({self._last_time} ps)",
                                          path=path)
            self._last_time = int(r["trigger_time"][-1])
            r = r.astype(ROUND_DTYPE, copy=True)
            r["index"] += self._offset
            self._offset += r.size
        if self._w is None:
            self._w = self._open()
        self._w.append(r, data.heralds if self.with_heralds else None)
        self.summaries.append(data.summary)
        self.histograms.append(data.histograms)
        self.names.append(label)

    def close(self, *, sync_reference: str | None = None, extra_summary=None,
              provenance: dict | None = None) -> dict:
        """Finish the file (``provenance``: replaces the one given at the start); returns the merged summary.
        ``extra_summary``: keys added to it, or a function of it that returns them."""
        if self._w is None:
            self._w = self._open()
        summary = run_summary(self.summaries, sync_reference)
        summary.update((extra_summary(summary) if callable(extra_summary) else extra_summary) or {})
        self._w.close(summary=summary, histograms=merge_histograms(self.histograms, self.names),
                      provenance=provenance)
        return summary

    def __enter__(self) -> "MergeWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self._w is not None:
            self._w.close(state=Completion.FAILED, reason=f"{exc_type.__name__}: {exc}")
