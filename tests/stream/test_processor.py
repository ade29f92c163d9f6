"""Stage, Tee and Collect: forwarding, fan-out in order, and the one-flush contract."""
from __future__ import annotations

import pytest

from timetag.stream import Collect, Processor, Stage, Tee


def test_tee_gives_every_event_to_each_downstream_in_order():
    log = []

    class Log:
        def __init__(self, name):
            self.name = name

        def handle(self, e):
            log.append((self.name, e))

        def flush(self):
            log.append((self.name, "flush"))

    t = Tee(Log("a"), None, Log("b"))
    t.handle(1)
    t.flush()
    assert log == [("a", 1), ("b", 1), ("a", "flush"), ("b", "flush")]


def test_stage_without_downstream_is_a_sink():
    s = Stage()
    s.handle(object())
    s.flush()


def test_collect_refuses_events_after_the_end():
    c = Collect()
    c.flush()
    with pytest.raises(RuntimeError):
        c.handle(1)
    with pytest.raises(RuntimeError):
        c.flush()


@pytest.mark.parametrize("proc", [Stage(), Tee(), Collect()])
def test_plumbing_satisfies_the_protocol(proc):
    assert isinstance(proc, Processor)
