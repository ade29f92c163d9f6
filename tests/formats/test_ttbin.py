"""Swabian .ttbin (FileWriter) recordings through the vendor's FileReader.

No real .ttbin can be made here (FileWriter needs a tagger, the virtual tagger a licence), so the reader's logic is
tested over a stand-in that offers exactly the methods and array dtypes of the real ``FileReader`` and
``TimeTagStreamBuffer`` (checked against the installed vendor classes below, so that it cannot drift), and the
error paths are tested against the REAL FileReader.  Tests that need the vendor package skip cleanly without it.
"""
from __future__ import annotations

import json
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest

from timetag.chunk import ERROR, MISSED, OVERFLOW_BEGIN, OVERFLOW_END, concat
from timetag.errors import DataValidationError, FormatError, TimetagWarning
from timetag.formats import open_tags, read_all, sniff
from timetag.formats import ttbin
from timetag.formats.dump import RECORD_DTYPE

CONFIG = {"serial": "1234ABCD", "model": "Time Tagger Ultra", "channels": [1, 2, 3]}
# a .ttbin as the vendor's FileReader accepts its start (probed: "SITT" then a block header); no data, no config
STUB_HEAD = b"SITT" + np.array([0, 1, 0], "<u4").tobytes() + bytes(64)


# ------------------------------------------------------------------------------------------------ the stand-in
class FakeBuffer:
    """Stand-in for ``TimeTagStreamBuffer``: the same public methods and attributes, the same array dtypes."""

    def __init__(self, t, c, y, m, t_start=0, t_get=0):
        self._t = np.asarray(t, np.int64)
        self._c = np.asarray(c, np.int32)
        self._y = np.asarray(y, np.uint8)
        self._m = np.asarray(m, np.uint16)
        self.size = int(self._t.size)
        self.hasOverflows = bool(np.isin(self._y, (2, 3, 4)).any())
        self.tStart = int(t_start)
        self.tGetData = int(t_get)

    def getTimestamps(self):
        return self._t.copy()

    def getChannels(self):
        return self._c.copy()

    def getEventTypes(self):
        return self._y.copy()

    def getMissedEvents(self):
        return self._m.copy()

    def getOverflows(self):
        return self.getEventTypes()


class FakeFileReader:
    """Stand-in for ``FileReader`` over a list of events (time, channel, type, missed): ``getData(n)`` returns
    the next n, like the real one; ``log`` (level, message) pairs are sent to the installed logger on open."""

    def __init__(self, module, filename):
        self.module_ = module
        module.opened.append(filename)
        self._ev = module.events
        self._pos = 0
        for level, msg in module.open_log:
            module.log(level, msg)

    def getData(self, n_events):
        lo, hi = self._pos, min(self._pos + int(n_events), len(self._ev["t"]))
        self._pos = hi
        for level, msg in self.module_.read_log.get(lo, []):
            self.module_.log(level, msg)
        if self.module_.stuck:
            return FakeBuffer([], [], [], [], 5, 5)
        return FakeBuffer(*(self._ev[k][lo:hi] for k in "tcym"), t_start=5, t_get=hi)

    def hasData(self):
        return self.module_.stuck or self._pos < len(self._ev["t"])

    def getConfiguration(self):
        return json.loads(self.module_.config)        # the vendor's wrapper parses the JSON string

    def getChannelList(self):
        return (1, 2, 3)

    def getLastMarker(self):
        return "the end"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.module_.closed += 1
        return False


class FakeTag:
    Type_TimeTag, Type_Error, Type_OverflowBegin, Type_OverflowEnd, Type_MissedEvents = 0, 1, 2, 3, 4


def fake_module(t, c, y=None, m=None, config=CONFIG, open_log=(), read_log=None, stuck=False):
    """A stand-in vendor module serving these events (``y`` event types, default all tags)."""
    n = len(t)
    mod = types.SimpleNamespace(LOGGER_ERROR=40, LOGGER_WARNING=30, LOGGER_INFO=10, Tag=FakeTag,
                                getVersion=lambda: "fake-1.0", opened=[], closed=0, stuck=stuck,
                                open_log=list(open_log), read_log=read_log or {},
                                config=json.dumps(config) if config is not None else "")
    mod.events = {"t": np.asarray(t, np.int64), "c": np.asarray(c, np.int32),
                  "y": np.zeros(n, np.uint8) if y is None else np.asarray(y, np.uint8),
                  "m": np.zeros(n, np.uint16) if m is None else np.asarray(m, np.uint16)}

    def set_logger(callback):      # as the vendor's: the installed logger keeps its callback
        set_logger.logger = SimpleNamespace(callback=callback) if callback else None

    set_logger.logger = None
    mod.setLogger = set_logger

    def log(level, msg):
        if set_logger.logger is None:
            print(msg, file=sys.stderr)        # the vendor prints when no logger is installed
        else:
            set_logger.logger.callback(level, "07-Dec-2026 05:00:31: " + msg)

    mod.log = log
    mod.FileReader = lambda filename: FakeFileReader(mod, filename)
    return mod


def _file(tmp_path, name="run.ttbin"):
    p = tmp_path / name
    p.write_bytes(STUB_HEAD)
    return p


# a stream with every event type: tags, an overflow interval with missed events, an error
T = [10, 20, 30, 40, 40, 50, 60, 70, 80, 90]
C = [1, 2, 1, 0, 2, 0, 1, -2, 3, 1]
Y = [0, 0, 2, 4, 4, 3, 0, 0, 1, 0]
M = [0, 0, 0, 7, 3, 0, 0, 0, 0, 0]


# -------------------------------------------------------------------------------------------------- registry
def test_sniffed_by_magic_and_by_extension(tmp_path):
    p = tmp_path / "recording.bin"
    p.write_bytes(STUB_HEAD)
    assert sniff(p) == "ttbin"
    q = tmp_path / "garbage.ttbin"
    q.write_bytes(b"\x01\x02\x03\x04" * 100)
    with pytest.raises(FormatError, match=r"garbage\.ttbin.*extension \.ttbin says ttbin.*SITT"):
        sniff(q)


def test_without_the_vendor_package_info_says_which_extra_in_one_line(tmp_path, monkeypatch, capsys):
    from timetag.cli import main

    for name in ("Swabian", "Swabian.TimeTagger", "TimeTagger"):
        monkeypatch.setitem(sys.modules, name, None)       # `import` of these now fails
    p = _file(tmp_path)
    with pytest.raises(FormatError, match=r'run\.ttbin: .*not installed: pip install "timetag\[swabian\]"'):
        open_tags(p)
    with pytest.raises(SystemExit) as ei:
        main(["info", str(p)])
    err = capsys.readouterr().err.strip()
    assert ei.value.code == 2 and "\n" not in err and 'pip install "timetag[swabian]"' in err


def test_follow_refuses_ttbin_and_says_what_to_use(tmp_path):
    from timetag.live.replay import follow_source

    for p in (tmp_path / "later.ttbin", _file(tmp_path, "now.dat")):
        with pytest.raises(FormatError, match=r"cannot follow a Swabian \.ttbin.*--source swabian"):
            follow_source(p)


# ------------------------------------------------------------------------------------ reading (the stand-in)
def test_events_map_to_lost_data_exactly_as_in_a_dump_file(tmp_path):
    """The same events as dump records and through FileReader give the same stream."""
    rec = np.zeros(len(T), RECORD_DTYPE)
    rec["time"], rec["channel"], rec["type"], rec["missed_events"] = T, C, Y, M
    (tmp_path / "same.dump").write_bytes(rec.tobytes())
    want = read_all(tmp_path / "same.dump")
    got = concat(ttbin.TtbinReader(_file(tmp_path), module=fake_module(T, C, Y, M)))
    assert got.time.tolist() == want.time.tolist() == [10, 20, 60, 70, 90]
    assert got.channel.tolist() == want.channel.tolist() == [1, 2, 1, -2, 1]
    assert got.lost.tolist() == want.lost.tolist()
    assert got.lost["kind"].tolist() == [OVERFLOW_BEGIN, MISSED, MISSED, OVERFLOW_END, ERROR]
    assert got.lost["count"].tolist() == [0, 7, 3, 0, 0] and got.lost["channel"].tolist() == [1, 0, 2, 0, 3]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 100])
def test_chunking_does_not_change_the_stream(tmp_path, chunk_size):
    got = concat(ttbin.TtbinReader(_file(tmp_path), chunk_size=chunk_size, module=fake_module(T, C, Y, M)))
    whole = concat(ttbin.TtbinReader(_file(tmp_path), module=fake_module(T, C, Y, M)))
    assert got.time.tolist() == whole.time.tolist() and got.lost.tolist() == whole.lost.tolist()


def test_records_meta_and_series(tmp_path):
    p = _file(tmp_path)
    for n in (1, 2):
        _file(tmp_path, f"run.{n}.ttbin")
    _file(tmp_path, "run.4.ttbin")                       # not in the series: run.3 is missing
    mod = fake_module(T, C, Y, M)
    r = ttbin.TtbinReader(p, chunk_size=4, module=mod)
    assert r.records is None and r.format == "ttbin" and r.resolution_ps == 1
    chunks = list(r)
    assert r.records == len(T) and mod.opened == [str(p), str(p)] and mod.closed == 2
    m = r.meta
    assert m["configuration"] == CONFIG and m["channels"] == [1, 2, 3] and m["t_start_ps"] == 5
    assert m["files"] == ["run.ttbin", "run.1.ttbin", "run.2.ttbin"] and m["last_marker"] == "the end"
    assert m["events"] == len(T) and m["tags"] == 5 and m["lost_events"] == 5 and m["reader"].endswith("fake-1.0")
    assert sum(len(c) for c in chunks) == 5
    part = ttbin.TtbinReader(tmp_path / "run.1.ttbin", module=fake_module(T, C, Y, M))
    assert part.meta["files"] == ["run.1.ttbin"]


def test_start_stop_count_events(tmp_path):
    r = ttbin.TtbinReader(_file(tmp_path), chunk_size=3, module=fake_module(T, C, Y, M))
    got = concat(r.iter_chunks(5, 9))     # events 5..8: OverflowEnd at 50, tags 60 and 70, Error at 80
    assert got.time.tolist() == [60, 70] and got.lost["kind"].tolist() == [OVERFLOW_END, ERROR]
    assert r.records is None              # a partial pass does not count the file


def test_a_backward_step_names_its_event_after_the_tags_before_it(tmp_path):
    t = [10, 20, 25, 30, 15, 40]
    y = [0, 0, 2, 0, 0, 0]              # the overflow begin at 25 is event 2: the bad tag is event 4
    r = ttbin.TtbinReader(_file(tmp_path), chunk_size=4, module=fake_module(t, [1] * 6, y))
    seen = []
    with pytest.raises(DataValidationError, match=r"run\.ttbin, record 4: time goes backwards: 15 ps after 30 ps"):
        for c in r:
            seen.append(c)
    assert concat(seen).time.tolist() == [10, 20, 30]


def test_lost_mode_and_no_order_check(tmp_path):
    t, c = [10, 20, 5, 30], [1, 1, 1, 1]
    with pytest.warns(TimetagWarning, match="record 2: time goes backwards"):
        r = ttbin.TtbinReader(_file(tmp_path), module=fake_module(t, c), on_bad_record="lost")
        got = concat(r)
    assert got.time.tolist() == [10, 20, 30] and r.meta["bad_records"] == 1
    assert got.lost["kind"].tolist() == [OVERFLOW_BEGIN, OVERFLOW_END]
    r = ttbin.TtbinReader(_file(tmp_path), module=fake_module(t, c), check_order=False)
    assert concat(r).time.tolist() == t and r.meta["backward_steps"] == 1


def test_unknown_event_type_is_a_format_error_after_the_tags_before_it(tmp_path):
    r = ttbin.TtbinReader(_file(tmp_path), module=fake_module([1, 2, 3], [1, 1, 1], [0, 0, 9]))
    seen = []
    with pytest.raises(FormatError, match="unknown event type code 9 in event 2"):
        for c in r:
            seen.append(c)
    assert concat(seen).time.tolist() == [1, 2]


def test_vendor_errors_at_open_and_while_reading_are_format_errors(tmp_path, capfd):
    with pytest.raises(FormatError, match=r"not a readable .*FileReader says: Incorrect Header \(x\.cpp:1\)$"):
        ttbin.TtbinReader(_file(tmp_path), module=fake_module(T, C, Y, M, open_log=[(40, "Incorrect Header "
                                                                                         "(x.cpp:1)")]))
    mod = fake_module(T, C, Y, M, read_log={4: [(40, "File access failed")]})
    r = ttbin.TtbinReader(_file(tmp_path), chunk_size=4, module=mod)
    seen = []
    with pytest.raises(FormatError, match="FileReader failed after event 4: File access failed"):
        for c in r:
            seen.append(c)
    assert concat(seen).time.tolist() == [10, 20] and mod.closed == 2
    with pytest.warns(TimetagWarning, match="Swabian FileReader: a note"):
        ttbin.TtbinReader(_file(tmp_path), module=fake_module(T, C, Y, M, open_log=[(30, "a note")]))
    assert capfd.readouterr().err == ""               # nothing went to the console


def test_no_configuration_means_not_a_filewriter_file(tmp_path):
    with pytest.raises(FormatError, match="no Time Tagger configuration"):
        ttbin.TtbinReader(_file(tmp_path), module=fake_module(T, C, config=None))


def test_a_reader_that_never_ends_is_stopped_with_a_warning(tmp_path):
    with pytest.warns(TimetagWarning, match="says it has more data but returned none"):
        assert concat(ttbin.TtbinReader(_file(tmp_path), module=fake_module(T, C, stuck=True))).time.size == 0


def test_the_logger_installed_before_is_put_back(tmp_path):
    mod = fake_module(T, C, Y, M)
    mine = []
    mod.setLogger(lambda level, msg: mine.append(msg))
    list(ttbin.TtbinReader(_file(tmp_path), module=mod))
    assert mod.setLogger.logger is not None
    mod.log(40, "later")
    assert mine == ["07-Dec-2026 05:00:31: later"]


def test_renumbered_event_types_are_refused(tmp_path):
    mod = fake_module(T, C)
    mod.Tag = type("Tag", (), {**{k: v for k, v in vars(FakeTag).items() if k.startswith("Type_")},
                               "Type_OverflowEnd": 7})
    with pytest.raises(FormatError, match="numbers event type OverflowEnd as 7"):
        ttbin.TtbinReader(_file(tmp_path), module=mod)


def test_info_convert_and_replay_read_it_through_open_tags(tmp_path, monkeypatch, capsys):
    from timetag.cli import main
    from timetag.live.replay import ReplaySource

    monkeypatch.setattr(ttbin, "import_vendor", lambda path=None: fake_module(T, C, Y, M))
    p = _file(tmp_path)
    with pytest.raises(SystemExit) as ei:
        main(["info", str(p), "--json"])
    s = json.loads(capsys.readouterr().out)
    assert ei.value.code in (0, None) and s["format"] == "ttbin" and s["records"] == len(T) and s["tags"] == 5
    assert s["meta"]["configuration"] == CONFIG
    assert sorted(e["kind"] for e in s["lost"]) == ["error", "missed", "missed", "overflow"]
    assert {"kind": "overflow", "start_ps": 30, "end_ps": 50} in s["lost"]
    with pytest.raises(SystemExit) as ei:
        main(["convert", str(p), str(tmp_path / "out.h5")])
    assert ei.value.code in (0, None)
    back = read_all(tmp_path / "out.h5")
    assert back.time.tolist() == [10, 20, 60, 70, 90] and back.lost.size == 5
    batches = list(ReplaySource(p, speed=None))
    assert concat(b.chunks["alice"] for b in batches).time.tolist() == [10, 20, 60, 70, 90]


# ---------------------------------------------------------------------------------------- the REAL FileReader
@pytest.fixture
def TT():
    return pytest.importorskip("Swabian.TimeTagger", reason="the Swabian-TimeTagger package is not installed")


def _public(cls) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")} - {"this", "thisown"}


def test_the_stand_in_offers_exactly_the_real_methods_and_dtypes(TT, tmp_path):
    assert _public(FakeBuffer([1], [1], [0], [0])) == _public(TT.TimeTagStreamBuffer)
    assert _public(fake_module(T, C).FileReader("x")) - {"module_"} == _public(TT.FileReader)
    p = tmp_path / "garbage.ttbin"
    p.write_bytes(b"\x01" * 100)
    with ttbin._vendor_log(TT) as log:          # the real reader logs "Incorrect Header"; keep it off the console
        real = TT.FileReader(str(p)).getData(1)
    assert log.errors
    fake = FakeBuffer([1], [1], [0], [0])
    for name in ("getTimestamps", "getChannels", "getEventTypes", "getMissedEvents", "getOverflows"):
        assert getattr(real, name)().dtype == getattr(fake, name)().dtype, name
    for name in ("size", "hasOverflows", "tStart", "tGetData"):
        assert type(getattr(real, name)) is type(getattr(fake, name)), name
    ttbin.check_type_codes(TT)                    # the vendor's Tag.Type_* are the dump's codes
    assert {n: getattr(TT.Tag, n) for n in ttbin.TYPE_NAMES} == ttbin.TYPE_NAMES


def test_real_reader_on_garbage_is_a_format_error_and_prints_nothing(TT, tmp_path, capfd):
    p = tmp_path / "garbage.ttbin"
    p.write_bytes(np.random.default_rng(1).bytes(5000))
    with pytest.raises(FormatError, match=r"garbage\.ttbin.*extension \.ttbin says ttbin"):
        open_tags(p)                              # sniffing refuses it before the vendor sees it
    with pytest.raises(FormatError, match=r"garbage\.ttbin: not a readable .*FileReader says: Incorrect Header"):
        open_tags(p, format="ttbin")              # the vendor's verdict, which hasData() alone would hide
    q = tmp_path / "bad_block.ttbin"              # the magic, then a block header the vendor refuses
    q.write_bytes(b"SITT" + np.array([0, 9, 0], "<u4").tobytes() + bytes(64))
    with pytest.raises(FormatError, match=r"bad_block\.ttbin: not a readable .*Incorrect Header"):
        open_tags(q)
    r = tmp_path / "stub.ttbin"                   # a start the vendor accepts, but no configuration and no data
    r.write_bytes(STUB_HEAD)
    with pytest.raises(FormatError, match=r"stub\.ttbin"):
        open_tags(r)
    out = capfd.readouterr()
    assert "Incorrect Header" not in out.out + out.err
    assert TT.setLogger.logger is None            # as before: the vendor prints to the console again


def test_real_reader_on_a_missing_file(TT, tmp_path):
    with pytest.raises(FormatError, match="no such file"):
        open_tags(tmp_path / "missing.ttbin")
    # the vendor's own refusal (a file gone between the check and the open) is a FormatError too
    opener = SimpleNamespace(_tt=TT, path=tmp_path / "gone.ttbin")
    with pytest.raises(FormatError, match=r"gone\.ttbin: Swabian's FileReader cannot open it"):
        ttbin.TtbinReader._open(opener)


def test_real_logger_of_the_user_keeps_working(TT, tmp_path):
    p = tmp_path / "garbage.ttbin"
    p.write_bytes(b"\x02" * 64)
    mine = []
    TT.setLogger(lambda level, msg: mine.append(msg))
    try:
        with pytest.raises(FormatError):
            open_tags(p, format="ttbin")
        assert mine == []                         # captured by the reader meanwhile
        TT.FileReader(str(p))
        assert any("Incorrect Header" in m for m in mine)
    finally:
        TT.setLogger(None)


def test_without_the_vendor_package_one_line_names_the_extra(tmp_path, monkeypatch):
    """Runs whether or not the package is installed: the reader is told it is missing."""
    from timetag.formats import ttbin

    monkeypatch.setattr(ttbin, "vendor_module", lambda: None)
    path = tmp_path / "run.ttbin"
    path.write_bytes(STUB_HEAD)
    with pytest.raises(FormatError, match=r'run\.ttbin: .*not installed: pip install "timetag\[swabian\]"') as info:
        read_all(path)
    assert "\n" not in str(info.value)
