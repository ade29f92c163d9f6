"""One writer per output: an exclusive lock that names its holder.

The lock is an OS file lock (``flock`` through the ``filelock`` package) on a hidden file beside the output, so
it is released by the kernel when the holder dies, even by SIGKILL, and it does not depend on HDF5's own file
locking (which SWMR writing turns off).  After taking the lock the holder writes who it is into the lock file;
a second writer that finds the lock taken reads that back for its error message.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import sys
from pathlib import Path

import filelock

from ..errors import OutputError


def lock_path(target) -> Path:
    target = Path(target)
    return target.with_name(f".{target.name}.lock")


def _holder_record() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(Path(a).name if i == 0 else a
                                                                                  for i, a in enumerate(sys.argv)),
            "since": _dt.datetime.now().isoformat(timespec="seconds")}


def describe_holder(path: Path) -> str:
    try:
        rec = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    if not rec:
        return "another process"
    return f"pid {rec.get('pid')} on {rec.get('host')} ({rec.get('command', '?')!s}, since {rec.get('since')})"


class OutputLock:
    """Exclusive, non-blocking lock of one output path; a context manager."""

    def __init__(self, target):
        self.target = Path(target)
        self.path = lock_path(self.target)
        self._lock = filelock.FileLock(str(self.path), timeout=0)

    def acquire(self) -> "OutputLock":
        try:
            self._lock.acquire()
        except filelock.Timeout:
            self._raise_if_uncreatable()
            raise OutputError(f"{self.target}: another writer is writing it: {describe_holder(self.path)}; "
                              "wait for it to finish or choose another output") from None
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(_holder_record()).encode())
        finally:
            os.close(fd)
        return self

    def _raise_if_uncreatable(self) -> None:
        """filelock reports a lock file it cannot create (no such folder, /proc, a read-only disk) as taken by
        another writer; creating it ourselves gives the OSError that says why (exit 1, not a phantom writer)."""
        if self.path.exists():
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot create its lock file {self.path.name}: {exc.strerror}",
                          str(self.target)) from None
        os.close(fd)
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        """Release, removing the lock file first (a writer that opened it meanwhile sees it unlinked and retries,
        which filelock does), so that no lock files pile up beside the outputs."""
        if self._lock.is_locked:
            self.path.unlink(missing_ok=True)
            self._lock.release()

    @property
    def held(self) -> bool:
        return bool(self._lock.is_locked)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
