import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from timetag.chunk import LOST_DTYPE, MISSED, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk, concat, rechunk, split


def _stream(n=50, seed=0):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.integers(1, 1000, n))
    ch = rng.integers(0, 4, n)
    lost = np.zeros(3, LOST_DTYPE)
    lost["time"] = [t[5], t[20] + 1, t[49] + 10]
    lost["kind"] = [OVERFLOW_BEGIN, OVERFLOW_END, MISSED]
    return TagChunk(t, ch, lost)


def test_dtypes_are_normalised():
    c = TagChunk([3, 4], [1, 2])
    assert c.time.dtype == np.int64 and c.channel.dtype == np.int32 and len(c) == 2 and c.lost.size == 0


@given(st.lists(st.integers(0, 50), max_size=8))
def test_split_then_concat_is_identity(cuts):
    c = _stream()
    pieces = list(split(c, sorted(cuts)))
    back = concat(pieces)
    assert np.array_equal(back.time, c.time) and np.array_equal(back.channel, c.channel)
    assert np.array_equal(back.lost, c.lost)
    assert sum(p.lost.size for p in pieces) == c.lost.size


def test_rechunk_to_single_tags():
    c = _stream()
    pieces = list(rechunk([c], 1))
    assert len(pieces) == len(c)
    assert [p.offset for p in pieces] == list(range(len(c)))
    assert np.array_equal(concat(pieces).lost, c.lost)
