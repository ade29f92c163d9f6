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
