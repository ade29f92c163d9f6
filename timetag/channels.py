"""Tags per channel, and what a lab's setup makes of them.

The engine drops tags on channels the setup does not use, which is right for monitor channels and silent
trouble for a mis-typed channel map: on a Swabian tagger a falling edge is the negative channel number, so a
setup with the sign of its BSM channels wrong sees no BSM clicks at all, and no error.  :class:`ChannelTally`
counts every channel of a stream (one C pass, ~1 ns per tag); :func:`channel_report` sets those counts against
a :class:`~timetag.setupfile.LabSetup` and says, in one line each, when they do not fit::

    tally = ChannelTally()
    for chunk in open_tags("alice.dump"):
        tally.process(chunk)
    report = channel_report(tally.counts, setup.lab("alice"))
    for line in report.warnings:
        print(line)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._cext.streamcheck import count_channels
from .chunk import TagChunk
from .setupfile import LabSetup

# Channels -TABLE_REACH..TABLE_REACH are counted in a dense table (Swabian: +-1..18, PicoQuant T2: sync 64,
# markers 100 + m); anything beyond takes a slower sort-based pass.
TABLE_REACH = 1024
# Above this share of the stream, tags the setup ignores are worth a word even when nothing is silent.
UNUSED_WARN_FRACTION = 0.01
LISTED_CHANNELS = 6  # unused channels named in a warning, busiest first


class ChannelTally:
    """Counts tags per channel over a stream: ``process(chunk)`` per chunk, then read ``counts``.

    Counts are sums, so any split of the stream into chunks gives the same result.
    """

    name = "channel tally"

    def __init__(self):
        self._table = np.zeros(2 * TABLE_REACH + 1, np.int64)  # index = channel + TABLE_REACH
        self._far: dict[int, int] = {}                          # channels outside the table
        self.tags = 0

    def process(self, chunk: TagChunk) -> None:
        channel = np.ascontiguousarray(chunk.channel, np.int32)
        if count_channels(channel, self._table, TABLE_REACH):
            self._count_far(channel)
        self.tags += channel.size

    def flush(self) -> None:
        """Nothing is held back (the stage protocol's end of stream)."""

    def _count_far(self, channel: np.ndarray) -> None:
        far = channel[(channel < -TABLE_REACH) | (channel > TABLE_REACH)]
        for c, n in zip(*np.unique(far, return_counts=True)):
            self._far[int(c)] = self._far.get(int(c), 0) + int(n)

    @property
    def counts(self) -> dict[int, int]:
        """Channel -> tags, for every channel that saw at least one tag, in channel order."""
        seen = np.flatnonzero(self._table)
        out = {int(i) - TABLE_REACH: int(self._table[i]) for i in seen}
        out.update(self._far)
        return dict(sorted(out.items()))


@dataclass(frozen=True)
class ChannelLine:
    channel: int
    tags: int
    roles: tuple[str, ...]  # empty: the lab does not use this channel

    @property
    def role_text(self) -> str:
        return ", ".join(self.roles) or "unused"


@dataclass
class ChannelReport:
    """One lab's view of the tags per channel.

    ``channels``: every channel the lab uses (even silent ones) and every channel that saw tags, by number.
    ``warnings``: one line each, naming the lab, for counts that point at a wrong channel map.
    """

    lab: str
    channels: tuple[ChannelLine, ...]
    tags: int
    unused_tags: int
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"lab": self.lab, "tags": self.tags, "unused_tags": self.unused_tags, "warnings": list(self.warnings),
                "channels": [{"channel": c.channel, "tags": c.tags, "roles": list(c.roles) or ["unused"]}
                             for c in self.channels]}


def channel_roles(lab: LabSetup) -> dict[int, tuple[str, ...]]:
    """Channel -> what it is to the lab ('sync', 'ready', 'setting 2', 'fluorescence', 'BSM aH', ...)."""
    roles: dict[int, list[str]] = {}
    for c, role in _role_pairs(lab):
        roles.setdefault(c, []).append(role)
    return {c: tuple(r) for c, r in sorted(roles.items())}


def _role_pairs(lab: LabSetup):
    if lab.sync_channel is not None:
        yield lab.sync_channel, "sync"
    if lab.ready_channel is not None:
        yield lab.ready_channel, "ready"
    for i, c in enumerate(lab.setting_channels):
        yield c, f"setting {i}"
    for c in lab.fluorescence_channels:
        yield c, "fluorescence"
    for d in lab.bsm:
        yield d.channel, f"BSM {d.arm}{d.pol}"


def channel_report(counts: dict[int, int], lab: LabSetup) -> ChannelReport:
    roles = channel_roles(lab)
    lines = tuple(ChannelLine(c, int(counts.get(c, 0)), roles.get(c, ())) for c in sorted(set(counts) | set(roles)))
    unused = {c: int(n) for c, n in counts.items() if c not in roles and n > 0}
    total = int(sum(counts.values()))
    warnings = [*_silent_role_warnings(lab, counts, unused), *_unused_share_warnings(lab.name, total, unused)]
    return ChannelReport(lab=lab.name, channels=lines, tags=total, unused_tags=sum(unused.values()),
                         warnings=warnings)


def _role_groups(lab: LabSetup) -> list[tuple[str, tuple[int, ...]]]:
    """(label, channels) per role; roles on the very same channels share one label (Alice's BSM detectors are
    her fluorescence detectors too), so that one fault gives one warning."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for label, chans in (("sync", (lab.sync_channel,)), ("ready", (lab.ready_channel,)),
                         ("setting", lab.setting_channels), ("BSM", tuple(d.channel for d in lab.bsm)),
                         ("fluorescence", lab.fluorescence_channels)):
        chans = tuple(sorted(c for c in chans if c is not None))
        if chans:
            groups.setdefault(chans, []).append(label)
    return [("/".join(labels), chans) for chans, labels in groups.items()]


def _silent_role_warnings(lab: LabSetup, counts: dict[int, int], unused: dict[int, int]) -> list[str]:
    if not unused:
        return []  # silence with nothing elsewhere is a quiet source, not a channel map to fix
    silent_groups = [(label, [c for c in chans if counts.get(c, 0) == 0], len(chans))
                     for label, chans in _role_groups(lab)]
    # an unused channel that mirrors a silent one is explained by the sign; only the rest hint at other faults
    explained = {-c for _, silent, _ in silent_groups for c in silent if c != 0 and -c in unused}
    unexplained = {c: n for c, n in unused.items() if c not in explained}
    out = []
    for label, silent, n_chans in silent_groups:
        if not silent:
            continue
        what = f"lab {lab.name}: {label} {_plural('channel', len(silent))} {_join(silent)} saw no tags"
        mirrored = [-c for c in silent if -c in explained]
        if mirrored:
            out.append(f"{what}, but unused {_plural('channel', len(mirrored))} {_join(mirrored)} saw "
                       f"{sum(unused[c] for c in mirrored):,}; falling edges are negative channel numbers on "
                       "Swabian taggers: check the sign in the setup")
        elif len(silent) == n_chans and unexplained:
            busiest = _busiest(unexplained)
            out.append(f"{what}, but unused {_plural('channel', len(unexplained))} {_join(busiest)}"
                       f"{', ...' if len(busiest) < len(unexplained) else ''} saw {sum(unexplained.values()):,}; "
                       "check the channel numbers in the setup")
        # else: one silent detector among live ones is a detector problem, not a channel map one
    return out


def _unused_share_warnings(lab_name: str, total: int, unused: dict[int, int]) -> list[str]:
    n = sum(unused.values())
    if not total or n <= UNUSED_WARN_FRACTION * total:
        return []
    busiest = _busiest(unused)
    listed = ", ".join(f"{c}: {unused[c]:,}" for c in busiest) + (", ..." if len(busiest) < len(unused) else "")
    return [f"lab {lab_name}: {n:,} of {total:,} tags ({100 * n / total:.1f} %) are on channels the setup does not "
            f"use ({listed}); processing ignores them"]


def _busiest(unused: dict[int, int]) -> list[int]:
    return sorted(unused, key=lambda c: (-unused[c], c))[:LISTED_CHANNELS]


def _plural(word: str, n: int) -> str:
    return word if n == 1 else word + "s"


def _join(chans) -> str:
    return ", ".join(str(c) for c in chans)


__all__ = ["ChannelTally", "ChannelLine", "ChannelReport", "channel_report", "channel_roles"]
