"""LabEngine: one RoundsEvent per chunk, then the chunk itself; a final RoundsEvent at the end; other events
pass; the rounds are those of the plain pipeline and do not depend on where chunks were cut."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from engine_cases import alice, herald_ready_stream
from timetag.chunk import TagChunk, split
from timetag.engine import LabPipeline
from timetag.stream import Checkpoint, Collect, LabEngine, RoundsEvent, run_stream

from stream_cases import chunk, rounds_of

WHOLE = herald_ready_stream(np.random.default_rng(5), 300)


def _reference():
    r, _ = LabPipeline(alice()).run([WHOLE])
    return r


def test_events_per_chunk_and_at_the_end():
    sink = Collect()
    pieces = list(split(WHOLE, [200, 500]))
    run_stream([pieces[0], Checkpoint(1.0), *pieces[1:]], LabEngine(alice(), sink))
    kinds = [type(e).__name__ for e in sink.events]
    assert kinds == ["RoundsEvent", "TagChunk", "Checkpoint", "RoundsEvent", "TagChunk", "RoundsEvent", "TagChunk",
                     "RoundsEvent"]
    assert [e.final for e in sink.of_type(RoundsEvent)] == [False, False, False, True]
    assert sink.of_type(TagChunk) == pieces and sink.flushed


def test_the_rounds_are_the_pipelines():
    sink = Collect()
    run_stream([WHOLE], LabEngine(alice(), sink))
    ref = _reference()
    assert ref.size > 100
    assert rounds_of(sink).tolist() == ref.tolist()


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(0, len(WHOLE)), max_size=8))
def test_rounds_do_not_depend_on_chunk_boundaries(cuts):
    sink = Collect()
    run_stream(split(WHOLE, sorted(cuts)), LabEngine(alice(), sink))
    assert rounds_of(sink).tolist() == _reference().tolist()


def test_empty_stream_and_one_tag():
    for events in ([], [chunk([1000], [1])]):
        sink = Collect()
        engine = LabEngine(alice(), sink)
        run_stream(events, engine)
        assert rounds_of(sink).size == 0 and sink.of_type(RoundsEvent)[-1].final
        assert engine.summary["tags"] == sum(len(e) for e in events)


def test_a_second_flush_adds_nothing():
    sink = Collect()
    engine = LabEngine(alice(), None)
    engine.handle(WHOLE)
    engine.flush()
    engine.downstream = sink
    engine.flush()  # the driver's rescue after a failed first flush must not run the pipeline's flush twice
    assert sink.events == [] and sink.flushed


def test_a_custom_pipeline_may_answer_none():
    class Quiet:
        def process(self, c):
            return None, None

        def flush(self):
            return None

    sink = Collect()
    run_stream([WHOLE], LabEngine(alice(), sink, pipeline=Quiet()))
    assert all(len(e.rounds) == 0 and len(e.heralds) == 0 for e in sink.of_type(RoundsEvent))
