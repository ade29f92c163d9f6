"""Provenance recorded in every output file: software version, setup hash, inputs and checksums."""
from __future__ import annotations

import datetime as _dt
import json
import platform
import threading
from pathlib import Path

import numpy as np

from ._version import __version__
from .checksums import BlockDigest, check_algorithm, file_checksum, new_digest
from .constants import CHECKSUMS, DEFAULT_CHECKSUM  # noqa: F401  (callers import them from here too)


class BackgroundChecksums:
    """Checksums of input files computed on a second core while they are processed.

    Hashing a week of recordings costs as much CPU as a third of the processing; reading
    and hashing release the GIL, so a thread overlaps it with the engine.  A daemon
    thread with a stop flag: an interrupted run does not wait for a terabyte to be hashed.
    """

    def __init__(self, paths, algo: str = DEFAULT_CHECKSUM):
        self.paths = [Path(p) for p in paths]
        self.algo = algo
        check_algorithm(algo)  # an unknown algorithm is refused before the run starts
        self._stop = threading.Event()
        self._sums: list[str | None] = [None] * len(self.paths)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="timetag-checksums", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for i, p in enumerate(self.paths):
                self._sums[i] = file_checksum(p, self.algo, stop=self._stop)
        except BaseException as exc:  # reported by result()
            self._error = exc

    def result(self) -> list[str]:
        """Wait for every checksum; re-raises what went wrong in the thread."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        if any(c is None for c in self._sums):
            raise RuntimeError("checksums were cancelled")
        return list(self._sums)

    def cancel(self) -> None:
        self._stop.set()


class InputChecksums:
    """Checksums of a run's inputs, computed on the bytes the readers read anyway where they can.

    A reader that offers ``hash_while_reading(feeder)`` (the dump reader: its records are the file's bytes) feeds
    every byte it maps, with its offset, to a feeder of the input's digest (:mod:`timetag.checksums`): no second
    read, and the hashing runs on the reading threads, not beside the engine.  The other inputs are hashed by a
    :class:`BackgroundChecksums` thread.  One reader per input from its start (:meth:`attach`, called with each
    reader as it is opened, ``iter_stream(on_open=...)``), or any number of readers of parts of an input
    (:meth:`feeder_for`, or :meth:`join_blocks` for parts hashed in other processes: only for the block checksum,
    which takes the parts in any order).  :meth:`result` gives
    ``algo:hexdigest`` per input, reading again only what no reader hashed (the blocks around partition cuts, or
    the rest of a file whose reader stopped early, which ends the run anyway).
    """

    def __init__(self, paths, algo: str = DEFAULT_CHECKSUM, in_stream=None):
        self.paths = [Path(p) for p in paths]
        self.algo = algo
        check_algorithm(algo)
        own = [bool(in_stream(p)) if in_stream is not None else False for p in self.paths]
        self._digests = {i: new_digest(algo, p.stat().st_size) for i, (p, o) in enumerate(zip(self.paths, own)) if o}
        self._opened = 0
        rest = [p for i, p in enumerate(self.paths) if i not in self._digests]
        self._rest = BackgroundChecksums(rest, algo) if rest else None

    def attach(self, reader) -> None:
        """The next input's reader (called in input order), which reads it from its start."""
        i = self._opened
        self._opened += 1
        if i in self._digests and hasattr(reader, "hash_while_reading"):
            reader.hash_while_reading(self._digests[i].feeder())

    def feeder_for(self, path):
        """A feeder for a reader of a part of ``path`` (None: that input is not hashed by its readers)."""
        digest = self._block_digest(path)
        return digest.feeder() if digest is not None else None

    def join_blocks(self, path, leaves: dict) -> None:
        """Block digests of ``path`` hashed elsewhere (by Dask workers, on the parts they read)."""
        digest = self._block_digest(path)
        if digest is not None:
            digest.leaves.update(leaves)

    def _block_digest(self, path) -> BlockDigest | None:
        for i, p in enumerate(self.paths):
            if p == Path(path) and isinstance(self._digests.get(i), BlockDigest):
                return self._digests[i]
        return None

    def result(self) -> list[str]:
        rest = iter(self._rest.result()) if self._rest is not None else iter(())
        return [self._digests[i].result(p) if i in self._digests else next(rest) for i, p in enumerate(self.paths)]

    def cancel(self) -> None:
        if self._rest is not None:
            self._rest.cancel()


def describe_inputs(paths, checksum: bool | str = True) -> list[dict]:
    """Name, path and size of each input; with ``checksum`` (True or an algorithm), its checksum (computed now)."""
    out = []
    for p in paths:
        p = Path(p)
        entry = {"name": p.name, "path": str(p.resolve()), "size": p.stat().st_size}
        if checksum:
            entry["checksum"] = file_checksum(p, DEFAULT_CHECKSUM if checksum is True else checksum)
        out.append(entry)
    return out


def provenance(inputs=(), setup=None, checksum: bool = True, **extra) -> dict:
    """A JSON-serialisable provenance record (``checksum=False``: inputs without checksums,
    for a caller that adds them later)."""
    rec = {
        "software": "timetag",
        "version": __version__,
        "python": platform.python_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "inputs": describe_inputs(inputs, checksum=checksum) if inputs else [],
    }
    if setup is not None:
        rec["setup_hash"] = setup.hash
        if getattr(setup, "run", ""):
            rec["run"] = setup.run
        if hasattr(setup, "dumps"):
            rec["setup"] = setup.dumps()  # the whole text: a rounds file says how it was made
    rec.update(extra)
    return rec


def write_h5_provenance(h5obj, prov: dict) -> None:
    """Store provenance as attributes of an HDF5 file/group (JSON for nested parts)."""
    h5obj.attrs["software_version"] = prov.get("version", __version__)
    if "setup_hash" in prov:
        h5obj.attrs["setup_hash"] = prov["setup_hash"]
    if prov.get("run"):
        h5obj.attrs["run"] = prov["run"]
    if prov.get("setup"):
        h5obj.attrs["setup"] = prov["setup"]
    h5obj.attrs["provenance"] = json.dumps({k: v for k, v in prov.items() if k != "setup"})


def read_h5_provenance(h5obj) -> dict:
    raw = h5obj.attrs.get("provenance")
    if raw is None:
        return {}
    if isinstance(raw, bytes):
        raw = raw.decode()
    return json.loads(raw)


def jsonable(obj, max_array: int | None = None):
    """Plain JSON types from nested dicts/lists/numpy values and typed results (``to_json()``); arrays longer than
    ``max_array`` are elided."""
    if hasattr(obj, "to_json"):
        return jsonable(obj.to_json(), max_array)
    if isinstance(obj, dict):
        return {str(k): jsonable(v, max_array) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, max_array) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist() if max_array is None or obj.size <= max_array else f"array{obj.shape}"
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
