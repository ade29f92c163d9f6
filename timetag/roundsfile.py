"""The rounds file (HDF5): one record per trigger, with provenance and side products.

Layout::

    /rounds            compound dataset of :data:`timetag.records.ROUND_DTYPE`, chunked, resizable
    /heralds           compound dataset of :data:`timetag.records.HERALD_DTYPE` (optional)
    /histograms/...    side products (arrival-time histograms, count histogram, singles), optional
    attrs: format, format_version, lab, role, run, setup_hash, setup (the setup's TOML text), software_version,
           provenance (JSON), summary (JSON), completion, completion_reason (written last: see
           :mod:`timetag.custody.completion`)
    /rounds, /heralds attrs: description, fields (JSON: name, unit, meaning), patterns and flags (JSON legends)
    /histograms/* attrs: unit, description

Every description comes from :mod:`timetag.roundsschema`; ``docs/rounds-format.md`` is the same for people.

:func:`read_rounds` gives numpy structured arrays; :meth:`RoundsData.to_pandas` and :meth:`RoundsData.to_arrow`
give the same records as tables with their units and meanings (pandas / pyarrow: optional, imported on use).

:class:`RoundsWriter` appends as records are made and flushes (HDF5 SWMR), so that a run killed at any moment
leaves a file holding every round up to the last flush; ``timetag recover`` turns it into a plain HDF5 file.
Rows are added by growing the datasets and then writing them; a row whose data never reached the disk reads as
the datasets' fill value (``index == -1`` / ``nclicks == -1``), and readers stop at the first such row, so an
interrupted write never shows as a round.  Storage errors (disk full, ...) become :class:`StorageError` and leave
the rows written before them.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .custody import AtomicOutput, Completion, describe, read_state, write_state
from .custody.atomic import PARTIAL_SUFFIX
from .custody.storage import storage_error
from .errors import FormatError, IncompleteError, StorageError
from .provenance import read_h5_provenance, write_h5_provenance
from .records import HERALD_DTYPE, ROUND_DTYPE
from .roundsschema import FORMAT_VERSION, HERALD_FIELDS, ROUND_FIELDS, dataset_attrs, histogram_attrs

_CHUNK_ROWS = 4096
#: the extra of the optional table libraries, named in the ImportError of to_pandas / to_arrow
TABLES_EXTRA = "frames"


def _unwritten(dtype: np.dtype, field: str) -> np.ndarray:
    row = np.zeros((), dtype)
    row[field] = -1
    return row


#: The fill value of rows that were allocated but never written (a killed or failed write).
UNWRITTEN_ROUND = _unwritten(ROUND_DTYPE, "index")
UNWRITTEN_HERALD = _unwritten(HERALD_DTYPE, "nclicks")


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
    completion: Completion = Completion.COMPLETE
    completion_reason: str = ""
    run: str = ""  # the setup's meta.run, when it names the run
    setup_text: str = ""  # the setup the rounds were made with (TOML), from format 1.1 on
    format_version: str = ""

    @property
    def complete(self) -> bool:
        return self.completion is Completion.COMPLETE

    def to_pandas(self, what: str = "rounds"):
        """The rounds (or, ``what="heralds"``, the heralds) as a :class:`pandas.DataFrame`, one column per field
        with its numpy type.  ``df.attrs``: ``units`` and ``meanings`` (field -> text, unit ``""`` for codes and
        counts), and the file's identity (:meth:`table_meta`).  Needs pandas (an ImportError says how to get it)."""
        records, fields = self._records(what)
        pd = _optional("pandas", "to_pandas")
        df = pd.DataFrame({name: records[name] for name in records.dtype.names})
        df.attrs.update(units={k: fields[k][0] for k in df.columns}, meanings={k: fields[k][1] for k in df.columns},
                        **self.table_meta())
        return df

    def to_arrow(self, what: str = "rounds"):
        """The rounds (or the heralds) as a :class:`pyarrow.Table`: each field's ``unit`` and ``meaning`` in its
        metadata, the file's identity (:meth:`table_meta`) in the table's.  Needs pyarrow."""
        records, fields = self._records(what)
        pa = _optional("pyarrow", "to_arrow")
        columns = [pa.array(records[name]) for name in records.dtype.names]
        schema = pa.schema([pa.field(name, col.type, metadata={"unit": fields[name][0], "meaning": fields[name][1]})
                            for name, col in zip(records.dtype.names, columns)],
                           metadata={k: str(v) for k, v in self.table_meta().items()})
        return pa.Table.from_arrays(columns, schema=schema)

    def table_meta(self) -> dict[str, str]:
        """What a table of these records says about where they come from (``DataFrame.attrs``, Arrow metadata)."""
        return {"lab": self.lab, "role": self.role, "run": self.run, "setup_hash": self.setup_hash,
                "completion": str(self.completion), "completion_reason": self.completion_reason,
                "format_version": self.format_version, "path": "" if self.path is None else str(self.path)}

    def _records(self, what: str) -> tuple[np.ndarray, dict[str, tuple[str, str]]]:
        if what == "rounds":
            return self.rounds, ROUND_FIELDS
        if what != "heralds":
            raise ValueError(f"what: 'rounds' or 'heralds', got {what!r}")
        if self.heralds is None:
            raise FormatError("keeps no heralds (/heralds): only what='rounds'", path=self.path)
        return self.heralds, HERALD_FIELDS


def _optional(module: str, method: str):
    """An optional table library, or an ImportError that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"RoundsData.{method}() needs {module}, which is not installed: pip install {module} "
                          f"(or pip install 'timetag[{TABLES_EXTRA}]')") from None


class RoundsWriter:
    """Append-only writer of a new rounds file (never an existing one); use as a context manager.

    ``on_storage_error``: called once when a write fails (e.g. to free reserved disk space so that the file can
    still be closed); the rows written before the failure stay, the failing ones are dropped at ``close``.
    """

    def __init__(self, path, *, lab: str, role: str, provenance: dict | None = None, setup_hash: str = "",
                 with_heralds: bool = True, on_storage_error=None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._on_storage_error = on_storage_error
        self.failure: StorageError | None = None
        try:
            # HDF5 1.10 file format: SWMR works, and readers built on HDF5 1.10-1.14 (PyTables, MATLAB, HDFView)
            # open the file ("latest" would be the newest format of the HDF5 library h5py bundles)
            self._f = h5py.File(self.path, "w-", libver=("v110", "v110"))
        except FileExistsError:
            raise FormatError("exists; a rounds file is only ever written new", path=self.path) from None
        self._f.attrs["format"] = "timetag rounds"
        self._f.attrs["format_version"] = FORMAT_VERSION
        self._f.attrs["lab"] = lab
        self._f.attrs["role"] = role
        write_h5_provenance(self._f, provenance or {"setup_hash": setup_hash})
        self._f.attrs["setup_hash"] = setup_hash or (provenance or {}).get("setup_hash", "")
        write_state(self._f.attrs, Completion.RUNNING, "being written (SWMR: open with swmr=True to read it now)")
        self._rounds = self._f.create_dataset("rounds", shape=(0,), maxshape=(None,), dtype=ROUND_DTYPE,
                                              chunks=(_CHUNK_ROWS,), fillvalue=UNWRITTEN_ROUND)
        self._heralds = (self._f.create_dataset("heralds", shape=(0,), maxshape=(None,), dtype=HERALD_DTYPE,
                                                chunks=(_CHUNK_ROWS,), fillvalue=UNWRITTEN_HERALD)
                         if with_heralds else None)
        for name, ds in (("rounds", self._rounds), ("heralds", self._heralds)):
            if ds is not None:
                ds.attrs.update(dataset_attrs(name))
        self._written = {"rounds": 0, "heralds": 0}
        # Single-writer/multiple-reader: readers (live view, another process) may open the file while it grows.
        self._f.swmr_mode = True

    def _append(self, name, ds, arr):
        if arr is None or len(arr) == 0:
            return
        n = self._written[name]
        ds.resize((n + len(arr),))
        ds[n:] = arr
        self._written[name] = n + len(arr)

    def _guarded(self, action, *args) -> None:
        if self.failure is not None:
            raise self.failure
        try:
            action(*args)
        except (OSError, RuntimeError) as exc:
            self._fail(exc)
            raise self.failure from None

    def _fail(self, exc: BaseException) -> None:
        self.failure = storage_error(self.path, exc)
        if self._on_storage_error is not None:
            self._on_storage_error()

    def append(self, rounds: np.ndarray, heralds: np.ndarray | None = None) -> None:
        self._guarded(self._append, "rounds", self._rounds, rounds)
        if self._heralds is not None:
            self._guarded(self._append, "heralds", self._heralds, heralds)

    def flush(self) -> None:
        self._guarded(self._f.flush)

    @property
    def n_rounds(self) -> int:
        return int(self._written["rounds"])

    def close(self, *, summary: dict | None = None, histograms: dict | None = None,
              provenance: dict | None = None, state: Completion = Completion.COMPLETE, reason: str = "") -> None:
        """Finish the file: summary, histograms and a completed provenance record (e.g. with the checksums
        computed meanwhile) are written here (not possible under SWMR), and the completion state last.

        After a storage failure the file is cut back to the rows that were written and marked failed.
        """
        if not self._f.id.valid:
            return
        if self.failure is None:
            try:
                self._f.flush()
            except (OSError, RuntimeError) as exc:
                self._fail(exc)
        if self.failure is not None:
            # the storage error handler has made room (released the reserve): the cached rows and metadata can
            # now reach the disk, without the rows whose write failed
            state, reason = Completion.FAILED, str(self.failure)
            self._rounds.resize((self._written["rounds"],))
            if self._heralds is not None:
                self._heralds.resize((self._written["heralds"],))
            self._f.flush()
        self._f.close()
        with h5py.File(self.path, "r+") as f:
            if provenance is not None:
                write_h5_provenance(f, provenance)
            if summary is not None:
                f.attrs["summary"] = json.dumps(summary)
            for name, value in (histograms or {}).items():
                ds = f.create_dataset(f"histograms/{name}", data=np.asarray(value), compression="gzip")
                ds.attrs.update(histogram_attrs(name))
            write_state(f.attrs, state, reason)
            f.flush()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.close(state=Completion.FAILED, reason=f"{exc_type.__name__}: {exc}")


def write_rounds(path, rounds: np.ndarray, *, lab: str, role: str, setup_hash: str = "", provenance: dict | None = None,
                 heralds: np.ndarray | None = None, summary: dict | None = None, histograms: dict | None = None,
                 force: bool = False) -> Path:
    """Write a whole rounds file at once (tests, estimators' hand-made rounds, merges), atomically: an existing
    file is replaced only with ``force``, and only once the new one is complete."""
    with AtomicOutput(path, force=force) as out:
        w = RoundsWriter(out.partial, lab=lab, role=role, setup_hash=setup_hash, provenance=provenance,
                         with_heralds=heralds is not None)
        w.append(np.asarray(rounds, dtype=ROUND_DTYPE), heralds)
        w.close(summary=summary, histograms=histograms)
    return Path(path)


def _written_rows(ds, field: str) -> np.ndarray:
    """The dataset's rows up to the first never-written one (see the module docstring)."""
    data = ds[()]
    unwritten = np.flatnonzero(data[field] == -1)
    return data[: unwritten[0]] if unwritten.size else data


def read_rounds(path, *, accept_incomplete: bool = False) -> RoundsData:
    """Read a rounds file.  A file whose run did not complete (interrupted, failed, killed, recovered) raises
    :class:`IncompleteError` naming its state, unless ``accept_incomplete``: then its rounds are returned and
    ``completion`` / ``completion_reason`` say what it is."""
    path = Path(path)
    if path.is_dir():
        raise FormatError("is a directory, expected a rounds file (HDF5)", path=path)
    if not path.exists():
        raise FormatError("no such file", path=path)
    try:
        f = h5py.File(path, "r", libver="latest", swmr=True)
    except (OSError, RuntimeError) as exc:  # h5py raises either for a damaged file
        raise FormatError(f"not a readable HDF5 rounds file ({exc})", path=path) from None
    with f:
        if "rounds" not in f:
            raise FormatError("HDF5 file has no /rounds dataset: not a timetag rounds file", path=path)
        ds = f["rounds"]
        missing = [n for n in ROUND_DTYPE.names if n not in (ds.dtype.names or ())]
        if missing:
            raise FormatError(f"/rounds lacks fields {missing}", path=path)
        state, reason = read_state(f.attrs)
        rounds = _written_rows(ds, "index").astype(ROUND_DTYPE)
        if state is not Completion.COMPLETE and not accept_incomplete:
            raise IncompleteError(incomplete_message(path, state, reason, rounds.size))
        heralds = _written_rows(f["heralds"], "nclicks") if "heralds" in f else None
        hist = {k: f["histograms"][k][()] for k in f["histograms"]} if "histograms" in f else {}
        summary = json.loads(f.attrs["summary"]) if "summary" in f.attrs else {}
        return RoundsData(rounds=rounds, lab=str(f.attrs.get("lab", "")), role=str(f.attrs.get("role", "")),
                          setup_hash=str(f.attrs.get("setup_hash", "")), provenance=read_h5_provenance(f),
                          summary=summary, heralds=heralds, histograms=hist, path=path, completion=state,
                          completion_reason=reason, run=str(f.attrs.get("run", "")),
                          setup_text=str(f.attrs.get("setup", "")),
                          format_version=str(f.attrs.get("format_version", "1.0")))


def incomplete_message(path, state: Completion, reason: str, n_rounds: int) -> str:
    path = Path(path)
    msg = f"{path}: incomplete rounds file, {n_rounds} rounds ({describe(state, reason)})"
    if state is Completion.RUNNING and path.name.endswith(PARTIAL_SUFFIX):
        return msg + f"; if its writer is gone, save its rounds with `timetag recover {path}`"
    return msg + "; pass --accept-incomplete to use its rounds anyway (the result then says so)"


def is_rounds_file(path) -> bool:
    """An HDF5 file with a /rounds dataset (a timetag rounds file, whatever its format version)."""
    try:
        with h5py.File(path, "r") as f:
            return isinstance(f.get("rounds"), h5py.Dataset)
    except (OSError, RuntimeError):
        return False


def describe_rounds(path) -> dict:
    """What ``timetag info`` shows of a rounds file: identity, completion, counts per flag and pattern, the
    fields with their units, the histograms, the setup text.  Files of format 1.0 (no self-description) are
    described from :mod:`timetag.roundsschema`."""
    from .roundsschema import HERALD_FIELDS, ROUND_FIELDS, flag_legend, histogram_attrs, pattern_legend

    data = read_rounds(path, accept_incomplete=True)
    r = data.rounds
    flags = {leg["name"]: int(np.count_nonzero(r["flags"] & int(bit))) for bit, leg in flag_legend().items()}
    patterns = {leg["name"]: int(np.count_nonzero(r["pattern"] == int(code))) for code, leg in pattern_legend().items()}
    with h5py.File(path, "r") as f:
        hists = {name: {"shape": list(ds.shape), **histogram_attrs(name), **{k: str(v) for k, v in ds.attrs.items()}}
                 for name, ds in f["histograms"].items()} if "histograms" in f else {}
    return {
        "path": str(path), "format": "timetag rounds", "format_version": data.format_version,
        "lab": data.lab, "role": data.role, "run": data.run, "setup_hash": data.setup_hash,
        "completion": {"state": str(data.completion), "reason": data.completion_reason},
        "rounds": int(r.size), "heralds": None if data.heralds is None else int(data.heralds.size),
        "first_trigger_ps": int(r["trigger_time"][0]) if r.size else None,
        "last_trigger_ps": int(r["trigger_time"][-1]) if r.size else None,
        "flagged": int(np.count_nonzero(r["flags"])), "flags": flags, "patterns": patterns,
        "flag_legend": flag_legend(), "pattern_legend": pattern_legend(),
        "fields": {"rounds": {k: {"unit": u, "meaning": m} for k, (u, m) in ROUND_FIELDS.items()},
                   "heralds": {k: {"unit": u, "meaning": m} for k, (u, m) in HERALD_FIELDS.items()}},
        "histograms": hists, "software_version": data.provenance.get("version", ""),
        "setup": data.setup_text,
    }
