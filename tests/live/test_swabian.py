"""The Swabian Time Tagger adapter, against the fake module (the real package's API: see test_swabian_conformance)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from live_cases import ToyPipeline, make_stream, run_toy, toy_setup
from timetag.chunk import ERROR, LOST_DTYPE, MISSED, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk, concat
from timetag.cli import main
from timetag.errors import FormatError, OutputError, TimetagError
from timetag.live.device import DeviceError, explain_open_failure
from timetag.live.fake_swabian import FakeTimeTaggerModule, StepClock, TagType, make_buffer
from timetag.live.runner import LiveRunner
from timetag.live.swabian import StreamBufferReader, SwabianSource, buffer_to_chunk, import_timetagger
from timetag.records import FLAG_LOST_DATA
from timetag.roundsfile import read_rounds
from timetag.setupfile import setup_from_dict

TOY_CHANNELS = [2, 3, 6, 7, 8, 9, 10]
TT = TagType


def _buf(t, c, y, m=None, **kw):
    return make_buffer(t, c, y, m if m is not None else [0] * len(t), **kw)


def _engine_factory(lab):
    engine = pytest.importorskip("timetag.engine")
    return engine.LabPipeline(lab)


# --- one buffer -----------------------------------------------------------------------------------------------


def test_event_types_become_lost_data_events():
    b = _buf([10, 20, 30, 30, 40, 50], [1, 2, 0, 3, 0, 0],
             [TT.TimeTag, TT.OverflowBegin, TT.OverflowEnd, TT.MissedEvents, TT.Error, TT.TimeTag],
             [0, 0, 0, 17, 0, 0], has_overflows=True)
    ch = buffer_to_chunk(b)
    assert ch.time.tolist() == [10, 50] and ch.channel.tolist() == [1, 0]
    assert ch.lost["kind"].tolist() == [OVERFLOW_BEGIN, OVERFLOW_END, MISSED, ERROR]
    assert ch.lost["count"][2] == 17 and ch.lost["channel"][2] == 3


def test_has_overflows_alone_is_not_a_lost_interval():
    # regression (#16): the flag is about the device's overflows, whose events are in the buffer; it says nothing
    # about the stream's own buffer, so on its own it must not invent a lost interval
    reader = StreamBufferReader(n_max_events=100)
    ch = reader.read(_buf([10, 20], [1, 1], [0, 0], has_overflows=True, t_get=99))
    assert ch.lost.size == 0


def test_unknown_event_type_is_a_format_error():
    with pytest.raises(FormatError, match="unknown Time Tagger event type 9"):
        buffer_to_chunk(_buf([10], [1], [9]))


# --- a full stream buffer -------------------------------------------------------------------------------------


def test_a_full_buffer_opens_a_gap_closed_by_the_next_buffer_with_events():
    reader = StreamBufferReader(n_max_events=3)
    first = reader.read(_buf([10, 20, 30], [1, 2, 1], [0, 0, 0], t_start=5, t_get=40))
    assert first.lost["kind"].tolist() == [OVERFLOW_BEGIN] and first.lost["time"].tolist() == [30]
    empty = reader.read(_buf([], [], [], t_start=5, t_get=60))  # nothing yet: the gap stays open
    assert empty.lost.size == 0 and reader.gap_open
    nxt = reader.read(_buf([70, 80], [1, 1], [0, 0], t_start=5, t_get=90))
    assert nxt.lost["kind"].tolist() == [OVERFLOW_END] and nxt.lost["time"].tolist() == [70]
    assert not reader.gap_open and reader.full_buffers == 1
    assert nxt.offset == 3 and nxt.time.tolist() == [70, 80]


def test_a_device_overflow_end_at_the_end_of_a_full_buffer_does_not_close_its_gap():
    # the buffer's last events are the device's End + MissedEvents at 30: the gap opens after them
    reader = StreamBufferReader(n_max_events=4)
    a = reader.read(_buf([10, 20, 30, 30], [1, 0, 0, 1], [TT.TimeTag, TT.OverflowBegin, TT.OverflowEnd,
                                                           TT.MissedEvents], [0, 0, 0, 5]))
    assert a.lost["kind"].tolist() == [OVERFLOW_BEGIN, OVERFLOW_END, MISSED, OVERFLOW_BEGIN]
    assert a.lost["time"].tolist() == [20, 30, 30, 30]
    # and the next buffer's first event is a device OverflowBegin at the same instant as the gap's end
    b = reader.read(_buf([50, 60], [0, 0], [TT.OverflowBegin, TT.OverflowEnd]))
    assert b.lost["kind"].tolist() == [OVERFLOW_END, OVERFLOW_BEGIN, OVERFLOW_END]


def test_fake_stream_buffer_keeps_n_max_events_and_reports_only_its_size():
    whole = make_stream(10, seed=2)
    mod = FakeTimeTaggerModule(whole, clock=StepClock(10**12, t0_ps=-(10**12)))
    stream = mod.TimeTagStream(mod.createTimeTagger(), 5, [6])
    buf = stream.getData()
    assert buf.size == 5 and not buf.hasOverflows  # the vendor: hasOverflows is the device's, not the buffer's
    assert set(buf.getChannels().tolist()) == {6}
    assert mod.full_buffers == 1 and len(mod.discarded_tags[0]) == 5
    assert buf.tStart == 0 and buf.tGetData == 10**12


def _spy_buffers(mod):
    """Every buffer the fake stream hands out, as (time, channel, type) arrays, in order."""
    seen = []
    original = mod.TimeTagStream.getData

    def get_data(stream):
        buf = original(stream)
        seen.append((buf.getTimestamps(), buf.getChannels(), buf.getEventTypes(), buf.size))
        return buf

    mod.TimeTagStream = type("SpiedStream", (mod.TimeTagStream,), {"getData": get_data})
    return seen


def _gaps_by_definition(buffers, n_max):
    """[begin, end] of each lost interval as the vendor's documentation implies: from the last event of a buffer
    holding n_max_events to the first event of the next buffer with any."""
    gaps, open_at = [], None
    for t, _c, _y, size in buffers:
        if open_at is not None and t.size:
            gaps.append((open_at, int(t[0])))
            open_at = None
        if size >= n_max:
            open_at = int(t[-1])
    if open_at is not None:
        gaps.append((open_at, np.iinfo(np.int64).max))
    return gaps


def test_a_full_stream_buffer_flags_exactly_the_rounds_whose_windows_touch_the_gap(tmp_path):
    engine = pytest.importorskip("timetag.engine")
    from timetag.process import process_chunks

    setup = toy_setup()
    lab = setup.lab("alice")
    whole = make_stream(60, seed=7)
    n_max = 13
    # polls of 100 us device time (about 12 events): many hold more than 13, and the stream discards the rest
    mod = FakeTimeTaggerModule(whole, clock=StepClock(100_000_000, t0_ps=-100_000_000),
                               end_time_ps=int(whole.time[-1]) + 1)
    buffers = _spy_buffers(mod)
    src = SwabianSource(TOY_CHANNELS, module=mod, poll_interval=0.0, n_max_events=n_max)
    res = LiveRunner(src, setup, tmp_path / "live", pipeline_factory=engine.LabPipeline).run()
    live = read_rounds(res.paths["alice"]).rounds
    assert mod.full_buffers >= 3 and sum(len(d) for d in mod.discarded_tags) > 20
    assert res.final_status["source_stats"]["full_stream_buffers"] >= mod.full_buffers
    assert any("stream buffer filled" in a for a in res.final_status["alarms"])  # the operator is told

    # the same delivered tags, with the gaps given as lost intervals, processed offline in one chunk
    gaps = _gaps_by_definition(buffers, n_max)
    t = np.concatenate([b[0][b[2] == TT.TimeTag] for b in buffers])
    c = np.concatenate([b[1][b[2] == TT.TimeTag] for b in buffers])
    lost = np.zeros(2 * len(gaps), LOST_DTYPE)
    lost["time"] = [x for g in gaps for x in g]
    lost["kind"] = [OVERFLOW_BEGIN, OVERFLOW_END] * len(gaps)
    if gaps and gaps[-1][1] == np.iinfo(np.int64).max:
        lost = lost[:-1]  # still open at the end
    expected = _rounds_of([TagChunk(t, c, lost)], lab, process_chunks)
    assert np.array_equal(live, expected)

    # and against a clean run: untouched rounds identical, touched ones flagged
    clean = _rounds_of([whole], lab, process_chunks)
    windows = (lab.round.setting_window_ps, lab.round.fluorescence_window_ps)

    def touches(trig):  # a window [start, stop) overlapping an interval [begin, end)
        return any(trig + w0 < e and trig + w1 > b for b, e in gaps for w0, w1 in windows)

    by_trigger = {int(r["trigger_time"]): r for r in live}
    fields = [f for f in live.dtype.names if f != "index"]
    untouched = [r for r in clean if not touches(int(r["trigger_time"]))]
    assert 0 < len(untouched) < len(clean)
    for r in untouched:
        assert tuple(by_trigger[int(r["trigger_time"])][fields]) == tuple(r[fields])
    flagged = np.array([touches(int(x)) for x in live["trigger_time"]])
    assert flagged.any()
    assert np.array_equal((live["flags"] & FLAG_LOST_DATA) != 0, flagged)


def _rounds_of(chunks, lab, process_chunks):
    parts = []

    class Collect:
        def append(self, rounds, heralds):
            parts.append(rounds)

        def flush(self):
            pass

    process_chunks(chunks, lab, writer=Collect())
    return np.concatenate(parts)


# --- the device's own overflows -------------------------------------------------------------------------------


def test_fake_device_drops_tags_in_overflow_intervals_and_reports_missed_counts():
    whole = make_stream(30, seed=1)
    ov = [(200_000_000, 330_000_000), (900_000_000, 905_000_000)]
    mod = FakeTimeTaggerModule(whole, overflows=ov, clock=StepClock(70_000_000, t0_ps=-(70_000_000)))
    stream = mod.TimeTagStream(mod.createTimeTagger(), 10**6, TOY_CHANNELS)
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


@pytest.mark.parametrize("factory", [ToyPipeline, _engine_factory], ids=["toy", "engine"])
def test_device_overflow_events_give_flagged_rounds_through_the_live_loop(tmp_path, factory):
    setup = toy_setup()
    whole = make_stream(40, seed=3)
    # the second interval swallows the ready tag at 1351 us
    ov = [(420_000_000, 440_000_000), (1_310_000_000, 1_360_000_000)]
    mod = FakeTimeTaggerModule(whole, overflows=ov, errors=[1_810_000_000],
                               clock=StepClock(30_000_000, t0_ps=-(30_000_000)), end_time_ps=int(whole.time[-1]) + 1)
    src = SwabianSource(setup.lab("alice").channels, lab="alice", module=mod, poll_interval=0.0)
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
    assert mod.taggers[0]._freed  # the adapter released the tagger it created
    stats = res.final_status["source_stats"]
    assert stats["device_errors"] == 1 and stats["device_overflow_buffers"] >= 2
    assert stats["full_stream_buffers"] == 0


def test_no_overflow_gives_the_same_rounds_as_offline_processing(tmp_path):
    setup = toy_setup()
    whole = make_stream(25, seed=4)
    mod = FakeTimeTaggerModule(whole, clock=StepClock(45_000_000, t0_ps=-(45_000_000)),
                               end_time_ps=int(whole.time[-1]) + 1)
    src = SwabianSource(setup.lab("alice").channels, module=mod, poll_interval=0.0)
    res = LiveRunner(src, setup, tmp_path, pipeline_factory=ToyPipeline).run()
    assert np.array_equal(read_rounds(res.paths["alice"]).rounds, run_toy([whole], setup.lab("alice")))


def test_device_run_time_is_measured_from_t_start_to_t_get_data():
    whole = make_stream(100, seed=5)
    mod = FakeTimeTaggerModule(whole, clock=StepClock(100_000_000, t0_ps=10**9))  # the device has run 1 ms already
    src = SwabianSource(TOY_CHANNELS, module=mod, poll_interval=0.0, duration_device_s=0.001)
    batches = list(src)
    src.close()
    assert len(batches) == 10  # 1 ms of stream time in 0.1 ms polls, however long the device ran before
    assert batches[-1].device_time_ps == 10**9 + 11 * 100_000_000


# --- the conditional filter and the 'next' sync -----------------------------------------------------------------


def test_fake_conditional_filter_lets_the_next_event_after_a_trigger_through():
    t = np.array([1, 2, 3, 5, 6, 7, 8, 9, 9, 12], np.int64)
    c = np.array([1, 2, 1, 1, 2, 2, 1, 2, 1, 1], np.int32)  # 2 = trigger, 1 = filtered
    mod = FakeTimeTaggerModule([TagChunk(t[:5], c[:5]), TagChunk(t[5:], c[5:])], clock=StepClock(4, t0_ps=0))
    tagger = mod.createTimeTagger()
    tagger.setConditionalFilter(trigger=[2], filtered=[1])
    stream = mod.TimeTagStream(tagger, 100, [1, 2])
    got = concat([buffer_to_chunk(stream.getData()) for _ in range(4)])  # the gate state crosses the calls
    # plain reference: a filtered tag passes when a trigger came since the previous filtered tag
    keep, gate = [], False
    for ti, ci in sorted(zip(t.tolist(), c.tolist()), key=lambda x: (x[0], x[1] != 2)):
        if ci == 2:
            gate = True
            keep.append((ti, ci))
        elif gate:
            gate = False
            keep.append((ti, ci))
    keep = [k for k in keep if k[0] > 4]  # the stream starts at device time 4
    assert list(zip(got.time.tolist(), got.channel.tolist())) == keep


def _sim_every_sync(n_rounds=4, seed=3):
    from timetag.simulator import LinkSimulator, build_setup, load_preset

    every = load_preset("lmu2022").with_overrides(sync_mode="every", speedup=20000)
    sim = LinkSimulator(every, seed=seed, n_rounds=n_rounds)
    whole = concat([a for a, _b, _t in sim.stream()])
    # the setup for the conditional filter: the window measured from the sync after the click
    cond = build_setup(every.with_overrides(sync_mode="conditional"), sim.thresholds)
    return whole, cond


def test_hardware_conditional_filter_with_the_next_sync_gives_the_rounds_of_every_sync(tmp_path):
    """The filter keeps exactly the sync the 'next' reference needs: the rounds equal those of all syncs."""
    pytest.importorskip("timetag.simulator")
    engine = pytest.importorskip("timetag.engine")
    from timetag.process import process_chunks

    whole, cond = _sim_every_sync()
    d = cond.to_dict()
    alice = d["labs"]["alice"]
    alice["device"] = {"conditional_filter": {"trigger": [b["channel"] for b in alice["bsm"]],
                                              "filtered": [alice["sync_channel"]]}}
    setup = setup_from_dict(d)
    lab = setup.lab("alice")
    assert lab.herald.sync_reference == "next"
    offline = _rounds_of([whole], lab, process_chunks)  # every sync recorded
    assert offline.size >= 3

    mod = FakeTimeTaggerModule(whole, clock=StepClock(50_000_000_000, t0_ps=-50_000_000_000),
                               end_time_ps=int(whole.time[-1]) + 1)
    buffers = _spy_buffers(mod)
    src = SwabianSource(lab.channels, lab="alice", module=mod, poll_interval=0.0, device=lab.device)
    res = LiveRunner(src, setup, tmp_path, labs=("alice",), pipeline_factory=engine.LabPipeline).run()
    live = read_rounds(res.paths["alice"]).rounds
    syncs_seen = sum(int(np.count_nonzero(b[1] == lab.sync_channel)) for b in buffers)
    assert 0 < syncs_seen < int(np.count_nonzero(whole.channel == lab.sync_channel))  # the filter worked
    assert src.provenance()["device"]["conditional_filter"] == {"trigger": [2, 3, 4, 5], "filtered": [1]}
    assert np.array_equal(live, offline)


# --- raw tags through the vendor's FileWriter -------------------------------------------------------------------


def test_raw_path_starts_the_vendor_file_writer_alongside_the_stream(tmp_path):
    whole = make_stream(5, seed=1)
    mod = FakeTimeTaggerModule(whole, clock=StepClock(100_000_000, t0_ps=-100_000_000),
                               end_time_ps=int(whole.time[-1]) + 1)
    src = SwabianSource(TOY_CHANNELS, module=mod, poll_interval=0.0, raw_max_file_size=2**28)
    assert not src.writes_own_raw_tags  # the fake writes nothing: the runner keeps the raw tags itself
    src.raw_path = tmp_path / "raw" / "alice.ttbin"
    list(src)
    (fw,) = mod.file_writers
    assert (fw.filename, fw.channels, fw.max_file_size) == (str(tmp_path / "raw" / "alice.ttbin"), TOY_CHANNELS, 2**28)
    assert fw.running is True
    src.close()
    assert fw.running is False and (tmp_path / "raw").is_dir()
    assert SwabianSource(TOY_CHANNELS).writes_own_raw_tags  # the vendor package's own writer on a real device


def test_the_live_runner_hands_a_real_device_its_raw_path(tmp_path):
    # on a real device the vendor's FileWriter keeps the raw tags; stood in for here by the fake's, which
    # writes nothing (a fake run's raw tags are kept by timetag's own writer: test_live_rawtags)
    whole = make_stream(5, seed=1)
    mod = FakeTimeTaggerModule(whole, clock=StepClock(100_000_000, t0_ps=-100_000_000),
                               end_time_ps=int(whole.time[-1]) + 1)
    src = SwabianSource(TOY_CHANNELS, module=mod, poll_interval=0.0, writes_own_raw_tags=True)
    LiveRunner(src, toy_setup(), tmp_path, pipeline_factory=ToyPipeline, raw_rotate_bytes=2**20).run()
    (fw,) = mod.file_writers
    assert (fw.filename, fw.channels, fw.max_file_size) == (str(tmp_path / "raw" / "alice.ttbin"), TOY_CHANNELS, 2**20)
    assert not fw.running  # stopped when the run ended


def test_raw_path_onto_an_existing_file_is_refused(tmp_path):
    (tmp_path / "alice.ttbin").write_bytes(b"old")
    src = SwabianSource(TOY_CHANNELS, module=FakeTimeTaggerModule([]), raw_path=tmp_path / "alice.ttbin")
    with pytest.raises(OutputError, match="exists"):
        src.start()
    src.close()
    assert (tmp_path / "alice.ttbin").read_bytes() == b"old"


# --- opening the device ---------------------------------------------------------------------------------------


def test_missing_vendor_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "Swabian", None)
    monkeypatch.setitem(sys.modules, "TimeTagger", None)
    with pytest.raises(TimetagError, match="pip install Swabian-TimeTagger"):
        import_timetagger()


@pytest.mark.parametrize("kw, serial, said", [
    (dict(devices=()), "", r"no Time Tagger found: none is connected by USB and powered, or another program"),
    (dict(devices=("1910000ABC",)), "2138000XYZ", r"no Time Tagger 2138000XYZ is connected \(connected: 1910000ABC\)"),
    (dict(devices=("1910000ABC",), busy={"1910000ABC"}), "", r"device busy: 1910000ABC is in use by another program"),
    (dict(devices=("1910000ABC",), busy={"1910000ABC"}), "1910000ABC", r"device busy: 1910000ABC is in use"),
    (dict(open_error="No license found on device, please contact Swabian Instruments. Serial: 1910000ABC"), "",
     r"licence missing or invalid: No license found on device"),
    (dict(open_error="Time Tagger '1910000ABC' disconnected because of an USB error. LIBUSB_ERROR_IO"), "",
     r"USB error: .*LIBUSB_ERROR_IO \(check the cable"),
], ids=["no-device", "other-serial", "busy", "busy-serial", "licence", "usb"])
def test_open_failures_are_one_line_each(kw, serial, said):
    mod = FakeTimeTaggerModule([], **kw)
    src = SwabianSource(TOY_CHANNELS, module=mod, serial=serial)
    with pytest.raises(DeviceError, match=r"^cannot open the Swabian Time Tagger.*: " + said) as ei:
        src.connect()
    assert "\n" not in str(ei.value)
    if serial:
        assert f"Time Tagger {serial}:" in str(ei.value)


def test_highres_mode_without_its_licence_says_so():
    from timetag.setupfile import DeviceConfig

    mod = FakeTimeTaggerModule([], highres=False)
    src = SwabianSource(TOY_CHANNELS, module=mod, device=DeviceConfig(resolution="HighResA"))
    with pytest.raises(DeviceError, match="licence missing or invalid for resolution HighResA"):
        src.connect()


def test_the_real_vendor_messages_are_explained():
    # as the installed library words them (Swabian-TimeTagger 2.22.6, no device attached)
    no_dev = "No Time Tagger attached or already in use. Got the USB error 'Failed' in 'OpenBySerial' in line 187."
    assert explain_open_failure(no_dev, "", []).startswith("no Time Tagger found")
    assert explain_open_failure(no_dev, "", ["1910000ABC"]).startswith("device busy: 1910000ABC")
    bad = ("The serial number argument '1234ABCD' is not a valid Time Tagger serial number. Got the USB error "
           "'Failed' in 'OpenBySerial' in line 187.")
    assert explain_open_failure(bad, "1234ABCD", []) == "'1234ABCD' is not a valid Time Tagger serial number " \
                                                        "(none connected)"


def _toy_setup_file(tmp_path):
    path = tmp_path / "setup.toml"
    toy_setup().save(path)
    return path


def _run_cli(argv, capfd):
    with pytest.raises(SystemExit) as ei:
        main([str(a) for a in argv])
    _out, err = capfd.readouterr()
    return ei.value.code, err


@pytest.mark.parametrize("kw, said", [
    (dict(devices=()), "no Time Tagger found"),
    (dict(busy={"1740000FAK"}), "device busy: 1740000FAK"),
    (dict(open_error="This license has expired."), "licence missing or invalid: This license has expired."),
    (dict(open_error="Time Tagger '1740000FAK' disconnected because of an USB error."), "USB error: "),
], ids=["no-device", "busy", "licence", "usb"])
def test_cli_open_failures_are_one_line_exit_2_and_leave_nothing(tmp_path, capfd, monkeypatch, kw, said):
    import timetag.live.swabian as swabian

    monkeypatch.setattr(swabian, "import_timetagger", lambda: FakeTimeTaggerModule([], **kw))
    out = tmp_path / "out"
    code, err = _run_cli(["live", "--source", "swabian", "--setup", _toy_setup_file(tmp_path), "--lab", "alice",
                          "--out", out, "--no-view", "--duration", "5"], capfd)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: cannot open the Swabian Time Tagger: ") and said in lines[0]
    assert not out.exists() or not any(out.rglob("*"))


def test_cli_with_the_real_package_and_no_device_is_one_line_exit_2(tmp_path):
    tt = pytest.importorskip("Swabian.TimeTagger")
    if tt.scanTimeTagger():
        pytest.skip("a Time Tagger is attached")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "timetag", "live", "--source", "swabian", "--setup",
                        str(_toy_setup_file(tmp_path)), "--lab", "alice", "--out", str(out), "--no-view"],
                       capture_output=True, text=True, timeout=120)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0] == ("error: cannot open the Swabian Time Tagger: no Time Tagger found: none is connected by USB "
                        "and powered, or another program is using it")
    assert r.stdout == "" and not out.exists()
