"""run_stream: every event in order, then one flush; a broken source flushes and raises StreamBroke; a broken
processor does not flush; ``until`` stops early and still flushes."""
from __future__ import annotations

import pytest

from timetag.errors import DataValidationError, StorageError
from timetag.stream import Collect, Stage, StreamBroke, run_stream


def test_every_event_in_order_then_one_flush():
    sink = Collect()
    assert run_stream([1, 2, 3], sink) is True
    assert sink.events == [1, 2, 3] and sink.flushed


def test_empty_stream_is_still_flushed():
    sink = Collect()
    assert run_stream([], sink) is True
    assert sink.events == [] and sink.flushed


def _broken(n_good: int, exc: Exception):
    yield from range(n_good)
    raise exc


def test_a_broken_source_flushes_the_chain_and_names_its_cause():
    sink = Collect()
    cause = DataValidationError("record 7: time goes backwards")
    with pytest.raises(StreamBroke, match="record 7") as e:
        run_stream(_broken(2, cause), sink)
    assert e.value.__cause__ is cause
    assert sink.events == [0, 1] and sink.flushed


def test_a_storage_error_while_flushing_after_a_break_is_kept_on_the_break():
    class FullDisk(Collect):
        def flush(self):
            raise StorageError("disk full")

    with pytest.raises(StreamBroke) as e:
        run_stream(_broken(1, DataValidationError("bad")), FullDisk())
    assert isinstance(e.value.flush_error, StorageError)


def test_an_os_error_of_the_source_is_not_a_stream_break():
    sink = Collect()
    with pytest.raises(OSError):
        run_stream(_broken(1, OSError("gone")), sink)
    assert not sink.flushed  # not a data error: the caller decides what to keep


class FailsAtTwo(Collect):
    def handle(self, event):
        if event == 2:
            raise ValueError("bug")
        super().handle(event)


def counted_source(closed: list):
    """0..99, noting in ``closed`` when the generator is closed."""
    try:
        yield from range(100)
    finally:
        closed.append(True)


def test_a_failing_processor_is_not_flushed():
    sink = FailsAtTwo()
    with pytest.raises(ValueError, match="bug"):
        run_stream([1, 2, 3], sink)
    assert sink.events == [1] and not sink.flushed


def test_a_failing_processor_closes_a_generator_source():
    closed = []
    with pytest.raises(ValueError, match="bug"):
        run_stream(counted_source(closed), FailsAtTwo())
    assert closed == [True]


def test_until_stops_early_flushes_and_closes_the_source():
    closed = []
    sink = Collect()
    assert run_stream(counted_source(closed), sink, until=lambda: len(sink.events) >= 3) is False
    assert sink.events == [0, 1, 2] and sink.flushed and closed == [True]


def test_a_stage_forwards_what_it_does_not_handle():
    sink = Collect()
    run_stream(["a", 1], Stage(Stage(sink)))
    assert sink.events == ["a", 1] and sink.flushed
