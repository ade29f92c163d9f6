"""A failed write, said in one line with the file it was for."""
from __future__ import annotations

from ..errors import StorageError

_KNOWN = ("No space left on device", "Disk quota exceeded", "Input/output error", "Read-only file system")


def storage_error(path, exc: BaseException) -> StorageError:
    """:class:`StorageError` for ``exc`` raised while writing ``path``.

    h5py reports a failed write(2) as RuntimeError or OSError with the errno buried in its message; plain files
    raise OSError with ``strerror``.
    """
    text = getattr(exc, "strerror", None) or str(exc)
    for known in _KNOWN:
        if known in text:
            return StorageError(f"{path}: {known}")
    return StorageError(f"{path}: write failed ({text.splitlines()[0] if text else type(exc).__name__})")
