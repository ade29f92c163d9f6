"""CountChannels and tallied: every tag of every chunk counted, whatever the cuts; everything forwarded."""
from __future__ import annotations

from timetag.channels import ChannelTally
from timetag.chunk import split
from timetag.stream import Collect, CountChannels, RoundsEvent, run_stream
from timetag.stream.channels import tallied
from timetag.stream.prefetch import prefetched

from stream_cases import chunk


def test_counts_every_channel_and_forwards():
    whole = chunk([1, 2, 3, 4, 5, 6], [1, -3, 1, 2000, 1, -3])
    for cuts in ([], [1], [2, 2, 5]):
        sink = Collect()
        counter = CountChannels(sink)
        pieces = list(split(whole, cuts))
        ev = RoundsEvent.empty()
        run_stream([*pieces, ev], counter)
        assert counter.counts == {-3: 2, 1: 3, 2000: 1}
        assert sink.events == [*pieces, ev]


def test_empty_stream():
    counter = CountChannels()
    run_stream([], counter)
    assert counter.counts == {}


def test_tallied_counts_on_the_reading_thread_what_the_stage_counts():
    whole = chunk([1, 2, 3, 4, 5, 6, 7], [1, -3, 1, 2000, 1, -3, 70000])
    for cuts in ([], [3], [1, 4, 4, 6]):
        pieces = [*split(whole, cuts), RoundsEvent.empty()]
        stage = CountChannels()
        run_stream(pieces, stage)
        tally = ChannelTally()
        assert list(prefetched(tallied(pieces, tally))) == pieces
        assert tally.counts == stage.counts == {-3: 2, 1: 3, 2000: 1, 70000: 1}
