"""Atomic outputs: written under a temporary name beside the target and renamed only when complete.

``with AtomicOutput(target, inputs=..., force=...) as out: write(out.partial)`` checks everything before a byte is
written (the target is not an input, not a folder, not already there unless ``force``, no other writer), takes
the output's lock, writes ``<target>.partial`` and renames it over the target when the block ends without an
error.  An existing target is therefore never truncated: until the rename, readers see the old file whole.  On an
error the partial file is removed, or, for outputs whose partial content is worth keeping (a live run's rounds),
left for ``timetag recover``.

A reserve file of a few MiB is held beside HDF5 outputs while they are written: when the disk fills up, it is
deleted, which gives HDF5 the room to close the file cleanly (HDF5 crashes at exit when it cannot write its
metadata), so a full disk ends in one line and a file holding only rows that were really written.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..errors import OutputError
from .lock import OutputLock

PARTIAL_SUFFIX = ".partial"
#: Disk space held back while an HDF5 output is written (``TIMETAG_DISK_RESERVE`` bytes overrides it).
DEFAULT_RESERVE_BYTES = int(os.environ.get("TIMETAG_DISK_RESERVE", 4 << 20))


def partial_path(target, suffix: str = PARTIAL_SUFFIX) -> Path:
    target = Path(target)
    if not target.name:    # '', '.', '/': nothing to name the partial file after
        raise OutputError(f"output {str(target)!r} names no file (empty, '.' or a root folder); give a file name "
                          "for the output")
    return target.with_name(target.name + suffix)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_not_input(target, inputs: Iterable, partial: Path | None = None) -> None:
    """Refuse a target that is one of the inputs (also through links or another spelling of the path)."""
    target = Path(target)
    partial = partial_path(target) if partial is None else partial
    for inp in inputs:
        inp = Path(inp)
        if _same_file(target, inp) or _same_file(partial, inp):
            raise OutputError(f"{target}: this is an input file ({inp}); an input is never overwritten: "
                              "choose another output name")


def check_target(target, *, inputs: Iterable = (), force: bool = False, flag: str = "--force",
                 partial: Path | None = None) -> Path:
    """The checks that need no lock: not an input, not a folder, not existing (unless ``force``)."""
    target = Path(target)
    check_not_input(target, inputs, partial)
    if target.is_dir():
        raise OutputError(f"{target}: is a folder; give a file name for the output")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{target}: {parent} is a file, not a folder")
            break
    if target.exists() and not force:
        if not flag.startswith("-"):  # no option replaces this output: the flag text is the advice
            raise OutputError(f"{target}: exists; {flag}")
        raise OutputError(f"{target}: exists; pass {flag} to replace it (it stays untouched until the new one "
                          "is complete)")
    return target


def check_distinct(targets: Iterable) -> None:
    """Refuse outputs of one run where one is named twice, or one would be the folder of another (``--out x
    --plots x``): a file and a folder of one name cannot both be made."""
    seen: list[tuple[Path, Path]] = []
    for t in map(Path, targets):
        r = t.resolve()
        for u, q in seen:
            if r == q:
                raise OutputError(f"{t}: named twice as an output ({u}); give each output its own name")
            if q in r.parents or r in q.parents:
                outer, inner = (u, t) if q in r.parents else (t, u)
                raise OutputError(f"{outer}: asked for both as an output file and as the folder of {inner}; "
                                  "give them different names")
        seen.append((t, r))


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicOutput:
    """One output file: checks, lock, ``<target>.partial`` while written, rename when complete.

    ``keep_partial``: on failure leave the partial file (with what it holds) instead of deleting it.
    ``reserve_bytes``: disk space held in reserve while writing (see the module docstring); 0 for small files.
    ``flag``: the option that allows replacing an existing target, or (not starting with '-') the advice to give
    where no option does.
    ``recover_hint``: said when a stale partial file from a killed writer is found.
    ``suffix``: of the partial file's name (recovery writes beside the ``.partial`` file it reads).
    """

    def __init__(self, target, *, inputs: Iterable = (), force: bool = False, keep_partial: bool = False,
                 reserve_bytes: int = 0, flag: str = "--force", recover_hint: str = "",
                 suffix: str = PARTIAL_SUFFIX):
        self.target = Path(target)
        self.partial = partial_path(self.target, suffix)
        self.inputs = [Path(p) for p in inputs]
        self.force = force
        self.keep_partial = keep_partial
        self.reserve_bytes = int(reserve_bytes)
        self.flag = flag
        self.recover_hint = recover_hint
        self.lock = OutputLock(self.target)
        self._reserve: Path | None = None
        self.done = False

    # -- opening --------------------------------------------------------
    def check(self) -> None:
        check_target(self.target, inputs=self.inputs, force=self.force, flag=self.flag, partial=self.partial)

    def open(self) -> "AtomicOutput":
        self.check()
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()
        try:
            # checked again under the lock: another writer may have finished meanwhile
            self.check()
            self._clear_stale_partial()
            self._take_reserve()
        except BaseException:
            self.lock.release()
            raise
        return self

    def _clear_stale_partial(self) -> None:
        if not self.partial.exists():
            return
        if not self.force:
            hint = self.recover_hint or (f"delete it or pass {self.flag} to discard it" if self.flag.startswith("-")
                                         else "delete it")
            raise OutputError(f"{self.partial}: left by an earlier run that did not finish; {hint}")
        self.partial.unlink()

    def _take_reserve(self) -> None:
        if self.reserve_bytes <= 0:
            return
        path = self.target.with_name(f".{self.target.name}.reserve")
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        try:
            try:
                os.posix_fallocate(fd, 0, self.reserve_bytes)
            except OSError as exc:
                os.close(fd)
                fd = -1
                path.unlink(missing_ok=True)
                raise OutputError(f"{self.target.parent}: cannot reserve {self.reserve_bytes >> 20} MiB to be sure "
                                  f"the output can be completed: {exc.strerror}") from None
        finally:
            if fd >= 0:
                os.close(fd)
        self._reserve = path

    def release_reserve(self) -> bool:
        """Free the reserved space (the disk is full and the writer needs room to close); True if there was one."""
        if self._reserve is None:
            return False
        self._reserve.unlink(missing_ok=True)
        self._reserve = None
        return True

    # -- ending ---------------------------------------------------------
    def commit(self) -> Path:
        """The partial file is complete: make it the target (atomic rename, then the folder entry synced)."""
        fsync_path(self.partial)
        os.replace(self.partial, self.target)
        _fsync_dir(self.target.parent)
        self._end()
        return self.target

    def keep_incomplete(self) -> Path:
        """An incomplete but self-describing file: under the target's name if there is no target yet, else left
        as the partial file beside the good old target (never replacing a complete file by an incomplete one)."""
        if self.target.exists():
            where = self.partial
        else:
            fsync_path(self.partial)
            os.replace(self.partial, self.target)
            _fsync_dir(self.target.parent)
            where = self.target
        self._end()
        return where

    def discard(self) -> None:
        if not self.keep_partial:
            self.partial.unlink(missing_ok=True)
        self._end()

    def _end(self) -> None:
        self.release_reserve()
        self.lock.release()
        self.done = True

    def __enter__(self):
        return self.open()

    def __exit__(self, exc_type, exc, tb):
        if self.done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicOutputs:
    """Several outputs that succeed or fail together (``simulate``'s raw files, setup and truth)."""

    def __init__(self, targets, **kw):
        self.outputs = [AtomicOutput(t, **kw) for t in targets]

    def __enter__(self):
        check_distinct(o.target for o in self.outputs)
        for o in self.outputs:  # every check before the first lock: nothing is left held by a refused run
            o.check()
        opened = []
        try:
            for o in self.outputs:
                opened.append(o.open())
        except BaseException:
            for o in opened:
                o.discard()
            raise
        return self

    def __getitem__(self, i) -> AtomicOutput:
        return self.outputs[i]

    def __exit__(self, exc_type, exc, tb):
        try:
            for o in self.outputs:
                if o.done:
                    continue
                if exc_type is None:
                    o.commit()
                else:
                    o.discard()
        except BaseException:
            for o in self.outputs:  # a commit failed: the outputs not yet renamed go, and no lock stays held
                if not o.done:
                    o.discard()
            raise
