"""Plain text tags: one tag per line, ``channel time_ps`` (whitespace or comma separated); ``#`` starts a comment.

Lost-data events survive a round trip as special comment lines ``# lost <kind> <time_ps> <channel> <count>``
(kind: overflow_begin, overflow_end, missed, error).
"""
from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Iterator

import numpy as np

from ..chunk import DEFAULT_CHUNK_SIZE, LOST_DTYPE, LOST_KIND_NAMES, TagChunk, empty_lost
from ..errors import FormatError
from ._common import GuardedReader, OrderGuard, TagWriter, check_bad_record_options, check_readable

NAME = "text"
EXTENSIONS = (".txt", ".csv", ".tsv", ".dat")
_KIND_BY_NAME = {v: k for k, v in LOST_KIND_NAMES.items()}


def sniff(path, head: bytes) -> bool:
    return Path(path).suffix.lower() in EXTENSIONS


class TextReader(GuardedReader):
    format = NAME
    resolution_ps = 1

    def __init__(self, path, chunk_size: int = DEFAULT_CHUNK_SIZE, check_order: bool = True,
                 on_bad_record: str = "fail", max_jump_ps: int | None = None, **_ignored):
        self.path = check_readable(path)
        self.chunk_size = max(int(chunk_size), 1)
        self.check_order = check_order
        self.on_bad_record, self.max_jump_ps = check_bad_record_options(on_bad_record, max_jump_ps)
        self._guard = None
        self.records = None   # unknown until read (counting would mean a full pass)

    @property
    def meta(self) -> dict:
        return self.guard_meta()

    def __iter__(self) -> Iterator[TagChunk]:
        return self.iter_chunks()

    def iter_chunks(self, start: int = 0, stop: int | None = None) -> Iterator[TagChunk]:
        guard = self._guard = OrderGuard(self.path, check=self.check_order, on_bad_record=self.on_bad_record,
                                         max_jump_ps=self.max_jump_ps)   # index = tag number, not line
        n_tags = 0
        with open(self.path, "r", encoding="utf-8", errors="replace") as fh:
            lineno = 0
            while True:
                block = list(islice(fh, self.chunk_size))
                if not block:
                    break
                ch, t, lost = [], [], []
                for line in block:
                    lineno += 1
                    s = line.strip()
                    if not s:
                        continue
                    if s[0] == "#":
                        if s.startswith("# lost "):
                            lost.append(self._parse_lost(s, lineno))
                        continue
                    if "\x00" in s or "\ufffd" in s:  # (a NUL, or bytes that are no UTF-8)
                        raise FormatError(f"line {lineno}: binary data, not text: a text tag file has one 'channel "
                                          "time_ps' per line (is this a binary tag file? without --in-format the "
                                          "format is recognised from the file)", path=self.path)
                    parts = s.split("#", 1)[0].replace(",", " ").split()
                    if len(parts) < 2:
                        raise FormatError(f"line {lineno}: expected 'channel time_ps', got {s[:60]!r}", path=self.path)
                    try:
                        ch.append(int(parts[0]))
                        t.append(int(parts[1]))
                    except ValueError:
                        raise FormatError(f"line {lineno}: expected integers 'channel time_ps', got {s[:60]!r}",
                                          path=self.path) from None
                lost_arr = np.array(lost, LOST_DTYPE) if lost else empty_lost()
                chunk = TagChunk(np.array(t, np.int64), np.array(ch, np.int32), lost_arr, offset=n_tags)
                n_tags += len(chunk)
                yield from guard.checked(chunk)
        self.records = n_tags

    def _parse_lost(self, s: str, lineno: int):
        parts = s.split()
        try:
            kind = _KIND_BY_NAME[parts[2]]
            return (int(parts[3]), kind, int(parts[4]), int(parts[5]))
        except (KeyError, IndexError, ValueError):
            raise FormatError(f"line {lineno}: bad lost-data line {s[:80]!r} (expected '# lost <kind> <time_ps> "
                              f"<channel> <count>', kinds {', '.join(_KIND_BY_NAME)})", path=self.path) from None


class TextWriter(TagWriter):
    def __init__(self, path, **meta):
        self.path = Path(path)
        self._fh = open(self.path, "x", encoding="utf-8")
        self._fh.write("# timetag tags: channel time_ps\n")
        self.records = 0

    def write(self, chunk: TagChunk) -> None:
        lines = [f"{c} {t}" for c, t in zip(chunk.channel.tolist(), chunk.time.tolist())]
        if chunk.lost.size:
            # lost events go after the tags of equal time, like the dump encoding
            pos = np.searchsorted(chunk.time, chunk.lost["time"], side="right")
            for k, (p, ev) in enumerate(zip(pos.tolist(), chunk.lost.tolist())):
                lines.insert(p + k, f"# lost {LOST_KIND_NAMES[ev[1]]} {ev[0]} {ev[2]} {ev[3]}")
        if lines:
            self._fh.write("\n".join(lines) + "\n")
        self.records += len(chunk)

    def close(self) -> None:
        self._fh.close()



def open_reader(path, chunk_size: int = DEFAULT_CHUNK_SIZE, **opts) -> TextReader:
    return TextReader(path, chunk_size, **opts)


def open_writer(path, **meta) -> TextWriter:
    return TextWriter(path, **meta)
