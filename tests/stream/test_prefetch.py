"""prefetched: the source's items in order, its error at its place, an early close stops the reader."""
from __future__ import annotations

import threading
import time

import pytest

from timetag.errors import FormatError
from timetag.stream.prefetch import prefetched


def test_items_in_order_exactly_once():
    assert list(prefetched(iter(range(1000)), depth=3)) == list(range(1000))
    assert list(prefetched(iter([]))) == []


def test_the_source_error_comes_after_every_item_before_it():
    def source():
        yield from range(5)
        raise FormatError("bad record 5", path="x.dump")

    got = []
    with pytest.raises(FormatError, match="bad record 5"):
        for item in prefetched(source()):
            got.append(item)
    assert got == list(range(5))


def test_reads_at_most_depth_ahead_and_an_early_close_stops_the_reader():
    produced = []
    closed = threading.Event()

    def source():
        try:
            for i in range(10_000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    it = prefetched(source(), depth=2)
    assert next(it) == 0
    time.sleep(0.2)
    assert len(produced) <= 1 + 2 + 1  # the one taken, the queue, the one waiting for room
    it.close()
    assert closed.wait(2.0) and len(produced) < 10


def test_the_reader_runs_beside_the_consumer():
    """While the consumer works on item k the reader is already on item k+1 (two threads)."""
    seen = []

    def source():
        for i in range(3):
            seen.append(("read", i, threading.get_ident()))
            yield i

    consumer = threading.get_ident()
    for i in prefetched(source()):
        time.sleep(0.05)
    assert all(ident != consumer for _, _, ident in seen)
