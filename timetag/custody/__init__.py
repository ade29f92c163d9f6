"""Custody of the data: atomic outputs, one writer per output, completion states, recovery.

The contract, everywhere a file is written: an output appears under its name only when complete (or, for an
incomplete rounds file, with its completion state saying so); an existing file is never truncated; an input is
never an output; a second writer is refused with the holder's name; a full disk ends in one line with nothing fake
left behind.
"""
from .atomic import (DEFAULT_RESERVE_BYTES, PARTIAL_SUFFIX, AtomicOutput, AtomicOutputs, check_distinct,
                     check_not_input, check_target, partial_path)
from .completion import Completion, describe, read_state, write_state
from .lock import OutputLock, lock_path

__all__ = ["AtomicOutput", "AtomicOutputs", "OutputLock", "Completion", "check_target", "check_not_input",
           "check_distinct", "partial_path", "lock_path", "read_state", "write_state", "describe", "PARTIAL_SUFFIX",
           "DEFAULT_RESERVE_BYTES"]
