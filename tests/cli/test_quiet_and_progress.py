"""--quiet on info and recover; the spinner of estimate and scan (shown past a second, never with --quiet);
issue 20, item 5."""
from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from rich.console import Console

from estimate_cases import labs, write_pair
from timetag.chunk import TagChunk
from timetag.cli import main
from timetag.commands import progress
from timetag.formats.dump import write_dump
from timetag.records import ROUND_DTYPE
from timetag.roundsfile import RoundsWriter, read_rounds, write_rounds


def _run(argv, capsys):
    with pytest.raises(SystemExit) as ei:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return ei.value.code or 0, out.out, out.err


@pytest.fixture
def tags(tmp_path):
    p = tmp_path / "a.dump"
    t = np.arange(0, 1_000_000, 10, dtype=np.int64)
    write_dump(p, TagChunk(t, (np.arange(t.size) % 3).astype(np.int32)))
    return p


# --- info -q ---------------------------------------------------------------------------------------------------

def test_info_quiet_prints_nothing_for_a_readable_tag_file(tags, capsys):
    assert _run(["info", tags], capsys) [1]  # without -q: the tables
    assert _run(["info", tags, "-q"], capsys) == (0, "", "")


def test_info_quiet_on_a_rounds_file(tmp_path, capsys):
    p = write_rounds(tmp_path / "r.h5", np.zeros(3, ROUND_DTYPE), lab="alice", role="alice")
    assert "rounds file" in _run(["info", p], capsys)[1]
    assert _run(["info", p, "--quiet"], capsys) == (0, "", "")


def test_info_quiet_still_fails_in_one_line_and_json_still_prints(tmp_path, tags, capsys):
    bad = tmp_path / "bad.dump"
    bad.write_bytes(b"")
    code, out, err = _run(["info", bad, "-q"], capsys)
    assert code == 2 and out == "" and "empty" in err and err.count("\n") == 1
    code, out, _ = _run(["info", tags, "-q", "--json"], capsys)
    assert code == 0 and json.loads(out)["tags"] == 100_000


# --- recover -q ------------------------------------------------------------------------------------------------

def _killed_partial(path):
    r = np.zeros(5, ROUND_DTYPE)
    r["index"] = np.arange(5)
    w = RoundsWriter(path, lab="alice", role="alice")
    w.append(r, None)
    w.flush()
    w._f.close()  # as a killed writer leaves it: state 'running', never closed by its writer
    return path


@pytest.mark.parametrize("quiet", [False, True])
def test_recover_quiet_recovers_without_the_summary_line(tmp_path, capsys, quiet):
    partial = _killed_partial(tmp_path / "x.h5.partial")
    code, out, err = _run(["recover", partial, *(["-q"] if quiet else [])], capsys)
    assert code == 0 and err == ""
    assert (out == "") if quiet else out.startswith("recovered 5 rounds")
    assert len(read_rounds(tmp_path / "x.h5", accept_incomplete=True).rounds) == 5 and not partial.exists()


# --- the spinner -----------------------------------------------------------------------------------------------

def _terminal():
    buf = io.StringIO()
    return buf, Console(file=buf, force_terminal=True, width=100)


def test_working_appears_past_its_delay_and_is_removed():
    buf, con = _terminal()
    with progress.Working("crunching numbers", after=0.05, console=con) as w:
        deadline = time.monotonic() + 10
        while not w.shown and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # a few refreshes
    assert w.shown and "crunching numbers" in buf.getvalue()
    assert "crunching" not in buf.getvalue().rsplit("\r", 1)[-1]  # the last thing drawn erases it: transient


@pytest.mark.parametrize("enabled, after, terminal", [(True, 30.0, True), (False, 0.0, True), (True, 0.0, False)])
def test_working_is_silent_when_quick_disabled_or_not_on_a_terminal(enabled, after, terminal):
    buf = io.StringIO()
    con = Console(file=buf, force_terminal=terminal, width=100)
    with progress.Working("crunching numbers", enabled=enabled, after=after, console=con) as w:
        time.sleep(0.1)
    time.sleep(0.05)  # a timer that fired late must not draw after the end
    assert not w.shown and buf.getvalue() == ""


class _Recorder:
    """Stands in for progress.Working: records how the command used it."""
    uses: list = []

    def __init__(self, label, *, enabled=True, **kw):
        self.label, self.enabled = label, enabled

    def __enter__(self):
        _Recorder.uses.append(self)
        return self

    def __exit__(self, *exc):
        self.exited = True


@pytest.fixture
def recorder(monkeypatch):
    _Recorder.uses = []
    monkeypatch.setattr(progress, "Working", _Recorder)
    return _Recorder.uses


@pytest.mark.parametrize("quiet", [False, True])
def test_estimate_runs_under_the_spinner_unless_quiet(tmp_path, capsys, recorder, quiet):
    a, b = write_pair(tmp_path, *labs(800))
    code, out, err = _run(["estimate", a, b, "--samples", "0", *(["-q"] if quiet else [])], capsys)
    assert code == 0, err
    assert [(u.enabled, u.label.startswith("estimate:"), u.exited) for u in recorder] == [(not quiet, True, True)]
    assert ("DIQKD estimate" in out) is not quiet


@pytest.mark.parametrize("quiet", [False, True])
def test_scan_runs_under_the_spinner_unless_quiet(tmp_path, tags, capsys, recorder, monkeypatch, quiet):
    from timetag.distributed import scan

    calls = []

    def fake_run_scan(*args, **kw):
        calls.append(recorder[-1].enabled if recorder else None)  # the spinner is running while the scan does
        return [{"threshold": 3, "heralds": 1, "herald_rate_hz": 1.0, "pairs": 1, "S": None, "Q": None,
                 "key_rate_per_event": None}]

    monkeypatch.setattr(scan, "run_scan", fake_run_scan)
    setup = tmp_path / "setup.toml"
    setup.write_text("")
    code, out, err = _run(["scan", tags, tags, "-s", setup, "--vary", "threshold=3", "-o", tmp_path / "o",
                           *(["-q"] if quiet else [])], capsys)
    assert code == 0, err
    assert calls == [not quiet] and recorder[0].label.startswith("scan:") and recorder[0].exited
