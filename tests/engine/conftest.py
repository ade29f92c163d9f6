"""Fixtures of the engine tests."""
from __future__ import annotations

import pytest

from timetag._cext import engine_slots


@pytest.fixture(params=["vector", "scalar"])
def split_kind(request):
    """Run a test with the vector split (where the CPU has it) and with the scalar one."""
    if request.param == "vector" and not engine_slots.vector_split_available():
        pytest.skip("this CPU has no AVX2: only the scalar split runs")
    prev = engine_slots.set_vector_split(request.param == "vector")
    yield request.param
    engine_slots.set_vector_split(prev)

