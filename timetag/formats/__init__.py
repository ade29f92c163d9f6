"""Time-tag file formats: one module per format, and a registry that picks the right one.

>>> reader = open_tags("run.ptu")              # format sniffed from magic bytes, then extension
>>> for chunk in reader: ...                   # TagChunk: time int64 ps, channel int32, lost-data events

Every reader has ``format``, ``path``, ``records`` (raw records in the file), ``resolution_ps``, ``meta`` (header
information and counters; counters are complete once iteration has finished), ``__iter__`` and
``iter_chunks(start=0, stop=None)`` yielding :class:`~timetag.chunk.TagChunk` with bounded memory.

Read-only: ht3, qutag, ttbin (Swabian FileWriter, through the vendor's ``FileReader``: the ``swabian`` extra).
Writable formats: dump, h5, ptu (T2), text.  ``writer_for(path, format)`` returns a streaming writer with
``write(chunk)`` / ``close()`` (context manager).
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..chunk import DEFAULT_CHUNK_SIZE, OVERFLOW_END, TagChunk, concat
from ..errors import DataValidationError, FormatError
from ._common import check_bad_record_options, check_readable, overflow_event, read_head, write_new


@dataclass(frozen=True)
class FormatInfo:
    name: str
    module: str
    extensions: tuple
    magic: bytes | None
    writable: bool
    description: str


FORMATS: dict[str, FormatInfo] = {f.name: f for f in [
    FormatInfo("ptu", "ptu", (".ptu",), b"PQTTTR\0\0", True, "PicoQuant PTU (T2/T3: PicoHarp, HydraHarp, "
               "TimeHarp 260, MultiHarp, PicoHarp 330)"),
    FormatInfo("ht3", "ht3", (".ht3",), b"HydraHarp", False, "PicoQuant legacy HydraHarp HT3 (v1.0, v2.0)"),
    FormatInfo("qutag", "qutag", (".qutag",), b"\x87\xb3\x91\xfa", False, "qutools quTAG binary"),
    FormatInfo("ttbin", "ttbin", (".ttbin",), b"SITT", False, "Swabian Time Tagger FileWriter recording (read "
               'through the vendor\'s FileReader: pip install "timetag[swabian]")'),
    FormatInfo("h5", "h5tags", (".h5", ".hdf5", ".hdf"), b"\x89HDF\r\n\x1a\n", True,
               "timetag HDF5 tag file / Photon-HDF5"),
    FormatInfo("dump", "dump", (".dump", ".ttdump", ".bin"), None, True, "Swabian Time Tagger Dump (16-byte records)"),
    FormatInfo("text", "text", (".txt", ".csv", ".tsv", ".dat"), None, True, "text: 'channel time_ps' per line"),
]}


def _module(name: str):
    return importlib.import_module(f".{FORMATS[name].module}", __name__)


def supported() -> str:
    return ", ".join(f"{f.name} ({' '.join(f.extensions)})" for f in FORMATS.values())


def _check_format_name(fmt: str) -> str:
    if fmt not in FORMATS:
        raise FormatError(f"unknown format {fmt!r}; supported: {supported()}")
    return fmt


def sniff(path) -> str:
    """Name of the format of ``path``: magic bytes first, then extension, then dump plausibility."""
    p = check_readable(path)
    head = read_head(p)
    if head[:8] == FORMATS["ptu"].magic:
        return "ptu"
    if head[:4] == FORMATS["qutag"].magic:
        return "qutag"
    if head[:8] == FORMATS["h5"].magic:
        return "h5"
    if head[:4] == FORMATS["ttbin"].magic:
        return "ttbin"
    if head[:16].startswith(b"HydraHarp"):
        return "ht3"
    ext = p.suffix.lower()
    for f in FORMATS.values():
        if ext in f.extensions:
            if f.magic is not None:
                shown = head[:len(f.magic)]
                raise FormatError(f"extension {ext} says {f.name} but the file starts with {shown!r}, not the "
                                  f"{f.name} magic {f.magic!r} (wrong or damaged file)", path=p, offset=0)
            return f.name
    if _module("dump").sniff(p, head):
        return "dump"
    raise FormatError(f"cannot tell the format (no known magic bytes, extension {ext or '(none)'!r}); "
                      f"supported: {supported()}; pass the format explicitly", path=p)


def open_tags(path, chunk_size: int = DEFAULT_CHUNK_SIZE, format: str | None = None, check_order: bool | None = None,
              on_bad_record: str = "fail", max_jump_ps: int | None = None, **opts):
    """Open a tag file for chunked reading.

    ``check_order``: None = the format's default (dump, ttbin, qutag, text, h5: raise on time going backwards;
    ptu/ht3: no check, markers may be slightly out of order); False = pass through and count backward steps
    (readers that police order report them in ``meta``).  Extra ``opts`` go to the reader (e.g.
    ``tolerance_ps`` for quTAG).

    Bad records (dump, ttbin, qutag, text, h5; see :class:`~timetag.formats._common.OrderGuard` and
    :class:`~timetag.formats.dump.DumpDecoder`): a time going backwards, a negative time, a time more than
    ``max_jump_ps`` (default None: no limit) after the latest good tag, and in a dump file an unknown record type
    or a nonzero reserved byte.  ``on_bad_record='fail'`` (default): the reader yields the tags before the bad
    record, then raises an error naming the file, the record, its byte offset and the value.  ``'lost'``: the
    bad record is dropped, the gap from the latest good tag to the next one becomes a lost-data interval (the
    engine flags every round whose windows touch it) and reading goes on; ``meta['bad_records']`` counts them and
    ``meta['bad_record_examples']`` lists the first few with index, byte offset and reason.  PTU and HT3 readers
    make none of these checks.  Invalid option values raise :class:`~timetag.errors.SetupError`.
    """
    on_bad_record, max_jump_ps = check_bad_record_options(on_bad_record, max_jump_ps)
    p = check_readable(path)
    fmt = _check_format_name(format) if format else sniff(p)
    mod = _module(fmt)
    kw = dict(opts, on_bad_record=on_bad_record, max_jump_ps=max_jump_ps)
    if check_order is not None:
        kw["check_order"] = check_order
    if fmt == "dump":
        kw["check_order"] = True if check_order is None else check_order
        reader = mod.DumpReader(p, chunk_size, **kw)
    else:
        reader = mod.open_reader(p, chunk_size=chunk_size, **kw)
    if not hasattr(reader, "path"):
        reader.path = p
    return reader


def read_all(path, format: str | None = None, **opts) -> TagChunk:
    """The whole file as one chunk (small files, tests)."""
    return concat(open_tags(path, format=format, **opts))


def total_records(paths, chunk_size: int = DEFAULT_CHUNK_SIZE, format: str | None = None) -> int | None:
    """Records in all ``paths`` from their headers or sizes (None when a format cannot say without reading):
    the total of a progress bar."""
    total = 0
    for p in paths:
        n = getattr(open_tags(p, chunk_size=chunk_size, format=format), "records", None)
        if n is None:
            return None
        total += int(n)
    return total


def iter_stream(paths, chunk_size: int = DEFAULT_CHUNK_SIZE, format: str | None = None, readers: list | None = None,
                on_open=None, **opts) -> Iterator[TagChunk]:
    """Several files of one run as one stream; each file must start no earlier than the previous one ended.

    ``opts`` go to :func:`open_tags` (``on_bad_record``, ``max_jump_ps``, ...).  A file that ends inside a
    lost-data interval of bad records ('lost' mode) has it closed at the next file's first tag or event.
    ``readers``: a list that gets each file's reader as it is opened (their ``meta`` counts what they found);
    ``on_open(reader)``: called with each reader before it is read (e.g. :meth:`InputChecksums.attach`).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    offset = 0
    last = None
    prev_path = None
    close_interval = False
    for p in paths:
        first_in_file = True
        reader = open_tags(p, chunk_size=chunk_size, format=format, **opts)
        if readers is not None:
            readers.append(reader)
        if on_open is not None:
            on_open(reader)
        for chunk in reader:
            if first_in_file and len(chunk):
                if last is not None and chunk.time[0] < last:
                    raise DataValidationError(
                        f"file starts at {int(chunk.time[0])} ps, before the previous file {prev_path} ended "
                        f"({last} ps): files out of order or from different runs", path=p, index=0)
                first_in_file = False
            if close_interval and (len(chunk) or chunk.lost.size):
                chunk.lost = np.concatenate([_interval_end(chunk), chunk.lost])
                close_interval = False
            chunk.offset = offset
            offset += len(chunk)
            if len(chunk):
                last = int(chunk.time[-1])
            yield chunk
        close_interval = close_interval or bool(getattr(reader, "lost_interval_open", False))
        prev_path = p


def _interval_end(chunk: TagChunk) -> np.ndarray:
    """An OVERFLOW_END at the first tag or event of ``chunk``."""
    firsts = [int(x[0]) for x in (chunk.time, chunk.lost["time"]) if x.size]
    return overflow_event(OVERFLOW_END, min(firsts))


def writer_for(path, format: str | None = None, **meta):
    """A streaming writer (``write(chunk)``, ``close()``, context manager) for a writable format.

    The format defaults to the one the extension names.  ``meta`` goes to writers that store it (h5: lab,
    resolution, provenance; ptu: ``drop_lost``, ``comment``).
    """
    fmt = format or _format_from_extension(path)
    _check_format_name(fmt)
    if not FORMATS[fmt].writable:
        raise FormatError(f"format {fmt!r} can be read but not written; writable: "
                          + ", ".join(f.name for f in FORMATS.values() if f.writable), path=path)
    if fmt == "dump":
        return _module("dump").DumpWriter(path)
    return _module(fmt).open_writer(path, **meta)


def write_tags(path, chunks: Iterable[TagChunk] | TagChunk, format: str | None = None, *, force: bool = False,
               **meta) -> int:
    """Write a stream to a new file through custody (``force`` replaces an existing one once the new one is
    complete); returns the number of tags written."""
    if isinstance(chunks, TagChunk):
        chunks = [chunks]
    fmt = format or _format_from_extension(path)  # the partial file's own extension says nothing
    n = 0

    def write(partial):
        nonlocal n
        with writer_for(partial, fmt, **meta) as w:
            for c in chunks:
                w.write(c)
                n += len(c)

    write_new(path, write, force=force)
    return n


def _format_from_extension(path) -> str:
    ext = Path(path).suffix.lower()
    for f in FORMATS.values():
        if ext in f.extensions and f.writable:
            return f.name
        if ext in f.extensions:  # a known format, but one timetag only reads
            raise FormatError(f"extension {ext} is {f.name}, which timetag can read but not write; writable: "
                              + ", ".join(f.name for f in FORMATS.values() if f.writable), path=path)
    raise FormatError(f"cannot tell the output format from extension {ext or '(none)'!r}; pass --format "
                      "(writable: " + ", ".join(f.name for f in FORMATS.values() if f.writable) + ")", path=path)


__all__ = ["order_series", "series_position", "FORMATS", "FormatInfo", "sniff", "open_tags", "read_all", "iter_stream", "total_records", "writer_for", "write_tags",
           "supported"]


_SERIES_NUMBER = re.compile(r"(.*)\.([1-9][0-9]{0,5})")


def series_position(path) -> tuple[str, str, int]:
    """(base, extension, number) of a file in a rotated series: ``name.dump`` is 0, ``name.3.dump`` is 3 (the
    numbering of Swabian's FileWriter, of ``follow:`` and of live mode's raw tags)."""
    p = Path(path)
    stem, ext = p.stem, p.suffix
    m = _SERIES_NUMBER.fullmatch(stem)
    return (str(p.parent / m.group(1)), ext, int(m.group(2))) if m else (str(p.parent / stem), ext, 0)


def order_series(paths) -> list[Path]:
    """The files of ONE rotated series in recording order (``a.dump a.1.dump a.2.dump ...``), as a shell glob
    such as ``a*.dump`` lists them out of order; any other list is returned as given."""
    paths = [Path(p) for p in paths]
    keys = [series_position(p) for p in paths]
    if len(paths) < 2 or len({k[:2] for k in keys}) != 1 or len({k[2] for k in keys}) != len(keys):
        return paths
    return [p for _, p in sorted(zip((k[2] for k in keys), paths))]
