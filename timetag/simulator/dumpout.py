"""The simulator's dump files: records encoded into reused buffers, written on a writer thread, straight to the
disk where the file system allows it.

Byte-identical to :class:`timetag.formats.dump.DumpWriter` (same record encoder).  The files are synced to
disk when complete (custody), so the bytes have to reach the disk either way: written through the page cache,
each byte is copied into it (the larger part of ``dd``'s time) and then written back: CPU work on the cores
the simulation's own threads keep busy.  With ``O_DIRECT`` the device reads
the buffers themselves: no copy, no write-back, and the final fsync has nothing left to do.  Direct writes need
an aligned buffer address, length and file offset, so each write ends at the last ``ALIGN`` boundary and the
rest of the chunk's bytes lead the next buffer; the file's last partial block is written through the page
cache.  Where the file system refuses direct I/O (tmpfs, some network file systems) the writes go through the
page cache, with the write-back of every ``WRITEBACK_BYTES`` started as it is written.

The price: the files are not left in the page cache, so a command that reads them next reads them from the disk
(see docs/performance.md for what that costs ``process`` on a freshly simulated run).
"""
from __future__ import annotations

import errno
import os

import numpy as np

from .. import interrupts
from ..chunk import ERROR, MISSED, OVERFLOW_BEGIN, OVERFLOW_END
from ..formats.dump import TYPE_ERROR, TYPE_MISSED, TYPE_OVERFLOW_BEGIN, TYPE_OVERFLOW_END
from ..formats.dump import encode_records as encode_dump
from .generate import single_worker

try:
    import fcntl
except ImportError:  # not on Windows: buffered writes only
    fcntl = None

ALIGN = 4096  # the logical block size of common devices is 512 or 4096; a larger one refuses and falls back
RECORD_BYTES = 16
# buffers in rotation: a direct write waits for the device, so a few are in flight while the next is encoded
N_BUFFERS = 4
WRITEBACK_BYTES = 64 << 20

_KIND_TO_TYPE = np.zeros(256, np.uint8)
_KIND_TO_TYPE[[ERROR, OVERFLOW_BEGIN, OVERFLOW_END, MISSED]] = [TYPE_ERROR, TYPE_OVERFLOW_BEGIN, TYPE_OVERFLOW_END,
                                                                 TYPE_MISSED]


def set_direct(fd: int, on: bool) -> bool:
    """Switch ``O_DIRECT`` of ``fd`` on or off; returns whether it is now on (False where unsupported)."""
    flag = getattr(os, "O_DIRECT", 0)
    if fcntl is None or not flag:
        return False
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | flag) if on else (flags & ~flag))
    except OSError:
        return False
    return on


def _aligned_bytes(nbytes: int) -> np.ndarray:
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + nbytes]


class DumpOut:
    """``write(chunk)`` encodes the chunk's records (tags and lost events in time order) and hands their bytes
    to the writer thread; a buffer is reused only once its write has returned, and a write error is raised (as
    the OSError it is) by a later ``write`` or by ``close``."""

    def __init__(self, path, direct: bool = True):
        # the custody partial of the target (AtomicOutputs in simulate): created here, never an existing file
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        self._fd = os.open(path, flags, 0o666)
        self.direct = set_direct(self._fd, True) if direct else False
        self._bufs = [np.empty(0, np.uint8) for _ in range(N_BUFFERS)]
        self._pending = [None] * N_BUFFERS
        self._i = 0
        self._tail = np.empty(0, np.uint8)  # encoded bytes after the last aligned write: they lead the next buffer
        self._written = self._kicked = 0  # bytes written; bytes whose write-back has been started (buffered)

    def write(self, chunk) -> None:
        i = self._i
        self._i = (i + 1) % N_BUFFERS
        self._wait(i)
        carry = self._tail.size
        need = carry + RECORD_BYTES * (len(chunk) + chunk.lost.size)
        if self._bufs[i].size < need:
            self._bufs[i] = _aligned_bytes(-(-(int(need * 1.25) + 16 * ALIGN) // ALIGN) * ALIGN)
        buf = self._bufs[i]
        buf[:carry] = self._tail
        lost = chunk.lost
        k = encode_dump(chunk.time, chunk.channel, lost["time"].copy(), _KIND_TO_TYPE[lost["kind"]],
                        lost["channel"].copy(), lost["count"].copy(), buf[carry:].view(np.uint64).reshape(-1, 2))
        end = carry + RECORD_BYTES * k
        cut = end - end % ALIGN if self.direct else end
        # (read by the next write while the writer thread may still be writing buf[:cut]: disjoint bytes)
        self._tail = buf[cut:end]
        if cut:
            self._pending[i] = single_worker("timetag-sim-write").submit(self._write, buf[:cut])

    def _write(self, data: np.ndarray) -> None:
        view = memoryview(data)
        while view.nbytes:
            try:
                n = self._os_write(view)
            except OSError as e:
                if e.errno != errno.EINVAL or not self.direct:
                    raise
                # the device or file system refused the direct write (alignment, support): write buffered
                self.direct = set_direct(self._fd, False)
                continue
            view = view[n:]
            self._written += n
        if not self.direct and _start_writeback is not None and self._written - self._kicked >= WRITEBACK_BYTES:
            _start_writeback(self._fd, self._kicked, self._written - self._kicked)
            self._kicked = self._written

    def _os_write(self, view) -> int:
        return os.write(self._fd, view)

    def _wait(self, i) -> None:
        f, self._pending[i] = self._pending[i], None
        if f is not None:
            interrupts.result(f)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            # oldest first: the writer thread runs them in submission order
            for j in range(N_BUFFERS):
                self._wait((self._i + j) % N_BUFFERS)
            if self._tail.size:  # the file's last partial block
                self.direct = set_direct(self._fd, False)
                self._write(self._tail)
                self._tail = self._tail[:0]
        finally:
            for f in self._pending:
                if f is not None:
                    interrupts.wait_quietly(f)  # let a write still in flight return before its file is closed
            self._pending = [None] * N_BUFFERS
            fd, self._fd = self._fd, -1
            os.close(fd)


def _writeback_starter():
    """Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``: start the write-back of a range, do not wait.  Left to
    the kernel, the write-back of a long run starts late (the dirty-page threshold is a share of the RAM) and
    the final fsync waits for gigabytes.  None elsewhere (the final fsync does it all)."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    write = 2  # SYNC_FILE_RANGE_WRITE

    def start(fd: int, offset: int, nbytes: int) -> None:
        fn(fd, offset, nbytes, write)  # advisory: a failure only leaves more for the final fsync

    return start


_start_writeback = _writeback_starter()
