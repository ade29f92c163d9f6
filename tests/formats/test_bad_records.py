"""Bad records in the middle of a file: the good prefix reaches the consumer before the error ('fail'), or the bad
record becomes a lost-data interval that flags exactly the rounds around it ('lost')."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

import timetag.formats.dump as dump
from timetag.chunk import ERROR, MISSED, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk, concat
from timetag.errors import DataValidationError, FormatError, SetupError, TimetagWarning
from timetag.formats import iter_stream, open_tags, read_all, write_tags
from timetag.formats.dump import RECORD_DTYPE, RECORD_SIZE
from timetag.formats.qutag import HEADER_SIZE, write_qutag_raw
from timetag.records import FLAG_LOST_DATA
from timetag.stream import LabEngine, ReportProgress, StreamBroke, run_stream

INT64_MIN = np.iinfo(np.int64).min
_KIND = {1: ERROR, 2: OVERFLOW_BEGIN, 3: OVERFLOW_END, 4: MISSED}


def _records(times, types=None, reserved=None) -> np.ndarray:
    rec = np.zeros(len(times), RECORD_DTYPE)
    rec["time"] = times
    rec["channel"] = np.arange(len(times)) % 5 + 1
    if types is not None:
        rec["type"] = types
    if reserved is not None:
        rec["reserved"] = reserved
    return rec


def _read(path, **opts):
    """(chunks read before the error, the error or None)."""
    got = []
    try:
        for chunk in open_tags(path, **opts):
            got.append(chunk)
    except (DataValidationError, FormatError) as exc:
        return got, exc
    return got, None


def _lost(path, **opts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TimetagWarning)
        reader = open_tags(path, on_bad_record="lost", **opts)
        return concat(reader), reader.meta


# ------------------------------------------------------------------------------------------------ dump: 'fail'
BAD_DUMPS = {  # what is wrong with record 5, and what the error says
    "backwards": (dict(times=[0, 10, 20, 30, 40, 25, 50, 60]), DataValidationError, r"25 ps after 40 ps"),
    "negative": (dict(times=[0, 10, 20, 30, 40, -5, 50, 60]), DataValidationError, r"negative time -5 ps"),
    "unknown type": (dict(times=[0, 10, 20, 30, 40, 45, 50, 60], types=[0, 0, 0, 0, 0, 7, 0, 0]), FormatError,
                     r"unknown event type code 7 in record 5"),
    "reserved byte": (dict(times=[0, 10, 20, 30, 40, 45, 50, 60], reserved=[0, 0, 0, 0, 0, 2, 0, 0]), FormatError,
                      r"reserved byte is 2 in record 5"),
    "far jump": (dict(times=[0, 10, 20, 30, 40, 10**15, 50, 60]), DataValidationError,
                 r"jumps forward: 1000000000000000 ps after 40 ps"),
}


@pytest.mark.parametrize("what", BAD_DUMPS)
@pytest.mark.parametrize("chunk_size", [1, 3, 5, 6, 100])
@pytest.mark.parametrize("window", [2, 1 << 19])
def test_dump_yields_the_tags_before_a_bad_record_then_names_it(tmp_path, monkeypatch, what, chunk_size, window):
    monkeypatch.setattr(dump, "WINDOW_RECORDS", window)
    spec, cls, message = BAD_DUMPS[what]
    fn = tmp_path / "x.dump"
    _records(**spec).tofile(fn)
    got, exc = _read(fn, chunk_size=chunk_size, max_jump_ps=10**6)
    assert concat(got).time.tolist() == [0, 10, 20, 30, 40]
    assert isinstance(exc, cls)
    text = str(exc)
    assert str(fn) in text and "byte 80" in text and ("record 5" in text)
    assert re.search(message, text), text


def test_dump_error_carries_the_prefix_lost_events(tmp_path):
    fn = tmp_path / "x.dump"
    _records([0, 10, 15, 20, 5, 30], types=[0, 0, 4, 0, 0, 0]).tofile(fn)
    got, exc = _read(fn, chunk_size=100)
    whole = concat(got)
    assert whole.time.tolist() == [0, 10, 20] and whole.lost["kind"].tolist() == [MISSED]
    assert isinstance(exc, DataValidationError) and exc.index == 4


def test_without_max_jump_a_far_future_tag_is_accepted_and_the_next_goes_backwards(tmp_path):
    fn = tmp_path / "x.dump"
    _records([0, 10, 10**15, 20, 30]).tofile(fn)
    got, exc = _read(fn)
    assert concat(got).time.tolist() == [0, 10, 10**15]
    assert isinstance(exc, DataValidationError) and exc.index == 3


# ------------------------------------------------------------------------------------------------ dump: 'lost'
def test_dump_lost_mode_brackets_each_bad_run_and_counts_it(tmp_path):
    fn = tmp_path / "x.dump"
    times = [0, 10, 20, 5, -3, 30, 40, 41, 50, 60, 70]
    _records(times, types=[0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0], reserved=[0] * 9 + [1, 0]).tofile(fn)
    whole, meta = _lost(fn, chunk_size=4)
    assert whole.time.tolist() == [0, 10, 20, 30, 40, 50, 70]
    assert whole.lost[["time", "kind"]].tolist() == [(20, OVERFLOW_BEGIN), (30, OVERFLOW_END),
                                                     (40, OVERFLOW_BEGIN), (50, OVERFLOW_END),
                                                     (50, OVERFLOW_BEGIN), (70, OVERFLOW_END)]
    assert meta["bad_records"] == 4
    ex = meta["bad_record_examples"]
    assert [e["index"] for e in ex] == [3, 4, 7, 9] and [e["offset"] for e in ex] == [48, 64, 112, 144]
    assert "backwards" in ex[0]["reason"] and "negative" in ex[1]["reason"]
    assert "type code 9" in ex[2]["reason"] and "reserved" in ex[3]["reason"]


def test_lost_mode_warns_once(tmp_path):
    fn = tmp_path / "x.dump"
    _records([0, 10, 5, 20, 7, 30]).tofile(fn)
    with pytest.warns(TimetagWarning, match="record 2") as caught:
        concat(open_tags(fn, on_bad_record="lost"))
    assert len([w for w in caught if issubclass(w.category, TimetagWarning)]) == 1


def test_bad_records_before_any_good_tag_get_both_ends_at_the_first_good_tag(tmp_path):
    fn = tmp_path / "x.dump"
    _records([-5, -1, 7, 9]).tofile(fn)
    whole, meta = _lost(fn)
    assert whole.time.tolist() == [7, 9] and meta["bad_records"] == 2
    assert whole.lost[["time", "kind"]].tolist() == [(7, OVERFLOW_BEGIN), (7, OVERFLOW_END)]


def test_a_bad_run_to_the_end_of_the_file_stays_open(tmp_path):
    fn = tmp_path / "x.dump"
    _records([0, 10, 3, 4]).tofile(fn)
    reader = open_tags(fn, on_bad_record="lost")
    with pytest.warns(TimetagWarning):
        whole = concat(reader)
    assert whole.lost[["time", "kind"]].tolist() == [(10, OVERFLOW_BEGIN)]
    assert reader.lost_interval_open


def test_a_clock_that_restarts_makes_the_rest_lost_data(tmp_path):
    """Bad records are judged against the last good tag: a restart is not followed, it is lost data."""
    fn = tmp_path / "x.dump"
    _records(np.r_[np.arange(0, 1000, 10), np.arange(0, 50_000, 10)]).tofile(fn)
    whole, meta = _lost(fn, chunk_size=64)
    assert len(whole) == 100 + (50_000 - 990) // 10 and meta["bad_records"] == 99
    assert len(meta["bad_record_examples"]) == 10


def test_device_overflows_and_bad_runs_never_nest(tmp_path):
    """The engine knows one open overflow: where a bad run overlaps the device's overflow, one pair spans both."""
    fn = tmp_path / "x.dump"
    # tag 0, device BEGIN at 5, tag 10, bad, device END at 20, tag 30, device stray END at 35, tag 40
    times = [0, 5, 10, 3, 20, 30, 35, 40]
    types = [0, 2, 0, 0, 3, 0, 3, 0]
    _records(times, types=types).tofile(fn)
    whole, _ = _lost(fn)
    assert whole.time.tolist() == [0, 10, 30, 40]
    assert whole.lost[["time", "kind"]].tolist() == [(5, OVERFLOW_BEGIN), (30, OVERFLOW_END),
                                                     (35, OVERFLOW_END)]


def _reference(rec: np.ndarray, max_jump=None):
    """The 'lost' policy record by record in plain Python: (tags, lost events (time, kind), bad count)."""
    last, tags, events, bad = INT64_MIN, [], [], 0
    run_open, begin = False, None
    ours_open = device_open = False

    def emit(t, kind, ours):   # an overflow event of one side passes while the other side has none open
        nonlocal ours_open, device_open
        if kind not in (OVERFLOW_BEGIN, OVERFLOW_END):
            events.append((t, kind))
        elif ours:
            if not device_open:
                events.append((t, kind))
            ours_open = kind == OVERFLOW_BEGIN
        else:
            if not ours_open:
                events.append((t, kind))
            device_open = kind == OVERFLOW_BEGIN

    for ty, res, _, ch, t in rec.tolist():
        is_bad = ty > 4 or res or (ty == 0 and (t < 0 or (last != INT64_MIN and (
            t < last or (max_jump is not None and t - last > max_jump)))))
        if is_bad:
            bad += 1
            if not run_open:
                run_open, begin = True, last
                if last != INT64_MIN:
                    emit(last, OVERFLOW_BEGIN, True)
        elif ty == 0:
            if run_open:
                if begin == INT64_MIN:
                    emit(t, OVERFLOW_BEGIN, True)
                emit(t, OVERFLOW_END, True)
                run_open = False
            tags.append(t)
            last = max(last, t)
        else:
            emit(t, _KIND[ty], False)
    return tags, events, bad


@given(n=st.integers(1, 300), seed=st.integers(0, 10**6), chunk=st.integers(1, 80), window=st.integers(1, 50),
       jump=st.sampled_from([None, 2000]), use_mmap=st.booleans())
def test_lost_mode_matches_a_plain_loop_at_any_chunking(tmp_path_factory, n, seed, chunk, window, jump, use_mmap):
    rng = np.random.default_rng(seed)
    rec = _records(np.cumsum(rng.integers(0, 500, n)))
    k = rng.random(n)
    rec["type"][k < 0.15] = rng.integers(1, 5, int((k < 0.15).sum()))
    rec["time"][(k > 0.9) & (k < 0.95)] -= rng.integers(0, 3000, int(((k > 0.9) & (k < 0.95)).sum()))
    rec["time"][k > 0.98] += 10**9
    rec["type"][(k > 0.85) & (k < 0.86)] = 200
    rec["reserved"][(k > 0.86) & (k < 0.87)] = 1
    fn = tmp_path_factory.mktemp("d") / "x.dump"
    rec.tofile(fn)
    old = dump.WINDOW_RECORDS, dump.READ_RECORDS
    dump.WINDOW_RECORDS = dump.READ_RECORDS = window
    try:
        whole, meta = _lost(fn, chunk_size=chunk, max_jump_ps=jump, use_mmap=use_mmap)
    finally:
        dump.WINDOW_RECORDS, dump.READ_RECORDS = old
    tags, events, bad = _reference(rec, jump)
    assert whole.time.tolist() == tags
    assert whole.lost[["time", "kind"]].tolist() == events
    assert meta["bad_records"] == bad


# ----------------------------------------------------------------------------------- readers over the order guard
def _text(path, times):
    path.write_text("".join(f"1 {t}\n" for t in times))
    return path


def _qutag(path, times):
    write_qutag_raw(path, np.array(times, np.uint64), np.ones(len(times), np.uint16))
    return path


def _h5(path, times):
    write_tags(path, TagChunk(np.array(times, np.int64), np.ones(len(times), np.int32)))
    return path


@pytest.mark.parametrize("make, suffix", [(_text, ".txt"), (_qutag, ".qutag"), (_h5, ".h5")])
@pytest.mark.parametrize("chunk_size", [1, 2, 4, 100])
def test_guarded_readers_yield_the_prefix_then_name_the_record(tmp_path, make, suffix, chunk_size):
    fn = make(tmp_path / f"x{suffix}", [0, 10, 20, 30, 15, 40])
    got, exc = _read(fn, chunk_size=chunk_size)
    assert concat(got).time.tolist() == [0, 10, 20, 30]
    assert isinstance(exc, DataValidationError) and exc.index == 4 and "15 ps after 30 ps" in str(exc)
    if suffix == ".qutag":
        assert f"byte {HEADER_SIZE + 4 * 10}" in str(exc)
    whole, meta = _lost(fn, chunk_size=chunk_size)
    assert whole.time.tolist() == [0, 10, 20, 30, 40] and meta["bad_records"] == 1
    assert whole.lost[["time", "kind"]].tolist() == [(30, OVERFLOW_BEGIN), (40, OVERFLOW_END)]


@pytest.mark.parametrize("chunk_size", [1, 3, 100])
def test_guard_checks_negative_times_and_far_jumps(tmp_path, chunk_size):
    fn = _text(tmp_path / "x.txt", [-4, 0, 10, 10**12, 20, 30])
    got, exc = _read(fn, chunk_size=chunk_size)
    assert concat(got).time.tolist() == [] and "negative time -4 ps" in str(exc)
    assert isinstance(exc, DataValidationError) and exc.index == 0
    whole, meta = _lost(fn, chunk_size=chunk_size, max_jump_ps=1000)
    assert whole.time.tolist() == [0, 10, 20, 30] and meta["bad_records"] == 2
    assert whole.lost[["time", "kind"]].tolist() == [(0, OVERFLOW_BEGIN), (0, OVERFLOW_END),
                                                     (10, OVERFLOW_BEGIN), (20, OVERFLOW_END)]


@pytest.mark.parametrize("chunk_size", [1, 4, 100])
def test_tolerance_reorders_around_a_dropped_record(tmp_path, chunk_size):
    fn = _qutag(tmp_path / "x.qutag", [0, 10, 8, 20, 2, 30, 28, 40])
    opts = dict(tolerance_ps=5, chunk_size=chunk_size)
    got, exc = _read(fn, **opts)
    assert concat(got).time.tolist() == [0, 8, 10, 20] and exc.index == 4 and "tolerance 5 ps" in str(exc)
    whole, meta = _lost(fn, **opts)
    assert whole.time.tolist() == [0, 8, 10, 20, 28, 30, 40] and meta["bad_records"] == 1


# ------------------------------------------------------------------------------------------------- streams, options
def test_iter_stream_closes_an_interval_left_open_at_the_next_file(tmp_path):
    a, b = tmp_path / "a.dump", tmp_path / "b.dump"
    _records([0, 10, 3]).tofile(a)
    _records([50, 60]).tofile(b)
    with pytest.warns(TimetagWarning):
        whole = concat(iter_stream([a, b], on_bad_record="lost"))
    assert whole.time.tolist() == [0, 10, 50, 60]
    assert whole.lost[["time", "kind"]].tolist() == [(10, OVERFLOW_BEGIN), (50, OVERFLOW_END)]


@pytest.mark.parametrize("opts, key", [
    (dict(on_bad_record="skip"), "on_bad_record"), (dict(on_bad_record=None), "on_bad_record"),
    (dict(max_jump_ps=0), "max_jump_ps"), (dict(max_jump_ps=-1), "max_jump_ps"),
    (dict(max_jump_ps=1.5), "max_jump_ps"), (dict(max_jump_ps=True), "max_jump_ps"),
    (dict(max_jump_ps="1e12"), "max_jump_ps"),
])
def test_invalid_options_are_setup_errors_naming_the_option(tmp_path, opts, key):
    fn = tmp_path / "x.dump"
    _records([0, 1]).tofile(fn)
    for call in (lambda: open_tags(fn, **opts), lambda: list(iter_stream([fn], **opts)),
                 lambda: read_all(_text(tmp_path / "x.txt", [1]), **opts)):
        with pytest.raises(SetupError, match=rf"\[{key}\]"):
            call()


def test_whole_float_max_jump_is_accepted(tmp_path):
    fn = tmp_path / "x.dump"
    _records([0, 1, 10**12 + 2]).tofile(fn)
    got, exc = _read(fn, max_jump_ps=1e12)
    assert isinstance(exc, DataValidationError) and "max_jump_ps 1000000000000" in str(exc)


# --------------------------------------------------------------------------------- the engine flags the rounds
sim = pytest.importorskip("timetag.simulator")


class _Rounds:
    """A writer stand-in for process_chunks: keeps the rounds."""

    def __init__(self):
        self.parts = []

    def append(self, rounds, heralds):
        self.parts.append(rounds)

    def flush(self):
        pass

    @property
    def rounds(self):
        return np.concatenate(self.parts)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from timetag.process import process_chunks
    from timetag.setupfile import load_setup

    out = tmp_path_factory.mktemp("sim")
    res = sim.simulate(sim.load_preset("lmu2022"), 20, 11, out, speedup=100)
    lab = load_setup(res.setup).lab("alice")
    rec = np.fromfile(res.alice, RECORD_DTYPE)
    clean = _Rounds()
    process_chunks(iter_stream(res.alice, chunk_size=10_000), lab, clean)
    return dict(out=out, lab=lab, rec=rec, clean=clean.rounds, process=process_chunks)


def _bad_file(run, k: int, how: str):
    """The run's records with a bad one in round k's fluorescence window: (file, index of the bad record)."""
    rec, clean = run["rec"], run["clean"]
    start = int(clean["trigger_time"][k]) + run["lab"].round.fluorescence_window_ps[0]
    i = int(np.searchsorted(rec["time"], start + 1_000_000))    # a tag well inside the window
    if how == "inserted":     # an extra record going backwards: the good data are unchanged
        bad = rec[i:i + 1].copy()
        bad["time"] = 5
        rec = np.concatenate([rec[:i], bad, rec[i:]])
    else:                     # a tag whose time was damaged: that tag is lost
        rec = rec.copy()
        rec["time"][i] = -rec["time"][i]
    fn = run["out"] / f"bad_{how}.dump"
    rec.tofile(fn)
    return fn, i


@pytest.mark.parametrize("how", ["inserted", "replaced"])
@pytest.mark.parametrize("chunk_size", [997, 100_000])
def test_lost_mode_flags_the_rounds_around_a_bad_record_and_no_others(run, how, chunk_size):
    k = 7
    fn, _ = _bad_file(run, k, how)
    got = _Rounds()
    with pytest.warns(TimetagWarning):
        pipe = run["process"](iter_stream(fn, chunk_size=chunk_size, on_bad_record="lost"), run["lab"], got)
    clean, bad = run["clean"], got.rounds
    assert len(bad) == len(clean) and pipe.summary["rounds"] == len(clean)
    flagged = (bad["flags"] & FLAG_LOST_DATA) != 0
    assert flagged[k] and flagged.sum() == 1        # the 10 ms read-out windows of two rounds never overlap here
    assert np.array_equal(bad[~flagged], clean[~flagged])
    assert np.array_equal(bad["flags"] & ~np.uint32(FLAG_LOST_DATA), clean["flags"])
    same = ["index", "trigger_time", "herald_time", "pattern", "setting"]
    assert np.array_equal(bad[same], clean[same])
    if how == "inserted":     # nothing was lost but the bad record itself: the flag is the only difference
        assert np.array_equal(bad[["count", "output"]], clean[["count", "output"]])


@pytest.mark.parametrize("chunk_size", [997, 100_000])
def test_fail_mode_processes_every_tag_before_the_bad_record(run, chunk_size):
    fn, i = _bad_file(run, 7, "inserted")
    seen = []
    counted = ReportProgress(lambda done, rounds: seen.append(done), LabEngine(run["lab"]))
    with pytest.raises(StreamBroke, match=rf"record {i}: time goes backwards: 5 ps .*byte {i * RECORD_SIZE}") as e:
        run_stream(iter_stream(fn, chunk_size=chunk_size), counted)
    assert isinstance(e.value.__cause__, DataValidationError)
    n_tags_before = int(np.count_nonzero(run["rec"]["type"][:i] == 0))
    assert seen[-1] == n_tags_before
