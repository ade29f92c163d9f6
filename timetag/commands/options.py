"""Options several commands share, declared once so that a flag reads and behaves the same in every command.

The vocabulary (checked by ``tests/cli/test_vocabulary.py``, listed in ``docs/cli.md``): a short flag means one
thing everywhere (``-s`` = ``--setup``, ``-o`` = ``--out``, ``-l`` = ``--lab``, ``-q`` = ``--quiet``, ...);
``--in-format`` is the format read and ``--out-format`` the format written.  The old ``--format`` still works
where it worked, hidden from --help, with a one-line deprecation warning.
"""
from __future__ import annotations

import typer

from ..constants import DEFAULT_CHUNK_SIZE

CHUNK_SIZE_HELP = ("Records read per chunk (a chunk holds at most this many tags; memory ~ 60 bytes x chunk "
                   "size).")


def chunk_size_option(help: str = CHUNK_SIZE_HELP):
    return typer.Option(DEFAULT_CHUNK_SIZE, "--chunk-size", min=1, help=help)


def quiet_option(help: str = "No progress bar and no summary: only warnings and errors (on stderr)."):
    return typer.Option(False, "--quiet", "-q", help=help)


def deprecated_format_option(new_flag: str, *, short: bool = False):
    """The hidden ``--format`` (and ``-f`` where it had it) that a command accepted before ``new_flag``."""
    return typer.Option(None, "--format", *(("-f",) if short else ()), hidden=True,
                        help=f"Deprecated: the old name of {new_flag}.")


def from_deprecated(new_value, old_value, new_flag: str, *, old_flag: str = "--format", default=None):
    """The value of ``new_flag``, taken from its deprecated alias ``old_flag`` when only that was given (with a
    one-line warning on stderr); both given with different values is a mistake."""
    if old_value is None:
        return new_value
    typer.echo(f"warning: {old_flag} is deprecated, use {new_flag} (same meaning)", err=True)
    if new_value is not None and new_value != default and new_value != old_value:
        from ..errors import SetupError

        raise SetupError(f"{new_flag} {new_value} and {old_flag} {old_value} disagree: give {new_flag} only")
    return old_value
