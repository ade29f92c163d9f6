"""WriteRounds: appends rounds (and heralds unless told not to), flushes per event / checkpoint / end as asked,
never closes the output, forwards everything."""
from __future__ import annotations

import numpy as np
import pytest

from timetag.records import empty_heralds, empty_rounds
from timetag.stream import Checkpoint, Collect, RoundsEvent, WriteRounds, run_stream


class Output:
    def __init__(self):
        self.log = []

    def append(self, rounds, heralds=None):
        self.log.append(("append", len(rounds), None if heralds is None else len(heralds)))

    def flush(self):
        self.log.append(("flush",))


EVENTS = [RoundsEvent(empty_rounds(2), empty_heralds(1)), RoundsEvent(empty_rounds(), empty_heralds()),
          Checkpoint(1.0), RoundsEvent(empty_rounds(), empty_heralds(3))]


@pytest.mark.parametrize("durable, expected", [
    ("event", [("append", 2, 1), ("flush",), ("flush",), ("append", 0, 3), ("flush",), ("flush",)]),
    ("checkpoint", [("append", 2, 1), ("flush",), ("append", 0, 3), ("flush",)]),
    ("end", [("append", 2, 1), ("flush",), ("append", 0, 3), ("flush",)]),
])
def test_when_the_output_is_flushed(durable, expected):
    out, sink = Output(), Collect()
    run_stream(EVENTS, WriteRounds(out, sink, durable=durable))
    assert out.log == expected
    assert sink.events == EVENTS and sink.flushed


def test_rounds_only():
    out = Output()
    run_stream(EVENTS, WriteRounds(out, with_heralds=False, durable="end"))
    # an event of heralds only writes nothing; the checkpoint and the end flush
    assert out.log == [("append", 2, None), ("flush",), ("flush",)]


def test_refuses_an_unknown_durability():
    with pytest.raises(ValueError, match="durable"):
        WriteRounds(Output(), durable="sometimes")


def test_into_a_real_rounds_file(tmp_path):
    from timetag.roundsfile import RoundsWriter, read_rounds

    r = empty_rounds(3)
    r["index"] = np.arange(3)
    with RoundsWriter(tmp_path / "r.h5", lab="alice", role="alice") as w:
        run_stream([RoundsEvent(r, empty_heralds())], WriteRounds(w))
    assert read_rounds(tmp_path / "r.h5", accept_incomplete=True).rounds["index"].tolist() == [0, 1, 2]
