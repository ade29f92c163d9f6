import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def labs():
    from cases import rounds
    return rounds(160_000, V=0.94, seed=11)


@pytest.fixture(scope="session")
def run(labs):
    from timetag.distill import distill
    return distill(*labs, seed=5)


@pytest.fixture(scope="session")
def big_labs():
    # enough key bits for >= 8 frames: the frames come in two batches, the second designed for the learned QBER
    from cases import rounds
    return rounds(320_000, V=0.94, seed=12)


@pytest.fixture(scope="session")
def batched_run(big_labs):
    from timetag.distill import distill
    return distill(*big_labs, seed=5)
