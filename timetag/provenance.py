"""Provenance recorded in every output file: software version, setup hash, inputs and checksums."""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
from pathlib import Path

from ._version import __version__


def file_checksum(path, algo: str = "sha256", block: int = 1 << 22) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        while True:
            b = fh.read(block)
            if not b:
                break
            h.update(b)
    return f"{algo}:{h.hexdigest()}"


def describe_inputs(paths, checksum: bool = True) -> list[dict]:
    out = []
    for p in paths:
        p = Path(p)
        entry = {"name": p.name, "path": str(p.resolve()), "size": p.stat().st_size}
        if checksum:
            entry["checksum"] = file_checksum(p)
        out.append(entry)
    return out


def provenance(inputs=(), setup=None, **extra) -> dict:
    """A JSON-serialisable provenance record."""
    rec = {
        "software": "timetag",
        "version": __version__,
        "python": platform.python_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "inputs": describe_inputs(inputs) if inputs else [],
    }
    if setup is not None:
        rec["setup_hash"] = setup.hash
    rec.update(extra)
    return rec


def write_h5_provenance(h5obj, prov: dict) -> None:
    """Store provenance as attributes of an HDF5 file/group (JSON for nested parts)."""
    h5obj.attrs["software_version"] = prov.get("version", __version__)
    if "setup_hash" in prov:
        h5obj.attrs["setup_hash"] = prov["setup_hash"]
    h5obj.attrs["provenance"] = json.dumps(prov)


def read_h5_provenance(h5obj) -> dict:
    raw = h5obj.attrs.get("provenance")
    if raw is None:
        return {}
    if isinstance(raw, bytes):
        raw = raw.decode()
    return json.loads(raw)


def jsonable(obj, max_array: int | None = None):
    """Plain JSON types from nested dicts/lists/numpy values; arrays longer than ``max_array`` are elided."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): jsonable(v, max_array) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, max_array) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist() if max_array is None or obj.size <= max_array else f"array{obj.shape}"
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
