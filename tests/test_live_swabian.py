"""The Swabian Time Tagger adapter, against the fake module (and the real package's names where installed)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from test_live_toy import ToyPipeline, make_stream, run_toy, toy_setup
from timetag.chunk import ERROR, MISSED, OVERFLOW_BEGIN, OVERFLOW_END, concat
from timetag.errors import FormatError, TimetagError
from timetag.live.fake_swabian import FakeTimeTaggerModule, StepClock, TagType, TimeTagStreamBuffer
from timetag.live.runner import LiveRunner
from timetag.live.swabian import SwabianSource, buffer_to_chunk, import_timetagger
from timetag.records import FLAG_LOST_DATA
from timetag.roundsfile import read_rounds


def _buf(t, c, y, m, has_ov=False, t0=0, tg=None):
    return TimeTagStreamBuffer(np.asarray(t, np.int64), np.asarray(c, np.int32), np.asarray(y, np.uint8),
                               np.asarray(m, np.uint16), has_ov, t0, tg if tg is not None else (t[-1] if t else 0))


def test_event_types_become_lost_data_events():
    b = _buf([10, 20, 30, 30, 40, 50], [1, 2, 0, 3, 0, 0],
             [TagType.TimeTag, TagType.OverflowBegin, TagType.OverflowEnd, TagType.MissedEvents, TagType.Error,
              TagType.TimeTag], [0, 0, 0, 17, 0, 0], has_ov=True)
    ch = buffer_to_chunk(b)
    assert ch.time.tolist() == [10, 50] and ch.channel.tolist() == [1, 0]
    assert ch.lost["kind"].tolist() == [OVERFLOW_BEGIN, OVERFLOW_END, MISSED, ERROR]
    assert ch.lost["count"][2] == 17 and ch.lost["channel"][2] == 3


def test_overflow_flag_without_events_marks_the_rest_of_the_buffer_lost():
    ch = buffer_to_chunk(_buf([10, 20], [1, 1], [0, 0], [0, 0], has_ov=True, tg=99))
    assert ch.lost["kind"].tolist() == [OVERFLOW_BEGIN, OVERFLOW_END]
    assert ch.lost["time"].tolist() == [20, 99]


def test_unknown_event_type_is_a_format_error():
    with pytest.raises(FormatError, match="unknown Time Tagger event type 9"):
        buffer_to_chunk(_buf([10], [1], [9], [0]))


def test_fake_device_drops_tags_in_overflow_intervals_and_reports_missed_counts():
    whole = make_stream(30, seed=1)
    ov = [(200_000_000, 330_000_000), (900_000_000, 905_000_000)]
    mod = FakeTimeTaggerModule(whole, overflows=ov, clock=StepClock(70_000_000, t0_ps=-(70_000_000)))
    tagger = mod.createTimeTagger()
    stream = mod.TimeTagStream(tagger, 10**6, [2, 3, 6, 7, 8, 9, 10])
    chunks = []
    while not (mod._feed.exhausted and mod._last_now > 2_000_000_000):
        chunks.append(buffer_to_chunk(stream.getData()))
    got = concat(chunks)
    inside = np.zeros(len(whole), bool)
    for a, b in ov:
        inside |= (whole.time >= a) & (whole.time < b)
    assert np.array_equal(got.time, whole.time[~inside])
    kinds = got.lost["kind"]
    assert got.lost["time"][kinds == OVERFLOW_BEGIN].tolist() == [a for a, _ in ov]
    assert got.lost["time"][kinds == OVERFLOW_END].tolist() == [b for _, b in ov]
    assert int(got.lost["count"][kinds == MISSED].sum()) == int(inside.sum())


def test_stream_filters_channels_and_a_full_buffer_sets_has_overflows():
    whole = make_stream(10, seed=2)
    mod = FakeTimeTaggerModule(whole, clock=StepClock(10**12, t0_ps=-(10**12)))
    stream = mod.TimeTagStream(mod.createTimeTagger(), 5, [6])
    buf = stream.getData()
    assert buf.size == 5 and buf.hasOverflows
    assert set(buf.getChannels().tolist()) == {6}
    ch = buffer_to_chunk(buf)
    assert ch.lost["kind"].tolist() == [OVERFLOW_BEGIN, OVERFLOW_END]


def _engine_factory(lab):
    engine = pytest.importorskip("timetag.engine")
    return engine.LabPipeline(lab)


@pytest.mark.parametrize("factory", [ToyPipeline, _engine_factory], ids=["toy", "engine"])
def test_overflow_intervals_give_flagged_rounds_through_the_live_loop(tmp_path, factory):
    setup = toy_setup()
    lab = setup.lab("alice")
    whole = make_stream(40, seed=3)
    # the second interval swallows the ready tag at 1351 us
    ov = [(420_000_000, 440_000_000), (1_310_000_000, 1_360_000_000)]
    mod = FakeTimeTaggerModule(whole, overflows=ov, errors=[1_810_000_000], clock=StepClock(30_000_000, t0_ps=-(30_000_000)),
                               end_time_ps=int(whole.time[-1]) + 1)
    src = SwabianSource(lab.channels, lab="alice", module=mod, poll_interval=0.0)
    res = LiveRunner(src, setup, tmp_path, pipeline_factory=factory).run()
    rounds = read_rounds(res.paths["alice"]).rounds
    ready = whole.time[whole.channel == 6]
    dropped = np.zeros(ready.size, bool)
    for a, b in ov:
        dropped |= (ready >= a) & (ready < b)
    assert np.array_equal(rounds["trigger_time"], ready[~dropped])  # a ready lost in an overflow makes no round
    # independent expectation: the toy's round span [t + 0, t + 25 us) overlapping an interval or the error
    t = rounds["trigger_time"]
    hit = np.zeros(t.size, bool)
    for a, b in ov + [(1_810_000_000, 1_810_000_001)]:
        hit |= (t < b) & (t + 25_000_000 > a)
    assert hit.any()
    assert np.array_equal((rounds["flags"] & FLAG_LOST_DATA) != 0, hit)
    assert mod.taggers[0].freed  # the adapter released the tagger it created
    assert res.final_status["source_stats"]["device_errors"] == 1
    assert res.final_status["source_stats"]["overflow_buffers"] >= 2


def test_no_overflow_gives_the_same_rounds_as_offline_processing(tmp_path):
    setup = toy_setup()
    whole = make_stream(25, seed=4)
    mod = FakeTimeTaggerModule(whole, clock=StepClock(45_000_000, t0_ps=-(45_000_000)), end_time_ps=int(whole.time[-1]) + 1)
    src = SwabianSource(setup.lab("alice").channels, module=mod, poll_interval=0.0)
    res = LiveRunner(src, setup, tmp_path, pipeline_factory=ToyPipeline).run()
    assert np.array_equal(read_rounds(res.paths["alice"]).rounds, run_toy([whole], setup.lab("alice")))


def test_missing_vendor_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "Swabian", None)
    monkeypatch.setitem(sys.modules, "TimeTagger", None)
    with pytest.raises(TimetagError, match="pip install Swabian-TimeTagger"):
        import_timetagger()


def test_fake_matches_the_real_package_names_where_installed():
    try:
        real = import_timetagger()
    except TimetagError:
        pytest.skip("Swabian-TimeTagger not installed")
    for name in ("createTimeTagger", "freeTimeTagger", "TimeTagStream", "TagType"):
        assert hasattr(real, name), name
    for name in ("TimeTag", "Error", "OverflowBegin", "OverflowEnd", "MissedEvents"):
        assert int(getattr(real.TagType, name)) == getattr(TagType, name)
    for name in ("getData", "start", "stop", "isRunning", "clear"):
        assert hasattr(real.TimeTagStream, name), name
