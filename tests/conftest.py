import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# CI explores a fixed set of examples (reproducible runs); development runs explore new ones each time
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

REPO = Path(__file__).resolve().parent.parent
# tests/ mirrors the package in folders (tests/engine/test_herald.py, ...) imported by file path (importlib mode,
# so equal file names in two folders do not clash); the shared helpers (reference_engine, engine_cases) live here
sys.path.insert(0, str(Path(__file__).resolve().parent))
REAL_DATA = Path(os.environ.get("TIMETAG_REAL_DATA", REPO.parent / "shared" / "data" / "real"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Folder of small real instrument files (../shared/data/real), skipped when absent."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real sample files not found at {REAL_DATA}")
    return REAL_DATA


class Reread(tuple):
    """One read of an input made by the checksum code itself (not by a reader): ``(path, offset, nbytes)``."""

    path = property(lambda self: self[0])
    offset = property(lambda self: self[1])
    nbytes = property(lambda self: self[2])


@pytest.fixture
def checksum_rereads(monkeypatch) -> list:
    """The reads the checksum code makes of its inputs (``timetag.checksums._read_into``), as :class:`Reread`s, in
    order: what a checksum fed by the readers still had to read again."""
    from timetag import checksums

    reads: list = []
    real = checksums._read_into

    def read_into(fd, buf, offset):
        reads.append(Reread((Path(os.readlink(f"/proc/self/fd/{fd}")), offset, len(buf))))
        return real(fd, buf, offset)

    monkeypatch.setattr(checksums, "_read_into", read_into)
    return reads
