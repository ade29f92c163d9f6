"""Input checksums computed on the bytes the readers map anyway, in file order or not.

A whole-file hash (``xxh3_128``, ``sha256``, ``blake2b``) must see the bytes in order: one reader from the start of
the file can feed it (:class:`SequentialDigest`), workers that map a file's partitions out of order cannot.  The
default, ``xxh3_128_1mib`` (:class:`BlockDigest`), is the xxh3-128 of the file's 1 MiB blocks' xxh3-128 digests
(16 bytes each, as ``digest()`` gives them, in block order; the last block may be shorter): every block is hashed by
whoever maps it whole, so the threads of ``process --threads`` hash their own partitions and no byte is read twice,
except the block around each cut, which neither worker sees whole and which is read again at the end.

Recomputing it by hand::

    import xxhash
    leaves = b""
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            leaves += xxhash.xxh3_128_digest(block)
    print("xxh3_128_1mib:" + xxhash.xxh3_128_hexdigest(leaves))
"""
from __future__ import annotations

import hashlib
import os
import threading

import xxhash

from .constants import BLOCK_CHECKSUM, CHECKSUM_BLOCK_BYTES, CHECKSUMS, DEFAULT_CHECKSUM
from .errors import SetupError

__all__ = ["BlockDigest", "SequentialDigest", "file_checksum", "new_digest"]


def _hasher(algo: str):
    if algo == "xxh3_128":
        return xxhash.xxh3_128()
    if algo in ("sha256", "blake2b"):
        return hashlib.new(algo)
    raise SetupError(f"unknown checksum {algo!r} (known: {', '.join(CHECKSUMS)})", key="checksum")


def check_algorithm(algo: str) -> None:
    """Refuse an unknown algorithm (before a run starts)."""
    if algo != BLOCK_CHECKSUM:
        _hasher(algo)


def new_digest(algo: str, size: int):
    """The digest of one input of ``size`` bytes: :class:`BlockDigest` or :class:`SequentialDigest`."""
    return BlockDigest(size) if algo == BLOCK_CHECKSUM else SequentialDigest(algo, size)


def file_checksum(path, algo: str = DEFAULT_CHECKSUM, stop: threading.Event | None = None) -> str | None:
    """``algo:hexdigest`` of a file read now, or None when ``stop`` was set before the end."""
    digest = new_digest(algo, os.stat(path).st_size)
    return digest.result(path, stop)


def _read_into(fd: int, buf: memoryview, offset: int) -> int:
    """Fill ``buf`` from ``offset`` (short reads retried); the bytes read (fewer only at the end of the file)."""
    n = 0
    while n < len(buf):
        got = os.preadv(fd, [buf[n:]], offset + n)
        if not got:
            break
        n += got
    return n


class SequentialDigest:
    """A whole-file hash fed in file order from byte 0 (pieces that do not continue it are ignored); a file not fed
    to its end is read again by :meth:`result`."""

    def __init__(self, algo: str, size: int):
        self.algo, self.size = algo, int(size)
        self._h = _hasher(algo)
        self._fed = 0
        self._lock = threading.Lock()

    def feeder(self) -> "SequentialDigest":
        return self

    def update_at(self, offset: int, data) -> None:
        with self._lock:
            if offset == self._fed:
                self._h.update(data)
                self._fed += memoryview(data).nbytes

    @property
    def complete(self) -> bool:
        return self._fed == self.size

    def result(self, path, stop: threading.Event | None = None) -> str | None:
        if self.complete:
            return f"{self.algo}:{self._h.hexdigest()}"
        h = _hasher(self.algo)
        buf = memoryview(bytearray(CHECKSUM_BLOCK_BYTES * 4))
        with open(path, "rb", buffering=0) as fh:
            offset = 0
            while True:
                if stop is not None and stop.is_set():
                    return None
                n = _read_into(fh.fileno(), buf, offset)
                h.update(buf[:n])
                offset += n
                if n < len(buf):
                    break
        return f"{self.algo}:{h.hexdigest()}"


class BlockDigest:
    """``xxh3_128_1mib`` of one file: block digests from any number of :meth:`feeder` s (one per reader, each fed
    in its own order), the blocks no feeder saw whole read by :meth:`result`."""

    algo = BLOCK_CHECKSUM

    def __init__(self, size: int):
        self.size = int(size)
        self.blocks = -(-self.size // CHECKSUM_BLOCK_BYTES)
        self.leaves: dict[int, bytes] = {}   # block -> digest; distinct keys per feeder, so threads may share it

    def feeder(self) -> "_BlockFeeder":
        return _BlockFeeder(self)

    def missing(self) -> list[int]:
        return [k for k in range(self.blocks) if k not in self.leaves]

    @property
    def complete(self) -> bool:
        return len(self.leaves) == self.blocks

    def result(self, path, stop: threading.Event | None = None) -> str | None:
        missing = self.missing()
        if missing:
            buf = memoryview(bytearray(CHECKSUM_BLOCK_BYTES))
            with open(path, "rb", buffering=0) as fh:
                for k in missing:
                    if stop is not None and stop.is_set():
                        return None
                    n = _read_into(fh.fileno(), buf, k * CHECKSUM_BLOCK_BYTES)
                    self.leaves[k] = xxhash.xxh3_128_digest(buf[:n])
        root = xxhash.xxh3_128_hexdigest(b"".join(self.leaves[k] for k in range(self.blocks)))
        return f"{self.algo}:{root}"


class _BlockFeeder:
    """One reader's view of a :class:`BlockDigest`: a block is hashed when this feeder gets it whole, in pieces that
    follow each other; a block it enters in the middle is left to the others (or to the final read)."""

    def __init__(self, digest: BlockDigest):
        self.digest = digest
        self._state = None      # the block begun and not yet finished: (block, hasher, next offset)

    def update_at(self, offset: int, data) -> None:
        view = memoryview(data).cast("B")
        B, size, leaves = CHECKSUM_BLOCK_BYTES, self.digest.size, self.digest.leaves
        pos, end = int(offset), int(offset) + view.nbytes
        if self._state is not None:
            k, h, nxt = self._state
            self._state = None
            if nxt == pos:
                stop = min((k + 1) * B, size, end)
                h.update(view[:stop - pos])
                if stop == min((k + 1) * B, size):
                    leaves[k] = h.digest()
                else:
                    self._state = (k, h, stop)
                pos = stop
        if pos % B:
            pos = min(end, (pos // B + 1) * B)
        while pos < end:
            k = pos // B
            stop = min((k + 1) * B, size)
            if end >= stop:
                leaves[k] = xxhash.xxh3_128_digest(view[pos - offset:stop - offset])
                pos = stop
            else:
                h = xxhash.xxh3_128()
                h.update(view[pos - offset:])
                self._state = (k, h, end)
                pos = end
