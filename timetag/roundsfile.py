"""The rounds file (HDF5): one record per trigger, with provenance and side products.

Layout::

    /rounds            compound dataset of :data:`timetag.records.ROUND_DTYPE`, chunked, resizable
    /heralds           compound dataset of :data:`timetag.records.HERALD_DTYPE` (optional)
    /histograms/...    side products (arrival-time histograms, count histogram, singles), optional
    attrs: lab, role, setup_hash, software_version, provenance (JSON), summary (JSON)

:class:`RoundsWriter` appends as records are made and flushes, so that a live
run killed at any moment leaves a file holding every round up to the last flush.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .errors import FormatError
from .provenance import read_h5_provenance, write_h5_provenance
from .records import HERALD_DTYPE, ROUND_DTYPE

_CHUNK_ROWS = 4096


@dataclass
class RoundsData:
    rounds: np.ndarray
    lab: str
    role: str
    setup_hash: str
    provenance: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    heralds: np.ndarray | None = None
    histograms: dict = field(default_factory=dict)
    path: Path | None = None


class RoundsWriter:
    """Append-only writer; use as a context manager."""

    def __init__(self, path, *, lab: str, role: str, provenance: dict | None = None, setup_hash: str = "",
                 with_heralds: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = h5py.File(self.path, "w", libver="latest")
        self._f.attrs["lab"] = lab
        self._f.attrs["role"] = role
        self._f.attrs["setup_hash"] = setup_hash
        write_h5_provenance(self._f, provenance or {"setup_hash": setup_hash})
        self._f.attrs["setup_hash"] = setup_hash or (provenance or {}).get("setup_hash", "")
        self._rounds = self._f.create_dataset("rounds", shape=(0,), maxshape=(None,), dtype=ROUND_DTYPE,
                                              chunks=(_CHUNK_ROWS,))
        self._heralds = (self._f.create_dataset("heralds", shape=(0,), maxshape=(None,), dtype=HERALD_DTYPE,
                                                chunks=(_CHUNK_ROWS,)) if with_heralds else None)
        # Single-writer/multiple-reader: readers (live view, another process) may open the file while it grows.
        self._f.swmr_mode = True

    @staticmethod
    def _append(ds, arr):
        if arr is None or len(arr) == 0:
            return
        n = ds.shape[0]
        ds.resize((n + len(arr),))
        ds[n:] = arr

    def append(self, rounds: np.ndarray, heralds: np.ndarray | None = None) -> None:
        self._append(self._rounds, rounds)
        if self._heralds is not None:
            self._append(self._heralds, heralds)

    def flush(self) -> None:
        self._f.flush()

    @property
    def n_rounds(self) -> int:
        return int(self._rounds.shape[0])

    def close(self, *, summary: dict | None = None, histograms: dict | None = None,
              provenance: dict | None = None) -> None:
        """Finish the file; summary, histograms and a completed provenance record (e.g. with the
        checksums computed meanwhile) are written here (not possible under SWMR)."""
        if not self._f.id.valid:
            return
        self._f.flush()
        self._f.close()
        if summary is not None or histograms or provenance is not None:
            with h5py.File(self.path, "r+") as f:
                if provenance is not None:
                    write_h5_provenance(f, provenance)
                if summary is not None:
                    f.attrs["summary"] = json.dumps(summary)
                for name, value in (histograms or {}).items():
                    f.create_dataset(f"histograms/{name}", data=np.asarray(value), compression="gzip")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_rounds(path, rounds: np.ndarray, *, lab: str, role: str, setup_hash: str = "", provenance: dict | None = None,
                 heralds: np.ndarray | None = None, summary: dict | None = None, histograms: dict | None = None) -> Path:
    """Write a whole rounds file at once (tests, estimators' hand-made rounds, merges)."""
    w = RoundsWriter(path, lab=lab, role=role, setup_hash=setup_hash, provenance=provenance,
                     with_heralds=heralds is not None)
    w.append(np.asarray(rounds, dtype=ROUND_DTYPE), heralds)
    w.close(summary=summary, histograms=histograms)
    return Path(path)


def read_rounds(path) -> RoundsData:
    path = Path(path)
    if path.is_dir():
        raise FormatError("is a directory, expected a rounds file (HDF5)", path=path)
    if not path.exists():
        raise FormatError("no such file", path=path)
    try:
        f = h5py.File(path, "r", libver="latest", swmr=True)
    except OSError as exc:
        raise FormatError(f"not a readable HDF5 rounds file ({exc})", path=path) from None
    with f:
        if "rounds" not in f:
            raise FormatError("HDF5 file has no /rounds dataset: not a timetag rounds file", path=path)
        ds = f["rounds"]
        missing = [n for n in ROUND_DTYPE.names if n not in (ds.dtype.names or ())]
        if missing:
            raise FormatError(f"/rounds lacks fields {missing}", path=path)
        rounds = ds[()].astype(ROUND_DTYPE)
        heralds = f["heralds"][()] if "heralds" in f else None
        hist = {k: f["histograms"][k][()] for k in f["histograms"]} if "histograms" in f else {}
        summary = json.loads(f.attrs["summary"]) if "summary" in f.attrs else {}
        return RoundsData(rounds=rounds, lab=str(f.attrs.get("lab", "")), role=str(f.attrs.get("role", "")),
                          setup_hash=str(f.attrs.get("setup_hash", "")), provenance=read_h5_provenance(f),
                          summary=summary, heralds=heralds, histograms=hist, path=path)
