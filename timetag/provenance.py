"""Provenance recorded in every output file: software version, setup hash, inputs and checksums."""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import threading
from pathlib import Path

import numpy as np

from ._version import __version__


def file_checksum(path, algo: str = "sha256", block: int = 1 << 22, stop: threading.Event | None = None) -> str | None:
    """``algo:hexdigest`` of a file, or None when ``stop`` was set before the end."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        while True:
            if stop is not None and stop.is_set():
                return None
            b = fh.read(block)
            if not b:
                break
            h.update(b)
    return f"{algo}:{h.hexdigest()}"


class BackgroundChecksums:
    """Checksums of input files computed on a second core while they are processed.

    Hashing a week of recordings costs as much CPU as a third of the processing; reading
    and hashing release the GIL, so a thread overlaps it with the engine.  A daemon
    thread with a stop flag: an interrupted run does not wait for a terabyte to be hashed.
    """

    def __init__(self, paths):
        self.paths = [Path(p) for p in paths]
        self._stop = threading.Event()
        self._sums: list[str | None] = [None] * len(self.paths)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="timetag-checksums", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for i, p in enumerate(self.paths):
                self._sums[i] = file_checksum(p, stop=self._stop)
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


def describe_inputs(paths, checksum: bool = True) -> list[dict]:
    """Name, path and size of each input; with ``checksum``, its checksum (computed now)."""
    out = []
    for p in paths:
        p = Path(p)
        entry = {"name": p.name, "path": str(p.resolve()), "size": p.stat().st_size}
        if checksum:
            entry["checksum"] = file_checksum(p)
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
    rec.update(extra)
    return rec


def write_h5_provenance(h5obj, prov: dict) -> None:
    """Store provenance as attributes of an HDF5 file/group (JSON for nested parts)."""
    h5obj.attrs["software_version"] = prov.get("version", __version__)
    if "setup_hash" in prov:
        h5obj.attrs["setup_hash"] = prov["setup_hash"]
    if prov.get("run"):
        h5obj.attrs["run"] = prov["run"]
    h5obj.attrs["provenance"] = json.dumps(prov)


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
