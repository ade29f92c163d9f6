"""The small exception hierarchy of timetag.

Every error a user can cause derives from :class:`TimetagError`; the CLI turns
those into one line on stderr and exit code 2.  Messages name the file, the
byte offset or record index, and the offending value wherever they are known.
"""
from __future__ import annotations


class TimetagError(Exception):
    """Base of all errors caused by input, configuration or data.

    ``cli_message``: the same message in the words of the command line, where the remedy it names differs
    (``drop_lost=True`` is ``--drop-lost`` there); :meth:`for_cli` gives it (or the message itself)."""

    def __init__(self, *args, cli_message: str | None = None):
        super().__init__(*args)
        self.cli_message = cli_message

    def for_cli(self) -> str:
        return str(self) if self.cli_message is None else self.cli_message


def for_cli(said) -> str:
    """An exception or warning as the command line says it (:meth:`TimetagError.for_cli`); anything else as is."""
    text = getattr(said, "cli_message", None)
    return str(said) if text is None else text


class FormatError(TimetagError):
    """A file is not in the format it claims (or any supported format)."""

    def __init__(self, message: str, *, path=None, offset: int | None = None, cli_message: str | None = None):
        parts = []
        if path is not None:
            parts.append(str(path))
        if offset is not None:
            parts.append(f"byte {offset}")
        prefix = ": ".join([", ".join(parts)]) + ": " if parts else ""
        super().__init__(prefix + message, cli_message=None if cli_message is None else prefix + cli_message)
        self.path = path
        self.offset = offset


class DataValidationError(TimetagError):
    """Data decode fine but violate an invariant (time going backwards, ...)."""

    def __init__(self, message: str, *, path=None, index: int | None = None, cli_message: str | None = None):
        parts = []
        if path is not None:
            parts.append(str(path))
        if index is not None:
            parts.append(f"record {index}")
        prefix = ", ".join(parts) + ": " if parts else ""
        super().__init__(prefix + message, cli_message=None if cli_message is None else prefix + cli_message)
        self.path = path
        self.index = index


class SetupError(TimetagError):
    """The setup file (channel map, windows, thresholds) is missing or invalid."""

    def __init__(self, message: str, *, key: str | None = None, path=None):
        prefix = ""
        if path is not None:
            prefix += f"{path}: "
        # a message that starts with the key's own flag names it already ("[swmr] --swmr ..." says it twice)
        if key is not None and not message.startswith("--" + key.replace("_", "-")):
            prefix += f"[{key}] "
        super().__init__(prefix + message)
        self.key = key
        self.path = path


class CalibrationError(TimetagError):
    """The data cannot support the requested calibration (too few counts, ...)."""


class EstimationError(TimetagError):
    """Round files cannot be joined or estimated (same lab twice, no test rounds, ...)."""


class TimetagWarning(UserWarning):
    """Recoverable oddities (truncated final record, small marker reordering, ...).  ``cli_message``: as for
    :class:`TimetagError`."""

    def __init__(self, *args, cli_message: str | None = None):
        super().__init__(*args)
        self.cli_message = cli_message


class OutputError(TimetagError):
    """An output cannot be written as asked: it exists, it is an input, another writer holds it, ..."""


class IncompleteError(TimetagError):
    """An input file was not completed (interrupted or failed run, or still being written)."""


class StorageError(TimetagError):
    """The storage failed under a writer (disk full, I/O error); what was kept is said in the message."""


class RunStopped(TimetagError):
    """A run ended before its input did; what it made was kept in a file marked incomplete (``kept``).

    ``exit_code``: 130 for an interrupt (Ctrl-C), 2 for bad input, 1 for an OS error.
    """

    def __init__(self, message: str, *, kept=None, rounds: int = 0, exit_code: int = 2,
                 cli_message: str | None = None):
        super().__init__(message, cli_message=cli_message)
        self.kept = kept
        self.rounds = rounds
        self.exit_code = exit_code


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that a run stopped by ``kill`` keeps and marks what it made too."""

    exit_code = 143

    def __str__(self) -> str:
        return "terminated (SIGTERM)"
