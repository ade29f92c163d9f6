"""RecordRawTags: each chunk written before it is forwarded; the sink flushed on a checkpoint and at the end."""
from __future__ import annotations

from timetag.stream import Checkpoint, RecordRawTags, run_stream

from stream_cases import chunk


def test_write_before_forward_and_flushes():
    log = []

    class Sink:
        def write(self, c):
            log.append(("write", len(c)))

        def flush(self):
            log.append(("flush",))

    class Down:
        def handle(self, e):
            log.append(("down", type(e).__name__))

        def flush(self):
            log.append(("down-flush",))

    run_stream([chunk([1, 2], [1, 1]), Checkpoint(0.0)], RecordRawTags(Sink(), Down()))
    assert log == [("write", 2), ("down", "TagChunk"), ("flush",), ("down", "Checkpoint"), ("flush",),
                   ("down-flush",)]
