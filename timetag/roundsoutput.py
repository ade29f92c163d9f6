"""A rounds file as an output in custody: atomic, locked, with its completion state, recoverable after a kill.

:class:`RoundsOutput` is what every driver (``process``, ``live``) writes through: the rounds go to
``<target>.partial`` (HDF5 SWMR, flushed by the driver), and :meth:`RoundsOutput.finish` writes the completion
state last, then renames the file to the target when complete.  An incomplete file (interrupted, failed) takes
the target's name only when there is no target yet; it never replaces a complete file.

After a SIGKILL the partial file is left with the state ``running`` and HDF5's SWMR flags set (plain h5py and
h5dump refuse it); :func:`recover_rounds` (``timetag recover FILE.partial``) copies every round that was flushed
into a plain, self-describing rounds file with the state ``recovered``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import h5py

from .custody import DEFAULT_RESERVE_BYTES, AtomicOutput, Completion, partial_path, read_state, write_state
from .custody.atomic import PARTIAL_SUFFIX
from .errors import FormatError, OutputError, StorageError
from .provenance import read_h5_provenance, write_h5_provenance
from .roundsfile import RoundsWriter, _written_rows


class RoundsOutput:
    """The rounds file of one lab and one run; open with ``open()`` (or ``with``), end with ``finish()``."""

    def __init__(self, target, *, lab: str, role: str, provenance: dict | None = None, setup_hash: str = "",
                 with_heralds: bool = True, inputs: Iterable = (), force: bool = False, keep_partial: bool = False,
                 reserve_bytes: int = DEFAULT_RESERVE_BYTES, flag: str = "--force"):
        self.target = Path(target)
        self.slot = AtomicOutput(self.target, inputs=inputs, force=force, keep_partial=keep_partial,
                                 reserve_bytes=reserve_bytes, flag=flag,
                                 recover_hint=f"if its writer is gone, save its rounds with `timetag recover "
                                              f"{partial_path(self.target)}`, then run again")
        self._meta = dict(lab=lab, role=role, provenance=provenance, setup_hash=setup_hash, with_heralds=with_heralds)
        self.writer: RoundsWriter | None = None
        self.where: Path | None = None

    def open(self) -> "RoundsOutput":
        self.slot.open()
        try:
            self.writer = RoundsWriter(self.slot.partial, on_storage_error=self.slot.release_reserve, **self._meta)
        except BaseException:
            self.slot.discard()
            raise
        return self

    @property
    def partial(self) -> Path:
        return self.slot.partial

    def append(self, rounds, heralds=None) -> None:
        self.writer.append(rounds, heralds)

    def flush(self) -> None:
        self.writer.flush()

    @property
    def n_rounds(self) -> int:
        return self.writer.n_rounds if self.writer is not None else 0

    @property
    def failure(self) -> StorageError | None:
        return self.writer.failure if self.writer is not None else None

    def finish(self, state: Completion = Completion.COMPLETE, reason: str = "", *, summary: dict | None = None,
               histograms: dict | None = None, provenance: dict | None = None) -> Path | None:
        """Close the file with its completion state; returns where it now is (None: nothing could be kept)."""
        if self.slot.done:
            return self.where
        try:
            self.writer.close(summary=summary, histograms=histograms, provenance=provenance, state=state,
                              reason=reason)
        except (OSError, RuntimeError):
            # even the reserve did not give room to finish: a file that cannot say how it ended is not kept
            # (a live run's partial file stays for `timetag recover`)
            self.slot.discard()
            self.where = self.slot.partial if self.slot.keep_partial and self.slot.partial.exists() else None
            return self.where
        if self.writer.failure is None and state is Completion.COMPLETE:
            self.where = self.slot.commit()
        else:
            self.where = self.slot.keep_incomplete()
        return self.where

    def __enter__(self):
        return self.open()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.finish()
        elif not self.slot.done:
            self.finish(Completion.FAILED, f"{exc_type.__name__}: {exc}")


def recovered_target(partial) -> Path:
    partial = Path(partial)
    if not partial.name.endswith(PARTIAL_SUFFIX):
        raise OutputError(f"{partial}: not a partial file (its name does not end in {PARTIAL_SUFFIX}); give --out")
    return partial.with_name(partial.name[: -len(PARTIAL_SUFFIX)])


def recover_rounds(partial, out=None, *, force: bool = False, keep: bool = False) -> dict:
    """Save the flushed rounds of a killed writer's partial file into a plain rounds file (state ``recovered``).

    Refuses while a writer holds the file (it is not dead).  Returns ``{"out", "rounds", "heralds"}``.
    The partial file is deleted once the recovered file is complete and holds the same rows (``keep`` keeps it).
    """
    partial = Path(partial)
    if partial.is_dir():
        raise FormatError("is a directory, expected the partial rounds file of a killed run", path=partial)
    if not partial.is_file():
        raise FormatError("no such file", path=partial)
    target = Path(out) if out is not None else recovered_target(partial)
    try:
        f = h5py.File(partial, "r", libver="latest", swmr=True)
    except (OSError, RuntimeError) as exc:  # h5py raises either for a damaged file
        raise FormatError(f"nothing to recover: not a readable HDF5 file ({str(exc).splitlines()[0]}); the writer "
                          "was killed before its first flush", path=partial) from None
    with f:
        if "rounds" not in f:
            raise FormatError("nothing to recover: no /rounds dataset", path=partial)
        state, reason = read_state(f.attrs)
        if state in (Completion.COMPLETE, Completion.RECOVERED):  # nothing to save, and the file must not go
            raise FormatError(f"nothing to recover: the file is {state} (a rounds file to use as it is)",
                              path=partial)
        rounds = _written_rows(f["rounds"], "index")
        heralds = _written_rows(f["heralds"], "nclicks") if "heralds" in f else None
        attrs = {k: f.attrs[k] for k in ("lab", "role", "setup_hash") if k in f.attrs}
        prov = read_h5_provenance(f)
    # a writer holds the lock of the name it will rename to; taking that lock proves the writer is gone
    writer_name = recovered_target(partial) if partial.name.endswith(PARTIAL_SUFFIX) else None
    if writer_name is not None and writer_name != target and not _lock_free(writer_name):
        raise OutputError(f"{partial}: its writer is still running; recover only the file of a killed run")
    with AtomicOutput(target, inputs=[partial], force=force, suffix=".recovering") as slot:
        with h5py.File(slot.partial, "w-") as g:
            for k, v in attrs.items():
                g.attrs[k] = v
            prov = dict(prov, recovered_from=str(partial), recovered_state_was=str(state))
            write_h5_provenance(g, prov)
            g.create_dataset("rounds", data=rounds, maxshape=(None,), chunks=True)
            if heralds is not None:
                g.create_dataset("heralds", data=heralds, maxshape=(None,), chunks=True)
            g.attrs["summary"] = json.dumps({"recovered": True, "rounds": int(rounds.size)})
            write_state(g.attrs, Completion.RECOVERED,
                        f"saved from the partial file of a run that did not finish (state was {state}"
                        f"{': ' + reason if reason and state is not Completion.RUNNING else ''}), up to its last "
                        "flush")
        with h5py.File(slot.partial, "r") as g:
            if g["rounds"].shape[0] != rounds.size:
                raise StorageError(f"{slot.partial}: recovered file reads back {g['rounds'].shape[0]} rounds, "
                                   f"not {rounds.size}; the partial file is kept")
    if writer_name is not None:  # the dead writer's disk reserve
        writer_name.with_name(f".{writer_name.name}.reserve").unlink(missing_ok=True)
    if not keep and target != partial:
        partial.unlink()
    return {"out": target, "rounds": int(rounds.size), "heralds": None if heralds is None else int(heralds.size),
            "state_was": str(state)}


def _lock_free(target: Path) -> bool:
    from .custody import OutputLock

    lock = OutputLock(target)
    try:
        lock.acquire()
    except OutputError:
        return False
    lock.release()
    return True
