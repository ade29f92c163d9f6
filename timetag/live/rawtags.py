"""The raw tag stream of a live run, kept beside its rounds so that every round can be re-derived offline.

:class:`RawTagSink` takes one lab's chunks (tags and lost-data events) as the live loop processes them and
appends them to ``<out>/raw/<lab>.dump`` (Swabian dump records, which carry the lost-data events; or timetag HDF5
tags, ``<lab>.h5``), rotating into ``<lab>.1.dump``, ``<lab>.2.dump``, ... once a file holds ``rotate_bytes``.
That is the numbering ``follow:`` continues and the order ``timetag process`` takes as one stream::

    timetag process out/raw/alice.dump out/raw/alice.1.dump out/raw/alice.2.dump --setup ... --lab alice

(list them in this order: a shell glob sorts ``alice.dump`` last and ``alice.10.dump`` before ``alice.2.dump``).

Custody, file by file: each is written as ``<name>.partial`` under its lock and renamed when it is rotated out or
the run ends, however it ends (the raw tags are the irreplaceable part of a run); a run refuses to start when any
file of a lab's series (or a partial one) is already there.  A file is rotated only when there is data for the
next one, so no empty file is left at the end; a run that saw no tags keeps no raw file.

Killed runs: dump records are written straight to the operating system (no buffer in the process, one write
per chunk), so after a SIGKILL ``<name>.dump.partial`` holds every chunk the run processed, as plain records:
rename it to ``<name>.dump`` (or read it as it is: the format is recognised from its records).  ``timetag
recover`` is for rounds files, not raw tags.  HDF5 raw files are flushed at the live loop's flush cadence; one
left by a killed run may need ``h5clear -s`` and can lose the chunks after its last flush (dump is the robust
choice for a campaign).

Disk full or another OS error while writing: the file is cut back to the last whole chunk (no torn record) and
:class:`~timetag.errors.StorageError` says which file and why; the sink's ``failure`` keeps it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..chunk import TagChunk
from ..custody import AtomicOutput, OutputLock
from ..errors import OutputError, StorageError, TimetagError
from ..formats.dump import RECORD_SIZE, encode_chunk
from ..custody.storage import storage_error

RAW_FOLDER = "raw"
RAW_FORMATS = {"dump": ".dump", "h5": ".h5"}
DEFAULT_ROTATE_BYTES = 1 << 30
#: the extension of the Swabian FileWriter's own files (see :class:`VendorRawFiles`)
VENDOR_EXTENSION = ".ttbin"
_REFUSAL = "choose another --out (a live run never replaces raw tag files)"


def series_name(lab: str, n: int, ext: str) -> str:
    """File ``n`` of a lab's series: ``alice.dump``, ``alice.1.dump``, ``alice.2.dump``, ..."""
    return f"{lab}{ext}" if n == 0 else f"{lab}.{n}{ext}"


def existing_series(folder: Path, lab: str, ext: str) -> list[Path]:
    """Files of a lab's series already in ``folder`` (whole or partial), in series order."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = re.compile(re.escape(lab) + r"(?:\.([1-9][0-9]*))?" + re.escape(ext) + r"(?:\.partial)?")
    found = [(int(m.group(1) or 0), p) for p in folder.iterdir() if (m := pattern.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def refuse_existing(folder: Path, lab: str, ext: str) -> None:
    old = existing_series(folder, lab, ext)
    if old:
        more = f" (and {len(old) - 1} more of its series)" if len(old) > 1 else ""
        raise OutputError(f"{old[0]}: exists{more}; {_REFUSAL}")


class _DumpFile:
    """Dump records appended with one unbuffered write per chunk: what was written is with the OS at once."""

    def __init__(self, path: Path, **_meta):
        self.path = path
        self._fh = open(path, "xb", buffering=0)  # 'x': never onto an existing file
        self.whole = 0  # bytes of the chunks written completely

    def write(self, chunk: TagChunk) -> None:
        data = encode_chunk(chunk).view("u1")
        done = 0
        try:
            while done < data.size:
                done += self._fh.write(data[done:])
        except BaseException:
            self._cut_back()
            raise
        self.whole += data.size

    def _cut_back(self) -> None:
        """Drop the records of a chunk written only in part (disk full, Ctrl-C): they were not processed."""
        try:
            os.ftruncate(self._fh.fileno(), self.whole)
            self._fh.seek(self.whole)
        except OSError:
            pass

    def flush(self) -> None:
        """Nothing held back in the process: the records are with the OS as soon as they are written."""

    def close(self) -> None:
        if not self._fh.closed:
            if os.fstat(self._fh.fileno()).st_size != self.whole:
                self._cut_back()
            self._fh.close()


class _H5File:
    """timetag HDF5 tags through the project's writer, flushed at the live loop's cadence."""

    def __init__(self, path: Path, *, lab: str, provenance: dict | None = None):
        from ..formats import writer_for

        self.path = path
        self._w = writer_for(path, "h5", lab=lab, provenance=provenance)

    def write(self, chunk: TagChunk) -> None:
        self._w.write(chunk)

    def flush(self) -> None:
        self._w.flush()

    def close(self) -> None:
        self._w.close()


_FILE_CLASSES = {"dump": _DumpFile, "h5": _H5File}


class RawTagSink:
    """One lab's raw tag stream -> ``<folder>/<lab>.<ext>``, ``<lab>.1.<ext>``, ... in custody.

    ``check()`` refuses a folder that holds any file of the series; ``open()`` starts the first file (locked,
    written as ``.partial``); ``write(chunk)`` appends, rotating first when the file is full; ``flush()``;
    ``close()`` renames the last file and returns the kept files under their final names; ``discard()`` (a run
    refused before it started) removes what ``open()`` made.  ``rotate_bytes`` counts 16 bytes a record (tags
    and lost-data events) in either format, so an HDF5 series has as many files, each smaller on disk.
    """

    def __init__(self, folder, lab: str, *, format: str = "dump", rotate_bytes: int = DEFAULT_ROTATE_BYTES,
                 inputs=(), provenance: dict | None = None):
        if format not in RAW_FORMATS:
            raise TimetagError(f"--raw-format must be one of {', '.join(RAW_FORMATS)} (got {format!r})")
        if not rotate_bytes >= RECORD_SIZE:  # 'not >=' also refuses nan
            raise TimetagError(f"raw tag files must be rotated after at least one record ({RECORD_SIZE} bytes; "
                               f"got {rotate_bytes})")
        self.folder = Path(folder)
        self.lab = lab
        self.format = format
        self.ext = RAW_FORMATS[format]
        self.rotate_bytes = int(rotate_bytes)
        self.inputs = list(inputs)
        self.provenance = provenance
        self.files: list[Path] = []  # final names of the files of this run, the current one last
        self.failure: StorageError | None = None
        self.tags = 0
        self.lost_events = 0
        self.bytes = 0  # all files, 16 bytes a record
        self._slot: AtomicOutput | None = None
        self._file = None
        self._file_bytes = 0

    @property
    def first(self) -> Path:
        return self.folder / series_name(self.lab, 0, self.ext)

    @property
    def partial(self) -> Path | None:
        """The file being written now (None before open and after close)."""
        return self._slot.partial if self._slot is not None and not self._slot.done else None

    def check(self) -> None:
        refuse_existing(self.folder, self.lab, self.ext)
        AtomicOutput(self.first, inputs=self.inputs, flag=_REFUSAL).check()

    def open(self) -> "RawTagSink":
        self.check()
        self._start(0)
        return self

    def _start(self, n: int) -> None:
        slot = AtomicOutput(self.folder / series_name(self.lab, n, self.ext), inputs=self.inputs, keep_partial=True,
                            flag=_REFUSAL, recover_hint="it holds raw tags of a killed run: rename it to keep them "
                                                        f"(drop '.partial'), or {_REFUSAL}").open()
        try:
            self._file = _FILE_CLASSES[self.format](slot.partial, lab=self.lab, provenance=self.provenance)
        except BaseException:
            slot.discard()
            raise
        self._slot, self._file_bytes = slot, 0
        self.files.append(slot.target)

    def write(self, chunk: TagChunk) -> None:
        n = len(chunk) + int(chunk.lost.size)
        if n == 0:
            return
        if self.failure is not None:
            raise self.failure
        try:
            if self._file_bytes >= self.rotate_bytes:
                self._rotate()
            self._file.write(chunk)
        except (OSError, RuntimeError) as exc:  # h5py reports a failed write as either
            self.failure = storage_error(self._slot.partial, exc)
            raise self.failure from None
        self._file_bytes += n * RECORD_SIZE
        self.bytes += n * RECORD_SIZE
        self.tags += len(chunk)
        self.lost_events += int(chunk.lost.size)

    def _rotate(self) -> None:
        self._file.close()
        self._slot.commit()
        self._start(len(self.files))

    def flush(self) -> None:
        if self.failure is not None or self._file is None:
            return
        try:
            self._file.flush()
        except (OSError, RuntimeError) as exc:
            self.failure = storage_error(self._slot.partial, exc)
            raise self.failure from None

    def close(self) -> list[Path]:
        """The current file renamed to its final name (whatever ended the run: the tags are kept); the files kept.

        A file that holds nothing (a run that saw no tags) is removed instead.
        """
        slot = self._slot
        if slot is None or slot.done:
            return list(self.files)
        try:
            self._file.close()
        except (OSError, RuntimeError) as exc:
            self.failure = self.failure or storage_error(slot.partial, exc)
        if self._file_bytes == 0:
            slot.partial.unlink(missing_ok=True)
            slot.discard()
            self.files.pop()
            _remove_if_empty(self.folder)
            return list(self.files)
        try:
            slot.commit()
        except OSError as exc:  # e.g. fsync after a full disk: still rename, the records in it are whole
            self.failure = self.failure or storage_error(slot.partial, exc)
            try:
                os.replace(slot.partial, slot.target)
            except OSError:
                self.files[-1] = slot.partial
            slot.discard()
        return list(self.files)

    def discard(self) -> None:
        """Undo ``open()`` of a run that was refused before any tag: no file, no lock left."""
        if self._slot is not None and not self._slot.done:
            if self._file is not None:
                self._file.close()
            self._slot.partial.unlink(missing_ok=True)
            self._slot.discard()
        self.files.clear()
        _remove_if_empty(self.folder)

    def status(self) -> dict:
        return {"files": len(self.files), "current": self.files[-1].name if self.files else None,
                "bytes": self.bytes, "tags": self.tags}


class VendorRawFiles:
    """The raw tags a source records itself (the Swabian FileWriter's ``<lab>.ttbin``, ``<lab>.1.ttbin``, ...).

    The runner holds the lock of ``<lab>.ttbin`` for the run, refuses a folder that already holds files of the
    series, and hands ``target`` to the source as its ``raw_path``; the vendor writes the files under their
    final names (no ``.partial`` there: the FileWriter names them itself).  ``close()`` lists what it wrote.
    """

    def __init__(self, folder, lab: str, *, inputs=()):
        self.folder = Path(folder)
        self.lab = lab
        self.ext = VENDOR_EXTENSION
        self.inputs = list(inputs)
        self.target = self.first = self.folder / series_name(lab, 0, self.ext)
        self.files: list[Path] = []
        self.failure: StorageError | None = None
        self._lock: OutputLock | None = None

    def check(self) -> None:
        refuse_existing(self.folder, self.lab, self.ext)
        AtomicOutput(self.target, inputs=self.inputs, flag=_REFUSAL).check()

    def open(self) -> "VendorRawFiles":
        self.check()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = OutputLock(self.target).acquire()
        return self

    def write(self, chunk: TagChunk) -> None:
        """The source writes its own files."""

    def flush(self) -> None:
        """The vendor's writer flushes itself."""

    def close(self) -> list[Path]:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
            self.files = existing_series(self.folder, self.lab, self.ext)
        return list(self.files)

    def discard(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        _remove_if_empty(self.folder)

    def status(self) -> dict:
        return {"files": None, "current": self.target.name, "bytes": None, "tags": None}


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty (another lab's files) or already gone
        pass
